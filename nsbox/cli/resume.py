"""``nsbox resume ID``: thaw a paused container."""

from __future__ import annotations

from nsbox.cli.options import Parser
from nsbox.cli.runtime import one_id

PARSER = Parser("nsbox resume", "ID", [], operands="mixed", about="Thaw the processes of a paused container.")


def run(argv: list[str], ctx) -> int:  # type: ignore[no-untyped-def]
    from nsbox.container import Container

    _, operands = PARSER.parse(argv)
    Container.load(ctx.root, one_id("resume", operands)).resume()
    return 0
