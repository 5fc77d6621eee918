"""The spec's ``mounts``, done in order inside the container's rootfs.

Each mount is resolved with nsbox.rootfs.safepath (never through a symlink
out of the rootfs) and made on ``/proc/self/fd/<fd>`` of the resolved
mountpoint.  After a mount the mountpoint is looked up again, because the
fd we mounted on still names the directory *under* the new mount; remounts,
mount_setattr and propagation changes must act on the new mount itself.

Per type, as runc does (libcontainer/rootfs_linux.go):

* bind/rbind: mount(MS_BIND[|MS_REC]) ignores every other flag, so ro,
  nosuid, nodev … take a second call, MS_BIND|MS_REMOUNT.  In a user
  namespace a mount inherited from the host has its flags *locked* (the
  kernel refuses EPERM to clear nosuid/nodev/noexec/ro/atime flags the
  source has); then the remount is retried with the source's locked flags
  added, unless the spec explicitly asked to clear one of them.
* tmpfs: mounted read-write even when ``ro`` is asked, so later mounts can
  create their mountpoints inside it; finish_rootfs makes it read-only
  after pivot_root (and /dev likewise, after the device nodes are made).
  A tmpfs over an existing directory keeps that directory's mode unless
  ``mode=`` says otherwise.  ``tmpcopyup`` copies the covered directory in.
* proc, sysfs: only on a real directory, never through a final symlink;
  nothing may be mounted inside /proc except a few lxcfs-style files
  (a bind over /proc/self/attr/... would defeat LSMs: CVE-2019-16884).
  sysfs cannot be mounted in a user namespace that does not own the
  network namespace: then /sys is rbind-mounted from the host instead.
* cgroup, cgroup2: nsbox.rootfs.cgroupfs.
* anything else (devpts, mqueue, overlay, …) goes to mount(2) as given.
"""

from __future__ import annotations

import errno
import os
import stat
import time

from nsbox._sys import fs
from nsbox._sys.consts import MOUNT_FLAG_NAMES as _MS_NAMES
from nsbox._sys.consts import (
    MS_BIND,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_NOSYMFOLLOW,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_STRICTATIME,
    MS_SYNCHRONOUS,
    MS_MANDLOCK,
    flag_names,
)
from nsbox._sys.mount import mount
from nsbox.oci.spec import SpecError
from nsbox.rootfs.options import MountOptions, parse_mount_options
from nsbox.rootfs.safepath import Root, clean, mount_target, open_no_follow, proc_fd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from nsbox.oci.spec import Mount, Spec

DEFAULT_MOUNT_FLAGS = MS_NOEXEC | MS_NOSUID | MS_NODEV

# The atime "enum" (mutually exclusive values) and every atime flag.
ATIME_ENUM_FLAGS = MS_NOATIME | MS_RELATIME | MS_STRICTATIME
ATIME_FLAGS = ATIME_ENUM_FLAGS | MS_NODIRATIME
#: Flags the kernel locks (MNT_LOCK_*) on mounts inherited by a less
#: privileged user namespace: they can be added, never dropped.
LOCK_FLAGS = MS_RDONLY | MS_NODEV | MS_NOEXEC | MS_NOSUID | ATIME_FLAGS

#: Files inside /proc that may be covered (what lxcfs emulates), as runc allows.
PROC_MOUNT_ALLOWED = (
    "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
    "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/sys/kernel/ns_last_pid",
    "/proc/sys/crypto/fips_enabled",
)

_ST_TO_MS = (
    (fs.ST_RDONLY, MS_RDONLY), (fs.ST_NOSUID, MS_NOSUID), (fs.ST_NODEV, MS_NODEV),
    (fs.ST_NOEXEC, MS_NOEXEC), (fs.ST_MANDLOCK, MS_MANDLOCK), (fs.ST_SYNCHRONOUS, MS_SYNCHRONOUS),
    (fs.ST_NOATIME, MS_NOATIME), (fs.ST_NODIRATIME, MS_NODIRATIME), (fs.ST_RELATIME, MS_RELATIME),
    (fs.ST_NOSYMFOLLOW, MS_NOSYMFOLLOW),
)


# -- policy (no kernel) -------------------------------------------------------


class MountEntry:
    """One spec mount, checked and normalised: what to do, where, with what."""

    __slots__ = ("index", "destination", "kind", "fstype", "source", "opts")

    def __init__(self, index: int, destination: str, kind: str, fstype: str | None, source: str | None,
                 opts: MountOptions) -> None:
        self.index = index
        self.destination = destination  # lexically clean container path
        self.kind = kind  # "bind", or the filesystem type
        self.fstype = fstype
        self.source = source
        self.opts = opts

    @property
    def where(self) -> str:
        return f"mounts[{self.index}]"

    def __repr__(self) -> str:
        return f"MountEntry({self.where}, {self.destination!r}, {self.kind!r}, source={self.source!r}, {self.opts!r})"


def prepare_mount(index: int, m: Mount, bundle: str) -> MountEntry:
    """Parse and check ``mounts[index]``: SpecError names the field at fault."""
    where = f"mounts[{index}]"
    for field, value in (("destination", m.destination), ("source", m.source), ("type", m.type)):
        if value is not None and "\0" in value:
            raise SpecError(f"{where}.{field}", "must not contain a NUL byte")
    opts = parse_mount_options(m.options, f"{where}.options")
    if m.uid_mappings or m.gid_mappings:
        raise SpecError(f"{where}.uidMappings", "id-mapped mounts are not supported yet")
    destination = clean(m.destination)
    if destination == "/":
        raise SpecError(f"{where}.destination", "cannot mount over the container's root (use root.path)")
    if opts.bind or m.type == "bind":
        # Any type given with bind/rbind means nothing to the kernel.
        opts.flags |= MS_BIND
        if not m.source:
            raise SpecError(f"{where}.source", "is required for a bind mount")
        source = m.source if os.path.isabs(m.source) else os.path.join(bundle, m.source)
        return MountEntry(index, destination, "bind", None, source, opts)
    if not m.type and not opts.remount:
        raise SpecError(f"{where}.type", "is required (unless the mount is a bind mount)")
    kind = m.type or "remount"
    return MountEntry(index, destination, kind, m.type, m.source or m.type, opts)


def statfs_to_mount_flags(f_flag: int) -> int:
    """The MS_* flags of a mount from statfs(2)'s ST_* f_flag bits.

    MS_STRICTATIME is not stored by the kernel: a mount with none of the
    other atime values is strictatime.
    """
    flags = 0
    for st, ms in _ST_TO_MS:
        if f_flag & st:
            flags |= ms
    if flags & ATIME_ENUM_FLAGS == 0:
        flags |= MS_STRICTATIME
    return flags


def locked_remount_flags(flags: int, requested: int, cleared: int, src_flags: int) -> int:
    """The flags to retry a failed bind remount with, the source's locked
    flags re-applied; ValueError (the reason) when that would not give what
    the spec asked for.

    *flags*: the remount's flags; *requested*/*cleared*: what the options set
    and cleared; *src_flags*: the mount's current flags (statfs_to_mount_flags).
    """
    cannot_clear = src_flags & cleared & LOCK_FLAGS
    if cannot_clear:
        raise ValueError(f"cannot clear locked flags {flag_names(cannot_clear, _MS_NAMES)}")
    # MS_RELATIME is ignored with MS_NOATIME, and MS_STRICTATIME overrides
    # both: inheriting one while asking for another would silently give the
    # wrong atime behaviour, so a requested atime value must match.
    if requested & ATIME_FLAGS and requested & ATIME_FLAGS != src_flags & ATIME_FLAGS:
        raise ValueError(f"cannot change locked atime flags {flag_names(src_flags & ATIME_FLAGS, _MS_NAMES)}")
    return flags | (src_flags & LOCK_FLAGS)


def check_proc_mount(dest: str, kind: str, source_is_procfs=lambda: False) -> None:  # type: ignore[no-untyped-def]
    """Refuse mounts inside /proc (container path *dest*, symlinks resolved).

    On /proc itself only procfs may go: a fresh one, or a bind of one.
    Inside it only the files lxcfs emulates.
    """
    if dest != "/proc" and not dest.startswith("/proc/"):
        return
    if dest == "/proc":
        if kind == "proc" or (kind == "bind" and source_is_procfs()):
            return
        raise SpecError("", f"{dest!r} cannot be mounted because it is not of type proc")
    if dest in PROC_MOUNT_ALLOWED:
        return
    raise SpecError("", f"{dest!r} cannot be mounted because it is inside /proc")


def format_mount_label(data: str, label: str | None) -> str:
    """Add the SELinux ``context=`` option for *label* to fs *data*."""
    if not label:
        return data
    return f'{data},context="{label}"' if data else f'context="{label}"'


def _selinux_enabled() -> bool:
    return os.path.exists("/sys/fs/selinux/enforce")


# -- doing it -----------------------------------------------------------------


class _Ctx:
    __slots__ = ("root", "in_userns", "cgroupns", "label", "mountinfo", "proc_cgroup", "before_cgroup")

    def __init__(self, root: Root, in_userns: bool, cgroupns: bool, label: str | None,
                 mountinfo: str, proc_cgroup: str, before_cgroup: Callable[[], None] | None) -> None:
        self.root = root
        self.in_userns = in_userns
        self.cgroupns = cgroupns
        self.label = label
        self.mountinfo = mountinfo
        self.proc_cgroup = proc_cgroup
        self.before_cgroup = before_cgroup


def mount_spec_mounts(spec: Spec, root: Root | str | int, *, in_user_namespace: bool = False,
                      mountinfo_path: str = "/proc/self/mountinfo", cgroup_path: str = "/proc/self/cgroup",
                      before_cgroup: Callable[[], None] | None = None) -> None:
    """Do every spec mount, in order, inside *root*: a Root, the rootfs path,
    or an fd of the rootfs directory (already bound onto itself: bind_rootfs).
    *before_cgroup()* is called before each cgroup or cgroup2 mount: what
    they show depends on the cgroup we are in (and our cgroup namespace).

    Errors: SpecError for bad options (naming ``mounts[i]…``); OSError from
    the kernel with the mount named first: ``mounts[3] (/dev/pts): mount:
    Operation not permitted``.
    """
    entries = [prepare_mount(i, m, spec.bundle) for i, m in enumerate(spec.mounts)]
    if not entries:
        return
    own_root = not isinstance(root, Root)
    r = Root(root) if isinstance(root, str) else Root.from_fd(root) if isinstance(root, int) else root
    try:
        label = spec.linux.mount_label if spec.linux.mount_label and _selinux_enabled() else None
        ctx = _Ctx(r, in_user_namespace, spec.linux.namespace("cgroup") is not None, label,
                   mountinfo_path, cgroup_path, before_cgroup)
        for e in entries:
            try:
                mount_entry(ctx, e)
            except OSError as err:
                raise wrap_error(err, e.where, e.destination) from None
            except SpecError as err:
                if err.path:
                    raise
                raise SpecError(f"{e.where}.destination", err.problem) from None
    finally:
        if own_root:
            r.close()


def wrap_error(err: OSError, where: str, destination: str) -> OSError:
    """``mounts[3] (/dev/pts): mount: Operation not permitted``, errno kept;
    the /proc/self/fd/N we mounted on is replaced by the container path."""
    filename = err.filename
    if filename is None or str(filename).startswith("/proc/self/fd/"):
        filename = destination
    return OSError(err.errno, f"{where} ({destination}): {err.strerror}", filename)


def mount_entry(ctx: _Ctx, e: MountEntry) -> None:
    kind = e.kind
    if kind in ("proc", "sysfs"):
        _mount_proc_or_sys(ctx, e)
    elif kind == "bind":
        _mount_bind(ctx, e)
    elif kind == "tmpfs":
        _mount_tmpfs(ctx, e)
    elif kind in ("cgroup", "cgroup2"):
        # only a spec with a cgroup mount pays for this import; before the
        # wait to be placed, which may be long
        from nsbox.rootfs.cgroupfs import mount_cgroup

        if ctx.before_cgroup is not None:
            ctx.before_cgroup()
        mount_cgroup(ctx, e)
    else:
        _mount_generic(ctx, e)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _open_mountpoint(ctx: _Ctx, e: MountEntry, create: str = "dir") -> tuple[int, str, bool]:
    """Resolve (creating) the mountpoint: (O_PATH fd, container path, whether it existed)."""
    try:
        fd = ctx.root.resolve(e.destination)
        existed = True
    except FileNotFoundError:
        fd = ctx.root.resolve(e.destination, create=create)
        existed = False
    try:
        cpath = ctx.root.container_path(fd) or e.destination
        if cpath == "/":
            raise SpecError("", f"{e.destination!r} resolves to the container's root; mounting over it is not supported")
        check_proc_mount(cpath, e.kind, lambda: e.source is not None and fs.statfs_type(e.source) == fs.PROC_SUPER_MAGIC)
    except BaseException:
        _close(fd)
        raise
    return fd, cpath, existed


def _reopen(ctx: _Ctx, cpath: str, old: int) -> int:
    """The new mount's root at *cpath* (the fd *old* names what is under it)."""
    new = ctx.root.resolve(cpath)
    before, after = _fd_path(old), _fd_path(new)
    if before is not None and after is not None and before != after:
        _close(new)
        raise OSError(errno.EXDEV, f"mount: the mountpoint moved while mounting ({before} is now {after})", cpath)
    return new


def _fd_path(fd: int) -> str | None:
    try:
        return os.readlink(proc_fd(fd))
    except OSError:
        return None


def _mount_at(ctx: _Ctx, e: MountEntry, fd: int, cpath: str, source: str | None, fstype: str | None,
              flags: int, data: str | None) -> int:
    """mount(2) on the resolved *fd*; the reopened new mount, propagation applied."""
    mount(source, proc_fd(fd), fstype, flags, data or None)
    new = _reopen(ctx, cpath, fd)
    try:
        _propagation(e.opts, new)
    except BaseException:
        _close(new)
        raise
    return new


def _propagation(opts: MountOptions, fd: int) -> None:
    for p in opts.propagation:
        mount(None, proc_fd(fd), None, p, None)


def _rec_attrs(opts: MountOptions, fd: int, cpath: str) -> None:
    """``rro`` & co, on the mount *fd* and everything below it.  Callers apply
    them last, once nothing more has to be created inside."""
    if opts.has_rec_attrs:
        fs.mount_setattr(fd, "", fs.AT_EMPTY_PATH | fs.AT_RECURSIVE, opts.rec_attr_set, opts.rec_attr_clr,
                         shown=cpath)


def _done(opts: MountOptions, fd: int, cpath: str) -> None:
    """Apply the recursive attributes to the new mount *fd*, then close it."""
    try:
        _rec_attrs(opts, fd, cpath)
    finally:
        _close(fd)


def _deferred_ro(e: MountEntry) -> bool:
    """tmpfs and /dev are made read-only only in finish_rootfs (see the module doc)."""
    return e.kind == "tmpfs" or (e.destination == "/dev" and e.kind != "bind")


def _mount_generic(ctx: _Ctx, e: MountEntry) -> None:
    fd, cpath, _ = _open_mountpoint(ctx, e)
    try:
        flags = e.opts.flags & ~MS_RDONLY if _deferred_ro(e) else e.opts.flags
        data = e.opts.data if e.kind in ("mqueue", "remount") else format_mount_label(e.opts.data, ctx.label)
        _done(e.opts, _mount_at(ctx, e, fd, cpath, e.source, e.fstype, flags, data), cpath)
    finally:
        _close(fd)


def _mount_tmpfs(ctx: _Ctx, e: MountEntry) -> None:
    data = e.opts.data
    fd, cpath, existed = _open_mountpoint(ctx, e)
    src_dir = -1
    try:
        if existed:
            # Keep the covered directory's mode (runc does); a mode= in the
            # options comes later in the list and wins.
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
            data = f"mode={mode:04o}," + data if data else f"mode={mode:04o}"
        if e.opts.tmpcopyup:
            src_dir = fs.openat(fd, ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, shown=cpath)
        new = _mount_at(ctx, e, fd, cpath, e.source, "tmpfs", e.opts.flags & ~MS_RDONLY,
                        format_mount_label(data, ctx.label))
        try:
            if src_dir >= 0:
                dst_dir = fs.openat(new, ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, shown=cpath)
                try:
                    copy_tree(src_dir, dst_dir)
                except OSError as err:
                    raise OSError(err.errno, f"tmpcopyup: {err.strerror}", err.filename) from None
                finally:
                    _close(dst_dir)
            _rec_attrs(e.opts, new, cpath)
        finally:
            _close(new)
    finally:
        if src_dir >= 0:
            _close(src_dir)
        _close(fd)


def _mount_proc_or_sys(ctx: _Ctx, e: MountEntry) -> None:
    # The final component must be a real directory: procfs or sysfs mounted
    # through a symlink has been an attack before; we do not follow one.
    parent, name = ctx.root.resolve_parent(e.destination)
    try:
        try:
            fd = open_no_follow(parent, name, e.destination)
        except FileNotFoundError:
            fs.mkdirat(parent, name, 0o755, shown=e.destination)
            fd = open_no_follow(parent, name, e.destination)
    finally:
        _close(parent)
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.ENOTDIR, f"{e.kind} must be mounted on an ordinary directory", e.destination)
        cpath = ctx.root.container_path(fd) or e.destination
        check_proc_mount(cpath, e.kind)
        try:
            _done(e.opts, _mount_at(ctx, e, fd, cpath, e.source, e.kind, e.opts.flags, e.opts.data), cpath)
        except OSError as err:
            if e.kind != "sysfs" or err.errno != errno.EPERM or not ctx.in_userns:
                raise
            # A user namespace that does not own the network namespace cannot
            # mount sysfs: show the host's /sys instead, as runc does.
            flags = MS_BIND | MS_REC | (e.opts.flags & ~MS_REMOUNT)
            _close(_bind(ctx, e, fd, cpath, "/sys", flags, e.opts.cleared))
    finally:
        _close(fd)


def _mount_bind(ctx: _Ctx, e: MountEntry) -> None:
    assert e.source is not None
    try:
        st = os.stat(e.source)
    except OSError as err:
        raise OSError(err.errno, f"bind source: {err.strerror}", e.source) from None
    fd, cpath, _ = _open_mountpoint(ctx, e, create="dir" if stat.S_ISDIR(st.st_mode) else "file")
    try:
        _close(_bind(ctx, e, fd, cpath, e.source, e.opts.flags, e.opts.cleared))
    finally:
        _close(fd)


def _bind(ctx: _Ctx, e: MountEntry, fd: int, cpath: str, source: str, flags: int, cleared: int) -> int:
    """Bind *source* on *fd*, then remount with the asked flags; the new mount's fd."""
    mount(source, proc_fd(fd), None, MS_BIND | (flags & MS_REC), None)
    new = _reopen(ctx, cpath, fd)
    try:
        if flags & ~(MS_BIND | MS_REC | MS_REMOUNT) or cleared:
            remount_bind(new, cpath, flags, cleared)
        _rec_attrs(e.opts, new, cpath)
        _propagation(e.opts, new)
    except BaseException:
        _close(new)
        raise
    return new


def remount_bind(fd: int, cpath: str, flags: int, cleared: int) -> None:
    """MS_BIND|MS_REMOUNT the mount *fd* is the root of with *flags*; if the
    kernel refuses (locked flags), again with the mount's locked flags kept."""
    want = (flags & ~MS_REC) | MS_BIND | MS_REMOUNT
    try:
        mount(None, proc_fd(fd), None, want, None)
        return
    except OSError as first:
        src_flags = statfs_to_mount_flags(fs.statvfs(fd, shown=cpath).f_flag)
        try:
            retry = locked_remount_flags(want, flags, cleared, src_flags)
        except ValueError as why:
            raise OSError(first.errno, f"{first.strerror} ({why})", cpath) from None
    try:
        mount(None, proc_fd(fd), None, retry, None)
    except OSError as err:
        raise OSError(err.errno, f"{err.strerror} (remount with the locked flags "
                      f"{flag_names(src_flags & LOCK_FLAGS, _MS_NAMES)} kept)", cpath) from None


# -- finishing (after pivot_root) ---------------------------------------------


def remount_deferred_readonly(spec: Spec, root: Root) -> None:
    """Make read-only the tmpfs mounts and /dev that asked for ``ro``: they
    stayed writable until now so that mountpoints and device nodes could be
    made in them.  Paths are container paths (we are inside the new root)."""
    for i, m in enumerate(spec.mounts):
        e = prepare_mount(i, m, spec.bundle)
        if not (e.opts.read_only and _deferred_ro(e)):
            continue
        try:
            fd = root.resolve(e.destination)
            try:
                flags = (e.opts.flags & ~(MS_BIND | MS_REC)) | MS_REMOUNT | MS_BIND | MS_RDONLY
                for attempt in range(5):
                    try:
                        mount(None, mount_target(fd, e.destination), None, flags, None)
                        break
                    except OSError as err:
                        # EBUSY: something still holds a file open for writing.
                        if err.errno != errno.EBUSY or attempt == 4:
                            raise
                        time.sleep(0.1)
            finally:
                _close(fd)
        except OSError as err:
            raise wrap_error(err, e.where, e.destination) from None


# -- tmpcopyup ----------------------------------------------------------------


def copy_tree(src: int, dst: int) -> None:
    """Copy the directory *src* (an O_RDONLY fd) into *dst*: files, symlinks
    (as symlinks, never followed), device nodes and fifos, with their modes,
    owners and times.  Both are fds, so no path is looked up twice."""
    with os.scandir(src) as it:
        entries = [entry.name for entry in it]
    for name in entries:
        st = os.stat(name, dir_fd=src, follow_symlinks=False)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(name, 0o700, dir_fd=dst)
            s = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
            try:
                d = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dst)
                try:
                    copy_tree(s, d)
                    os.fchown(d, st.st_uid, st.st_gid)
                    os.fchmod(d, stat.S_IMODE(mode))
                finally:
                    os.close(d)
            finally:
                os.close(s)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
        elif stat.S_ISREG(mode):
            s = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
            try:
                d = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                            dir_fd=dst)
                try:
                    _copy_data(s, d, st.st_size)
                    os.fchown(d, st.st_uid, st.st_gid)
                    os.fchmod(d, stat.S_IMODE(mode))
                finally:
                    os.close(d)
            finally:
                os.close(s)
        else:  # char/block devices, fifos, sockets
            os.mknod(name, mode, st.st_rdev, dir_fd=dst)
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
            os.chmod(name, stat.S_IMODE(mode), dir_fd=dst)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)


def _copy_data(src: int, dst: int, size: int) -> None:
    try:
        while os.copy_file_range(src, dst, 1 << 30):
            pass
        return
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    os.lseek(src, 0, os.SEEK_SET)
    os.lseek(dst, 0, os.SEEK_SET)
    os.ftruncate(dst, 0)
    while True:
        chunk = os.read(src, 1 << 20)
        if not chunk:
            break
        view = memoryview(chunk)
        while view:
            n = os.write(dst, view)
            view = view[n:]

