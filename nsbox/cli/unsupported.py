"""Verbs of runc's command line that nsbox does not do yet: one clear line
instead of "unknown verb", so a client's log says what is missing."""

from __future__ import annotations

from nsbox.errors import NsboxError

REASONS = {
    "checkpoint": "checkpoint/restore (CRIU) is not supported by nsbox",
    "restore": "checkpoint/restore (CRIU) is not supported by nsbox",
    "pause": "pause needs nsbox's cgroup support (the freezer), which is not implemented yet",
    "resume": "resume needs nsbox's cgroup support (the freezer), which is not implemented yet",
    "update": "update needs nsbox's cgroup support, which is not implemented yet",
    "events": "events needs nsbox's cgroup support (stats, OOM notices), which is not implemented yet",
}


def refuse(verb: str) -> int:
    raise NsboxError(REASONS[verb])
