"""``nsbox state ID``: the OCI state JSON, plus the fields runc adds (rootfs,
created, owner), which clients built on go-runc decode."""

from __future__ import annotations

import sys

from nsbox.cli.options import Parser
from nsbox.cli.runtime import one_id, owner_name

PARSER = Parser("nsbox state", "ID", [], operands="mixed", about="Print the OCI state of a container.")


def run(argv: list[str], ctx) -> int:  # type: ignore[no-untyped-def]
    from nsbox import jsonio

    from nsbox.container import Container

    _, operands = PARSER.parse(argv)
    container = Container.load(ctx.root, one_id("state", operands), lock=False)
    state = container.state()
    record = container.record
    for key in ("rootfs", "created"):
        if isinstance(record.get(key), str):
            state[key] = record[key]
    if isinstance(record.get("owner"), int):
        # a user name, as runc prints it: a client reads owner as a string
        state["owner"] = owner_name(record["owner"])
    sys.stdout.write(jsonio.dumps(state, indent=2) + "\n")
    return 0
