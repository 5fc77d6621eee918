"""``nsbox exec``: a new process in a running container.

::

    runtime (nsbox exec)          stage 1 (fork)                  the process (fork of stage 1)
    --------------------          --------------                  -----------------------------
    pipes, fork -------------->   not dumpable
    into the cgroups; "go" --->
                                  join init's namespaces through
                                  a pidfd (user first, atomically)
                                  fork ------------------------->  in the container's PID ns
          <------------ "pid N" - exit                             terminal; rlimits; close fds;
    reap stage 1                                                   cwd; user; caps; no_new_privs;
                                                                   seccomp (ordered as in init)
          <------------------------------------- "seccomp FD" ---  (only with SCMP_ACT_NOTIFY)
    to listenerPath; "seccomp-done" ---------------------------->
          <------------------------------------------ "ready" ---  execve through the trampoline
                                                                   (the channel closes)
          EOF: exec'd / "error": why not

The runtime waits for the process itself when it is not detached: it is a
child subreaper, so the process is reparented to it when stage 1 exits.
"""

from __future__ import annotations

import os

from nsbox._sys import process as _proc
from nsbox._sys.consts import NAMESPACE_TYPES, PR_SET_CHILD_SUBREAPER, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS
from nsbox.process.channel import Channel, fork_with_channel

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket

    from nsbox.cgroups import Cgroup
    from nsbox.oci.spec import Process
    from nsbox.security.filter import Program


def exec_in(init_pid: int, process: Process, preserve_fds: int = 0, console_socket: str | None = None,
            cgroup: Cgroup | None = None, seccomp: Program | None = None, state: bytes = b"{}",
            subreaper: bool = False) -> int:
    """Start *process* in the namespaces (and *cgroup*) of *init_pid*, under
    the container's *seccomp* filter; returns its pid once it has exec'd.
    *state* is the container's state, for a seccomp listener; *subreaper*:
    become a child subreaper, to wait for the process (it is reparented to
    us when stage 1 exits)."""
    console = None
    if process.terminal:
        from nsbox.oci.spec import SpecError
        from nsbox.process.tty import connect_console_socket

        if not console_socket:
            raise SpecError("process.terminal", "a terminal needs --console-socket to hand the pty to")
        console = connect_console_socket(console_socket)
    files = _namespace_files(init_pid)
    runtime, stage1 = fork_with_channel(
        lambda chan: _stage1(init_pid, files, process, chan, preserve_fds, console, seccomp))
    if console is not None:
        console.close()
    pid = 0
    try:
        if subreaper:
            # after the fork, not before: prctl loads ctypes (~4 ms), which
            # stage 1 meanwhile does too; stage 1 cannot exit before "go"
            _proc.prctl(PR_SET_CHILD_SUBREAPER, 1)
        if cgroup is not None:
            cgroup.add(stage1)  # before it forks: the process is born in the container's cgroups
        runtime.send("go")
        # stage 1 says "pid" after its fork, and the process says "seccomp"
        # and "ready" on its own: they may come in any order
        ready = False
        while not (pid and ready):
            tag, payload = runtime.recv_tagged("pid", "seccomp", "ready")
            if tag == "pid":
                pid = int(payload)
            elif tag == "ready":
                ready = True
            else:
                from nsbox.security.seccomp import serve_listener

                if not pid:
                    pid = int(runtime.recv("pid"))
                serve_listener(runtime, seccomp, pid, int(payload), state)
        os.waitpid(stage1, 0)
        stage1 = 0
        # EOF: it exec'd; or the error that stopped it, or the trampoline's
        # report that the program's own exec failed
        failed = runtime.wait_closed("exec-failed")
        if failed is not None:
            from nsbox.errors import ExecError

            err = int(failed[1])
            raise ExecError(f"exec: {process.args[0]!r}: {os.strerror(err)}", err)
        return pid
    except BaseException:
        for victim in (pid, stage1):
            if victim:
                try:
                    os.kill(victim, 9)
                except ProcessLookupError:
                    pass
        if stage1:
            os.waitpid(stage1, 0)
        raise
    finally:
        runtime.close()


def _namespace_files(pid: int) -> list[tuple[int, str]]:
    """init's namespaces that differ from ours (re-entering our own user
    namespace is an error)."""
    files = []
    for name, flag in NAMESPACE_TYPES:
        theirs = f"/proc/{pid}/ns/{name}"
        try:
            a, b = os.stat(theirs), os.stat(f"/proc/self/ns/{name}")
        except FileNotFoundError:
            continue
        if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino):
            files.append((flag, theirs))
    return files


def _stage1(init_pid: int, files: list[tuple[int, str]], process: Process, chan: Channel,
            preserve_fds: int, console: socket.socket | None, seccomp: Program | None) -> None:
    from nsbox.nsfiles import join
    from nsbox.process.init import preload

    # the host's Python library is out of reach once we join the mount namespace
    preload(terminal=console is not None, seccomp=seccomp is not None, rootfs=False)
    _proc.prctl(PR_SET_DUMPABLE, 0)  # CVE-2019-5736: nothing inside may reach us until execve
    chan.recv("go")
    join(files, init_pid)
    child = _proc.fork()
    if child == 0:
        try:
            _become(process, chan, preserve_fds, console, seccomp)
        except BaseException as exc:  # noqa: BLE001 - sent to the runtime
            chan.send_error(exc)
        finally:
            os._exit(1)
    chan.send("pid", str(child).encode())


def _become(process: Process, chan: Channel, preserve_fds: int, console: socket.socket | None,
            seccomp: Program | None) -> None:
    from nsbox.process.channel import close_fds_except
    from nsbox.process.init import (apply_rlimits, apply_seccomp_early, enter_cwd, exec_program, find_program,
                                    install_seccomp, limit_bounding_set, switch_user)
    from nsbox.process.trampoline import prepare

    trampoline = prepare()  # before any filter could refuse memfd_create

    if console is not None:
        from nsbox.process.tty import make_terminal

        make_terminal(console, process.console_size)
    else:
        os.setsid()  # its own session, as runc gives it: signals for the caller's group do not reach it
    apply_rlimits(process.rlimits)
    if process.user.umask is not None:
        os.umask(process.user.umask)
    env = dict(item.split("=", 1) for item in process.env)
    program = find_program(process.args[0], env.get("PATH"))
    close_fds_except({0, 1, 2, *chan.fds(), *range(3, 3 + preserve_fds)}
                     | ({trampoline} if trampoline is not None else set()))
    enter_cwd(process.cwd)  # after the close: see init's step 7
    capabilities = limit_bounding_set(process)
    late_seccomp = apply_seccomp_early(seccomp, process, chan)
    switch_user(process, capabilities)
    if process.no_new_privileges:
        _proc.prctl(PR_SET_NO_NEW_PRIVS, 1)
    if late_seccomp is not None:
        install_seccomp(late_seccomp, chan)
    chan.send("ready")
    exec_program(program, process.args, env, trampoline, chan.wfd)
