"""``nsbox start ID``"""

from __future__ import annotations

from nsbox.cli.options import Parser
from nsbox.cli.runtime import one_id, show_warnings

PARSER = Parser("nsbox start", "ID", [], operands="mixed", about="Start the process of a created container.")


def run(argv: list[str], ctx) -> int:  # type: ignore[no-untyped-def]
    from nsbox.container import Container

    _, operands = PARSER.parse(argv)
    show_warnings("start", Container.load(ctx.root, one_id("start", operands)).start(), ctx)
    return 0
