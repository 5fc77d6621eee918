"""``nsbox run [-d] [--bundle DIR] [--pid-file F] [--console-socket S] [--keep]
[--no-pivot] [--no-new-keyring] [--preserve-fds N] ID``: create + start.

In the foreground nsbox waits for the container and exits with its status.
It can wait for init because it makes itself a child subreaper first: init
is forked by a short-lived stage-1 process, and is reparented to us when
stage 1 exits.
"""

from __future__ import annotations

import os

from nsbox.cli.create import OPTIONS, launch_options
from nsbox.cli.options import NONE, Opt, Parser
from nsbox.cli.runtime import one_id, show_warnings

PARSER = Parser("nsbox run", "[options] ID", OPTIONS + [
    Opt("-d|--detach", "return once the container runs (do not wait for it)", NONE),
    Opt("--keep", "keep the stopped container (do not delete it when it exits)", NONE),
], operands="mixed", about="Create and start a container; wait for it unless --detach.")


def run(argv: list[str], ctx) -> int:  # type: ignore[no-untyped-def]
    from nsbox.cgroups import warmup

    warmup.ensure_started()  # first: it runs while we import and parse
    from nsbox.process.early import EarlyStage1

    with EarlyStage1.take() as early:  # forked by the launcher: it imports the container's side meanwhile
        return _run(argv, ctx, early)


def _run(argv: list[str], ctx, early) -> int:  # type: ignore[no-untyped-def]
    from nsbox.container import Container
    from nsbox.oci import spec as oci_spec

    o, operands = PARSER.parse(argv)
    container_id = one_id("run", operands)
    detach = bool(o["detach"])
    opts = launch_options(o, ctx)
    opts.subreaper = not detach
    console = None
    bundle = os.path.abspath(str(o["bundle"] or "."))
    raw = oci_spec.read_config(bundle)
    early.send_config(raw, bundle)  # stage 1 parses it too, meanwhile
    spec = oci_spec.parse(raw, bundle, os.path.join(bundle, "config.json"))
    if not detach and not opts.console_socket and spec.process is not None and spec.process.terminal:
        # In the foreground a terminal is ours to proxy: make our own console socket.
        from nsbox.process.tty import OwnConsole
        from nsbox.state import ensure_root

        ensure_root(ctx.root)
        console = OwnConsole(ctx.root)
        opts.console_socket = console.path
    try:
        container = Container.create(ctx.root, container_id, bundle, opts, pid_file=o["pid_file"],  # type: ignore[arg-type]
                                     parsed=(raw, spec), early=early)
        show_warnings("run", container.warnings, ctx)
        master = console.receive() if console is not None else -1
    finally:
        if console is not None:
            console.close()
    try:
        show_warnings("run", container.start(), ctx)
    except BaseException:
        container.delete(force=True)
        raise
    if detach:
        return 0
    container.dir.unlock()  # others (kill, state) must reach it while we wait
    if master >= 0:
        from nsbox.process.tty import proxy

        status = proxy(master, lambda: poll_for(container.pid))
        os.close(master)
    else:
        status = wait_for(container.pid)
    if not o["keep"]:
        show_warnings("run", Container.load(ctx.root, container_id).delete(force=True), ctx)
    return status


def poll_for(pid: int) -> int | None:
    """init's exit status if it has exited (reaping other orphans), else None."""
    from nsbox.process.status import exit_status

    while True:
        try:
            done, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return 0
        if done == 0:
            return None
        if done == pid:
            return exit_status(status)


def wait_for(pid: int) -> int:
    """Wait for init, reaping any other orphan that reaches us meanwhile;
    signals sent to nsbox are passed on to init."""
    from nsbox._sys import signals
    from nsbox.process.status import exit_status

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for s in (signals.SIGTERM, signals.SIGINT, signals.SIGHUP, signals.SIGQUIT, signals.SIGUSR1, signals.SIGUSR2):
        signals.signal(s, forward)
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        if done == pid:
            return exit_status(status)
