"""pidfds: a handle on a process that a recycled pid cannot fool.

Without ``os`` (through ``posix`` and ``_signal``, the C modules under
``os`` and ``signal``): ``kill`` needs nothing else of them, and importing
``os`` would cost it ~1 ms (nsbox.state says why), ``signal``'s enums ~5.
"""

from __future__ import annotations

import posix

from nsbox._sys.libc import os_call


def pidfd_open(pid: int, flags: int = 0) -> int:
    """pidfd_open(2): a file descriptor that refers to process *pid*."""
    fd: int = os_call("pidfd_open", f"pidfd_open({pid}, {flags})", f"pid {pid}", posix.pidfd_open, pid, flags)
    return fd


def pidfd_send_signal(pidfd: int, sig: int, flags: int = 0) -> None:
    """pidfd_send_signal(2): signal the process behind *pidfd*, race-free."""
    import _signal

    os_call("pidfd_send_signal", f"pidfd_send_signal({pidfd}, {sig}, NULL, {flags})", None,
            _signal.pidfd_send_signal, pidfd, sig, None, flags)
