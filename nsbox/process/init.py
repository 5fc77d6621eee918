"""The container's init: from a fresh set of namespaces to the user's process.

Runs in the process that stage 1 forked (PID 1 of a new PID namespace), with
the sync channel to the runtime; see nsbox.process.create for the whole
handshake.  The order below is the lesson of every runtime's CVEs:

    1. rootfs: propagation, mounts, devices   (host paths still visible)
    2. "prestart" -> runtime runs prestart/createRuntime hooks
    3. createContainer hooks, pivot_root       (nsbox.rootfs)
    4. sysctl; then masked and read-only paths (so /proc/sys can still be written in 4)
    5. the terminal (from the container's devpts, so after pivot_root);
       hostname, domainname; rlimits; oom_score_adj; personality; umask
    6. the program is looked up now, so a missing one fails `create`, as runc does;
       the exec trampoline is made (first thing, in fact: before any filter;
       an early stage 1 makes it while it waits for the launch)
    7. close every fd but stdio, the preserved ones, the channel, the fifo
       and the trampoline; then chdir to process.cwd, checked to be inside
       the new root (nothing stays outside: CVE-2024-21626); the bounding
       set (it limits only what an execve grants, so the steps below keep
       their capabilities); wait to be placed in the container's cgroups
       (earlier when a cgroup mount or a hook needs it), then make the
       cgroup namespace
    8. seccomp here if noNewPrivileges is false (loading needs CAP_SYS_ADMIN);
       user and groups, the other capability sets, no_new_privs
    9. seccomp here if noNewPrivileges is true (as late as possible);
       "ready"; block on the exec fifo; startContainer hooks; execve
"""

from __future__ import annotations

import os

from nsbox._sys import process as _proc
from nsbox._sys.consts import CLONE_NEWCGROUP, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS
from nsbox.errors import ExecError, NsboxError
from nsbox.oci.spec import SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket

    from nsbox.oci.spec import Process, Spec
    from nsbox.process.channel import Channel
    from nsbox.process.create import LaunchOptions
    from nsbox.security.capabilities import CapabilitySets
    from nsbox.security.filter import Program


def preload(hooks: bool = False, terminal: bool = False, seccomp: bool = False, rootfs: bool = True) -> None:
    """Import now what runs after pivot_root (or after joining the
    container's mount namespace, or becoming another user), when the host's
    Python library may be out of reach: an import there would fail with
    ModuleNotFoundError.  Only what this launch needs: each import costs
    (*rootfs*: an exec'd process builds no root, ~3 ms it need not pay)."""
    import nsbox._sys.signals  # noqa: F401
    import nsbox.process.channel  # noqa: F401
    import nsbox.process.trampoline  # noqa: F401
    import nsbox.security.capabilities  # noqa: F401

    if rootfs:
        import nsbox.rootfs  # noqa: F401

    if hooks:
        import nsbox.process.hooks  # noqa: F401  (imports subprocess)
    if terminal:
        import nsbox.process.tty  # noqa: F401
    if seccomp:
        import nsbox._sys.seccomp_load  # noqa: F401  (loads the filter: ctypes)
        import nsbox.security.filter  # noqa: F401


def container_init(spec: Spec, chan: Channel, fifo_fd: int, opts: LaunchOptions, in_userns: bool,
                   console: socket.socket | None = None, new_cgroupns: bool = False,
                   trampoline: int | None = -1) -> None:
    """Set up the container and park on the fifo.  We are born outside the
    container's cgroups: the runtime places us while we set up (the kernel
    makes that first move wait ~10 ms) and then says "placed".  We wait for
    it where being placed matters: before a cgroup mount (it shows our
    cgroup), before the hooks, and at the latest before we drop our
    privileges, since we make our cgroup namespace then (*new_cgroupns*).
    *trampoline*: the exec trampoline's fd if stage 1 made it already (None:
    there is none for this machine), or -1 to make it here."""
    from nsbox import rootfs

    process = spec.process
    if process is None:
        raise SpecError("process", "is required to create a container")
    if trampoline == -1:
        from nsbox.process.trampoline import prepare

        trampoline = prepare()  # before any filter could refuse memfd_create
    hook_state: list[bytes] = []
    in_cgroups = False

    def placed() -> None:
        nonlocal in_cgroups
        if not in_cgroups:
            program = chan.recv("placed")  # and the compiled filter, if there is one
            if program:
                from nsbox import jsonio
                from nsbox.security.filter import Program

                opts.seccomp = Program.from_record(jsonio.loads(program), chan.recv("bpf"))
            if new_cgroupns:
                from nsbox._sys.ns import unshare

                unshare(CLONE_NEWCGROUP)  # rooted in the container's cgroups
            in_cgroups = True

    def before_pivot() -> None:
        placed()  # the hooks see the container in its cgroups
        chan.send("prestart")
        hook_state.append(chan.recv("prestart-done"))
        run_phase(spec, "createContainer", hook_state[0])

    rootfs.setup_rootfs(spec, in_user_namespace=in_userns, no_pivot=opts.no_pivot,
                        before_pivot=before_pivot if needs_prestart_sync(spec) else None, before_cgroup=placed)
    apply_sysctl(spec.linux.sysctl, spec)
    rootfs.finish_rootfs(spec)
    if console is not None:
        from nsbox.process.tty import make_terminal

        make_terminal(console, process.console_size)
    if spec.hostname is not None:
        _proc.sethostname(spec.hostname)
    if spec.domainname is not None:
        _proc.setdomainname(spec.domainname)
    apply_rlimits(process.rlimits)
    if process.oom_score_adj is not None:
        _proc.write_file("/proc/self/oom_score_adj", f"{process.oom_score_adj}\n")
    if spec.linux.personality is not None:
        _proc.personality({"LINUX": 0x0, "LINUX32": 0x8}[spec.linux.personality])
    if process.user.umask is not None:
        os.umask(process.user.umask)
    if not opts.no_new_keyring:
        # A session keyring of its own: else the container would share the
        # caller's, and with it whatever keys the caller holds.
        _proc.join_session_keyring(opts.keyring_name)
    env = dict(item.split("=", 1) for item in process.env)
    program = find_program(process.args[0], env.get("PATH"))
    keep = {0, 1, 2, *chan.fds(), fifo_fd, *range(3, 3 + opts.preserve_fds)}
    if trampoline is not None:
        keep.add(trampoline)
    from nsbox.process.channel import close_fds_except

    close_fds_except(keep)  # before the chdir: a cwd of /proc/self/fd/N must find no runtime fd
    enter_cwd(process.cwd)
    capabilities = limit_bounding_set(process)
    placed()  # in our cgroups before the user's process could run, and while we may unshare
    late_seccomp = apply_seccomp_early(opts.seccomp, process, chan)
    switch_user(process, capabilities)
    if process.no_new_privileges:
        _proc.prctl(PR_SET_NO_NEW_PRIVS, 1)
    if late_seccomp is not None:
        install_seccomp(late_seccomp, chan)
    if opts.unprivileged:
        # Parked, our memory still belongs to the host's user namespace, so
        # non-dumpable we would bar an unprivileged runtime from
        # /proc/<init>/ns/* (exec and delete of a created container).  Safe
        # here: our credentials, capabilities and filter are the
        # container's already, and its root is an unprivileged host user
        # who cannot write the interpreter /proc/<init>/exe points at.
        _proc.prctl(PR_SET_DUMPABLE, 1)
    chan.send("ready")
    chan.close()
    _wait_for_start(fifo_fd)
    run_phase(spec, "startContainer", hook_state[0] if hook_state else b"{}")
    exec_program(program, process.args, env, trampoline)


def enter_cwd(cwd: str) -> None:
    """chdir to process.cwd, and make sure it is inside the container's root
    (CVE-2024-21626: a cwd of ``/proc/self/fd/N`` through an fd of the host
    put runc's containers outside theirs).  The runtime's fds are closed by
    now; a preserved fd the caller passed could still lead out, and then
    getcwd(2) cannot name the directory from our root: glibc says ENOENT."""
    try:
        os.chdir(cwd)
    except OSError as e:
        raise NsboxError(f"process.cwd: chdir {cwd}: {e.strerror}") from None
    try:
        os.getcwd()
    except FileNotFoundError:
        raise NsboxError(f"process.cwd: {cwd} leads outside the container's root") from None


def apply_seccomp_early(program: Program | None, process: Process, chan: Channel) -> Program | None:
    """Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it now,
    before the capabilities go.  With it, return the program, to be loaded
    last (right before "ready"), so that as little as possible runs under it."""
    if program is None or process.no_new_privileges:
        return program
    install_seccomp(program, chan)
    return None


def install_seccomp(program: Program, chan: Channel) -> None:
    from nsbox.security.filter import install

    listener = install(program)
    if listener >= 0:
        # the runtime copies the fd out of us (pidfd_getfd) for listenerPath
        chan.send("seccomp", str(listener).encode())
        chan.recv("seccomp-done")
        os.close(listener)


#: the hooks that need the "prestart" handshake: they run before pivot_root
#: in order with the runtime's, or read the state it sends
SYNCED_HOOKS = ("prestart", "createRuntime", "createContainer", "startContainer")


def needs_prestart_sync(spec: Spec) -> bool:
    """Whether init stops before pivot_root for the runtime's hooks (and the
    state they all read); without such hooks it goes straight on."""
    return any(spec.hooks[phase] for phase in SYNCED_HOOKS)


def run_phase(spec: Spec, phase: str, state: bytes) -> None:
    """Run the hooks of *phase*; the hooks module (and subprocess) is imported only if there are any."""
    if spec.hooks[phase]:
        from nsbox.process.hooks import run_hooks

        run_hooks(spec.hooks[phase], phase, state)


def _wait_for_start(fifo_fd: int) -> None:
    """Block until ``nsbox start`` writes to the exec fifo."""
    while True:
        data = os.read(fifo_fd, 1)
        if data:
            break
    os.close(fifo_fd)


#: sysctl prefixes that belong to a namespace (and which one), as runc allows them
_NAMESPACED_SYSCTLS = (
    ("kernel.msgmax", "ipc"), ("kernel.msgmnb", "ipc"), ("kernel.msgmni", "ipc"), ("kernel.sem", "ipc"),
    ("kernel.shmall", "ipc"), ("kernel.shmmax", "ipc"), ("kernel.shmmni", "ipc"),
    ("kernel.shm_rmid_forced", "ipc"), ("fs.mqueue.", "ipc"), ("net.", "network"),
    ("kernel.hostname", "uts"), ("kernel.domainname", "uts"),
)


def check_sysctl(key: str, spec: Spec) -> None:
    for prefix, ns in _NAMESPACED_SYSCTLS:
        if key == prefix or (prefix.endswith(".") and key.startswith(prefix)):
            entry = spec.linux.namespace(ns)
            if entry is None or entry.path is not None and ns != "network":
                raise SpecError(f"linux.sysctl.{key}", f"needs a new {ns} namespace")
            return
    raise SpecError(f"linux.sysctl.{key}", "is not namespaced: setting it would change the host")


def apply_sysctl(sysctl: dict[str, str], spec: Spec) -> None:
    for key, value in sysctl.items():
        check_sysctl(key, spec)
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            _proc.write_file(path, value)
        except OSError as e:
            raise NsboxError(f"linux.sysctl.{key}: {e.strerror}") from None


def apply_rlimits(rlimits: list[object]) -> None:
    for i, r in enumerate(rlimits):
        number = _proc.RLIMITS.get(r.type)  # type: ignore[attr-defined]
        if number is None:
            raise SpecError(f"process.rlimits[{i}].type", f"unknown rlimit {r.type!r}")  # type: ignore[attr-defined]
        soft, hard = r.soft, r.hard  # type: ignore[attr-defined]
        try:
            _proc.prlimit(number, (soft, hard))
        except OSError as e:
            _, host_hard = _proc.prlimit(number)
            why = os.strerror(e.errno or 0)
            if soft > hard:
                why = "the soft limit is above the hard one"
            hint = ""
            if hard > host_hard:
                hint = (f": the hard limit here is {host_hard}, and raising it needs CAP_SYS_RESOURCE, "
                        "which this runtime does not hold")
            raise NsboxError(f"process.rlimits[{i}] ({r.type} soft {soft} hard {hard}): "  # type: ignore[attr-defined]
                             f"cannot be set: {why}{hint}") from None


def find_program(name: str, path: str | None) -> str:
    """Resolve args[0] the way execvp would, with the container's PATH."""
    if "/" in name:
        candidates = [name]
    else:
        dirs = (path or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").split(":")
        candidates = [os.path.join(d or ".", name) for d in dirs]
    denied = None
    for candidate in candidates:
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if os.path.isdir(candidate) or not st.st_mode & 0o111:
            denied = candidate
            continue
        return candidate
    if denied:
        raise ExecError(f"exec: {name!r}: permission denied", 13)
    raise ExecError(f"exec: {name!r}: executable file not found in $PATH" if "/" not in name
                    else f"exec: {name!r}: no such file or directory", 2)


def limit_bounding_set(process: Process) -> CapabilitySets:
    """Drop from the bounding set what *process* is not to have, and return
    the capability sets ``switch_user`` gives it (none at all without a
    capabilities object, as runc does).  Only what an execve could grant
    shrinks: the capabilities held now, which the steps up to
    ``switch_user`` use, stay.  So init does this before it waits for
    "placed", off the critical path of a create (~0.45 ms, cap names to bits
    included)."""
    from nsbox.security import capabilities as caps

    if not process.capabilities.present:
        return caps.CapabilitySets(0, 0, 0, 0, 0)
    sets = caps.CapabilitySets.from_spec(process.capabilities)
    caps.drop_bounding(sets.bounding, caps.last_cap())
    return sets


def switch_user(process: Process, sets: CapabilitySets) -> None:
    """The user, then *sets* (from ``limit_bounding_set``), in the order
    capabilities(7) needs."""
    from nsbox.security import capabilities as caps

    user = process.user
    caps.keep_caps_across_setuid(True)
    try:
        os.setgroups(list(user.additional_gids))
    except PermissionError:
        if user.additional_gids:
            raise NsboxError("process.user.additionalGids: setgroups is denied in this user namespace") from None
    try:
        os.setresgid(user.gid, user.gid, user.gid)
        os.setresuid(user.uid, user.uid, user.uid)
    except OSError as e:
        raise NsboxError(f"process.user: cannot become uid {user.uid} gid {user.gid}: {e.strerror}",
                         "the ids must be mapped in the container's user namespace") from None
    caps.keep_caps_across_setuid(False)
    caps.apply(sets)


def exec_program(program: str, args: list[str], env: dict[str, str], trampoline: int | None,
                 report_fd: int | None = None) -> None:
    """The last step: the user's program, exec'd by the sealed trampoline
    (nsbox.process.trampoline: then ``#!/proc/self/exe`` cannot name the
    host's Python), or directly where there is none for this machine.
    *report_fd*: where the trampoline reports a failed exec (the channel)."""
    from nsbox._sys import signals

    for s in (signals.SIGPIPE, signals.SIGXFSZ):
        signals.signal(s, signals.SIG_DFL)
    try:
        if trampoline is not None:
            from nsbox.process.trampoline import exec_through

            exec_through(trampoline, program, args, env, report_fd)
        os.execve(program, args, env)
    except OSError as e:
        raise ExecError(f"exec: {program!r}: {os.strerror(e.errno or 0)}", e.errno or 0) from None
