"""``nsbox ns unshare``: run a command in new namespaces, as util-linux unshare(1).

The order of the steps is the lesson; each one has a reason::

    nsbox (outside)                          helper (stays outside, optional)
    ---------------                          --------------------------------
    1. fork helper  ------------------------> waits on the go pipe
    2. unshare(CLONE_NEW*)
    3. user ns: maps -------- go ----------> writes /proc/PID/{setgroups,gid_map,uid_map}
       (own id: written by ourselves)          (privileged, or newuidmap/newgidmap),
                                               bind-mounts /proc/PID/ns/* onto the
                        <----- result ------   persistent files; exits
    4. time ns: /proc/self/timens_offsets    (before any process enters it)
    5. mount ns: propagation of "/"          (MS_REC|MS_PRIVATE by default: a mount made
                                              inside must never reach the host)
    6. --fork: fork; the child becomes PID 1 of a new PID namespace; the parent waits
       and returns the child's status (128+N for a signal)
    7. hostname, domainname; chroot; chdir; mount /proc; setgid/setuid; caps
    8. execve

Errors of a forked child come back to the parent through the exec-error pipe
(nsbox.process.errpipe) and are raised there.
"""

from __future__ import annotations

import os

from nsbox._sys import mount as _mount
from nsbox._sys import ns as _ns
from nsbox._sys import process as _proc
from nsbox._sys.consts import (
    CLOCK_BOOTTIME,
    CLOCK_MONOTONIC,
    CLONE_FLAG_NAMES,
    CLONE_NEWNS,
    CLONE_NEWTIME,
    CLONE_NEWUSER,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_REC,
    MS_SHARED,
    MS_SLAVE,
    PR_SET_KEEPCAPS,
    flag_names,
)
from nsbox.errors import NamespaceError
from nsbox.toolkit import launch
from nsbox.userns import IdMap, explain_userns_failure, is_self_map, write_id_maps, write_maps_from_parent

PROPAGATION = {"private": MS_PRIVATE, "slave": MS_SLAVE, "shared": MS_SHARED, "unchanged": 0}


class UnshareSpec:
    """Everything ``ns unshare`` was asked to do; see the module docstring for the order."""

    def __init__(
        self,
        argv: list[str],
        flags: int = 0,
        fork: bool = False,
        mount_proc: str | None = None,
        kill_child: int | None = None,
        propagation: str = "private",
        uid_maps: list[IdMap] | None = None,
        gid_maps: list[IdMap] | None = None,
        setgroups: str | None = None,
        hostname: str | None = None,
        domainname: str | None = None,
        root: str | None = None,
        wd: str | None = None,
        setuid: int | None = None,
        setgid: int | None = None,
        keep_caps: bool = False,
        monotonic: int | None = None,
        boottime: int | None = None,
        persist: dict[int, str] | None = None,
    ) -> None:
        self.argv = argv
        self.uid_maps = uid_maps or []
        self.gid_maps = gid_maps or []
        if self.uid_maps or self.gid_maps or setgroups:
            flags |= CLONE_NEWUSER
        if mount_proc:
            flags |= CLONE_NEWNS
        if monotonic is not None or boottime is not None:
            flags |= CLONE_NEWTIME
        self.persist = persist or {}
        for flag in self.persist:
            flags |= flag
        if kill_child is not None:
            fork = True
        if propagation not in PROPAGATION:
            raise ValueError(f"unknown propagation {propagation!r} (private, slave, shared or unchanged)")
        if setgroups not in (None, "allow", "deny"):
            raise ValueError(f"--setgroups takes allow or deny, not {setgroups!r}")
        self.flags = flags
        self.fork = fork
        self.mount_proc = mount_proc
        self.kill_child = kill_child
        self.propagation = propagation
        self.setgroups = setgroups
        self.hostname = hostname
        self.domainname = domainname
        self.root = root
        self.wd = wd
        self.setuid = setuid
        self.setgid = setgid
        self.keep_caps = keep_caps
        self.monotonic = monotonic
        self.boottime = boottime

    def maps_written_by_self(self) -> bool:
        """Whether this process can write its own maps after unsharing: only a
        map of its own euid/egid, and only with setgroups denied (user_namespaces(7))."""
        if self.uid_maps and not is_self_map(self.uid_maps, os.geteuid()):
            return False
        if self.gid_maps and (not is_self_map(self.gid_maps, os.getegid()) or self.setgroups == "allow"):
            return False
        return True


def run(spec: UnshareSpec) -> int:
    """Do what *spec* says.  With ``fork`` this returns the command's exit status;
    without, the process becomes the command and this returns only by raising."""
    launch.check_supported(spec.flags)
    helper = None
    if spec.persist or (spec.flags & CLONE_NEWUSER and not spec.maps_written_by_self()):
        helper = launch.OutsideHelper.start(lambda: _outside_work(spec, os.getppid()))
    try:
        _unshare(spec.flags)
        if helper is not None:
            helper.finish()
            helper = None
        elif spec.flags & CLONE_NEWUSER:
            _write_own_maps(spec)
    finally:
        if helper is not None:
            helper.abort()
    if spec.flags & CLONE_NEWTIME:
        _set_time_offsets(spec.monotonic, spec.boottime)
    if spec.flags & CLONE_NEWNS and PROPAGATION[spec.propagation]:
        # Before anything is mounted in here: on a host whose "/" is shared
        # (systemd's default), every mount we make -- /proc included -- would
        # otherwise propagate back to the host's namespace.
        _mount.mount("none", "/", None, MS_REC | PROPAGATION[spec.propagation])
    if not spec.fork:
        _become(spec)
        raise AssertionError("unreachable")  # pragma: no cover
    return launch.fork_and_wait(lambda: _become(spec), kill_child=spec.kill_child)


def _unshare(flags: int) -> None:
    if not flags:
        return  # nothing to unshare (e.g. only --root): util-linux skips the call too
    try:
        _ns.unshare(flags)
    except OSError as e:
        raise explain_unshare_failure(e, flags) from None


def explain_unshare_failure(e: OSError, flags: int, proc: str = "/proc") -> NamespaceError:
    """Turn unshare(2)'s errno into what the person at the shell can act on."""
    call = f"unshare({flag_names(flags, CLONE_FLAG_NAMES)}): {os.strerror(e.errno or 0)}"
    hint: str | None = None
    if e.errno == 22:  # EINVAL
        missing = launch.missing_types(flags, proc)
        if missing:
            hint = f"this kernel has no {', '.join(missing)} namespaces (no {proc}/self/ns/{missing[0]})"
        elif flags & CLONE_NEWUSER:
            hint = explain_userns_failure(22, proc)
    elif flags & CLONE_NEWUSER and e.errno in (1, 28, 12):
        hint = explain_userns_failure(e.errno, proc)
    elif e.errno == 1:  # EPERM without a user namespace
        hint = ("creating namespaces needs CAP_SYS_ADMIN: run as root, or add --user --map-root-user "
                "to create them inside a new user namespace")
    elif e.errno == 28:  # ENOSPC: a per-type count limit
        hint = "a namespace limit is reached; see the /proc/sys/user/max_*_namespaces sysctls"
    return NamespaceError(call, hint, e.errno)


def _write_own_maps(spec: UnshareSpec) -> None:
    # Mapping our own gid is allowed only once setgroups is denied: else an
    # unprivileged process could drop a group used to deny it access.
    setgroups = "deny" if spec.gid_maps else spec.setgroups
    try:
        write_id_maps("self", spec.uid_maps, spec.gid_maps, setgroups)
    except OSError as e:
        hint = explain_userns_failure(e.errno or 1) if e.errno == 1 else None
        raise NamespaceError(f"{e.strerror}: {e.filename}", hint, e.errno) from None


def _outside_work(spec: UnshareSpec, pid: int) -> None:
    """Runs in the helper, in the original namespaces, once *pid* has unshared."""
    if spec.flags & CLONE_NEWUSER:
        write_maps_from_parent(pid, spec.uid_maps, spec.gid_maps, spec.setgroups)
    for flag, path in spec.persist.items():
        launch.persist_namespace(pid, flag, path)


def _set_time_offsets(monotonic: int | None, boottime: int | None) -> None:
    lines = ""
    if monotonic:
        lines += f"{CLOCK_MONOTONIC} {monotonic} 0\n"
    if boottime:
        lines += f"{CLOCK_BOOTTIME} {boottime} 0\n"
    if lines:
        # Only possible before the first process enters the new time namespace.
        _proc.write_file("/proc/self/timens_offsets", lines)


def _become(spec: UnshareSpec) -> None:
    """Steps 7-8, in the process that will exec the command."""
    if spec.hostname is not None:
        _proc.sethostname(spec.hostname)
    if spec.domainname is not None:
        _proc.setdomainname(spec.domainname)
    if spec.root is not None:
        _proc.chroot(spec.root)
        # Never leave the working directory outside the new root.
        _proc.chdir(spec.wd or "/")
    elif spec.wd is not None:
        _proc.chdir(spec.wd)
    if spec.mount_proc:
        mount_proc(spec.mount_proc)
    if spec.keep_caps:
        # Through the uid change as well: without this, setuid to a non-zero
        # uid empties the permitted set before we can make it ambient.
        _proc.prctl(PR_SET_KEEPCAPS, 1)
    launch.set_credentials(spec.setuid, spec.setgid, spec.setgroups != "deny" and not spec.gid_maps)
    if spec.keep_caps:
        launch.keep_capabilities()
    launch.exec_command(spec.argv)


def mount_proc(target: str) -> None:
    """Mount a procfs for our PID namespace at *target* (a child of that namespace only)."""
    try:
        # Keep this one mount point private even under --propagation=unchanged.
        _mount.mount("none", target, None, MS_REC | MS_PRIVATE)
    except OSError as e:
        if e.errno != 22:  # EINVAL: not a mount point; nothing to make private
            raise
    _mount.mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


__all__ = ["UnshareSpec", "explain_unshare_failure", "mount_proc", "run"]
