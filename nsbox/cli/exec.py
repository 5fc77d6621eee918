"""``nsbox exec [options] ID [CMD [ARGS...]]``: run a new process in a container.

The process is ``--process FILE`` (a runtime-spec process object, as podman
and containerd pass it), or CMD with the container's own process settings
(env, cwd, user, capabilities, no_new_privs) changed by the flags.
"""

from __future__ import annotations

import os

from nsbox.cli.options import NONE, REQUIRED, Opt, Parser
from nsbox.cli.runtime import count
from nsbox.errors import UsageError

PARSER = Parser("nsbox exec", "[options] ID [CMD [ARGS...]]", [
    Opt("-p|--process", "a JSON file with the process to run (a runtime-spec process object)", REQUIRED,
        metavar="FILE"),
    Opt("-t|--tty", "give the process a terminal (handed out through --console-socket)", NONE),
    Opt("--console-socket", "send the pty master to this unix socket", REQUIRED, metavar="SOCK"),
    Opt("-d|--detach", "return once the process runs", NONE),
    Opt("--pid-file", "write the process's pid to FILE", REQUIRED, metavar="FILE"),
    Opt("--cwd", "working directory inside the container", REQUIRED, metavar="DIR"),
    Opt("-e|--env", "set an environment variable (repeatable)", REQUIRED, multi=True, metavar="KEY=VALUE"),
    Opt("-u|--user", "run as UID[:GID]", REQUIRED, metavar="UID[:GID]"),
    Opt("-g|--additional-gids", "add a supplementary group (repeatable)", REQUIRED, multi=True, metavar="GID"),
    Opt("-c|--cap", "add a capability (repeatable)", REQUIRED, multi=True, metavar="CAP"),
    Opt("--no-new-privs", "set no_new_privs for the process", NONE),
    Opt("--preserve-fds", "pass N more fds (3, 4, ...) to the process", REQUIRED, metavar="N"),
    Opt("--ignore-paused", "exec in a paused container too (the process is frozen until resume)", NONE),
    Opt("--apparmor", "an AppArmor profile (not supported on this host)", REQUIRED, metavar="PROFILE"),
    Opt("--process-label", "an SELinux label (not supported on this host)", REQUIRED, metavar="LABEL"),
], operands="stop", about="Run a new process inside a running container.")


def run(argv: list[str], ctx) -> int:  # type: ignore[no-untyped-def]
    from nsbox.cgroups import warmup

    warmup.ensure_started()  # first: the process joins the container's cgroup
    from nsbox.container import Container
    from nsbox.oci.state import PAUSED, STOPPED, to_json
    from nsbox.process.exec import exec_in
    from nsbox.state import InvalidState, write_atomic

    o, operands = PARSER.parse(argv)
    if not operands:
        raise UsageError("exec needs a container id")
    container_id, cmd = operands[0], operands[1:]
    for flag in ("apparmor", "process_label"):
        if o[flag]:
            raise UsageError(f"--{flag.replace('_', '-')}: not supported on this host")
    container = Container.load(ctx.root, container_id, lock=False)
    status = container.status()
    if status == STOPPED:
        raise InvalidState("cannot exec in a stopped container")
    if status == PAUSED and not o["ignore_paused"]:
        # the process would join the frozen cgroup and exec would hang (runc's flag and words)
        raise InvalidState("cannot exec in a paused container (use --ignore-paused to override)")
    process = build_process(o, cmd, container)
    detach = bool(o["detach"])
    seccomp = container.seccomp()
    state = to_json(container.state()) if seccomp is not None and seccomp.notify else b"{}"
    console_socket = o["console_socket"]
    console = None
    if process.terminal and not detach and not console_socket:
        # in the foreground a terminal is ours to proxy, as with run
        from nsbox.process.tty import OwnConsole

        console = OwnConsole(ctx.root)
        console_socket = console.path
    try:
        pid = exec_in(container.pid, process, count(o["preserve_fds"], "--preserve-fds"),
                      console_socket, container.cgroup(), seccomp, state,  # type: ignore[arg-type]
                      subreaper=not detach)
        master = console.receive() if console is not None else -1
    finally:
        if console is not None:
            console.close()
    if o["pid_file"]:
        write_atomic(os.path.abspath(str(o["pid_file"])), str(pid).encode())
    if detach:
        return 0
    from nsbox.cli.run import poll_for, wait_for

    if master < 0:
        return wait_for(pid)
    from nsbox.process.tty import proxy

    try:
        return proxy(master, lambda: poll_for(pid))
    finally:
        os.close(master)


def build_process(o: dict[str, object], cmd: list[str], container):  # type: ignore[no-untyped-def]
    from nsbox import jsonio  # not json: it imports re and enum, ~6 ms of the verb
    from nsbox.oci.spec import SpecError, parse_process

    if o["process"]:
        path = str(o["process"])
        try:
            with open(path, "rb") as f:
                data = jsonio.loads(f.read())
        except OSError as e:
            raise UsageError(f"--process {path}: {e.strerror}") from None
        except ValueError as e:
            raise UsageError(f"--process {path}: not valid JSON: {e}") from None
        if cmd:
            raise UsageError("give the command in --process or on the command line, not both")
        return parse_process(data)
    if not cmd:
        raise UsageError("exec needs a command (or --process FILE)")
    base = container.spec().raw.get("process") or {}
    data = jsonio.loads(jsonio.dumps(base))  # a copy
    data["args"] = cmd
    data["terminal"] = bool(o["tty"])
    data.pop("consoleSize", None)
    env = [e for e in data.get("env", [])]
    for item in o["env"]:  # type: ignore[union-attr]
        key = item.split("=", 1)[0]
        env = [e for e in env if e.split("=", 1)[0] != key] + [item]
    data["env"] = env
    if o["cwd"]:
        data["cwd"] = o["cwd"]
    if o["user"]:
        uid, _, gid = str(o["user"]).partition(":")
        try:
            data["user"] = {"uid": int(uid), "gid": int(gid) if gid else 0}
        except ValueError:
            raise UsageError(f"--user takes UID[:GID], not {o['user']!r}") from None
    if o["additional_gids"]:
        try:
            data.setdefault("user", {})["additionalGids"] = [int(g) for g in o["additional_gids"]]  # type: ignore[union-attr]
        except ValueError:
            raise UsageError("--additional-gids takes numbers") from None
    if o["cap"]:
        caps = data.setdefault("capabilities", {})
        for name in o["cap"]:  # type: ignore[union-attr]
            cap = str(name).upper() if str(name).upper().startswith("CAP_") else f"CAP_{str(name).upper()}"
            for kind in ("bounding", "effective", "permitted"):
                if cap not in caps.setdefault(kind, []):
                    caps[kind].append(cap)
    if o["no_new_privs"]:
        data["noNewPrivileges"] = True
    try:
        return parse_process(data)
    except SpecError as e:
        raise UsageError(str(e)) from None
