"""The process's libc, loaded once, and the error convention of every wrapper.

``libc`` is loaded on first use (PEP 562): importing ctypes costs ~4 ms,
and the runtime's own side of a create (fork, write /proc and cgroup files,
signal) never calls into C, while its children, which do, load it in
parallel with it.
"""

from __future__ import annotations

import posix  # not os, as nsbox._sys.trace
import sys

from nsbox._sys import trace

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ctypes

    libc: ctypes.CDLL


def __getattr__(name: str) -> object:
    if name != "libc":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import ctypes

    lib = ctypes.CDLL("libc.so.6", use_errno=True)
    globals()["libc"] = lib
    return lib

# Calls glibc has no wrapper for go through syscall(2); their numbers differ
# by architecture (asm/unistd.h).  pidfd_* share the unified numbering.
_SYSCALL_NUMBERS = {
    "x86_64": {"pivot_root": 155, "keyctl": 250},
    "aarch64": {"pivot_root": 41, "keyctl": 219},
}
SYS_PIDFD_SEND_SIGNAL = 424
SYS_PIDFD_OPEN = 434


def syscall_number(name: str) -> int:
    try:
        return _SYSCALL_NUMBERS[posix.uname().machine][name]
    except KeyError:
        raise OSError(38, f"{name}: no syscall number known for {posix.uname().machine}") from None


def check(ret: int, call: str, path: str | None, describe: str | None = None) -> int:
    """Turn a libc ``-1``/errno return into ``OSError(errno, "call: why", path)``.

    *call* is the operation's name for the error; *describe* is the full
    ``name(args)`` text for the trace line (built by the caller only when
    tracing is on).
    """
    if ret == -1:
        import ctypes  # loaded already: the failed call went through it

        err = ctypes.get_errno()
        if trace.enabled:
            trace.failure(describe or call, err)
        raise OSError(err, f"{call}: {posix.strerror(err)}", path)
    if trace.enabled:
        trace.result(describe or call, ret)
    return ret


def encode(path: str | bytes | None) -> bytes | None:
    if path is None or isinstance(path, bytes):
        return path
    return path.encode(sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())  # os.fsencode


def os_call(op: str, describe: str, path: str | None, fn, *args):  # type: ignore[no-untyped-def]
    """Run a standard-library call that raises OSError (os.chroot, posix.pidfd_open,
    fcntl.ioctl...) under the same conventions as the ctypes wrappers: the
    error names *op* and *path*; the trace line is *describe* and the result."""
    try:
        ret = fn(*args)
    except OSError as e:
        if trace.enabled:
            trace.failure(describe, e.errno or 0)
        raise OSError(e.errno, f"{op}: {posix.strerror(e.errno or 0)}", path) from None
    if trace.enabled:
        trace.result(describe, 0 if ret is None else ret)
    return ret
