"""``nsbox create [--bundle DIR] [--pid-file F] [--console-socket S] [--no-pivot]
[--no-new-keyring] [--preserve-fds N] ID``"""

from __future__ import annotations

from nsbox.cli.options import NONE, REQUIRED, Opt, Parser
from nsbox.cli.runtime import count, one_id, show_warnings

OPTIONS = [
    Opt("-b|--bundle", "the bundle directory (default: the current one)", REQUIRED, metavar="DIR"),
    Opt("--pid-file", "write init's pid to FILE", REQUIRED, metavar="FILE"),
    Opt("--console-socket", "send the pty master of a terminal container to this unix socket", REQUIRED,
        metavar="SOCK"),
    Opt("--no-pivot", "chroot instead of pivot_root (for a rootfs on ramfs)", NONE),
    Opt("--no-new-keyring", "keep the session keyring of the caller", NONE),
    Opt("--preserve-fds", "pass N more fds (3, 4, ...) to the container", REQUIRED, metavar="N"),
]

PARSER = Parser("nsbox create", "[options] ID", OPTIONS, operands="mixed",
                about="Create a container from a bundle; its process waits for `nsbox start ID`.")


def launch_options(o: dict[str, object], ctx):  # type: ignore[no-untyped-def]
    from nsbox.process.create import LaunchOptions

    return LaunchOptions(no_pivot=bool(o["no_pivot"]), no_new_keyring=bool(o["no_new_keyring"]),
                         preserve_fds=count(o["preserve_fds"], "--preserve-fds"),
                         console_socket=o["console_socket"],  # type: ignore[arg-type]
                         rootless=ctx.is_rootless())


def run(argv: list[str], ctx) -> int:  # type: ignore[no-untyped-def]
    from nsbox.cgroups import warmup

    warmup.ensure_started()  # first: it runs while we import and parse
    from nsbox.process.early import EarlyStage1

    with EarlyStage1.take() as early:  # forked by the launcher: it imports the container's side meanwhile
        from nsbox.container import Container

        o, operands = PARSER.parse(argv)
        container_id = one_id("create", operands)
        container = Container.create(ctx.root, container_id, str(o["bundle"] or "."), launch_options(o, ctx),
                                     pid_file=o["pid_file"], early=early)  # type: ignore[arg-type]
    show_warnings("create", container.warnings, ctx)
    return 0
