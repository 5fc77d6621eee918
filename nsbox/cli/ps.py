"""``nsbox ps [--format table|json] ID [ps options]``"""

from __future__ import annotations

import sys

from nsbox.cli.options import REQUIRED, Opt, Parser
from nsbox.errors import UsageError

PARSER = Parser("nsbox ps", "[--format table|json] ID [-- ps options]", [
    Opt("-f|--format", "table (ps(1) output) or json (an array of host pids)", REQUIRED, metavar="table|json"),
], operands="stop", about="Show the processes of a container.")


def run(argv: list[str], ctx) -> int:  # type: ignore[no-untyped-def]
    from nsbox.container import Container

    o, operands = PARSER.parse(argv)
    if not operands:
        raise UsageError("ps needs a container id")
    container_id, ps_args = operands[0], operands[1:]
    fmt = o["format"] or "table"
    if fmt not in ("table", "json"):
        raise UsageError(f"--format takes table or json, not {fmt!r}")
    pids = Container.load(ctx.root, container_id, lock=False).processes()
    if fmt == "json":
        from nsbox import jsonio

        sys.stdout.write(jsonio.dumps(pids) + "\n")
        return 0
    import subprocess

    done = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True)
    if done.returncode != 0:
        raise UsageError(f"ps {' '.join(ps_args)}: {done.stderr.strip()}")
    lines = done.stdout.splitlines()
    header, body = lines[0], lines[1:]
    columns = header.split()
    if "PID" not in columns:
        raise UsageError("the ps options must keep the PID column")
    at = columns.index("PID")
    wanted = set(pids)
    sys.stdout.write(header + "\n")
    for line in body:
        fields = line.split()
        if len(fields) > at and fields[at].isdigit() and int(fields[at]) in wanted:
            sys.stdout.write(line + "\n")
    return 0
