"""``nsbox delete [--force] ID``"""

from __future__ import annotations

from nsbox.cli.options import NONE, Opt, Parser
from nsbox.cli.runtime import one_id, show_warnings

PARSER = Parser("nsbox delete", "[--force] ID", [
    Opt("-f|--force", "kill the container first if it runs; succeed if it does not exist", NONE),
], operands="mixed", about="Delete a stopped container: its state, and what it used.")


def run(argv: list[str], ctx) -> int:  # type: ignore[no-untyped-def]
    from nsbox.container import Container, remove_abandoned
    from nsbox.state import ContainerNotFound

    o, operands = PARSER.parse(argv)
    container_id = one_id("delete", operands)
    try:
        container = Container.load(ctx.root, container_id)
    except ContainerNotFound:
        if o["force"]:
            remove_abandoned(ctx.root, container_id)  # what a killed create left, if anything
            return 0  # containerd always follows delete with delete --force
        raise
    show_warnings("delete", container.delete(force=bool(o["force"])), ctx)
    return 0
