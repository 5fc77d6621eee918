"""``nsbox ns ls [-t TYPE] [-J|--json] [-T|--tree[=owner|parent]] [-p|--task PID]``"""

from __future__ import annotations

import sys

from nsbox.cli.options import NONE, OPTIONAL, REQUIRED, Opt, Parser
from nsbox.errors import UsageError
from nsbox.toolkit import listing

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsbox.toolkit.listing import NsInfo

PARSER = Parser(
    "nsbox ns ls",
    "[options]",
    [
        Opt("-t|--type", "only namespaces of TYPE: mnt uts ipc pid net user cgroup time (repeatable)",
            REQUIRED, multi=True, metavar="TYPE"),
        Opt("-p|--task", "only the namespaces of process PID", REQUIRED, metavar="PID"),
        Opt("-J|--json", "print JSON (documented in docs/ns-ls-json.md)", NONE),
        Opt("-T|--tree", "the hierarchy: user namespaces and what they own (owner, the default),\n"
            f"{'':37}or user and PID namespaces under their parents (parent)", OPTIONAL, const="owner",
            metavar="owner|parent"),
    ],
    operands="mixed",
    about="List namespaces, as lsns(8): one row per namespace, with the number of processes in it\n"
    "and the lowest of them.  A namespace kept only by a bind mount (ip netns add) shows with\n"
    "NPROCS 0 and its path in the COMMAND column.",
)

HEADER = ("NS", "TYPE", "NPROCS", "PID", "USER", "COMMAND")


def run(argv: list[str], ctx: object = None) -> int:
    o, rest = PARSER.parse(argv)
    if rest:
        raise UsageError(f"unexpected argument {rest[0]!r}")
    try:
        types = listing.parse_types(o["type"]) if o["type"] else None  # type: ignore[arg-type]
    except ValueError as e:
        raise UsageError(str(e)) from None
    tree = o["tree"]
    if tree is not None and tree not in ("owner", "parent"):
        raise UsageError(f"--tree takes owner or parent, not {tree!r}")
    pid = _pid(o["task"])
    want_relations = bool(o["json"]) or tree is not None
    rows = listing.list_namespaces(types=types, pid=pid,
                                   relations=listing.kernel_relations if want_relations else None)
    roots = listing.build_tree(rows, str(tree)) if tree is not None else None
    if o["json"]:
        sys.stdout.write(to_json(rows if roots is None else roots, tree=roots is not None))
    else:
        sys.stdout.write(format_table(rows, roots))
    return 0


def _pid(value: object) -> int | None:
    # Not nsbox.cli.ns_unshare.number: importing that module costs ls the whole unshare path.
    if value is None:
        return None
    text = str(value)
    if not text.isdigit():
        raise UsageError(f"--task takes a number, not {text!r}")
    return int(text)


def to_json(rows: list[NsInfo], tree: bool = False) -> str:
    import json

    return json.dumps({"namespaces": [r.as_dict(tree=tree) for r in rows]}, indent=2) + "\n"


def format_table(rows: list[NsInfo], roots: list[NsInfo] | None = None) -> str:
    """lsns's table; with *roots* (from build_tree), the NS column draws the tree."""
    if roots is None:
        lines = [("", r) for r in rows]
    else:
        lines = listing.walk_tree(roots)
    cells = [HEADER] + [
        (prefix + str(r.ns), r.type, str(r.nprocs), "" if r.pid is None else str(r.pid), r.user or "",
         printable(r.command if r.command is not None else r.path))
        for prefix, r in lines
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    # As lsns: numbers to the right, except the NS column when it draws a tree.
    right = (roots is None, False, True, True, False, False)
    out = []
    for c in cells:
        parts = [c[i].rjust(widths[i]) if right[i] else c[i].ljust(widths[i]) for i in range(len(HEADER) - 1)]
        out.append(" ".join(parts + [c[-1]]).rstrip())
    return "\n".join(out) + "\n"


def printable(text: str) -> str:
    """A command line on one terminal line: control characters as \\xNN."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)
