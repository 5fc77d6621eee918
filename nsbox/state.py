"""The state directory of a container: ``<root>/<id>/``.

    state.json   the OCI state plus what nsbox needs later (atomic: tmp + rename)
    config.json  the bundle's config.json as create read it
    exec.fifo    exists from create until start: init blocks opening it for writing
    seccomp.bpf  the compiled linux.seccomp filter, which exec loads too
    lock         flock'd by every verb that changes the container

Beside the containers, ``<root>/.seccomp-cache/`` keeps compiled seccomp
programs by the hash of their profile (compiling one costs ~20 ms).

A container's init is alive when its pid exists *and* has the start time we
recorded (field 22 of /proc/PID/stat), so a recycled pid is never mistaken
for it.

This module, like the rest of what ``state``, ``start``, ``kill``,
``delete`` and ``list`` import, uses ``posix`` rather than ``os``: in an
interpreter started with -S, ``import os`` costs ~1.3 ms (its
``_collections_abc``), about a seventh of such a verb.  Paths are joined
with "/" (no part is absolute: ids are checked), and what only ``create``
does imports ``os``.
"""

from __future__ import annotations

import fcntl
import posix

from nsbox.errors import NsboxError

DEFAULT_ROOT = "/run/nsbox"
STATE_FILE = "state.json"
FIFO = "exec.fifo"
CONFIG = "config.json"
SECCOMP = "seccomp.bpf"
SECCOMP_CACHE = ".seccomp-cache"


class ContainerNotFound(NsboxError):
    """No state directory for that id.  The message says "does not exist", which
    containerd and podman look for."""

    def __init__(self, container_id: str) -> None:
        super().__init__(f"container {container_id} does not exist")
        self.container_id = container_id


class ContainerExists(NsboxError):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"container {container_id} already exists")


class InvalidState(NsboxError):
    """A verb that the container's status does not allow (e.g. start of a running one)."""


def check_id(container_id: str) -> None:
    """Ids name directories: refuse anything that could escape the state root."""
    if not container_id or container_id in (".", "..", SECCOMP_CACHE) or "/" in container_id \
            or "\0" in container_id or len(container_id) > 1024:
        raise NsboxError(f"invalid container id {container_id!r}")


def ensure_root(root: str) -> None:
    """Make the state root if it is missing (mode 0711: the ids in it are
    not listed to other users)."""
    import os

    try:
        os.makedirs(root, mode=0o711, exist_ok=True)
    except OSError as e:
        raise NsboxError(f"cannot make the state directory {root}: {e.strerror}",
                         "pass --root DIR, or set XDG_RUNTIME_DIR to a directory of your own") from None


class StateDir:
    """One container's state directory, locked for the life of this object's use."""

    def __init__(self, root: str, container_id: str) -> None:
        check_id(container_id)
        self.root = root
        self.id = container_id
        self.path = f"{root.rstrip('/')}/{container_id}"
        self._lock_fd = -1

    @property
    def fifo(self) -> str:
        return f"{self.path}/{FIFO}"

    @property
    def config(self) -> str:
        """The bundle's config.json as it was at create."""
        return f"{self.path}/{CONFIG}"

    @property
    def seccomp(self) -> str:
        return f"{self.path}/{SECCOMP}"

    @classmethod
    def create(cls, root: str, container_id: str) -> StateDir:
        d = cls(root, container_id)
        ensure_root(root)
        try:
            posix.mkdir(d.path, 0o711)
        except FileExistsError:
            raise ContainerExists(container_id) from None
        d.lock()
        return d

    @classmethod
    def open(cls, root: str, container_id: str, lock: bool = True) -> StateDir:
        d = cls(root, container_id)
        if not is_file(f"{d.path}/{STATE_FILE}"):
            raise ContainerNotFound(container_id)
        if lock:
            d.lock()
        return d

    def lock(self) -> None:
        fd = posix.open(self.path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd >= 0:
            posix.close(self._lock_fd)
            self._lock_fd = -1

    def read(self) -> dict[str, object]:
        from nsbox import jsonio

        try:
            with open(f"{self.path}/{STATE_FILE}", "rb") as f:
                data = jsonio.loads(f.read())
        except FileNotFoundError:
            raise ContainerNotFound(self.id) from None
        except ValueError as e:
            raise NsboxError(f"{self.path}/{STATE_FILE}: corrupt state: {e}") from None
        if not isinstance(data, dict):
            raise NsboxError(f"{self.path}/{STATE_FILE}: corrupt state")
        return data

    def write(self, data: dict[str, object]) -> None:
        from nsbox import jsonio

        write_atomic(f"{self.path}/{STATE_FILE}", jsonio.dumps(data).encode())

    def make_fifo(self) -> None:
        posix.mkfifo(self.fifo, 0o622)

    def remove(self) -> None:
        """Delete the directory and everything in it (never following links out)."""
        for name in posix.listdir(self.path):
            posix.unlink(f"{self.path}/{name}")
        posix.rmdir(self.path)
        self.unlock()


def write_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write to a temporary file beside *path*, then rename over it: readers
    see the old content or the new, never half of either."""
    tmp = f"{path}.tmp{posix.getpid()}"
    fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC | posix.O_CLOEXEC, mode)
    try:
        posix.write(fd, data)
    finally:
        posix.close(fd)
    posix.replace(tmp, path)


def list_ids(root: str) -> list[str]:
    try:
        names = posix.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if is_file(f"{root}/{n}/{STATE_FILE}"))


def exists(path: str) -> bool:
    """os.path.exists, without os."""
    try:
        posix.stat(path)
    except (OSError, ValueError):
        return False
    return True


def is_file(path: str) -> bool:
    """os.path.isfile, without os (nor stat: S_IFMT and S_IFREG spelled out)."""
    try:
        mode = posix.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return mode & 0o170000 == 0o100000


def process_start_time(pid: int, proc: str = "/proc") -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot), or None when the
    pid is gone or a zombie."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'
    fields = raw[raw.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def is_alive(pid: int, start_time: int, proc: str = "/proc") -> bool:
    return pid > 0 and process_start_time(pid, proc) == start_time
