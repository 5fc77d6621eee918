"""Pay the grace period a first cgroup migration waits for, early and aside.

Moving a process into a cgroup (a write to ``cgroup.procs``) takes the
kernel's global ``cgroup_threadgroup_rwsem`` for writing.  That is a percpu
rwsem: a writer that finds it idle first waits for an RCU grace period
(``rcu_sync_enter``), 10-25 ms on this host, and it stays in its slow mode
for about one more grace period after the writer leaves, during which
further writers pass at once.  runc and crun pay that wait in the middle of
every create, between placing their first process and letting it go on.

``start()`` pays it at the beginning of a verb instead, in a thread that
moves its own process into the cgroup it already is in (a move that changes
nothing), while the verb goes on importing and parsing the bundle (the
write waits in the kernel, without the GIL), and that repeats the move
every few milliseconds, each one extending the slow mode by a grace
period, until ``LINGER`` is over or the verb exits.  When the runtime
places the container's first process, the rwsem is in its slow mode and
the write returns at once.

The thread's first write holds the cgroup mutex while it waits, so the
runtime's mkdir of the container's cgroup waits for it too; which costs no
more than the grace period the runtime would have paid itself, and is why
create does its own work before the mkdir and writes the limits only once
init is placed.  (A verb that fails before its first migration may wait
for the thread's first write at its exit, at most a grace period.)

The host-wide fix is the cgroup2 mount option
``favordynmods`` (Linux 6.0+), which keeps the rwsem in its slow mode for
good.
"""

from __future__ import annotations

import os
import time  # here, not in the thread: a fork must not find it importing


#: how long the thread keeps the rwsem warm (seconds), and how often it moves
#: (well under a grace period, so that the slow mode never lapses)
LINGER = 0.15
INTERVAL = 0.003


_started = False


def ensure_started() -> None:
    """start(), unless this process has already (the launcher starts it
    before the verb's imports; the verb asks again, for other callers)."""
    global _started
    if not _started:
        _started = True
        start()


def start(proc: str = "/proc/self") -> int | None:
    """Start the thread that keeps the rwsem warm; returns its id, or None
    when no cgroup of ours was found.  A thread, not a child process: after
    a fork the parent takes a page fault on the first write to every page
    it had (a few hundred, ~3 us each on this kind of VM), and the thread
    needs nothing to end it: it dies with the verb."""
    import _thread  # threading's own import costs ~1 ms

    path = own_procs_file(proc)
    if path is None:
        return None
    return _thread.start_new_thread(_keep_warm, (path,))


def _keep_warm(path: str) -> None:
    deadline = time.monotonic() + LINGER
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return  # not ours to write (rootless): nothing to warm up then
    try:
        # "0": the writer's own process, into the cgroup it is in.  The
        # write waits out the grace period in the kernel, without the GIL.
        while time.monotonic() < deadline:
            os.write(fd, b"0")
            time.sleep(INTERVAL)
    except OSError:
        pass
    finally:
        os.close(fd)


def own_procs_file(proc: str = "/proc/self") -> str | None:
    """The ``cgroup.procs`` of our own cgroup in the first hierarchy that
    /proc/self/mountinfo shows mounted (cgroup v1 or v2).  Read with
    nsbox.cgroups.own alone: this runs before the verb's imports."""
    from nsbox.cgroups.own import dir_under, own_path, parse_proc_cgroup, v1_controllers
    from nsbox.mountinfo import parse_mountinfo

    try:
        with open(f"{proc}/cgroup") as f:
            own = parse_proc_cgroup(f.read())
        with open(f"{proc}/mountinfo") as f:
            mounts = parse_mountinfo(f.read())
    except OSError:
        return None
    for mi in mounts:
        if mi.fstype == "cgroup2":
            key = ""
        elif mi.fstype == "cgroup":
            key = ",".join(v1_controllers(mi.super_options))
        else:
            continue
        path = own_path(own, key)
        found = dir_under(mi.mountpoint, mi.root, path) if path is not None else None
        if found is not None:
            return found.rstrip("/") + "/cgroup.procs"
        # else not our hierarchy to reach from here: the next one
    return None
