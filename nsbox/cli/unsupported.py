"""Verbs of runc's command line that nsbox does not do: one clear line
instead of "unknown verb", so a client's log says what is missing."""

from __future__ import annotations

from nsbox.errors import NsboxError

REASONS = {
    "checkpoint": "checkpoint/restore (CRIU) is not supported by nsbox",
    "restore": "checkpoint/restore (CRIU) is not supported by nsbox",
}


def refuse(verb: str) -> int:
    raise NsboxError(REASONS[verb])
