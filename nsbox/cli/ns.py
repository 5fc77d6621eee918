"""``nsbox ns SUBVERB``: the namespace toolkit."""

from __future__ import annotations

from nsbox.cli.options import HelpRequested
from nsbox.errors import UsageError

SUBVERBS = {
    "unshare": ("nsbox.cli.ns_unshare", "run a command in new namespaces (like unshare(1))"),
    "enter": ("nsbox.cli.ns_enter", "run a command in the namespaces of a process (like nsenter(1))"),
    "ls": ("nsbox.cli.ns_ls", "list namespaces, or show their hierarchy (like lsns(8))"),
}

HELP = "Usage: nsbox ns SUBVERB [options]\n\n" + "\n".join(
    f"  {name:<8} {about}" for name, (_, about) in SUBVERBS.items()) + "\n"


def run(argv: list[str], ctx: object = None) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        raise HelpRequested(HELP)
    if argv[0] not in SUBVERBS:
        raise UsageError(f"unknown subverb {argv[0]!r} (unshare, enter or ls)")
    module = __import__(SUBVERBS[argv[0]][0], fromlist=["run"])
    return int(module.run(argv[1:], ctx))
