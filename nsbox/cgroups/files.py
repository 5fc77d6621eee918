"""Reading and writing one cgroup directory's control files.

A write is one ``write(2)`` of the value, without a newline, on a file opened
without O_CREAT: a control file that does not exist is the kernel saying the
controller (or this knob) is not there, not a file to make.  The kernel
refuses a bad value in write(2) itself, so its errno is what the error shows.
"""

from __future__ import annotations

import os

from nsbox.cgroups.errors import CgroupError, strerror
from nsbox.cgroups.layout import Hierarchy

#: ENOENT/ENODEV/EOPNOTSUPP: the knob does not exist here
_MISSING = {2, 19, 95}


class Files:
    """The control files of a hierarchy's container directory (or a sub-directory).

    Every successful write is appended to *journal* as (path, value): what was
    done, in order, for tests and debug logs.
    """

    __slots__ = ("hier", "dir", "journal")

    def __init__(self, hier: Hierarchy, journal: list[tuple[str, str]], dir: str | None = None) -> None:
        self.hier = hier
        self.dir = dir or hier.dir
        self.journal = journal

    def path(self, name: str) -> str:
        if self.hier.noprefix and "." in name and not name.startswith("cgroup."):
            name = name.split(".", 1)[1]
        return os.path.join(self.dir, name)

    def exists(self, name: str) -> bool:
        return os.path.exists(self.path(name))

    def read(self, name: str, controller: str | None = None, json_path: str | None = None) -> str:
        path = self.path(name)
        try:
            with open(path) as f:
                return f.read()
        except OSError as e:
            raise CgroupError(f"cannot read {name}: {strerror(e)}", json_path=json_path,
                              controller=controller or self.hier.label, path=path, errno=e.errno) from None

    def read_int(self, name: str, controller: str | None = None) -> int | None:
        """A file holding one number (``max`` is None); None when missing or unreadable."""
        try:
            text = self.read(name, controller).strip()
        except CgroupError:
            return None
        if text == "max":
            return None
        try:
            return int(text.split()[0])
        except (ValueError, IndexError):
            return None

    def write(self, name: str, value: str, json_path: str | None = None, controller: str | None = None,
              hint: str | None = None) -> None:
        path = self.path(name)
        try:
            write_file(path, value)
        except OSError as e:
            why = strerror(e)
            if e.errno in _MISSING and not os.path.isdir(self.dir):
                why, hint = "the cgroup does not exist", hint or self.dir
            elif e.errno in _MISSING and hint is None:
                hint = f"this cgroup has no {name} (the kernel lacks it, or the controller is not enabled here)"
            raise CgroupError(f"cannot write {name} = {value}: {why}", hint, json_path=json_path,
                              controller=controller or self.hier.label, path=path, value=value,
                              errno=e.errno) from None
        self.journal.append((path, value))

    def sub(self, directory: str) -> Files:
        return Files(self.hier, self.journal, directory)


def write_file(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        data = value.encode()
        # one write(2): cgroup files parse what a single write gives them
        if os.write(fd, data) != len(data):
            raise OSError(5, "short write", path)
    finally:
        os.close(fd)


def is_missing(e: CgroupError) -> bool:
    return e.errno in _MISSING
