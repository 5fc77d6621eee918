"""``nsbox ns enter -t PID [options] [--] [CMD [ARGS...]]``"""

from __future__ import annotations

from nsbox._sys.consts import NAMESPACE_TYPES
from nsbox.cli.ns_unshare import number
from nsbox.cli.options import NONE, OPTIONAL, REQUIRED, Opt, Parser
from nsbox.errors import UsageError
from nsbox.toolkit.enter import EnterSpec, run as run_enter

_NS_OPTS = [
    ("-m|--mount", "mnt"), ("-u|--uts", "uts"), ("-i|--ipc", "ipc"), ("-n|--net", "net"),
    ("-p|--pid", "pid"), ("-U|--user", "user"), ("-C|--cgroup", "cgroup"), ("-T|--time", "time"),
]

PARSER = Parser(
    "nsbox ns enter",
    "-t PID [options] [--] [CMD [ARGS...]]",
    [Opt("-t|--target", "the process whose namespaces to enter", REQUIRED, metavar="PID"),
     Opt("-a|--all", "enter every namespace of the target that differs from ours", NONE)]
    + [Opt(names, f"enter the target's {name} namespace (=FILE: the one FILE refers to)", OPTIONAL,
           dest=f"ns_{name}", const=True, metavar="FILE") for names, name in _NS_OPTS]
    + [
        Opt("--preserve-credentials", "keep our uid, gid and groups in a joined user namespace", NONE),
        Opt("-S|--setuid", "become UID (default 0 in a joined user namespace)", REQUIRED, metavar="UID"),
        Opt("-G|--setgid", "become GID (default 0 in a joined user namespace)", REQUIRED, metavar="GID"),
        Opt("-r|--root", "chroot to the target's root (or DIR)", OPTIONAL, const=True, metavar="DIR"),
        Opt("-w|--wd", "change to the target's working directory (or DIR)", OPTIONAL, const=True,
            metavar="DIR"),
        Opt("-F|--no-fork", "do not fork before exec, even for a PID namespace", NONE),
    ],
    about="Run CMD (default: $SHELL) in the namespaces of another process.  The user namespace is\n"
    "joined first where it matters; a PID namespace makes nsbox fork so that CMD lives in it.",
)


def run(argv: list[str], ctx: object = None) -> int:
    o, cmd = PARSER.parse(argv)
    target = number(o["target"], "--target")
    namespaces = {}
    for _, name in _NS_OPTS:
        value = o[f"ns_{name}"]
        if value:
            namespaces[name] = value if isinstance(value, str) else None
    try:
        spec = EnterSpec(
            cmd,
            target=target,
            namespaces=namespaces,
            all=bool(o["all"]),
            preserve_credentials=bool(o["preserve_credentials"]),
            root=o["root"],  # type: ignore[arg-type]
            wd=o["wd"],  # type: ignore[arg-type]
            setuid=number(o["setuid"], "--setuid"),
            setgid=number(o["setgid"], "--setgid"),
            fork=False if o["no_fork"] else None,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
    return run_enter(spec)


assert {name for _, name in _NS_OPTS} == {name for name, _ in NAMESPACE_TYPES}
