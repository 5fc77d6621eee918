"""Joining namespaces given as nsfs files: (CLONE_NEW* flag, path) pairs.

The runtime's own processes join this way (exec, and a create that joins
linux.namespaces paths); nsbox.namespaces re-exports it with the typed API,
whose enum these processes need not pay for (``enum`` costs ~3 ms).
"""

from __future__ import annotations

import os

from nsbox._sys import ns as _ns
from nsbox._sys import process as _proc
from nsbox._sys.pidfd import pidfd_open
from nsbox._sys.consts import CLONE_NEWUSER
from nsbox.errors import ProcessNotFound


def join(files: list[tuple[int, str]], pid: int | None = None) -> None:
    """Join the namespaces behind *files*, a list of (CLONE_NEW* flag, nsfs path).

    When they are all *pid*'s own, they are joined at once through a pidfd
    (Linux 5.8+): the kernel orders the joins, and either all happen or none.
    Otherwise, or on an older kernel, file by file: every fd is opened first
    (a joined mount namespace changes what the paths mean); then what our
    current credentials allow, except the user namespace; then the user
    namespace, which may grant what the rest needs; then what was refused.
    """
    if not files:
        return
    flags = flags_of_files(files)
    if pid is not None and all(path.startswith(f"/proc/{pid}/ns/") for _, path in files):
        try:
            pidfd = pidfd_open(pid)
        except OSError as e:
            if e.errno == 3:  # ESRCH
                raise ProcessNotFound(f"no process with pid {pid}") from None
            pidfd = -1
        if pidfd >= 0:
            try:
                _ns.setns(pidfd, flags, f"pidfd:{pid}")
                return
            except OSError as e:
                if e.errno != 22:  # EINVAL: no pidfd setns here; the files will say more
                    raise
            finally:
                os.close(pidfd)
    fds = []
    try:
        for flag, path in files:
            fds.append((flag, path, _proc.open_ns(path)))
        user = [e for e in fds if e[0] == CLONE_NEWUSER]
        refused = []
        for entry in fds:
            if entry[0] == CLONE_NEWUSER:
                continue
            try:
                _ns.setns(entry[2], entry[0], entry[1])
            except OSError as e:
                if e.errno != 1 or not user:  # EPERM may be lifted by the user namespace
                    raise
                refused.append(entry)
        for flag, path, fd in user + refused:
            _ns.setns(fd, flag, path)
    finally:
        for *_, fd in fds:
            os.close(fd)


def flags_of_files(files: list[tuple[int, str]]) -> int:
    flags = 0
    for flag, _ in files:
        flags |= flag
    return flags
