"""Paths inside the container's rootfs, resolved without ever leaving it.

The rootfs belongs to whoever built the image, and during ``create`` it may
even be changed under our feet (by a hook, or another container sharing the
directory).  A mount destination such as ``/var/log`` where the image made
``var`` a symlink to ``/`` or to ``../../../etc`` must not make us mount over
the host's ``/log`` or ``/etc``: that is the CVE-2021-30465 class of bugs
(runc's was a symlink swapped between its check and its mount).  So:

* The rootfs is opened once as an O_PATH fd, and every lookup is relative to
  it with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS): the kernel treats
  the fd as ``/`` for the walk, so ``..`` stops there and an absolute
  symlink restarts there.  ``/evil -> /tmp/x`` therefore means
  ``<rootfs>/tmp/x``, exactly as it will once the container runs.
* Missing directories are made one component at a time with mkdirat()
  relative to the fd of their parent, and each new component is reopened
  with O_NOFOLLOW and checked to be what we made: a component swapped for a
  symlink after the mkdir is seen, never followed by the kernel.  Symlinks
  met on the way are read and spliced into the path by us, with the same
  root-relative meaning as RESOLVE_IN_ROOT (this is what lets a dangling
  ``/evil -> /tmp/x`` create ``<rootfs>/tmp/x``).
* The result is an O_PATH fd.  Callers mount onto ``/proc/self/fd/<fd>``: the
  kernel follows that magic link to exactly the inode we resolved, so no
  path is looked up again between our check and the mount.
* As a last line of defence, the fd's path (from /proc/self/fd) must be under
  the rootfs, or the lookup fails with EXDEV.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat

from nsbox._sys import fs
from nsbox._sys.fs import O_PATH, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS

#: Symlinks followed in one lookup before ELOOP, as the kernel's MAXSYMLINKS.
MAX_SYMLINKS = 40
#: Times a component may be re-examined after a create lost a race.
_MAX_RETRIES = 16

_have_openat2 = True


def clean(path: str) -> str:
    """Lexically clean a container path: absolute, no ``.``/``..``/``//``.

    ``..`` cannot climb above ``/`` (``/../../x`` is ``/x``), as runc's
    CleanPath.  Symlinks are not looked at: that is the resolver's job.
    """
    return posixpath.normpath("/" + path.lstrip("/")) if path else "/"


def components(path: str) -> list[str]:
    return [c for c in clean(path).split("/") if c]


def proc_fd(fd: int) -> str:
    """The magic link that names what *fd* refers to, for mount(2) and friends."""
    return f"/proc/self/fd/{fd}"


def mount_target(fd: int, path: str) -> str:
    """What to give mount(2) as the target: the fd's magic link, or *path*
    itself when there is no /proc to resolve it (after pivot_root into a
    root that mounts none; inside the new root a path cannot leave it)."""
    link = proc_fd(fd)
    return link if os.path.isdir("/proc/self/fd") else path


def fd_path(fd: int) -> str | None:
    """Where *fd* is, as the kernel names it in this mount namespace; None
    when /proc is not there to ask (after pivot_root into a root without it)."""
    try:
        return os.readlink(proc_fd(fd))
    except OSError:
        return None


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


class Root:
    """The container's rootfs as an fd, and lookups confined to it.

    *path* is a host path before pivot_root (``/var/lib/…/rootfs``) and ``/``
    after it.  The caller owns the Root and closes it.
    """

    __slots__ = ("fd", "path", "real")

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = fs.openat(fs.AT_FDCWD, path, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, shown=path)
        real = fd_path(self.fd)
        self.real = real if real is not None else os.path.realpath(path)

    @classmethod
    def from_fd(cls, fd: int, path: str | None = None) -> Root:
        """A Root for an O_PATH (or O_RDONLY) directory fd the caller opened;
        the Root owns a duplicate, so closing it leaves *fd* open."""
        self = cls.__new__(cls)
        self.fd = os.dup(fd)
        real = fd_path(self.fd)
        self.path = path or real or ""
        self.real = real if real is not None else os.path.realpath(self.path)
        return self

    def close(self) -> None:
        if self.fd >= 0:
            _close(self.fd)
            self.fd = -1

    def __enter__(self) -> Root:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- where an fd is --------------------------------------------------------

    def container_path(self, fd: int) -> str | None:
        """The path of *fd* as the container will see it (``/dev/pts``), or
        None when it cannot be told (no /proc) or it is not under the root."""
        full = fd_path(fd)
        if full is None:
            return None
        if self.real == "/":
            return full
        if full == self.real:
            return "/"
        if full.startswith(self.real + "/"):
            return full[len(self.real):]
        return None

    def check_inside(self, fd: int, shown: str) -> None:
        """Raise EXDEV (closing *fd*) unless *fd* is under the root."""
        if self.real == "/":
            return
        full = fd_path(fd)
        if full is None:
            return
        if full != self.real and not full.startswith(self.real + "/"):
            _close(fd)
            raise OSError(errno.EXDEV, f"resolve: {shown} resolved to {full}, outside the container's root", shown)

    # -- lookups ---------------------------------------------------------------

    def resolve(self, path: str, *, create: str | None = None, mode: int = 0o755, file_mode: int = 0o644) -> int:
        """An O_PATH fd for container path *path*, symlinks followed inside the root.

        *create*: None (it must exist), ``"dir"`` (make missing directories,
        like ``mkdir -p``) or ``"file"`` (missing parents are directories, the
        last component an empty file: the mountpoint of a file bind mount).
        """
        parts = components(path)
        if not parts:
            return os.dup(self.fd)
        global _have_openat2
        if _have_openat2:
            try:
                fd = _openat2_in_root(self.fd, "/".join(parts))
            except OSError as e:
                if e.errno == errno.ENOSYS:
                    _have_openat2 = False
                elif e.errno != errno.ENOENT or create is None:
                    raise OSError(e.errno, e.strerror, path) from None
            else:
                self.check_inside(fd, path)
                return fd
        fd = self._walk(parts, create, mode, file_mode, path)
        self.check_inside(fd, path)
        return fd

    def resolve_parent(self, path: str, *, mode: int = 0o755) -> tuple[int, str]:
        """(O_PATH fd of the parent directory, last name) for creating *path*
        with an ``*at`` call; missing parents are made.  The last component is
        not looked at: ``*at`` calls that create (mknodat, symlinkat, mkdirat)
        never follow a final symlink, they fail with EEXIST."""
        parts = components(path)
        if not parts:
            raise OSError(errno.EINVAL, "resolve: the container's root itself cannot be created", path)
        parent = self.resolve("/".join(parts[:-1]), create="dir", mode=mode)
        return parent, parts[-1]

    def _walk(self, parts: list[str], create: str | None, mode: int, file_mode: int, shown: str) -> int:
        """Resolve component by component, following symlinks ourselves.

        ``stack`` holds an fd per directory from the root down; each was opened
        with O_NOFOLLOW relative to the one before it and checked to be a real
        directory, so ``..`` is a pop (clamped at the root) and nothing is
        ever resolved by the kernel through a symlink.
        """
        stack = [os.dup(self.fd)]
        pending = list(reversed(parts))  # a stack: the next component is at the end
        links = 0
        retries = 0
        try:
            while pending:
                comp = pending.pop()
                if comp in ("", "."):
                    continue
                if comp == "..":
                    if len(stack) > 1:
                        _close(stack.pop())
                    continue
                last = not any(c not in ("", ".") for c in pending)
                cur = stack[-1]
                try:
                    fd = fs.openat(cur, comp, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, shown=shown)
                except OSError as e:
                    if e.errno != errno.ENOENT or create is None:
                        raise
                    retries += 1
                    if retries > _MAX_RETRIES:
                        raise OSError(errno.EAGAIN, f"resolve: {comp!r} keeps changing under us", shown) from None
                    self._create(cur, comp, "file" if last and create == "file" else "dir", mode, file_mode, shown)
                    pending.append(comp)  # look again at what is there now
                    continue
                st = os.fstat(fd)
                if stat.S_ISLNK(st.st_mode):
                    try:
                        target = fs.readlinkat(fd, "", shown=shown)
                    finally:
                        _close(fd)
                    links += 1
                    if links > MAX_SYMLINKS:
                        raise OSError(errno.ELOOP, f"resolve: {os.strerror(errno.ELOOP)}", shown)
                    if target.startswith("/"):
                        # Absolute: from the container's root, not the host's.
                        while len(stack) > 1:
                            _close(stack.pop())
                    pending.extend(reversed(target.split("/")))
                    continue
                if not last and not stat.S_ISDIR(st.st_mode):
                    _close(fd)
                    raise OSError(errno.ENOTDIR, f"resolve: {os.strerror(errno.ENOTDIR)}", shown)
                stack.append(fd)
            return stack.pop() if len(stack) > 1 else os.dup(stack[0])
        finally:
            for fd in stack:
                _close(fd)

    @staticmethod
    def _create(dirfd: int, name: str, kind: str, mode: int, file_mode: int, shown: str) -> None:
        # EEXIST is not an error: someone made it first (or it is a dangling
        # symlink); the caller reopens with O_NOFOLLOW and looks at what it is.
        try:
            if kind == "dir":
                fs.mkdirat(dirfd, name, mode, shown=shown)
            else:
                # O_EXCL: never through a final symlink, never an existing file.
                _close(fs.openat(dirfd, name, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 file_mode, shown=shown))
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise


def _openat2_in_root(rootfd: int, rel: str) -> int:
    # EAGAIN: the kernel saw a rename race during a ".." step and refuses to
    # guess; trying again is what its documentation asks for.
    for _ in range(_MAX_RETRIES):
        try:
            return fs.openat2(rootfd, rel, O_PATH | os.O_CLOEXEC, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
        except OSError as e:
            if e.errno != errno.EAGAIN:
                raise
    return fs.openat2(rootfd, rel, O_PATH | os.O_CLOEXEC, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)


def open_no_follow(dirfd: int, name: str, shown: str) -> int:
    """An O_PATH fd for *name* in *dirfd* itself (a symlink is returned as the
    symlink, never followed)."""
    return fs.openat(dirfd, name, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, shown=shown)
