"""The exec-error pipe: how a forked child tells its parent why it failed.

The parent makes an O_CLOEXEC pipe before fork.  The child either execs --
the kernel closes its end, and the parent reads EOF -- or fails, writes one
record describing the error, and ``_exit``\\s.  The parent then re-raises the
error in its own process, so a failure on the child's side is reported the
same way (and by the same code) as one on the parent's.  subprocess uses the
same trick.

A record is ``kind NUL errno NUL message NUL hint NUL filename``.
"""

from __future__ import annotations

import os

from nsbox.errors import ExecError, NamespaceError, NsboxError


def open_pipe() -> tuple[int, int]:
    return os.pipe2(os.O_CLOEXEC)


def encode(exc: BaseException) -> bytes:
    """One record describing *exc*, for the other side to rebuild with :func:`decode`."""
    if isinstance(exc, NsboxError):
        kind = type(exc).__name__
        err = getattr(exc, "errno", None) or 0
        fields = (kind, str(err), exc.message, exc.hint or "", "")
    elif isinstance(exc, OSError):
        fields = ("OSError", str(exc.errno or 0), exc.strerror or str(exc), "",
                  "" if exc.filename is None else str(exc.filename))
    else:
        fields = ("Error", "0", f"{type(exc).__name__}: {exc}", "", "")
    return "\0".join(fields).encode(errors="backslashreplace")


def decode(data: bytes) -> BaseException:
    kind, err, message, hint, filename = (data.decode(errors="replace").split("\0") + [""] * 5)[:5]
    errno = int(err) if err.isdigit() else 0
    if kind == "OSError":
        return OSError(errno, message, filename or None)
    if kind == "ExecError":
        return ExecError(message, errno)
    if kind == "NamespaceError":
        return NamespaceError(message, hint or None, errno or None)
    return NsboxError(message, hint or None)


def report(fd: int, exc: BaseException) -> None:
    """Child side: describe *exc* on *fd*.  Never raises."""
    try:
        os.write(fd, encode(exc))
    except OSError:
        pass


def read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def receive(fd: int) -> BaseException | None:
    """Parent side: read until EOF; None means the child exec'd (or exited) cleanly."""
    data = read_all(fd)
    return decode(data) if data else None
