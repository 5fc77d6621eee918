"""``nsbox features``: the OCI features document."""

from __future__ import annotations

import sys

from nsbox.cli.options import Parser

PARSER = Parser("nsbox features", "", [], operands="mixed", about="Print what this runtime supports, as JSON.")


def run(argv: list[str], ctx) -> int:  # type: ignore[no-untyped-def]
    import json

    from nsbox.oci.features import features

    PARSER.parse(argv)
    sys.stdout.write(json.dumps(features(), indent=2) + "\n")
    return 0
