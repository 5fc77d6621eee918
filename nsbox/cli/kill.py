"""``nsbox kill [--all] ID [SIGNAL]``"""

from __future__ import annotations

from nsbox.cli.options import NONE, Opt, Parser
from nsbox.cli.runtime import one_id
from nsbox.cli.signals import parse_signal

PARSER = Parser("nsbox kill", "[--all] ID [SIGNAL]", [
    Opt("-a|--all", "signal every process of the container, not only init", NONE),
], operands="mixed", about="Send SIGNAL (a name like TERM or a number; default SIGTERM) to the container.")


def run(argv: list[str], ctx) -> int:  # type: ignore[no-untyped-def]
    from nsbox.container import Container

    o, operands = PARSER.parse(argv)
    container_id = one_id("kill", operands, extra=1)
    signum = parse_signal(operands[1]) if len(operands) > 1 else 15
    Container.load(ctx.root, container_id).signal(signum, all_processes=bool(o["all"]))
    return 0
