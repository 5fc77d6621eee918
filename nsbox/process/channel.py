"""The sync channel between the runtime and the container's processes.

Two O_CLOEXEC pipes, one each way.  A message is a 4-byte length and
``TAG[ PAYLOAD]``, written with one write(2); a closed peer reads as EOF,
which is also how "it exec'd" is seen (exec closes the container's ends).
An error travels as ``error`` + an errpipe record and is raised by recv().
Pipes rather than a socketpair: importing ``socket`` costs a hot verb
about 6 ms on this kind of machine.
"""

from __future__ import annotations

import os

from nsbox._sys import process as _proc
from nsbox.errors import NsboxError
from nsbox.process import errpipe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

MAX_MESSAGE = 1 << 20


class ChannelClosed(NsboxError):
    """The other side exited before saying what we waited for."""


class Channel:
    __slots__ = ("rfd", "wfd", "peer")

    def __init__(self, rfd: int, wfd: int, peer: str) -> None:
        self.rfd = rfd
        self.wfd = wfd
        self.peer = peer

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        """(runtime side, container side); all four fds close on exec."""
        to_container_r, to_container_w = os.pipe2(os.O_CLOEXEC)
        to_runtime_r, to_runtime_w = os.pipe2(os.O_CLOEXEC)
        return cls(to_runtime_r, to_container_w, "container"), cls(to_container_r, to_runtime_w, "runtime")

    def send(self, tag: str, payload: bytes = b"") -> None:
        """Send one message.  When the other side is gone (EPIPE), the error
        it left on the channel, if any, is raised: it says why."""
        body = tag.encode() + (b" " + payload if payload else b"")
        data = len(body).to_bytes(4, "little") + body
        try:
            while data:
                data = data[os.write(self.wfd, data):]
        except BrokenPipeError:
            while self._next() is not None:
                pass  # _next raises the error message when it comes to it
            raise ChannelClosed(f"the {self.peer} side exited during setup") from None

    def send_error(self, exc: BaseException) -> None:
        try:
            self.send("error", errpipe.encode(exc))
        except (OSError, ChannelClosed):
            pass  # the runtime is gone; nobody to tell

    def _read_exact(self, n: int) -> bytes:
        chunks, left = [], n
        while left:
            chunk = os.read(self.rfd, left)
            if not chunk:
                return b""
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _next(self) -> tuple[str, bytes] | None:
        head = self._read_exact(4)
        if not head:
            return None
        size = int.from_bytes(head, "little")
        if size > MAX_MESSAGE:
            raise NsboxError(f"protocol error: a {size}-byte message from the {self.peer}")
        body = self._read_exact(size)
        tag, _, payload = body.partition(b" ")
        name = tag.decode(errors="replace")
        if name == "error":
            raise errpipe.decode(payload)
        return name, payload

    def recv_tagged(self, *expected: str) -> tuple[str, bytes]:
        """The next message, whose tag must be one of *expected*."""
        message = self._next()
        if message is None:
            raise ChannelClosed(f"the {self.peer} side exited during setup")
        if message[0] not in expected:
            raise NsboxError(f"protocol error: expected {' or '.join(expected)} from the {self.peer}, "
                             f"got {message[0]}")
        return message

    def recv(self, *expected: str) -> bytes:
        return self.recv_tagged(*expected)[1]

    def wait_closed(self, *allowed: str) -> tuple[str, bytes] | None:
        """Return None when the other side closes (it exec'd); raise the error
        it sends instead, or return a message whose tag is *allowed*."""
        message = self._next()
        if message is not None and message[0] not in allowed:
            raise NsboxError(f"protocol error: unexpected {message[0]} from the {self.peer}")
        return message

    def fds(self) -> set[int]:
        return {self.rfd, self.wfd}

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            try:
                os.close(fd)
            except OSError:
                pass


def fork_with_channel(body: Callable[[Channel], None]) -> tuple[Channel, int]:
    """Fork a child that runs ``body(its end of a new channel)`` and never
    returns; whatever it raises reaches the parent as an "error" message.
    Returns the parent's end and the child's pid."""
    runtime, container = Channel.pair()
    pid = _proc.fork()
    if pid == 0:
        try:
            runtime.close()
            body(container)
        except BaseException as exc:  # noqa: BLE001 - sent to the runtime
            container.send_error(exc)
        finally:
            os._exit(1)
    container.close()
    return runtime, pid


def close_fds_except(keep: set[int]) -> None:
    """Close every fd not in *keep*: nothing of the runtime may reach the
    container (the CVE-2024-21626 class, where a leaked fd of the host's
    cgroupfs let a container walk out of its root).  os.closerange uses
    close_range(2); where that fails (a seccomp profile that does not allow
    it) CPython closes one fd at a time, so the range ends at the highest
    open fd rather than at INT_MAX: two billion close calls would hang."""
    try:
        top = max(int(name) for name in os.listdir("/proc/self/fd")) + 1
    except (OSError, ValueError):
        top = os.sysconf("SC_OPEN_MAX")
    low = 0
    for fd in sorted(keep):
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    if low < top:
        os.closerange(low, top)
