"""Where a process's own cgroups are: /proc/PID/cgroup, and what a cgroup
mount of /proc/PID/mountinfo holds.  Nothing else of the package is needed
here, nor imported: the warm-up looks as a verb starts, before it has paid
for anything (layout, and the cgroup mounts a container gets, build on it).
"""

from __future__ import annotations

#: super options of a v1 cgroup mount that are mount flags, not controllers
NOT_CONTROLLERS = frozenset({"rw", "ro", "noprefix", "clone_children", "xattr", "cpuset_v2_mode", "favordynmods",
                             "nofavordynmods", "none", "nsdelegate", "memory_localevents", "memory_recursiveprot"})


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/PID/cgroup as {hierarchy key: path}: ``"cpu,cpuacct"``,
    ``"name=systemd"``, and ``""`` for cgroup v2."""
    own = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            own[parts[1]] = parts[2]
    return own


def v1_controllers(super_options: str) -> tuple[str, ...]:
    """The controllers (or ``name=``) a v1 cgroup mount holds, from its super options."""
    out = []
    for opt in super_options.split(","):
        if opt.startswith("name="):
            out.append(opt)
        elif opt and "=" not in opt and opt not in NOT_CONTROLLERS:
            out.append(opt)
    return tuple(out)


def own_path(own: dict[str, str], key: str) -> str | None:
    """Our path in the hierarchy *key* (*own*: parse_proc_cgroup), also when
    /proc/PID/cgroup names co-mounted controllers in another order."""
    mine = own.get(key)
    if mine is None:
        wanted = set(key.split(","))
        mine = next((p for k, p in own.items() if k and set(k.split(",")) == wanted), None)
    return mine


def dir_under(mountpoint: str, mount_root: str, path: str) -> str | None:
    """The directory of cgroup *path* under a mount of the hierarchy's
    *mount_root* at *mountpoint*; None when the mount does not show it."""
    root = mount_root.rstrip("/")
    if path != root and not path.startswith(root + "/"):
        return None
    return mountpoint.rstrip("/") + path[len(root):]
