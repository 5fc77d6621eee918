"""The sync channel between the runtime and the container's processes.

A SOCK_SEQPACKET socketpair: every message is one datagram ``TAG[ PAYLOAD]``,
so there is no framing to get wrong, and a closed peer reads as EOF.  An
error travels as ``error`` + an errpipe record and is raised by recv().
"""

from __future__ import annotations

import os
import socket

from nsbox.errors import NsboxError
from nsbox.process import errpipe

MAX_MESSAGE = 1 << 20


class ChannelClosed(NsboxError):
    """The other side exited before saying what we waited for."""


class Channel:
    __slots__ = ("sock", "peer")

    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock = sock
        self.peer = peer

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        """(runtime side, container side); both close on exec."""
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return cls(a, "container"), cls(b, "runtime")

    def send(self, tag: str, payload: bytes = b"") -> None:
        self.sock.send(tag.encode() + (b" " + payload if payload else b""))

    def send_error(self, exc: BaseException) -> None:
        try:
            self.send("error", errpipe.encode(exc))
        except OSError:
            pass  # the runtime is gone; nobody to tell

    def recv(self, *expected: str) -> bytes:
        """The payload of the next message, whose tag must be one of *expected*."""
        data = self.sock.recv(MAX_MESSAGE)
        if not data:
            raise ChannelClosed(f"the {self.peer} side exited during setup")
        tag, _, payload = data.partition(b" ")
        name = tag.decode(errors="replace")
        if name == "error":
            raise errpipe.decode(payload)
        if name not in expected:
            raise NsboxError(f"protocol error: expected {' or '.join(expected)} from the {self.peer}, got {name}")
        return payload

    def recv_tagged(self, *expected: str) -> tuple[str, bytes]:
        data = self.sock.recv(MAX_MESSAGE)
        if not data:
            raise ChannelClosed(f"the {self.peer} side exited during setup")
        tag, _, payload = data.partition(b" ")
        name = tag.decode(errors="replace")
        if name == "error":
            raise errpipe.decode(payload)
        if name not in expected:
            raise NsboxError(f"protocol error: expected {' or '.join(expected)} from the {self.peer}, got {name}")
        return name, payload

    def wait_closed(self) -> None:
        """Return when the other side closes (it exec'd: the socket is
        O_CLOEXEC); raise the error it sends instead."""
        data = self.sock.recv(MAX_MESSAGE)
        if data:
            tag, _, payload = data.partition(b" ")
            if tag == b"error":
                raise errpipe.decode(payload)
            raise NsboxError(f"protocol error: unexpected {tag.decode(errors='replace')} from the {self.peer}")

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


def close_fds_except(keep: set[int]) -> None:
    """Close every fd not in *keep*: nothing of the runtime may reach the
    container (the CVE-2024-21626 class, where a leaked fd of the host's
    cgroupfs let a container walk out of its root).  os.closerange uses
    close_range(2), so the open-ended last range costs one syscall."""
    low = 0
    for fd in sorted(keep):
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 0x7FFFFFFF)
