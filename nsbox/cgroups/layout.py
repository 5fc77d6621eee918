"""Which cgroup hierarchies this host has, and where a container's cgroup goes in each.

Learned from mountinfo and /proc/self/cgroup only, never from fixed paths:

* **v1**: one ``cgroup`` mount per hierarchy; its super options name its
  controllers (``cpu,cpuacct`` when co-mounted) or ``name=systemd`` for a
  hierarchy without controllers.  Every hierarchy gets a directory (runc
  joins every mounted one, name=systemd included).
* **v2**: one ``cgroup2`` mount; the controllers are those in its root's
  ``cgroup.controllers``.
* **hybrid**: v1 hierarchies plus a cgroup2 mount (systemd's
  ``/sys/fs/cgroup/unified``).  The container is put into the v2 tree too
  (so it is whole in every tree, as runc does), and a controller only the v2
  tree has (hugetlb on some hosts) is used there.

Placement, as runc's cgroupfs driver does it:

* no ``cgroupsPath``: ``/nsbox/<id>``;
* absolute: below each hierarchy's mount point (the hierarchy's root as this
  mount namespace sees it);
* relative: below the calling process's own cgroup in each hierarchy (from
  /proc/self/cgroup, made relative to the mount's root).

A path is cleaned lexically first: ``..`` cannot climb above the root.
"""

from __future__ import annotations

import os
import posixpath

from nsbox.cgroups.errors import CgroupError
from nsbox.cgroups.own import dir_under, own_path, parse_proc_cgroup, v1_controllers
from nsbox.cgroups.recorded import HYBRID, V1, V2, hierarchy_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsbox.mountinfo import MountInfo

#: a v1 controller and the name the same controller has in cgroup v2
_V2_NAME = {"blkio": "io"}


class Hierarchy:
    """One cgroup tree and the container's directory in it.

    ``kind`` is "v1" or "v2"; ``controllers`` are a v1 hierarchy's (as in its
    mount options, ``name=systemd`` included) or the ones this layout uses
    from the v2 tree; ``noprefix``: a v1 mount whose files lack the
    ``controller.`` prefix (old cpuset mounts).
    """

    __slots__ = ("kind", "controllers", "mountpoint", "dir", "noprefix")

    def __init__(self, kind: str, controllers: tuple[str, ...], mountpoint: str, dir: str,
                 noprefix: bool = False) -> None:
        self.kind = kind
        self.controllers = controllers
        self.mountpoint = mountpoint
        self.dir = dir
        self.noprefix = noprefix

    @property
    def key(self) -> str:
        """The hierarchy as /proc/PID/cgroup names it: ``cpu,cpuacct``, ``name=systemd``, ``""`` for v2."""
        return "" if self.kind == V2 else ",".join(self.controllers)

    @property
    def label(self) -> str:
        """For messages: ``memory``, ``cpu,cpuacct``, ``cgroup2``."""
        return "cgroup2" if self.kind == V2 else self.key

    def to_record(self) -> dict[str, object]:
        record: dict[str, object] = {"kind": self.kind, "controllers": list(self.controllers),
                                     "mountpoint": self.mountpoint, "dir": self.dir}
        if self.noprefix:
            record["noprefix"] = True
        return record

    @classmethod
    def from_record(cls, d: object) -> Hierarchy:
        if not isinstance(d, dict):
            raise CgroupError("cgroup record: a hierarchy must be an object")
        fields = hierarchy_fields(d)
        if fields is None:
            raise CgroupError(f"cgroup record: malformed hierarchy {d!r}")
        kind, controllers, mountpoint, directory = fields
        return cls(kind, tuple(controllers), mountpoint, directory, bool(d.get("noprefix")))

    def __repr__(self) -> str:
        return f"Hierarchy({self.kind}, {self.key!r}, {self.dir!r})"


#: a container without a cgroupsPath gets ``/nsbox-<id>``: one level, as
#: runc's ``/<id>`` (a shared parent would be two mkdirs and two rmdirs a
#: container in every hierarchy, ~2.5 ms of a run), with a prefix that keeps
#: it off the names a host's own cgroups have (init.scope, system.slice...)
DEFAULT_PREFIX = "nsbox-"


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def detect(mountinfo_text: str, proc_cgroup_text: str, cgroup_path: str,
           ) -> tuple[str, list[Hierarchy]]:
    """The mode (v1, v2, hybrid) and the hierarchies, each with the directory
    *cgroup_path* (already cleaned: absolute, or relative to our own cgroup) names."""
    from nsbox.mountinfo import parse_mountinfo  # here: the verbs after create read no mountinfo

    mounts = parse_mountinfo(mountinfo_text)
    own = parse_proc_cgroup(proc_cgroup_text)
    seen: dict[tuple[str, ...], MountInfo] = {}
    v2_mount: MountInfo | None = None
    for mi in mounts:
        if mi.fstype == "cgroup":
            ctrls = v1_controllers(mi.super_options)
            # the same hierarchy mounted twice (a bind mount): keep the one
            # showing the most of it (the shortest root)
            if ctrls and (ctrls not in seen or len(mi.root) < len(seen[ctrls].root)):
                seen[ctrls] = mi
        elif mi.fstype == "cgroup2" and v2_mount is None:
            v2_mount = mi
    hierarchies = []
    v1_names: set[str] = set()
    for ctrls, mi in seen.items():
        hierarchies.append(Hierarchy(V1, ctrls, mi.mountpoint, _place(mi, own, ",".join(ctrls), cgroup_path),
                                     "noprefix" in mi.super_options.split(",")))
        v1_names.update(_V2_NAME.get(c, c) for c in ctrls)
    has_v1_controllers = any(not c.startswith("name=") for h in hierarchies for c in h.controllers)
    if v2_mount is not None:
        available = _read(os.path.join(v2_mount.mountpoint, "cgroup.controllers")).split()
        # hybrid: the v2 tree serves only what no v1 hierarchy has
        ctrls = tuple(c for c in available if c not in v1_names)
        hierarchies.append(Hierarchy(V2, ctrls, v2_mount.mountpoint, _place(v2_mount, own, "", cgroup_path)))
    if not hierarchies:
        raise CgroupError("no cgroup filesystem is mounted (none in mountinfo)")
    if v2_mount is None:
        mode = V1
    elif has_v1_controllers:
        mode = HYBRID
    else:
        mode = V2
    return mode, hierarchies


def _place(mi: MountInfo, own: dict[str, str], key: str, cgroup_path: str) -> str:
    """The container's directory in the hierarchy mounted at *mi*."""
    if cgroup_path.startswith("/"):
        return mi.mountpoint.rstrip("/") + cgroup_path
    return posixpath.join(own_dir(mi, own, key, cgroup_path), cgroup_path)


def own_dir(mi: MountInfo, own: dict[str, str], key: str, cgroup_path: str = "") -> str:
    """Our own cgroup's directory in the hierarchy *key* mounted at *mi*
    (*own*: parse_proc_cgroup); CgroupError when it is not under that mount."""
    mine = own_path(own, key)
    if mine is None:
        raise CgroupError(f"cgroupsPath {cgroup_path!r} is relative, but /proc/self/cgroup does not name our "
                          f"cgroup in the {key or 'cgroup2'} hierarchy", json_path="linux.cgroupsPath")
    found = dir_under(mi.mountpoint, mi.root, mine)
    if found is None:
        raise CgroupError(f"cgroupsPath {cgroup_path!r} is relative, but our cgroup {mine} in the "
                          f"{key or 'cgroup2'} hierarchy is outside its mount {mi.mountpoint} (root {mi.root})",
                          json_path="linux.cgroupsPath")
    return found


def clean_path(cgroups_path: str | None, container_id: str) -> str:
    """*cgroups_path* cleaned lexically (as runc does), or the default ``/nsbox-<id>``."""
    if not cgroups_path:
        if not container_id or "/" in container_id or container_id in (".", ".."):
            raise CgroupError(f"container id {container_id!r} cannot name a cgroup")
        return f"/{DEFAULT_PREFIX}{container_id}"
    if "\0" in cgroups_path:
        raise CgroupError("must not contain a NUL byte", json_path="linux.cgroupsPath")
    relative = not cgroups_path.startswith("/")
    # cleaned as if absolute, so ".." stops at the root instead of climbing
    # out of our own cgroup (relative) or the hierarchy (absolute)
    cleaned = posixpath.normpath("/" + cgroups_path)
    if cleaned.startswith("//"):
        cleaned = cleaned[1:]
    if cleaned == "/":
        what = "our own cgroup" if relative else "the root cgroup"
        raise CgroupError(f"{cgroups_path!r} names {what}; a container needs a cgroup of its own",
                          json_path="linux.cgroupsPath")
    return cleaned[1:] if relative else cleaned
