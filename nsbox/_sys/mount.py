"""Mount syscalls: mount(2), umount2(2), pivot_root(2)."""

from __future__ import annotations

import ctypes

from nsbox._sys import trace
from nsbox._sys.consts import MOUNT_FLAG_NAMES, UMOUNT_FLAG_NAMES, flag_names
from nsbox._sys.libc import check, encode, libc, syscall_number

libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def mount(
    source: str | None,
    target: str,
    fstype: str | None = None,
    flags: int = 0,
    data: str | None = None,
) -> None:
    """mount(2); errors name the target."""
    ret = libc.mount(encode(source), encode(target), encode(fstype), flags, encode(data))
    if ret == -1 or trace.enabled:
        args = ", ".join(
            (trace.quote(source), trace.quote(target), trace.quote(fstype),
             flag_names(flags, MOUNT_FLAG_NAMES), trace.quote(data))
        )
        check(ret, "mount", target, f"mount({args})")


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    ret = libc.umount2(encode(target), flags)
    if ret == -1 or trace.enabled:
        check(ret, "umount2", target, f"umount2({trace.quote(target)}, {flag_names(flags, UMOUNT_FLAG_NAMES)})")


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2): make *new_root* the root, the old root mounted at *put_old*.

    glibc has no wrapper; it goes through syscall(2).
    """
    nr = syscall_number("pivot_root")
    ret = libc.syscall(nr, encode(new_root), encode(put_old))
    if ret == -1 or trace.enabled:
        check(ret, "pivot_root", new_root, f"pivot_root({trace.quote(new_root)}, {trace.quote(put_old)})")
