"""libseccomp through ctypes, and the seccomp(2) calls nsbox makes itself.

Why libseccomp: it is the compiler runc, crun and podman use, on every
Debian system as libseccomp.so.2, and it knows every architecture's
syscall table, the multiplexed calls (socketcall, ipc on x86) and how to
emit a BPF program that checks the architecture first.  Its official Python
binding is built from libseccomp's source tree and is not on PyPI, so nsbox
binds the dozen functions it needs here.

nsbox uses libseccomp only to *compile*: the runtime builds the filter and
exports the BPF program (a bad profile fails the create, in the runtime),
and the container's init loads the program with one
seccomp(2) call (nsbox._sys.seccomp_load) — no library to reach after
pivot_root, and the flags (WAIT_KILLABLE_RECV among them) are ours to pass
whatever the library's version.
"""

from __future__ import annotations

import ctypes
import os

from nsbox._sys.libc import check, libc
from nsbox._sys.seccomp_abi import ATTR_CTL_NNP, ATTR_CTL_OPTIMIZE, OPTIMIZE_BINARY_TREE

_SYS_PIDFD_GETFD = 438

NR_SCMP_ERROR = -1


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


class _SeccompData(ctypes.Structure):
    _fields_ = [("nr", ctypes.c_int), ("arch", ctypes.c_uint32), ("instruction_pointer", ctypes.c_uint64),
                ("args", ctypes.c_uint64 * 6)]


class _Notif(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("pid", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("data", _SeccompData)]


class _NotifResp(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("val", ctypes.c_int64), ("error", ctypes.c_int32),
                ("flags", ctypes.c_uint32)]


_lib: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
    """libseccomp.so.2, loaded on first use (a profile-less launch never pays for it)."""
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL("libseccomp.so.2")
        except OSError:
            raise OSError(2, "libseccomp.so.2 is not installed (apt-get install libseccomp2)") from None
        p, u32, i = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int
        for name, res, args in (
            ("seccomp_init", p, [u32]),
            ("seccomp_release", None, [p]),
            ("seccomp_arch_add", i, [p, u32]),
            ("seccomp_arch_resolve_name", u32, [ctypes.c_char_p]),
            ("seccomp_attr_set", i, [p, i, u32]),
            ("seccomp_syscall_resolve_name", i, [ctypes.c_char_p]),
            ("seccomp_syscall_resolve_name_arch", i, [u32, ctypes.c_char_p]),
            ("seccomp_rule_add_array", i, [p, u32, i, ctypes.c_uint, ctypes.POINTER(_ArgCmp)]),
            ("seccomp_export_bpf", i, [p, i]),
            ("seccomp_version", ctypes.POINTER(_Version), []),
        ):
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        _lib = lib
    return _lib


def library_path() -> str | None:
    """The file libseccomp.so.2 was loaded from, as /proc/self/maps names it."""
    library()
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split(None, 5)
            if len(fields) == 6 and "/libseccomp.so" in fields[5]:
                return fields[5].strip()
    return None


def _rc(ret: int, call: str) -> int:
    """libseccomp returns -errno."""
    if ret < 0:
        raise OSError(-ret, f"{call}: {os.strerror(-ret)}")
    return ret


def version() -> tuple[int, int, int]:
    v = library().seccomp_version().contents
    return v.major, v.minor, v.micro


def arch_token(name: str) -> int:
    """libseccomp's token for an architecture named as libseccomp names it
    (``x86_64``, ``x32``, ``aarch64``...); 0 if unknown."""
    return int(library().seccomp_arch_resolve_name(name.encode()))


def syscall_number(name: str, arch: int = 0) -> int | None:
    """The number of syscall *name* (native, or on *arch*); None if libseccomp
    does not know it.  Calls absent on the native architecture but present on
    another come back as libseccomp's negative pseudo-numbers, which rules
    accept."""
    lib = library()
    nr = (lib.seccomp_syscall_resolve_name_arch(arch, name.encode()) if arch
          else lib.seccomp_syscall_resolve_name(name.encode()))
    return None if nr == NR_SCMP_ERROR else int(nr)


class Filter:
    """A libseccomp filter context being built."""

    __slots__ = ("_ctx",)

    def __init__(self, default_action: int) -> None:
        lib = library()
        ctx = lib.seccomp_init(default_action)
        if not ctx:
            raise OSError(22, "seccomp_init: invalid default action")
        self._ctx = ctx
        # nsbox sets no_new_privs itself, from process.noNewPrivileges
        _rc(lib.seccomp_attr_set(ctx, ATTR_CTL_NNP, 0), "seccomp_attr_set")
        # The syscalls as a binary search tree, not a linear list: the same
        # decisions, and the kernel loads it in half the time (0.41 against
        # 0.87 ms for the default profile: on load it runs the filter for
        # every syscall number, to cache which are always allowed), on the
        # critical path of every create.  A libseccomp older than 2.5 does
        # not know the attribute and builds the list.
        lib.seccomp_attr_set(ctx, ATTR_CTL_OPTIMIZE, OPTIMIZE_BINARY_TREE)

    def add_arch(self, token: int) -> None:
        ret = library().seccomp_arch_add(self._ctx, token)
        if ret != -17:  # EEXIST: the native one is there from the start
            _rc(ret, "seccomp_arch_add")

    def add_rule(self, action: int, syscall: int, conditions: list[tuple[int, int, int, int]]) -> None:
        """*conditions*: (argument index, operator, datum a, datum b), all ANDed."""
        array = (_ArgCmp * max(len(conditions), 1))(*[_ArgCmp(*c) for c in conditions])
        _rc(library().seccomp_rule_add_array(self._ctx, action, syscall, len(conditions), array),
            "seccomp_rule_add")

    def export_bpf(self) -> bytes:
        """The compiled program: struct sock_filter[], 8 bytes each."""
        fd = os.memfd_create("nsbox-seccomp", os.MFD_CLOEXEC)
        try:
            _rc(library().seccomp_export_bpf(self._ctx, fd), "seccomp_export_bpf")
            size = os.lseek(fd, 0, os.SEEK_CUR)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._ctx:
            library().seccomp_release(self._ctx)
            self._ctx = None

    def __enter__(self) -> Filter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def pidfd_getfd(pidfd: int, target_fd: int) -> int:
    """pidfd_getfd(2): a duplicate, in this process, of *target_fd* of the
    process behind *pidfd* (needs ptrace rights over it).  O_CLOEXEC."""
    ret = libc.syscall(_SYS_PIDFD_GETFD, pidfd, target_fd, 0)
    return check(ret, "pidfd_getfd", None)


# ---- the notify API, for listeners (SCMP_ACT_NOTIFY) ----

# ioctl numbers: _IOWR('!', 0, struct seccomp_notif), _IOWR('!', 1, struct seccomp_notif_resp)
_NOTIF_RECV = 0xC0502100
_NOTIF_SEND = 0xC0182101
NOTIF_FLAG_CONTINUE = 1


class Notification:
    """One intercepted syscall: the request id, the caller's pid, the syscall number and its arguments."""

    __slots__ = ("id", "pid", "syscall", "arch", "args")

    def __init__(self, raw: _Notif) -> None:
        self.id = raw.id
        self.pid = raw.pid
        self.syscall = raw.data.nr
        self.arch = raw.data.arch
        self.args = tuple(raw.data.args)


def notify_receive(fd: int) -> Notification:
    """Block until a process hits a NOTIFY rule of the filter behind *fd*."""
    raw = _Notif()
    ret = libc.ioctl(fd, ctypes.c_ulong(_NOTIF_RECV), ctypes.byref(raw))
    check(ret, "ioctl(SECCOMP_IOCTL_NOTIF_RECV)", None)
    return Notification(raw)


def notify_respond(fd: int, request_id: int, value: int = 0, error: int = 0, flags: int = 0) -> None:
    """Answer request *request_id*: the syscall returns *value*, or fails with
    *error* (a positive errno), or runs for real with NOTIF_FLAG_CONTINUE."""
    resp = _NotifResp(request_id, value, -error if error > 0 else error, flags)
    ret = libc.ioctl(fd, ctypes.c_ulong(_NOTIF_SEND), ctypes.byref(resp))
    check(ret, "ioctl(SECCOMP_IOCTL_NOTIF_SEND)", None)
