"""``nsbox state ID``: the OCI state JSON."""

from __future__ import annotations

import sys

from nsbox.cli.options import Parser
from nsbox.cli.runtime import one_id

PARSER = Parser("nsbox state", "ID", [], operands="mixed", about="Print the OCI state of a container.")


def run(argv: list[str], ctx) -> int:  # type: ignore[no-untyped-def]
    from nsbox import jsonio

    from nsbox.container import Container

    _, operands = PARSER.parse(argv)
    state = Container.load(ctx.root, one_id("state", operands), lock=False).state()
    sys.stdout.write(jsonio.dumps(state, indent=2) + "\n")
    return 0
