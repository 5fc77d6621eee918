"""Filesystem syscalls relative to directory fds: openat2(2), mount_setattr(2),
and traced ``*at`` calls (mkdirat, mknodat, symlinkat, unlinkat, readlinkat,
fchownat) that nsbox/rootfs uses to build a container's filesystem without
ever resolving a path through a symlink it did not choose to follow.

Every wrapper raises ``OSError(errno, "<call>: <strerror>", path)`` and
traces when ``trace.enabled``, like the rest of ``_sys``.  The plain ``*at``
calls use the standard library's ``dir_fd=`` support; only the calls glibc
has no wrapper for (openat2, mount_setattr) and fchownat with AT_EMPTY_PATH
go through ctypes.
"""

from __future__ import annotations

import ctypes
import os

from nsbox._sys import trace
from nsbox._sys.consts import flag_names
from nsbox._sys.libc import check, encode, libc

# Both are in the unified syscall table: the same numbers on x86_64 and aarch64.
SYS_OPENAT2 = 437
SYS_MOUNT_SETATTR = 442

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000

# <linux/openat2.h>
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
RESOLVE_CACHED = 0x20

RESOLVE_FLAG_NAMES: dict[int, str] = {
    RESOLVE_NO_XDEV: "RESOLVE_NO_XDEV",
    RESOLVE_NO_MAGICLINKS: "RESOLVE_NO_MAGICLINKS",
    RESOLVE_NO_SYMLINKS: "RESOLVE_NO_SYMLINKS",
    RESOLVE_BENEATH: "RESOLVE_BENEATH",
    RESOLVE_IN_ROOT: "RESOLVE_IN_ROOT",
    RESOLVE_CACHED: "RESOLVE_CACHED",
}

# <linux/mount.h>: mount_setattr(2) attributes
MOUNT_ATTR_RDONLY = 0x00000001
MOUNT_ATTR_NOSUID = 0x00000002
MOUNT_ATTR_NODEV = 0x00000004
MOUNT_ATTR_NOEXEC = 0x00000008
MOUNT_ATTR__ATIME = 0x00000070
MOUNT_ATTR_RELATIME = 0x00000000
MOUNT_ATTR_NOATIME = 0x00000010
MOUNT_ATTR_STRICTATIME = 0x00000020
MOUNT_ATTR_NODIRATIME = 0x00000080
MOUNT_ATTR_IDMAP = 0x00100000
MOUNT_ATTR_NOSYMFOLLOW = 0x00200000

MOUNT_ATTR_NAMES: dict[int, str] = {
    MOUNT_ATTR_RDONLY: "MOUNT_ATTR_RDONLY",
    MOUNT_ATTR_NOSUID: "MOUNT_ATTR_NOSUID",
    MOUNT_ATTR_NODEV: "MOUNT_ATTR_NODEV",
    MOUNT_ATTR_NOEXEC: "MOUNT_ATTR_NOEXEC",
    MOUNT_ATTR__ATIME: "MOUNT_ATTR__ATIME",
    MOUNT_ATTR_NOATIME: "MOUNT_ATTR_NOATIME",
    MOUNT_ATTR_STRICTATIME: "MOUNT_ATTR_STRICTATIME",
    MOUNT_ATTR_NODIRATIME: "MOUNT_ATTR_NODIRATIME",
    MOUNT_ATTR_IDMAP: "MOUNT_ATTR_IDMAP",
    MOUNT_ATTR_NOSYMFOLLOW: "MOUNT_ATTR_NOSYMFOLLOW",
}

# mount(2) flags that <nsbox/_sys/consts.py> does not list (only the option
# parser needs them).
MS_POSIXACL = 1 << 16
MS_I_VERSION = 1 << 23

# statfs(2) f_flags (<linux/statfs.h>), which differ from the MS_* values.
ST_RDONLY = 0x0001
ST_NOSUID = 0x0002
ST_NODEV = 0x0004
ST_NOEXEC = 0x0008
ST_SYNCHRONOUS = 0x0010
ST_MANDLOCK = 0x0040
ST_NOATIME = 0x0400
ST_NODIRATIME = 0x0800
ST_RELATIME = 0x1000
ST_NOSYMFOLLOW = 0x2000

PROC_SUPER_MAGIC = 0x9FA0
SYSFS_MAGIC = 0x62656572
TMPFS_MAGIC = 0x01021994
CGROUP2_SUPER_MAGIC = 0x63677270

AT_FLAG_NAMES: dict[int, str] = {
    AT_SYMLINK_NOFOLLOW: "AT_SYMLINK_NOFOLLOW",
    AT_EMPTY_PATH: "AT_EMPTY_PATH",
    AT_RECURSIVE: "AT_RECURSIVE",
}

_OPEN_FLAG_NAMES: dict[int, str] = {
    getattr(os, "O_PATH", 0o10000000): "O_PATH",
    os.O_DIRECTORY: "O_DIRECTORY",
    os.O_NOFOLLOW: "O_NOFOLLOW",
    os.O_CLOEXEC: "O_CLOEXEC",
    os.O_CREAT: "O_CREAT",
    os.O_EXCL: "O_EXCL",
    os.O_WRONLY: "O_WRONLY",
    os.O_RDWR: "O_RDWR",
}

O_PATH: int = getattr(os, "O_PATH", 0o10000000)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


libc.fchownat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint, ctypes.c_int]


def _dirfd(fd: int) -> str:
    return "AT_FDCWD" if fd == AT_FDCWD else str(fd)


def _open_flags(flags: int) -> str:
    return flag_names(flags, _OPEN_FLAG_NAMES) if flags else "O_RDONLY"


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    """openat2(2): open *path* relative to *dirfd* under the *resolve* rules.

    ``RESOLVE_IN_ROOT`` makes *dirfd* the root for the whole walk: ``..``
    stops at it and absolute symlinks restart from it, so nothing outside
    the tree can be reached.  ENOSYS before Linux 5.6.
    """
    how = _OpenHow(flags, mode, resolve)
    ret = libc.syscall(ctypes.c_long(SYS_OPENAT2), ctypes.c_long(dirfd), encode(path), ctypes.byref(how),
                       ctypes.c_size_t(ctypes.sizeof(how)))
    if ret == -1 or trace.enabled:
        describe = (f"openat2({_dirfd(dirfd)}, {trace.quote(path)}, {{flags={_open_flags(flags)}, "
                    f"mode={mode:#o}, resolve={flag_names(resolve, RESOLVE_FLAG_NAMES)}}})")
        check(ret, "openat2", path, describe)
    return int(ret)


def mount_setattr(dirfd: int, path: str, flags: int, attr_set: int = 0, attr_clr: int = 0,
                  propagation: int = 0, shown: str | None = None) -> None:
    """mount_setattr(2): change mount attributes, of a whole tree with AT_RECURSIVE.

    *shown* names the mount in errors and traces (the container path).
    """
    attr = _MountAttr(attr_set, attr_clr, propagation, 0)
    ret = libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_long(dirfd), encode(path), ctypes.c_ulong(flags),
                       ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))
    if ret == -1 or trace.enabled:
        describe = (f"mount_setattr({_dirfd(dirfd)}, {trace.quote(path)}, {flag_names(flags, AT_FLAG_NAMES)}, "
                    f"{{attr_set={flag_names(attr_set, MOUNT_ATTR_NAMES)}, "
                    f"attr_clr={flag_names(attr_clr, MOUNT_ATTR_NAMES)}}})")
        check(ret, "mount_setattr", shown or path, describe)


def fchown_fd(fd: int, uid: int, gid: int, shown: str | None = None) -> None:
    """fchownat(fd, "", uid, gid, AT_EMPTY_PATH): chown the inode *fd* refers to,
    which may be an O_PATH fd (os.chown on an O_PATH fd fails with EBADF)."""
    ret = libc.fchownat(fd, b"", uid, gid, AT_EMPTY_PATH)
    if ret == -1 or trace.enabled:
        check(ret, "fchownat", shown, f"fchownat({fd}, \"\", {uid}, {gid}, AT_EMPTY_PATH)")


def _traced(call: str, describe: str, shown: str | None, fn, *args, **kw):  # type: ignore[no-untyped-def]
    try:
        ret = fn(*args, **kw)
    except OSError as e:
        if trace.enabled:
            trace.failure(describe, e.errno)
        raise OSError(e.errno, f"{call}: {os.strerror(e.errno)}", shown) from None
    if trace.enabled:
        trace.result(describe, ret if isinstance(ret, (int, str)) else 0)
    return ret


def openat(dirfd: int, name: str, flags: int, mode: int = 0o777, shown: str | None = None) -> int:
    """openat(2) of one name relative to *dirfd*."""
    return _traced("openat", f"openat({_dirfd(dirfd)}, {trace.quote(name)}, {_open_flags(flags)}, {mode:#o})",
                   shown or name, os.open, name, flags, mode, dir_fd=None if dirfd == AT_FDCWD else dirfd)


def mkdirat(dirfd: int, name: str, mode: int = 0o755, shown: str | None = None) -> None:
    _traced("mkdirat", f"mkdirat({_dirfd(dirfd)}, {trace.quote(name)}, {mode:#o})", shown or name,
            os.mkdir, name, mode, dir_fd=dirfd)


def mknodat(dirfd: int, name: str, mode: int, device: int = 0, shown: str | None = None) -> None:
    _traced("mknodat", f"mknodat({_dirfd(dirfd)}, {trace.quote(name)}, {mode:#o}, "
            f"makedev({os.major(device)}, {os.minor(device)}))", shown or name,
            os.mknod, name, mode, device, dir_fd=dirfd)


def symlinkat(target: str, dirfd: int, name: str, shown: str | None = None) -> None:
    _traced("symlinkat", f"symlinkat({trace.quote(target)}, {_dirfd(dirfd)}, {trace.quote(name)})",
            shown or name, os.symlink, target, name, dir_fd=dirfd)


def unlinkat(dirfd: int, name: str, shown: str | None = None) -> None:
    _traced("unlinkat", f"unlinkat({_dirfd(dirfd)}, {trace.quote(name)}, 0)", shown or name,
            os.unlink, name, dir_fd=dirfd)


def readlinkat(dirfd: int, name: str = "", shown: str | None = None) -> str:
    """readlinkat(2); with an empty *name*, the symlink that the O_PATH fd *dirfd* is."""
    result: str = _traced("readlinkat", f"readlinkat({_dirfd(dirfd)}, {trace.quote(name)})", shown or name,
                          os.readlink, name, dir_fd=dirfd)
    return result


def statvfs(target: int | str, shown: str | None = None) -> os.statvfs_result:
    """statfs(2) of a path or fd (O_PATH is fine), as statvfs: f_flag holds the
    mount's ST_* flags."""
    call = "fstatfs" if isinstance(target, int) else "statfs"
    result: os.statvfs_result = _traced(call, f"{call}({trace.quote(target)})",
                                        shown or (target if isinstance(target, str) else None), os.statvfs, target)
    return result


libc.statfs.argtypes = [ctypes.c_char_p, ctypes.c_void_p]


def statfs_type(path: str) -> int:
    """statfs(2)'s f_type (the filesystem's magic number) for *path*.

    os.statvfs has no f_type.  f_type is the first member of struct statfs,
    a ``long`` on every 64-bit Linux ABI (and the buffer is larger than the
    struct everywhere).
    """
    buf = ctypes.create_string_buffer(256)
    ret = libc.statfs(encode(path), buf)
    if ret == -1 or trace.enabled:
        check(ret, "statfs", path, f"statfs({trace.quote(path)})")
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF
