"""``nsbox pause ID``: freeze every process of the container (its cgroup's freezer)."""

from __future__ import annotations

from nsbox.cli.options import Parser
from nsbox.cli.runtime import one_id

PARSER = Parser("nsbox pause", "ID", [], operands="mixed", about="Freeze the processes of a container.")


def run(argv: list[str], ctx) -> int:  # type: ignore[no-untyped-def]
    from nsbox.container import Container

    _, operands = PARSER.parse(argv)
    Container.load(ctx.root, one_id("pause", operands)).pause()
    return 0
