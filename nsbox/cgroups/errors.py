"""CgroupError: one line naming the JSON path, the controller, the file and the value."""

from __future__ import annotations

import os

from nsbox.errors import NsboxError


class CgroupError(NsboxError):
    """A cgroup could not be made, limited, joined, frozen or removed.

    ``str()`` is one line, most specific first::

        linux.resources.memory.limit: memory: cannot write memory.limit_in_bytes = 1: Device or resource busy

    The parts are also attributes (any may be None): ``json_path`` (where in
    config.json), ``controller``, ``path`` (the full file path), ``value`` and
    ``errno``.
    """

    def __init__(self, message: str, hint: str | None = None, *, json_path: str | None = None,
                 controller: str | None = None, path: str | None = None, value: str | None = None,
                 errno: int | None = None) -> None:
        prefix = "".join(f"{part}: " for part in (json_path, controller) if part)
        super().__init__(prefix + message, hint)
        self.json_path = json_path
        self.controller = controller
        self.path = path
        self.value = value
        self.errno = errno


def strerror(e: OSError) -> str:
    """The errno's text ("Device or resource busy"), as the kernel's errors read in a shell."""
    return e.strerror or (os.strerror(e.errno) if e.errno else str(e))
