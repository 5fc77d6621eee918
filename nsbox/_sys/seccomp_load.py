"""The one seccomp(2) call the container's side makes: load a compiled filter.

Apart from the libseccomp binding (nsbox._sys.seccomp), which the runtime
uses to compile: init needs this one small structure, not the binding's six
(~0.6 ms of stage 1's imports, and those are on create's critical path).
"""

from __future__ import annotations

import ctypes
import os

from nsbox._sys.libc import check, libc
from nsbox._sys.seccomp_abi import SECCOMP_SET_MODE_FILTER

_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277, "ppc64le": 358, "s390x": 348, "riscv64": 277}


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _nr_seccomp() -> int:
    try:
        return _SYS_SECCOMP[os.uname().machine]
    except KeyError:
        raise OSError(38, f"seccomp: no syscall number known for {os.uname().machine}") from None


def load_bpf(program: bytes, flags: int) -> int:
    """seccomp(SECCOMP_SET_MODE_FILTER, flags, program): the filter is on this
    thread from now on (and on its children, across execve).  Returns the
    listener fd with FILTER_FLAG_NEW_LISTENER, else 0."""
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    ret = libc.syscall(_nr_seccomp(), SECCOMP_SET_MODE_FILTER, ctypes.c_uint(flags), ctypes.byref(prog))
    return check(ret, "seccomp(SECCOMP_SET_MODE_FILTER)", None)
