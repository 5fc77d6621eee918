"""``nsbox list [--format table|json] [-q]``"""

from __future__ import annotations

import sys

from nsbox.cli.options import NONE, REQUIRED, Opt, Parser
from nsbox.cli.runtime import owner_name
from nsbox.errors import UsageError

PARSER = Parser("nsbox list", "[options]", [
    Opt("-f|--format", "table or json", REQUIRED, metavar="table|json"),
    Opt("-q|--quiet", "print only the ids", NONE),
], operands="mixed", about="List the containers under --root.")


def run(argv: list[str], ctx) -> int:  # type: ignore[no-untyped-def]
    from nsbox.container import list_containers

    o, operands = PARSER.parse(argv)
    if operands:
        raise UsageError(f"unexpected arguments: {' '.join(operands)}")
    fmt = o["format"] or "table"
    if fmt not in ("table", "json"):
        raise UsageError(f"--format takes table or json, not {fmt!r}")
    rows = []
    for c in list_containers(ctx.root):
        state = c.state()
        rows.append({"ociVersion": state["ociVersion"], "id": c.id, "pid": state.get("pid", 0),
                     "status": state["status"], "bundle": c.bundle, "rootfs": c.record.get("rootfs", ""),
                     "created": c.record.get("created", ""), "owner": owner_name(c.record.get("owner")),
                     "annotations": state.get("annotations") or {}})
    if o["quiet"]:
        sys.stdout.write("".join(f"{r['id']}\n" for r in rows))
    elif fmt == "json":
        import json

        sys.stdout.write(json.dumps(rows or None) + "\n")  # runc prints null when empty
    else:
        lines = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        lines += [(str(r["id"]), str(r["pid"]), str(r["status"]), str(r["bundle"]), str(r["created"]),
                   str(r["owner"])) for r in rows]
        widths = [max(len(line[i]) for line in lines) for i in range(6)]
        for line in lines:
            sys.stdout.write("   ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() + "\n")
    return 0

