"""Making the rootfs the root: propagation, the self-bind, pivot_root or
MS_MOVE+chroot, and a read-only root."""

from __future__ import annotations

import errno
import os

from nsbox._sys import process as _proc
from nsbox._sys.consts import (
    MNT_DETACH,
    MS_BIND,
    MS_MOVE,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SLAVE,
)
from nsbox._sys import fs
from nsbox._sys.mount import mount, pivot_root, umount2
from nsbox.rootfs.mounts import LOCK_FLAGS, statfs_to_mount_flags

#: What / becomes before anything is mounted, unless linux.rootfsPropagation
#: says otherwise: slave, so host mounts still reach us but nothing we mount
#: goes back to the host.
DEFAULT_ROOT_PROPAGATION = MS_SLAVE | MS_REC


def set_root_propagation(flag: int = DEFAULT_ROOT_PROPAGATION) -> None:
    mount(None, "/", None, flag, None)


def rootfs_parent_private(rootfs: str, root_propagation: int = 0) -> None:
    """Make the mount that holds *rootfs* not shared.

    pivot_root(2) fails with EINVAL when the new root's parent mount is
    shared, and a bind of the rootfs under a shared parent would propagate
    (leak) to the host.  Walks up from *rootfs* until a path is a mount
    point (EINVAL means "not a mount point").
    """
    flag = MS_SLAVE if root_propagation & MS_SLAVE else MS_PRIVATE
    path = rootfs
    while True:
        try:
            mount(None, path, None, flag, None)
            return
        except OSError as e:
            if e.errno != errno.EINVAL or path == "/":
                raise
            path = os.path.dirname(path)


def bind_rootfs(rootfs: str) -> None:
    """Bind the rootfs onto itself (with its submounts): pivot_root needs the
    new root to be a mount point, and MS_MOVE needs a mount to move.

    Done before the rootfs fd is opened and before any spec mount, so that
    everything is mounted on the bind (the tree that becomes /), not on the
    directory underneath it.
    """
    mount(rootfs, rootfs, None, MS_BIND | MS_REC, None)


def pivot_into(rootfs: str, no_pivot: bool = False) -> None:
    """Make *rootfs* (already a mount point: bind_rootfs) the root and chdir("/")."""
    if no_pivot:
        ms_move_root(rootfs)
        return
    # pivot_root(".", "."): the old root ends up stacked on top of the new one
    # (at "/"), so it can be detached right away, with no put_old directory
    # to create inside the rootfs (LXC's trick, used by runc and crun).
    oldroot = os.open("/", os.O_DIRECTORY | fs.O_PATH | os.O_CLOEXEC)
    try:
        newroot = os.open(rootfs, os.O_DIRECTORY | fs.O_PATH | os.O_CLOEXEC)
        try:
            _proc.fchdir(newroot, rootfs)
        finally:
            os.close(newroot)
        pivot_root(".", ".")
        # The kernel leaves our cwd on the old root today, but does not
        # promise it: go there explicitly.
        _proc.fchdir(oldroot, "old root")
    finally:
        os.close(oldroot)
    # rslave first, so that the unmount cannot propagate to the host's
    # mounts (rprivate would do too, but races with host tools that expect
    # slaves to see their unmounts).
    mount(None, ".", None, MS_SLAVE | MS_REC, None)
    umount2(".", MNT_DETACH)
    _proc.chdir("/")


def ms_move_root(rootfs: str, mountinfo_path: str = "/proc/self/mountinfo") -> None:
    """--no-pivot: move the rootfs mount onto / and chroot into it (for
    initramfs roots, where pivot_root is impossible).

    The old root stays in the mount namespace, merely out of sight.  The
    host's procfs and sysfs mounts there would let the container mount a
    fresh procfs (the kernel allows it when a full one is visible), so they
    are detached first, or covered with a tmpfs where unmounting is refused.
    """
    from nsbox.mountinfo import parse_mountinfo  # here: a pivot_root needs none

    with open(mountinfo_path) as f:
        mounts = parse_mountinfo(f.read())
    prefix = rootfs.rstrip("/") + "/"
    for mi in mounts:
        if mi.root != "/" or mi.fstype not in ("proc", "sysfs"):
            continue
        if mi.mountpoint == rootfs or mi.mountpoint.startswith(prefix):
            continue
        try:
            mount(None, mi.mountpoint, None, MS_SLAVE | MS_REC, None)
        except OSError as e:
            if e.errno == errno.ENOENT:
                continue  # under something already detached
            raise
        try:
            umount2(mi.mountpoint, MNT_DETACH)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.EPERM):
                raise
            mount("tmpfs", mi.mountpoint, "tmpfs", 0, None)
    _proc.chdir(rootfs)
    mount(rootfs, "/", None, MS_MOVE, None)
    _proc.chroot(".")
    _proc.chdir("/")


def make_root_readonly() -> None:
    """root.readonly: remount / read-only (after pivot_root).

    In a user namespace the root's other flags may be locked; then again
    with them kept.
    """
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY
    try:
        mount(None, "/", None, flags, None)
        return
    except OSError:
        src = statfs_to_mount_flags(fs.statvfs("/").f_flag)
    mount(None, "/", None, flags | (src & LOCK_FLAGS), None)


def chroot_into(rootfs: str) -> None:
    """Enter *rootfs* with chroot alone: for a container in the host's mount
    namespace, where pivot_root or MS_MOVE would move the host's own root."""
    _proc.chdir(rootfs)
    _proc.chroot(".")
    _proc.chdir("/")


def unmount_under(path: str, mountinfo_path: str = "/proc/self/mountinfo") -> list[str]:
    """Detach every mount at or below *path*, deepest first; returns them.

    How delete undoes a container that had no mount namespace of its own:
    its mounts were made in the host's, under its rootfs."""
    from nsbox._sys.consts import MNT_DETACH
    from nsbox.mountinfo import parse_mountinfo

    with open(mountinfo_path) as f:
        mounts = [m.mountpoint for m in parse_mountinfo(f.read())]
    inside = sorted({m for m in mounts if m == path or m.startswith(path.rstrip("/") + "/")},
                    key=lambda m: m.count("/"), reverse=True)
    for target in inside:
        try:
            umount2(target, MNT_DETACH)
        except OSError as e:
            if e.errno not in (22, 2):  # EINVAL/ENOENT: already gone with a parent
                raise
    return inside
