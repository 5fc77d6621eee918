"""The container's terminal (process.terminal), handed out through --console-socket.

The pty is made by init inside the container, from the container's own
devpts instance (after pivot_root, so the slave's /dev/pts/N is the
container's).  The master goes to the client (conmon, containerd's shim)
over the console socket with SCM_RIGHTS; the slave becomes init's
controlling terminal and stdio.  The runtime connects to the socket before
forking, so init never needs the host path.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# <asm-generic/ioctls.h>; the termios module lacks both
TIOCSPTLCK = 0x40045431  # _IOW('T', 0x31, int): lock/unlock the slave
TIOCGPTPEER = 0x5441  # _IO('T', 0x41), Linux 4.13: open the slave from the master fd, no path lookup


def connect_console_socket(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise OSError(e.errno, f"console socket: connect: {os.strerror(e.errno or 0)}", path) from None
    return sock


def make_terminal(console: socket.socket, size: tuple[int, int] | None) -> None:
    """In init: open a pty, send the master over *console*, make the slave our terminal."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))  # unlockpt
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
        if size is not None and all(size):
            rows, cols = size
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        socket.send_fds(console, [b"/dev/ptmx"], [master])
    finally:
        os.close(master)
        console.close()
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def receive_master(listener: socket.socket) -> int:
    """The client side (``nsbox run`` in the foreground): accept one
    connection and take the pty master from it."""
    conn, _ = listener.accept()
    try:
        _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
    finally:
        conn.close()
    if not fds:
        raise OSError(71, "console socket: no pty master received")
    return fds[0]


def listen_console_socket(directory: str) -> tuple[socket.socket, str]:
    """A console socket of our own, for ``nsbox run`` in the foreground."""
    path = os.path.join(directory, f"console-{os.getpid()}.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    return listener, path


class OwnConsole:
    """The console socket ``run`` and ``exec`` make for themselves when a
    terminal process runs in the foreground without --console-socket: they
    take the pty master from it and proxy it to their own terminal, as runc
    does."""

    __slots__ = ("listener", "path")

    def __init__(self, directory: str) -> None:
        self.listener: socket.socket | None
        self.listener, self.path = listen_console_socket(directory)

    def receive(self) -> int:
        """The pty master the container's process sent (then the socket goes)."""
        assert self.listener is not None
        try:
            return receive_master(self.listener)
        finally:
            self.close()

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None
            os.unlink(self.path)


def proxy(master: int, wait: Callable[[], int | None]) -> int:
    """Copy our stdin to the pty and the pty to our stdout until *wait*
    returns the container's status; our terminal is raw meanwhile, and
    its size follows ours."""
    import select
    import tty as _tty

    from nsbox._sys import signals

    stdin_is_tty = os.isatty(0)
    saved = termios.tcgetattr(0) if stdin_is_tty else None

    def resize(_signum: int = 0, _frame: object = None) -> None:
        if stdin_is_tty:
            size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(master, termios.TIOCSWINSZ, size)

    if stdin_is_tty:
        _tty.setraw(0)
        resize()
        signals.signal(28, resize)  # SIGWINCH
    reading = [master, 0]
    try:
        while True:
            status = wait()
            if status is not None:
                _drain(master)
                return status
            ready, _, _ = select.select(reading, [], [], 0.05)
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave fd is closed
                    data = b""
                if not data:
                    reading.remove(master)
                else:
                    _write_all(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if data:
                    _write_all(master, data)
                else:
                    reading.remove(0)  # EOF on our stdin: keep showing output
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)


def _drain(master: int) -> None:
    import select

    while select.select([master], [], [], 0)[0]:
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        if not data:
            return
        _write_all(1, data)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]
