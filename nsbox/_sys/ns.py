"""Namespace syscalls: unshare(2), setns(2) and the nsfs ioctls (ioctl_ns(2))."""

from __future__ import annotations

import ctypes

from nsbox._sys import trace
from nsbox._sys.consts import (
    CLONE_FLAG_NAMES,
    IOCTL_NAMES,
    NS_GET_NSTYPE,
    NS_GET_OWNER_UID,
    NS_GET_PARENT,
    NS_GET_USERNS,
    flag_names,
)
from nsbox._sys.libc import check, libc, os_call

libc.unshare.argtypes = [ctypes.c_int]
libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]


def unshare(flags: int) -> None:
    """unshare(2) the namespaces in *flags* (``CLONE_NEW*``)."""
    ret = libc.unshare(flags)
    if ret == -1 or trace.enabled:
        check(ret, "unshare", None, f"unshare({flag_names(flags, CLONE_FLAG_NAMES)})")


def setns(fd: int, nstype: int = 0, path: str | None = None) -> None:
    """setns(2) into the namespace file *fd*, or into several of a pidfd's.

    *nstype* is 0 (any type) or the ``CLONE_NEW*`` flag(s); with a pidfd
    (Linux 5.8+) it is the set of namespaces to join at once.  *path* only
    names the file in errors and traces.
    """
    ret = libc.setns(fd, nstype)
    if ret == -1 or trace.enabled:
        what = path if path is not None else str(fd)
        check(ret, "setns", path, f"setns({trace.quote(what)}, {flag_names(nstype, CLONE_FLAG_NAMES)})")


def _ns_ioctl(fd: int, request: int, path: str | None, arg: object = None) -> int:
    import fcntl  # here, not at the top: the hot verbs never make these calls

    name = IOCTL_NAMES[request]
    args = (fd, request) if arg is None else (fd, request, arg)
    ret: int = os_call(f"ioctl({name})", f"ioctl({trace.quote(path) if path else fd}, {name})", path,
                       fcntl.ioctl, *args)
    return ret


def ns_get_userns(fd: int, path: str | None = None) -> int:
    """A new fd for the user namespace that owns the namespace *fd*."""
    return _ns_ioctl(fd, NS_GET_USERNS, path)


def ns_get_parent(fd: int, path: str | None = None) -> int:
    """A new fd for the parent of the user or PID namespace *fd*.

    EPERM when the parent is outside the caller's namespace tree (the top).
    """
    return _ns_ioctl(fd, NS_GET_PARENT, path)


def ns_get_nstype(fd: int, path: str | None = None) -> int:
    """The ``CLONE_NEW*`` flag of the namespace *fd*."""
    return _ns_ioctl(fd, NS_GET_NSTYPE, path)


def ns_get_owner_uid(fd: int, path: str | None = None) -> int:
    """The uid (in the caller's user namespace) that created the user namespace *fd*."""
    buf = ctypes.c_uint32(0)
    _ns_ioctl(fd, NS_GET_OWNER_UID, path, buf)
    return buf.value
