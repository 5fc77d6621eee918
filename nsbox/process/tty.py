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

TIOCGPTPEER = 0x5441  # Linux 4.13: open the slave from the master fd, no path lookup


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
        fcntl.ioctl(master, termios.TIOCSPTLCK, struct.pack("i", 0))  # unlockpt
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
