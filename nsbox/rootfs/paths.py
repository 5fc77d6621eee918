"""``linux.maskedPaths`` and ``linux.readonlyPaths``, after pivot_root.

Both are container paths, so they are done from inside the new root, where
``/`` already is the container's and every symlink means what it will mean to
the container.  A path that does not exist is skipped silently (runc does:
the default lists name /proc files that many kernels lack).

* masked: a file gets the container's /dev/null bound over it; a directory
  a read-only, empty, one-inode tmpfs (the first one is then bound over the
  other directories, saving a tmpfs per path).  /dev/null is checked to be
  the real null device first: a /dev/null the container controls (a bind
  mount of its own /dev) could otherwise be a symlink or file that we would
  bind over, say, /proc/sys/kernel/core_pattern (CVE-2025-31133).
* read-only: rbind the path onto itself, remount the top read-only (keeping
  its nosuid/nodev/noexec, which the kernel may have locked), and make every
  submount read-only too with mount_setattr(AT_RECURSIVE).
"""

from __future__ import annotations

import errno
import os
import stat

from nsbox._sys import fs
from nsbox._sys.consts import MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REC, MS_REMOUNT
from nsbox._sys.mount import mount
from nsbox.rootfs.devices import is_dev_null
from nsbox.rootfs.mounts import format_mount_label, statfs_to_mount_flags
from nsbox.rootfs.safepath import Root, clean, fd_path, mount_target

_MISSING = (errno.ENOENT, errno.ENOTDIR)


def _open_existing(root: Root, path: str) -> int | None:
    try:
        return root.resolve(path)
    except OSError as e:
        if e.errno in _MISSING:
            return None
        raise


def _reopen(root: Root, path: str, old: int) -> int:
    """The mount now on top at *path* (``old`` names what is under it)."""
    cpath = root.container_path(old) or path
    new = root.resolve(cpath)
    if fd_path(new) != fd_path(old):
        os.close(new)
        raise OSError(errno.EXDEV, "mount: the mountpoint moved while mounting", path)
    return new


def mask_paths(paths: list[str], root: Root, label: str | None = None) -> None:
    """Cover each of *paths* (inside *root*, normally ``Root("/")``)."""
    if not paths:
        return
    devnull = os.open("/dev/null", fs.O_PATH | os.O_CLOEXEC)
    shared = -1
    shared_path = ""
    try:
        if not is_dev_null(os.fstat(devnull)):
            raise OSError(errno.EINVAL, "maskedPaths: the container's /dev/null is not the null device", "/dev/null")
        seen = set()
        for path in paths:
            path = clean(path)
            if path in seen:
                continue
            seen.add(path)
            fd = _open_existing(root, path)
            if fd is None:
                continue
            try:
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    if shared >= 0:
                        try:
                            # A bind of a read-only mount is read-only too.
                            mount(mount_target(shared, shared_path), mount_target(fd, path), None, MS_BIND, None)
                            continue
                        except OSError:
                            os.close(shared)
                            shared = -1
                    _mask_dir(mount_target(fd, path), label)
                    shared = _reopen(root, path, fd)
                    shared_path = path
                else:
                    mount(mount_target(devnull, "/dev/null"), mount_target(fd, path), None, MS_BIND, None)
            except OSError as e:
                raise OSError(e.errno, f"maskedPaths ({path}): {e.strerror}", path) from None
            finally:
                os.close(fd)
    finally:
        if shared >= 0:
            os.close(shared)
        os.close(devnull)


def _mask_dir(target: str, label: str | None) -> None:
    try:
        mount("tmpfs", target, "tmpfs", MS_RDONLY, format_mount_label("nr_blocks=1,nr_inodes=1", label))
    except OSError:
        # Some distribution kernels refuse nr_inodes < 2.
        mount("tmpfs", target, "tmpfs", MS_RDONLY, format_mount_label("nr_blocks=1,nr_inodes=2", label))


def readonly_paths(paths: list[str], root: Root) -> None:
    """Make each of *paths* (and what is mounted below it) read-only."""
    for path in paths:
        path = clean(path)
        fd = _open_existing(root, path)
        if fd is None:
            continue
        try:
            target = mount_target(fd, path)
            mount(target, target, None, MS_BIND | MS_REC, None)
            new = _reopen(root, path, fd)
            try:
                keep = statfs_to_mount_flags(fs.statvfs(new, shown=path).f_flag) & (MS_NOSUID | MS_NODEV | MS_NOEXEC)
                mount(None, mount_target(new, path), None, keep | MS_BIND | MS_REMOUNT | MS_RDONLY, None)
                try:
                    fs.mount_setattr(new, "", fs.AT_EMPTY_PATH | fs.AT_RECURSIVE, fs.MOUNT_ATTR_RDONLY, 0,
                                     shown=path)
                except OSError as e:
                    if e.errno != errno.ENOSYS:  # before Linux 5.12: the top is read-only, that is all
                        raise
            finally:
                os.close(new)
        except OSError as e:
            raise OSError(e.errno, f"readonlyPaths ({path}): {e.strerror}", path) from None
        finally:
            os.close(fd)
