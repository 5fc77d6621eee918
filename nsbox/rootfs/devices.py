"""The container's /dev: device nodes, /dev/ptmx, and the /proc/self/fd links.

What runc makes (libcontainer/specconv AllowedDevices, rootfs_linux.go):

* the OCI default devices ``/dev/null zero full random urandom tty``, mode
  0666, owned by root; a device of the same path in ``linux.devices``
  replaces the default;
* then every ``linux.devices`` entry (mode 0666 unless ``fileMode``, uid/gid
  0 unless given);
* ``/dev/ptmx -> pts/ptmx``, so that the ptmx of the container's own devpts
  instance (mounted with ``newinstance``) is the one used;
* ``/dev/fd -> /proc/self/fd``, ``/dev/std{in,out,err} -> /proc/self/fd/{0,1,2}``
  and ``/dev/core -> /proc/kcore`` when the host kernel has a kcore.

None of this happens when the spec bind-mounts a /dev of its own.

In a user namespace mknod(2) of a device is EPERM, so the node is an empty
file with the host's device bind-mounted on it (as runc does).  Nodes are made
with mknodat relative to a parent directory resolved inside the rootfs, and
never through a final symlink (mknodat fails EEXIST on one, and an existing
node is left alone, as runc does).
"""

from __future__ import annotations

import errno
import os
import stat

from nsbox._sys import fs
from nsbox._sys.consts import MS_BIND
from nsbox._sys.mount import mount
from nsbox.rootfs.safepath import Root, clean, open_no_follow, proc_fd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsbox.oci.spec import Spec

_TYPE_BITS = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


class DeviceNode:
    """A node to make: container path, type (c/u/b/p), numbers, mode, owner."""

    __slots__ = ("path", "type", "major", "minor", "mode", "uid", "gid")

    def __init__(self, path: str, type: str, major: int = 0, minor: int = 0, mode: int = 0o666,
                 uid: int = 0, gid: int = 0) -> None:
        self.path = path
        self.type = type
        self.major = major
        self.minor = minor
        self.mode = mode
        self.uid = uid
        self.gid = gid

    @property
    def file_type(self) -> int:
        return _TYPE_BITS[self.type]

    @property
    def rdev(self) -> int:
        return os.makedev(self.major, self.minor) if self.type != "p" else 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DeviceNode) and all(getattr(self, a) == getattr(other, a) for a in self.__slots__)

    def __repr__(self) -> str:
        return (f"DeviceNode({self.path!r}, {self.type!r}, {self.major}, {self.minor}, {self.mode:#o}, "
                f"{self.uid}, {self.gid})")


#: The devices every OCI container gets (runtime-spec config-linux.md "Default Devices").
DEFAULT_DEVICES = (
    DeviceNode("/dev/null", "c", 1, 3),
    DeviceNode("/dev/random", "c", 1, 8),
    DeviceNode("/dev/full", "c", 1, 7),
    DeviceNode("/dev/tty", "c", 5, 0),
    DeviceNode("/dev/zero", "c", 1, 5),
    DeviceNode("/dev/urandom", "c", 1, 9),
)

#: (target, link) made in /dev.  /proc/self rather than /proc/thread-self:
#: what every distribution has.
DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
)
KCORE_SYMLINK = ("/proc/kcore", "/dev/core")


def needs_setup_dev(spec: Spec) -> bool:
    """False when the spec bind-mounts its own /dev: then we touch nothing there."""
    return not any(m.is_bind and clean(m.destination) == "/dev" for m in spec.mounts)


def plan_devices(spec: Spec) -> list[DeviceNode]:
    """The nodes to make, in order: defaults not overridden, then the spec's.

    /dev/ptmx is never a node here: setup_ptmx makes it a symlink.
    """
    given = {clean(d.path) for d in spec.linux.devices}  # type: ignore[arg-type]
    nodes = [d for d in DEFAULT_DEVICES if d.path not in given]
    for d in spec.linux.devices:
        nodes.append(DeviceNode(
            clean(d.path), d.type, d.major or 0, d.minor or 0,  # type: ignore[arg-type]
            0o666 if d.file_mode is None else d.file_mode & 0o7777,
            d.uid or 0, d.gid or 0,
        ))
    return [n for n in nodes if n.path != "/dev/ptmx"]


def dev_symlinks(proc: str = "/proc") -> list[tuple[str, str]]:
    """The /dev symlinks; /dev/core only when the kernel has /proc/kcore
    (CONFIG_PROC_KCORE), checked on the host's *proc*."""
    links = list(DEV_SYMLINKS)
    if os.path.exists(os.path.join(proc, "kcore")):
        links.append(KCORE_SYMLINK)
    return links


def setup_dev(spec: Spec, root: Root, *, in_user_namespace: bool, proc: str = "/proc") -> None:
    """Nodes, /dev/ptmx and the symlinks, in *root* (before pivot_root)."""
    create_devices(plan_devices(spec), root, in_user_namespace=in_user_namespace)
    setup_ptmx(root)
    for target, link in dev_symlinks(proc):
        symlink_in_root(root, target, link)


def create_devices(nodes: list[DeviceNode], root: Root, *, in_user_namespace: bool) -> None:
    # umask 0 so that the modes are exactly the spec's (fchmod follows anyway).
    old = os.umask(0)
    try:
        for node in nodes:
            try:
                create_device(root, node, bind=in_user_namespace)
            except OSError as e:
                raise OSError(e.errno, f"device {node.path}: {e.strerror}", e.filename) from None
    finally:
        os.umask(old)


def create_device(root: Root, node: DeviceNode, *, bind: bool) -> None:
    parent, name = root.resolve_parent(node.path)
    try:
        if bind:
            _bind_device(parent, name, node)
            return
        try:
            fs.mknodat(parent, name, node.file_type | node.mode, node.rdev, shown=node.path)
        except OSError as e:
            if e.errno == errno.EEXIST:
                return  # already there (or a symlink, which we do not follow)
            if e.errno == errno.EPERM:
                _bind_device(parent, name, node)
                return
            raise
        fd = open_no_follow(parent, name, node.path)
        try:
            # Check that what we are about to chown is the node we made.
            st = os.fstat(fd)
            if stat.S_IFMT(st.st_mode) != node.file_type or (node.type != "p" and st.st_rdev != node.rdev):
                raise OSError(errno.EEXIST, "mknodat: the new node was replaced", node.path)
            fs.fchown_fd(fd, node.uid, node.gid, shown=node.path)
            # After the chown: chown clears set-id bits.
            os.chmod(proc_fd(fd), node.mode)
        finally:
            os.close(fd)
    finally:
        os.close(parent)


def _bind_device(parent: int, name: str, node: DeviceNode) -> None:
    """An empty file with the host's device of the same path bound on it."""
    try:
        fs.mknodat(parent, name, stat.S_IFREG, 0, shown=node.path)
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise
    fd = open_no_follow(parent, name, node.path)
    try:
        if stat.S_ISLNK(os.fstat(fd).st_mode):
            raise OSError(errno.ELOOP, "device path is a symlink", node.path)
        mount(node.path, proc_fd(fd), None, MS_BIND, None)
    finally:
        os.close(fd)


def setup_ptmx(root: Root) -> None:
    """/dev/ptmx -> pts/ptmx: the container's own devpts instance's ptmx."""
    parent, name = root.resolve_parent("/dev/ptmx")
    try:
        try:
            fs.unlinkat(parent, name, shown="/dev/ptmx")
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
        fs.symlinkat("pts/ptmx", parent, name, shown="/dev/ptmx")
    finally:
        os.close(parent)


def symlink_in_root(root: Root, target: str, link: str) -> None:
    """Make the symlink *link* (a container path) unless something is there."""
    parent, name = root.resolve_parent(link)
    try:
        fs.symlinkat(target, parent, name, shown=link)
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise
    finally:
        os.close(parent)


def is_dev_null(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)


def reopen_dev_null() -> None:
    """After pivot_root: stdio that is the host's /dev/null becomes the
    container's, so no fd of ours points at a host file."""
    fd = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    try:
        if not is_dev_null(os.fstat(fd)):
            raise OSError(errno.EINVAL, "the container's /dev/null is not the null device", "/dev/null")
        for i in range(3):
            try:
                st = os.fstat(i)
            except OSError:
                continue
            if is_dev_null(st):
                os.dup2(fd, i)
    finally:
        os.close(fd)
