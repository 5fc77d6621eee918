"""The create handshake: the runtime, a stage-1 child, and the container's init.

::

    runtime (nsbox create)           stage 1 (fork of the runtime)     init (fork of stage 1)
    ----------------------           -----------------------------     ----------------------
    open exec.fifo O_RDWR
    pipes, fork ------------------>  not dumpable
    cgroups: create                  setns into linux.namespaces paths
                                     (user first)
                                     unshare(CLONE_NEWUSER)
    (1) <--------------- "maps" ---
    write uid_map/gid_map
        ---------------- "maps-done" ->
                                     unshare(the other new namespaces,
                                     but the cgroup one); time offsets
                                     fork -------------------------->  PID 1 of the new PID ns
    (2) <--------------- "pid N" --                                    rootfs: mounts, devices,
    cgroups: apply the limits,       exit                              pivot_root, ... (see init.py),
    then put init into them                                            as far as it can go before
                                                                       it is in the cgroups:
        ---------------------------------------- "placed" [+ "bpf"] -->  wait for "placed", then
    reap stage 1                                                       unshare(CLONE_NEWCGROUP)
    (3) <----------------------------------------------- "prestart" --+  (only with
    prestart, createRuntime hooks                                      |   hooks to run)
        ---------------------------------------- "prestart-done S" -->  createContainer hooks
                                                                       pivot_root, sysctl, masked
                                                                       and readonly paths, hostname,
                                                                       rlimits, cwd, user, caps,
                                                                       no_new_privs, close fds;
                                                                       seccomp (see below)
    (S) <------------------------------------------- "seccomp FD" ---  (only with SCMP_ACT_NOTIFY)
    pidfd_getfd, send to listenerPath
        ---------------------------------------------- "seccomp-done" ->
    (4) <-------------------------------------------------- "ready" --
    write pid file, state.json; exit                                  block reading exec.fifo

    nsbox start: open exec.fifo O_WRONLY, write a byte ------------>   startContainer hooks; execve

Why two forks: a new PID namespace applies to the children of the process
that unshares it, and the runtime itself must stay outside every namespace.
Why stage 1 may be older than the launch: for ``create`` and ``run`` the
launcher forks it first thing (nsbox.process.early), so that its imports
run on the other core while the runtime's do and it parses the bundle; it
is sent the config bytes ("config") as soon as the runtime has read them,
parses them meanwhile, and at launch is sent the fifo's path ("launch")
and goes on from the top of the diagram.  Such a stage 1 exits only once
the runtime releases it (a pipe it closes), which ``run`` does after it
has made itself the child subreaper init is then reparented to.
Why the filter comes with "placed": the runtime hands over the launch as
soon as the bundle is checked and the state directory exists, and only
then compiles linux.seccomp (or finds it in the cache) and saves the
config, while the container's side sets up; init needs the filter only
at the end.
Why init is placed in its cgroups only after it is born: the first
migration into a new cgroup waits for an RCU grace period (10-15 ms here;
runc and crun pay it too, and nsbox.cgroups.warmup starts paying it early),
so init sets the container up meanwhile, as far as nothing depends on its
cgroup: it waits for "placed" before a cgroup mount, before the hooks (3),
and at the latest before it drops its privileges, when it makes the cgroup
namespace (so nothing of the container runs outside the cgroups).  The
limits are written before init is moved in: rewriting the v1 device rules
denies every device for a moment.
Why the fifo is opened O_RDWR here: such an open never blocks, and the fd
is a reader init holds from the start, before it becomes an unprivileged
user that could not reopen it; ``start`` then only needs to write.
Any failure on the container's side comes back as an "error" message
(nsbox.process.channel) and is raised in the runtime, which kills init and
removes what it made.
"""

from __future__ import annotations

import os

from nsbox._sys import process as _proc
from nsbox._sys.consts import CLONE_NEWCGROUP, CLONE_NEWUSER, NAMESPACE_TYPES, PR_SET_CHILD_SUBREAPER, PR_SET_DUMPABLE
from nsbox.errors import NsboxError
from nsbox.oci.spec import SpecError
from nsbox.process.channel import Channel, fork_with_channel
from nsbox.process.init import container_init, needs_prestart_sync, preload, run_phase  # stage 1 inherits them

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable

    from nsbox.cgroups import Cgroup
    from nsbox.oci.spec import Spec
    from nsbox.process.early import EarlyStage1
    from nsbox.security.filter import Program

_FLAGS = dict(NAMESPACE_TYPES)


class LaunchOptions:
    """What the command line adds to the spec for one create."""

    __slots__ = ("no_pivot", "no_new_keyring", "preserve_fds", "console_socket", "rootless", "subreaper",
                 "keyring_name", "seccomp", "unprivileged")

    def __init__(self, no_pivot: bool = False, no_new_keyring: bool = False, preserve_fds: int = 0,
                 console_socket: str | None = None, rootless: bool = False) -> None:
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.preserve_fds = preserve_fds
        self.console_socket = console_socket
        #: --rootless: a user namespace is required, and no cgroup is made
        #: where the user may not make one (unless limits are asked for)
        self.rootless = rootless
        #: become a child subreaper, so that init is reparented to us when
        #: stage 1 exits (run in the foreground waits for it)
        self.subreaper = False
        #: the session keyring the container gets (Container.create names it after the id)
        self.keyring_name: str | None = None
        #: the compiled linux.seccomp (Container.create compiles it while init
        #: sets up; init is sent it with "placed")
        self.seccomp: Program | None = None
        #: the runtime runs without root: what it needs of /proc/<stage 1> and
        #: /proc/<init> must stay open to it (made in the runtime, or in an early
        #: stage 1 before it unshares anything: the runtime's own uid either way)
        self.unprivileged = os.geteuid() != 0


def namespace_plan(spec: Spec) -> tuple[list[tuple[int, str]], int]:
    """(namespaces to join as (flag, path), flags of the ones to create)."""
    join, new = [], 0
    for ns in spec.linux.namespaces:
        flag = _FLAGS[ns.proc_name]
        if ns.path:
            join.append((flag, ns.path))
        else:
            new |= flag
    return join, new


def early_stage1(chan: Channel, hold: int) -> None:
    """The body of an EarlyStage1 (nsbox.process.early): wait for the
    config and the launch, then go on as stage 1 (exiting only once *hold*
    reads EOF)."""
    from nsbox import jsonio
    from nsbox.oci.spec import parse
    from nsbox.process.trampoline import prepare

    _proc.set_name("nsbox:[stage1]")
    preload(seccomp=True)  # the defaults of podman, containerd and nsbox spec all have a filter
    trampoline = prepare()  # init's, made while the runtime parses (it needs nothing of the config)
    bundle, _, config = chan.recv("config").partition(b"\0")
    bundle_dir = os.fsdecode(bundle)
    spec = parse(config, bundle_dir, os.path.join(bundle_dir, "config.json"))
    header = jsonio.loads(chan.recv("launch"))
    opts = LaunchOptions(no_pivot=header["no_pivot"], no_new_keyring=header["no_new_keyring"],
                         preserve_fds=header["preserve_fds"], rootless=header["rootless"])
    opts.keyring_name = header["keyring_name"]
    fifo_fd = os.open(header["fifo"], os.O_RDWR | os.O_CLOEXEC)
    join, new = namespace_plan(spec)
    _stage1(spec, chan, fifo_fd, join, new, opts, None, trampoline, hold)


def _hand_over(early: EarlyStage1, config: bytes, spec: Spec, fifo: str, opts: LaunchOptions) -> None:
    from nsbox import jsonio

    early.send_config(config, spec.bundle)
    header = {"fifo": fifo, "no_pivot": opts.no_pivot, "no_new_keyring": opts.no_new_keyring,
              "preserve_fds": opts.preserve_fds, "rootless": opts.rootless, "keyring_name": opts.keyring_name}
    early.runtime.send("launch", jsonio.dumps(header).encode())


def _send_placed(runtime: Channel, program: Program | None) -> None:
    """Say "placed", with the compiled filter init installs last (it is made
    while init sets up, so it does not delay the launch)."""
    if program is None:
        runtime.send("placed")
        return
    from nsbox import jsonio

    runtime.send("placed", jsonio.dumps(program.to_record()).encode())
    runtime.send("bpf", program.bpf)


def launch(spec: Spec, fifo: str, state_for_hooks: Callable[[int], bytes],
           opts: LaunchOptions, find_cgroup: Callable[[], Cgroup | None] | None = None,
           apply_limits: Callable[[Cgroup], None] | None = None,
           early: EarlyStage1 | None = None, config: bytes = b"",
           meanwhile: Callable[[], None] | None = None) -> int:
    """Run the handshake; returns init's pid (in our PID namespace) once init is parked.

    *state_for_hooks(pid)* gives the state JSON the hooks read.
    *find_cgroup()* says where the container's cgroups go (None: nowhere);
    they are made once stage 1 has the launch, and *apply_limits(cgroup)*
    writes their limits when init is born, before it is moved in (the
    "placed" step).  *early*: a stage 1 forked
    when the verb started, to be sent *config*, the config.json bytes
    *spec* was parsed from.  *meanwhile()* is the runtime's own work that
    the container's side does not wait for (it may set ``opts.seccomp``,
    which init is sent once placed).  On failure, init is killed before
    the error is raised.
    """
    join, new = namespace_plan(spec)
    console = None
    if spec.process is not None and spec.process.terminal:
        if not opts.console_socket:
            raise SpecError("process.terminal", "a terminal needs --console-socket to hand the pty to")
        from nsbox.process.tty import connect_console_socket

        console = connect_console_socket(opts.console_socket)
    if early is not None and console is not None:
        early.close()  # a terminal: stage 1 must inherit the console socket, so fork it now
        early = None
    if opts.subreaper and early is None:
        # before stage 1 can exit (it needs no word from us to do so): init
        # must be reparented to us, not to the host's init
        _proc.prctl(PR_SET_CHILD_SUBREAPER, 1)
    if early is not None:
        early.taken = True
        runtime, stage1 = early.runtime, early.pid
    else:
        fifo_fd = os.open(fifo, os.O_RDWR | os.O_CLOEXEC)
        runtime, stage1 = fork_with_channel(
            lambda chan: _stage1(spec, chan, fifo_fd, join, new, opts, console))
        os.close(fifo_fd)
    if console is not None:
        console.close()  # init holds its own copy
    init_pid = 0
    stage1_reaped = False
    try:
        if early is not None:
            _hand_over(early, config, spec, fifo, opts)
            if opts.subreaper:
                _proc.prctl(PR_SET_CHILD_SUBREAPER, 1)  # before stage 1 may exit (EarlyStage1.release)
            early.release()
        # meanwhile stage 1 makes the namespaces, and forks init
        cgroup = find_cgroup() if find_cgroup is not None else None
        if cgroup is not None:
            cgroup.preload()  # apply_limits will be on the critical path, its imports need not
        if meanwhile is not None:
            # before the cgroup: its mkdir may wait for the cgroup mutex until
            # the warm-up thread's grace period is over (nsbox.cgroups.warmup),
            # and this work need not
            meanwhile()
        if cgroup is not None:
            cgroup.create()
        # (1), (2) and (3); init may reach "prestart" only once placed.
        # Without hooks to run there init does not stop (3).
        synced = needs_prestart_sync(spec)
        seen_prestart = not synced
        while not (init_pid and seen_prestart):
            tag, payload = runtime.recv_tagged("maps", "pid", "prestart")
            if tag == "maps":
                _write_maps(spec, stage1)
                runtime.send("maps-done")
            elif tag == "pid":
                init_pid = int(payload)
                # the limits first: rewriting the device rules denies every
                # device for a moment, which init must not be in the cgroup
                # for.  It is in from the moment its pid is written, not when
                # it reads "placed", and it still makes device nodes and opens
                # /dev/null then (written after the move, as runc writes them,
                # 1 create in ~300 met EPERM on /dev/null)
                if cgroup is not None:
                    if apply_limits is not None:
                        apply_limits(cgroup)
                    cgroup.add(init_pid)
                _send_placed(runtime, opts.seccomp)  # if init failed meanwhile, this raises its error
                # Stage 1 exits once it has said "pid"; the exit of a Python
                # process takes ~1 ms, which init need not wait for
                os.waitpid(stage1, 0)
                stage1_reaped = True
            else:
                seen_prestart = True
        state = state_for_hooks(init_pid) if synced else None
        if state is not None:
            run_phase(spec, "prestart", state)
            run_phase(spec, "createRuntime", state)
            runtime.send("prestart-done", state)
        while True:
            tag, payload = runtime.recv_tagged("seccomp", "ready")
            if tag == "ready":
                break
            from nsbox.security.seccomp import serve_listener

            if state is None:
                state = state_for_hooks(init_pid)
            serve_listener(runtime, opts.seccomp, init_pid, int(payload), state)
        return init_pid
    except BaseException:
        if init_pid:
            _proc.kill_if_alive(init_pid)
        if not stage1_reaped:
            _proc.kill_if_alive(stage1)
            os.waitpid(stage1, 0)
        raise
    finally:
        runtime.close()


def _write_maps(spec: Spec, pid: int) -> None:
    from nsbox.userns import IdMap, write_maps_from_parent

    uid_maps = [IdMap(m.container_id, m.host_id, m.size) for m in spec.linux.uid_mappings]
    gid_maps = [IdMap(m.container_id, m.host_id, m.size) for m in spec.linux.gid_mappings]
    try:
        write_maps_from_parent(pid, uid_maps, gid_maps)
    except OSError as e:
        raise NsboxError(f"linux.uidMappings: writing {e.filename}: {e.strerror}",
                         "the host ids must exist and not overlap") from None


def _stage1(spec: Spec, chan: Channel, fifo_fd: int, join: list[tuple[int, str]], new: int,
            opts: LaunchOptions, console: socket.socket | None, trampoline: int | None = -1,
            hold: int = -1) -> None:
    from nsbox._sys import ns as _ns  # here: the runtime itself needs no ctypes

    # Before any namespace changes what we can read: in a user namespace the
    # host's Python library (owned by the host's root) may be out of reach.
    preload(hooks=any(spec.hooks.values()), terminal=console is not None, seccomp=spec.linux.seccomp is not None)
    _proc.set_name("nsbox:[stage1]")
    # Not dumpable from here to execve: no process of the container may
    # ptrace us or open /proc/<init>/exe, which is the host's interpreter
    # (the CVE-2019-5736 class).  Inherited by init across fork.
    _proc.prctl(PR_SET_DUMPABLE, 0)
    if join:
        from nsbox.nsfiles import join as join_namespaces

        try:
            join_namespaces(join)
        except OSError as e:
            raise NsboxError(f"linux.namespaces: joining {e.filename}: {e.strerror}") from None
    if new & CLONE_NEWUSER:
        _ns.unshare(CLONE_NEWUSER)
        # An unprivileged runtime (rootless) can open /proc/<us>/uid_map only
        # while we are dumpable: a non-dumpable process's /proc files are
        # root's.  Nothing of the container exists yet to ptrace us.
        if opts.unprivileged:
            _proc.prctl(PR_SET_DUMPABLE, 1)
        chan.send("maps")
        chan.recv("maps-done")
        if opts.unprivileged:
            _proc.prctl(PR_SET_DUMPABLE, 0)
        # become the namespace's root, so what follows has its full powers
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    rest = new & ~(CLONE_NEWUSER | CLONE_NEWCGROUP)  # init makes the cgroup one, once placed
    if rest:
        _ns.unshare(rest)
    if spec.linux.time_offsets:
        _set_time_offsets(spec.linux.time_offsets)
    # rootless: in a user namespace (the container's, or the one the runtime
    # already runs in), where no device node can be made, only bind-mounted
    in_userns = bool(new & CLONE_NEWUSER) or any(flag == CLONE_NEWUSER for flag, _ in join) or opts.rootless
    init = _proc.fork()
    if init == 0:
        _proc.set_name("nsbox:[init]")  # what ps shows for a parked container
        try:
            container_init(spec, chan, fifo_fd, opts, in_userns, console, new_cgroupns=bool(new & CLONE_NEWCGROUP),
                           trampoline=trampoline)
        except BaseException as exc:  # noqa: BLE001 - sent to the runtime
            chan.send_error(exc)
        finally:
            os._exit(1)
    chan.send("pid", str(init).encode())
    if hold >= 0:
        os.read(hold, 1)  # EOF: the runtime is ready for init to be orphaned (EarlyStage1.release)


def _set_time_offsets(offsets: object) -> None:
    clocks = {"monotonic": 1, "boottime": 7}
    if not isinstance(offsets, dict):
        raise SpecError("linux.timeOffsets", "must be an object")
    lines = ""
    for name, value in offsets.items():
        if name not in clocks or not isinstance(value, dict):
            raise SpecError(f"linux.timeOffsets.{name}", "must be monotonic or boottime with secs/nanosecs")
        lines += f"{clocks[name]} {int(value.get('secs', 0))} {int(value.get('nanosecs', 0))}\n"
    _proc.write_file("/proc/self/timens_offsets", lines)
