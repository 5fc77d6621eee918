"""Pay the grace period a first cgroup migration waits for, early and aside.

Moving a process into a cgroup (a write to ``cgroup.procs``) takes the
kernel's global ``cgroup_threadgroup_rwsem`` for writing.  That is a percpu
rwsem: a writer that finds it idle first waits for an RCU grace period
(``rcu_sync_enter``), 10-25 ms on this host, and it stays in its slow mode
for about one more grace period after the writer leaves, during which
further writers pass at once.  runc and crun pay that wait in the middle of
every create, between placing their first process and letting it go on.

``start()`` pays it at the beginning of a verb instead, in a throwaway child
that moves itself into the cgroup it already is in (a move that changes
nothing), while the runtime goes on importing and parsing the bundle.  When
the runtime places the container's first process a few milliseconds later,
the rwsem is still in its slow mode and the write returns at once.  If the
child is slower than the runtime, the runtime's own write waits for it on
the cgroup mutex, which costs no more than the grace period it would have
paid itself.  The host-wide fix is the cgroup2 mount option
``favordynmods`` (Linux 6.0+), which keeps the rwsem in its slow mode.
"""

from __future__ import annotations

import os


def start(proc: str = "/proc/self") -> int | None:
    """Fork the child that takes the rwsem once; returns its pid (a zombie
    to be reaped by whoever waits for children), or None when no cgroup of
    ours was found."""
    path = own_procs_file(proc)
    if path is None:
        return None
    pid = os.fork()
    if pid == 0:
        try:
            with open(path, "w") as f:
                f.write("0")  # "0": the writer itself
        except OSError:
            pass  # not ours to write (rootless): nothing to warm up then
        os._exit(0)
    return pid


def own_procs_file(proc: str = "/proc/self") -> str | None:
    """The ``cgroup.procs`` of our own cgroup in the first hierarchy that
    /proc/self/mountinfo shows mounted (cgroup v1 or v2)."""
    from nsbox.mountinfo import MountInfo

    try:
        with open(f"{proc}/cgroup") as f:
            own = {}
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                own[controllers] = path
        with open(f"{proc}/mountinfo") as f:
            lines = f.readlines()
    except (OSError, ValueError):
        return None
    for line in lines:
        if " - cgroup" not in line:
            continue
        mi = MountInfo(line)
        if mi.fstype == "cgroup2":
            key = ""
        elif mi.fstype == "cgroup":
            key = ",".join(o for o in mi.super_options.split(",") if o in _controller_names(own))
        else:
            continue
        path = own.get(key)
        if path is None or not (path == mi.root or path.startswith(mi.root.rstrip("/") + "/")):
            continue
        inside = path[len(mi.root.rstrip("/")):].rstrip("/")
        return f"{mi.mountpoint.rstrip('/')}{inside}/cgroup.procs"
    return None


def _controller_names(own: dict[str, str]) -> set[str]:
    return {c for key in own for c in key.split(",") if c}
