"""``nsbox spec [--bundle DIR] [--rootless]``: write a default config.json."""

from __future__ import annotations

import os

from nsbox.cli.options import NONE, REQUIRED, Opt, Parser
from nsbox.errors import NsboxError, UsageError

PARSER = Parser("nsbox spec", "[options]", [
    Opt("-b|--bundle", "where to write config.json (default: the current directory)", REQUIRED, metavar="DIR"),
    Opt("--rootless", "a spec for a user without root: a user namespace mapping you to root", NONE),
], operands="mixed", about="Write a default config.json (a shell on a rootfs/ beside it).")


def run(argv: list[str], ctx) -> int:  # type: ignore[no-untyped-def]
    import json

    from nsbox.oci.default import default_spec

    o, operands = PARSER.parse(argv)
    if operands:
        raise UsageError(f"unexpected arguments: {' '.join(operands)}")
    path = os.path.join(str(o["bundle"] or "."), "config.json")
    if os.path.exists(path):
        raise NsboxError(f"{path} exists already; remove it first")
    with open(path, "x") as f:
        json.dump(default_spec(rootless=bool(o["rootless"])), f, indent=2)
        f.write("\n")
    return 0
