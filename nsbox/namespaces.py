"""Linux namespaces as Python objects: types, identities, creating and joining.

    >>> from nsbox.namespaces import NamespaceType, namespaces_of
    >>> namespaces_of("self")[NamespaceType.UTS].inode      # doctest: +SKIP
    4026531838

A namespace is identified by the (device, inode) pair of its nsfs file; two
processes share a namespace exactly when those match.  Creating a user
namespace or joining a user or mount namespace needs a single-threaded
process, so :func:`unshare` and :func:`setns` check that first and say so.
"""

from __future__ import annotations

import enum
import os


TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

from nsbox._sys import ns as _ns
from nsbox._sys import process as _proc
from nsbox._sys.consts import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWTIME,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    NAMESPACE_TYPES,
)
from nsbox.errors import NamespaceError, ProcessNotFound
from nsbox.nsfiles import flags_of_files, join  # noqa: F401 - re-exported


class NamespaceType(enum.Enum):
    """A kind of namespace; the value is its file name under ``/proc/PID/ns``."""

    MNT = "mnt"
    UTS = "uts"
    IPC = "ipc"
    PID = "pid"
    NET = "net"
    USER = "user"
    CGROUP = "cgroup"
    TIME = "time"

    @property
    def clone_flag(self) -> int:
        """The ``CLONE_NEW*`` flag that creates this kind of namespace."""
        return _CLONE_FLAGS[self.value]

    @property
    def proc_name(self) -> str:
        return self.value

    @classmethod
    def parse(cls, name: str) -> NamespaceType:
        """Accept ``mnt``/``mount``, ``net``/``network``, any case."""
        key = name.strip().lower()
        key = _ALIASES.get(key, key)
        try:
            return cls(key)
        except ValueError:
            known = ", ".join(t.value for t in cls)
            raise ValueError(f"unknown namespace type {name!r} (known: {known})") from None

    @classmethod
    def from_clone_flag(cls, flag: int) -> NamespaceType:
        for name, value in NAMESPACE_TYPES:
            if value == flag:
                return cls(name)
        raise ValueError(f"{flag:#x} is not a CLONE_NEW* flag")


_CLONE_FLAGS = dict(NAMESPACE_TYPES)
_ALIASES = {"mount": "mnt", "network": "net", "cgroups": "cgroup"}

#: The order in which namespaces are joined one file at a time: the user
#: namespace first, because it grants the capabilities the other joins need.
JOIN_ORDER: tuple[NamespaceType, ...] = tuple(NamespaceType(name) for name, _ in NAMESPACE_TYPES)


class Namespace:
    """One namespace, seen through a file that refers to it."""

    __slots__ = ("type", "inode", "device", "path")

    def __init__(self, type: NamespaceType, inode: int, device: int, path: str) -> None:
        self.type = type
        self.inode = inode
        self.device = device
        self.path = path

    @classmethod
    def from_path(cls, path: str, type: NamespaceType | None = None) -> Namespace:
        """The namespace behind an nsfs file (``/proc/PID/ns/TYPE`` or a bind mount).

        Without *type*, the kernel is asked (NS_GET_NSTYPE).
        """
        st = os.stat(path)
        if type is None:
            fd = _proc.open_ns(path)
            try:
                type = NamespaceType.from_clone_flag(_ns.ns_get_nstype(fd, path))
            finally:
                os.close(fd)
        return cls(type, st.st_ino, st.st_dev, path)

    @classmethod
    def from_fd(cls, fd: int, path: str | None = None) -> Namespace:
        st = os.fstat(fd)
        type = NamespaceType.from_clone_flag(_ns.ns_get_nstype(fd, path))
        return cls(type, st.st_ino, st.st_dev, path or f"/proc/self/fd/{fd}")

    def open(self) -> int:
        """An O_CLOEXEC fd for this namespace; the caller closes it."""
        return _proc.open_ns(self.path)

    def owner(self) -> Namespace:
        """The user namespace that owns this one (NS_GET_USERNS)."""
        return self._related(_ns.ns_get_userns)

    def parent(self) -> Namespace | None:
        """The parent of a user or PID namespace; None at the top of what we can see."""
        try:
            return self._related(_ns.ns_get_parent)
        except OSError as e:
            if e.errno == 1:  # EPERM: the parent is outside our view
                return None
            raise

    def owner_uid(self) -> int:
        """For a user namespace: the uid (in our user namespace) that created it."""
        fd = self.open()
        try:
            return _ns.ns_get_owner_uid(fd, self.path)
        finally:
            os.close(fd)

    def _related(self, ioctl) -> Namespace:  # type: ignore[no-untyped-def]
        fd = self.open()
        try:
            rel = ioctl(fd, self.path)
        finally:
            os.close(fd)
        try:
            return Namespace.from_fd(rel, f"{self.path} ({ioctl.__name__.removeprefix('ns_get_')})")
        finally:
            os.close(rel)

    @property
    def id(self) -> tuple[int, int]:
        return (self.device, self.inode)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Namespace):
            return NotImplemented
        return self.id == other.id and self.type is other.type

    def __hash__(self) -> int:
        return hash((self.device, self.inode))

    def __repr__(self) -> str:
        return f"Namespace({self.type.value}:[{self.inode}], path={self.path!r})"


def namespaces_of(pid: int | str = "self", proc: str = "/proc") -> dict[NamespaceType, Namespace]:
    """The namespaces of process *pid*, by type (types the kernel lacks are absent)."""
    base = f"{proc}/{pid}/ns"
    if not os.path.isdir(f"{proc}/{pid}"):
        raise ProcessNotFound(f"no process with pid {pid}")
    found: dict[NamespaceType, Namespace] = {}
    for t in NamespaceType:
        path = f"{base}/{t.value}"
        try:
            st = os.stat(path)
        except FileNotFoundError:
            if not os.path.isdir(f"{proc}/{pid}"):
                raise ProcessNotFound(f"no process with pid {pid}") from None
            continue
        found[t] = Namespace(t, st.st_ino, st.st_dev, path)
    return found


def supported_types(proc: str = "/proc") -> frozenset[NamespaceType]:
    """The namespace types this kernel has (those with a /proc/self/ns file)."""
    return frozenset(namespaces_of("self", proc))


def thread_count(proc: str = "/proc") -> int:
    return len(os.listdir(f"{proc}/self/task"))


def _require_single_thread(what: str, proc: str = "/proc") -> None:
    n = thread_count(proc)
    if n > 1:
        raise NamespaceError(
            f"{what}: this process has {n} threads",
            "the kernel allows it only in a single-threaded process; do it in a fresh "
            "process (nsbox.Popen / a fork before any thread starts)",
        )


def flags_of(types: Iterable[NamespaceType]) -> int:
    flags = 0
    for t in types:
        flags |= t.clone_flag
    return flags


def unshare(*types: NamespaceType) -> None:
    """Move the calling process into new namespaces of *types* (unshare(2)).

    A new PID or time namespace takes effect for the children forked
    afterwards, not for the caller.
    """
    flags = flags_of(types)
    if flags & (CLONE_NEWUSER | CLONE_NEWNS):
        _require_single_thread("unshare")
    _ns.unshare(flags)


def setns(target: Namespace | str | int, type: NamespaceType | None = None) -> None:
    """Join one namespace given as a :class:`Namespace`, a path, or an open fd."""
    if isinstance(target, Namespace):
        type = type or target.type
        path: str | None = target.path
    elif isinstance(target, str):
        path = target
    else:
        path = None
    if type in (NamespaceType.USER, NamespaceType.MNT, None):
        _require_single_thread("setns")
    nstype = type.clone_flag if type else 0
    if path is None:
        _ns.setns(int(target), nstype)  # type: ignore[arg-type]
        return
    fd = _proc.open_ns(path)
    try:
        _ns.setns(fd, nstype, path)
    finally:
        os.close(fd)


def enter(pid: int, types: Iterable[NamespaceType]) -> None:
    """Join the *types* namespaces of process *pid* (see :func:`join`)."""
    _require_single_thread("setns")
    if not os.path.isdir(f"/proc/{pid}"):
        raise ProcessNotFound(f"no process with pid {pid}")
    wanted = set(types)
    join([(t.clone_flag, f"/proc/{pid}/ns/{t.value}") for t in JOIN_ORDER if t in wanted], pid)


__all__ = [
    "CLONE_NEWCGROUP",
    "CLONE_NEWIPC",
    "CLONE_NEWNET",
    "CLONE_NEWNS",
    "CLONE_NEWPID",
    "CLONE_NEWTIME",
    "CLONE_NEWUSER",
    "CLONE_NEWUTS",
    "JOIN_ORDER",
    "Namespace",
    "NamespaceType",
    "enter",
    "flags_of",
    "join",
    "namespaces_of",
    "setns",
    "supported_types",
    "thread_count",
    "unshare",
]
