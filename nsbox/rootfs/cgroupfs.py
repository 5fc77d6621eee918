"""The container's cgroup mounts (``cgroup``, ``cgroup2`` in the spec's
``mounts``), as runc makes them; imported only for a spec that has one.

* cgroup (v1 layout): a tmpfs with one bind (or, in a cgroup namespace, one
  fresh mount) per host hierarchy, plus the ``cpu -> cpu,cpuacct``-style
  symlinks of merged hierarchies.  On a cgroup2-only host, ``cgroup`` means
  cgroup2.
* cgroup2: mounted fresh; if the kernel refuses (EPERM/EBUSY: a user
  namespace without a cgroup namespace), the host's cgroup2 tree is bound.

The mount steps themselves (resolving the mountpoint inside the rootfs,
mounting on its fd, binding with the asked flags) are nsbox.rootfs.mounts'.
"""

from __future__ import annotations

import errno
import os

from nsbox._sys import fs
from nsbox._sys.consts import MS_BIND, MS_RDONLY, MS_REC, MS_REMOUNT
from nsbox._sys.mount import mount
from nsbox.cgroups.own import own_path, parse_proc_cgroup, v1_controllers
from nsbox.mountinfo import MountInfo, parse_mountinfo
from nsbox.rootfs.mounts import (
    DEFAULT_MOUNT_FLAGS,
    MountEntry,
    _bind,
    _close,
    _Ctx,
    _done,
    _mount_at,
    _open_mountpoint,
    _read,
    _rec_attrs,
    format_mount_label,
)
from nsbox.rootfs.safepath import proc_fd


def mount_cgroup(ctx: _Ctx, e: MountEntry) -> None:
    """A ``cgroup`` or ``cgroup2`` mount entry."""
    if e.kind == "cgroup2":
        _mount_cgroup2(ctx, e, None)
        return
    mounts = parse_mountinfo(_read(ctx.mountinfo))
    if is_cgroup2_unified(mounts):
        _mount_cgroup2(ctx, e, mounts)
    else:
        _mount_cgroup_v1(ctx, e, mounts)


class CgroupBind:
    """One hierarchy under a v1-style cgroup mount: ``name`` (the host's
    directory name, ``cpu,cpuacct``), what to bind (``source``: the host
    mountpoint plus our own cgroup's path), or what to mount fresh in a cgroup
    namespace (``fstype`` and ``data``)."""

    __slots__ = ("name", "source", "fstype", "data")

    def __init__(self, name: str, source: str, fstype: str, data: str) -> None:
        self.name, self.source, self.fstype, self.data = name, source, fstype, data

    def __repr__(self) -> str:
        return f"CgroupBind({self.name!r}, {self.source!r}, {self.fstype!r}, {self.data!r})"


def is_cgroup2_unified(mounts: list[MountInfo], cgroup_root: str = "/sys/fs/cgroup") -> bool:
    """True on a cgroup2-only host (cgroup2 mounted at the cgroup root)."""
    top = None
    for mi in mounts:
        if mi.mountpoint == cgroup_root:
            top = mi  # the last one listed is the one on top
    return top is not None and top.fstype == "cgroup2"


def _own_path(own: dict[str, str], ctrls: list[str]) -> str:
    """Our cgroup in the hierarchy with controllers *ctrls*: the
    /proc/self/cgroup line naming exactly them, else one naming some of them."""
    exact = own_path(own, ",".join(ctrls))
    if exact is not None:
        return exact
    for key, p in own.items():
        keys = [k for k in key.split(",") if k]
        if keys and all(k in ctrls for k in keys):
            return p
    return "/"


def plan_cgroup_v1(mounts: list[MountInfo], own: dict[str, str]) -> list[CgroupBind]:
    """The hierarchies a v1-style ``cgroup`` mount shows, from the host's
    mountinfo and our /proc/self/cgroup (*own*).

    Every cgroup (v1) hierarchy is included; on a hybrid host the cgroup2
    mount beside them (``unified``) too, so that systemd-style software in
    the container sees the same layout as the host.
    """
    v1 = [mi for mi in mounts if mi.fstype == "cgroup"]
    parents = {os.path.dirname(mi.mountpoint) for mi in v1}
    v2 = [mi for mi in mounts if mi.fstype == "cgroup2" and os.path.dirname(mi.mountpoint) in parents]
    plan = []
    seen = set()
    for mi in v1 + v2:
        name = os.path.basename(mi.mountpoint)
        if name in seen:
            continue  # the same hierarchy mounted twice: the first is enough
        seen.add(name)
        if mi.fstype == "cgroup2":
            path = own.get("", "/")
            fstype, data = "cgroup2", ""
        else:
            ctrls = list(v1_controllers(mi.super_options))
            path = _own_path(own, ctrls)
            fstype = "cgroup"
            data = ",".join(ctrls)
            if all(c.startswith("name=") for c in ctrls):
                data = "none," + data if data else "none"
        rel = os.path.relpath(path, mi.root) if path.startswith(mi.root) else "."
        source = os.path.normpath(os.path.join(mi.mountpoint, rel))
        plan.append(CgroupBind(name, source, fstype, data))
    return plan


def _mount_cgroup_v1(ctx: _Ctx, e: MountEntry, mounts: list[MountInfo]) -> None:
    plan = plan_cgroup_v1(mounts, parse_proc_cgroup(_read(ctx.proc_cgroup)))
    fd, cpath, _ = _open_mountpoint(ctx, e)
    try:
        top = _mount_at(ctx, e, fd, cpath, "tmpfs", "tmpfs", DEFAULT_MOUNT_FLAGS,
                        format_mount_label("mode=755", ctx.label))
    finally:
        _close(fd)
    try:
        ro = e.opts.flags & MS_RDONLY
        for b in plan:
            sub = f"{cpath}/{b.name}"
            subfd = ctx.root.resolve(sub, create="dir")
            try:
                if ctx.cgroupns:
                    # In a cgroup namespace a fresh mount shows our cgroup as the root.
                    source = "systemd" if b.data.startswith("none,name=systemd") else b.fstype
                    mount(source, proc_fd(subfd), b.fstype, DEFAULT_MOUNT_FLAGS | ro, b.data or None)
                else:
                    flags = MS_BIND | MS_REC | e.opts.flags
                    _close(_bind(ctx, e, subfd, sub, b.source, flags, e.opts.cleared))
            finally:
                _close(subfd)
        for b in plan:
            if "," not in b.name:
                continue
            for single in b.name.split(","):
                parent, name = ctx.root.resolve_parent(f"{cpath}/{single}")
                try:
                    fs.symlinkat(b.name, parent, name, shown=f"{cpath}/{single}")
                except FileExistsError:
                    pass
                except OSError as err:
                    if err.errno != errno.EEXIST:
                        raise
                finally:
                    _close(parent)
        if ro:
            mount(None, proc_fd(top), None, MS_BIND | MS_REMOUNT | MS_RDONLY | DEFAULT_MOUNT_FLAGS, None)
        _rec_attrs(e.opts, top, cpath)
    finally:
        _close(top)


def _mount_cgroup2(ctx: _Ctx, e: MountEntry, mounts: list[MountInfo] | None) -> None:
    fd, cpath, _ = _open_mountpoint(ctx, e)
    try:
        try:
            _done(e.opts, _mount_at(ctx, e, fd, cpath, e.source if e.kind == "cgroup2" else "cgroup2", "cgroup2",
                                    e.opts.flags, e.opts.data), cpath)
            return
        except OSError as err:
            if err.errno not in (errno.EPERM, errno.EBUSY):
                raise
        # A user namespace without its own cgroup namespace may not mount
        # cgroup2: bind the host's tree instead (our own cgroup of it, when
        # the spec asked for a cgroup namespace, to look like one).
        if mounts is None:
            mounts = parse_mountinfo(_read(ctx.mountinfo))
        v2 = [mi for mi in mounts if mi.fstype == "cgroup2"]
        if not v2:
            raise OSError(errno.ENOENT, "cgroup2: the host has no cgroup2 mount to bind", e.destination)
        host = v2[-1]
        source = host.mountpoint
        if ctx.cgroupns:
            own = parse_proc_cgroup(_read(ctx.proc_cgroup)).get("", "/")
            if own.startswith(host.root):
                source = os.path.normpath(os.path.join(host.mountpoint, os.path.relpath(own, host.root)))
        _close(_bind(ctx, e, fd, cpath, source, MS_BIND | e.opts.flags, e.opts.cleared))
    finally:
        _close(fd)
