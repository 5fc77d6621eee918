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
create does its own work before the mkdir.  (A verb that fails before its
first migration may wait for the thread's first write at its exit, at most
a grace period.)

The host-wide fix is the cgroup2 mount option
``favordynmods`` (Linux 6.0+), which keeps the rwsem in its slow mode for
good.
"""

# posix, not os: importing os costs ~0.5 ms, and the first write should not
# wait for it (the launcher imports this module before anything else).  For
# the same reason no `from __future__` here, nor in nsbox and nsbox.cgroups.
import posix
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

    path = guess_own_procs_file(proc) or own_procs_file(proc)
    if path is None:
        return None
    return _thread.start_new_thread(_keep_warm, (path,))


def _keep_warm(path: str) -> None:
    deadline = time.monotonic() + LINGER
    try:
        # O_NOFOLLOW: a cgroup.procs is never a symlink, and "0" must land in
        # nothing else (no O_TRUNC, but a write all the same)
        fd = posix.open(path, posix.O_WRONLY | posix.O_CLOEXEC | posix.O_NOFOLLOW)
    except OSError:
        return  # not ours to write (rootless): nothing to warm up then
    try:
        # "0": the writer's own process, into the cgroup it is in.  The
        # write waits out the grace period in the kernel, without the GIL.
        while time.monotonic() < deadline:
            posix.write(fd, b"0")
            time.sleep(INTERVAL)
    except OSError:
        pass
    finally:
        posix.close(fd)


def _read(path: str) -> str:
    fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC | posix.O_NOFOLLOW)
    try:
        chunks = []
        while chunk := posix.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode()
    finally:
        posix.close(fd)


def guess_own_procs_file(proc: str = "/proc/self", cgroupfs: str = "/sys/fs/cgroup",
                         pid: int | None = None) -> str | None:
    """Our ``cgroup.procs`` where the usual layout puts it (systemd's: cgroup
    v2 at /sys/fs/cgroup, each v1 hierarchy at /sys/fs/cgroup/<controllers>),
    taken only once it lists our own pid: then writing "0" to it moves us
    nowhere, whatever is mounted where.  ~0.5 ms sooner than reading the
    mount table (own_procs_file, for any other layout), and the grace period
    starts that much earlier."""
    try:
        lines = _read(f"{proc}/cgroup").splitlines()
    except OSError:
        return None
    me = str(posix.getpid() if pid is None else pid)
    for line in lines:
        _, controllers, path = line.split(":", 2)
        hierarchy = controllers.removeprefix("name=")  # name=systemd is mounted at systemd
        candidate = f"{cgroupfs}/{hierarchy}{path}".replace("//", "/").rstrip("/") + "/cgroup.procs"
        try:
            if me in _read(candidate).split():
                return candidate
        except (OSError, UnicodeDecodeError):
            continue
    return None


def own_procs_file(proc: str = "/proc/self") -> str | None:
    """The ``cgroup.procs`` of our own cgroup in the first hierarchy that
    /proc/self/mountinfo shows mounted (cgroup v1 or v2).  Read with
    nsbox.cgroups.own alone: this runs before the verb's imports."""
    from nsbox.cgroups.own import dir_under, own_path, parse_proc_cgroup, v1_controllers
    from nsbox.mountinfo import parse_mountinfo

    try:
        own = parse_proc_cgroup(_read(f"{proc}/cgroup"))
        mounts = parse_mountinfo(_read(f"{proc}/mountinfo"))
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
