"""A small getopt_long-style option parser for nsbox's verbs.

Why not argparse: the verbs that wrap a command (``ns unshare ... CMD ARGS``)
need POSIX "stop at the first operand" parsing, so that ``nsbox ns unshare
ls -la`` passes ``-la`` to ls, and runc's command line mixes ``--opt=value``
with ``--opt value``.  argparse does neither cleanly, and importing it costs
about a third of an interpreter start-up on the hot verbs.

Each option takes no value (a flag, counted), a required value (``--root
DIR``, ``--root=DIR``, ``-R DIR``, ``-RDIR``), or an optional value, which as
in getopt must be attached (``--mount-proc=/x``); the short form of such an
option takes no value at all (``-m``), as in util-linux.
"""

from __future__ import annotations

from nsbox.errors import UsageError

NONE, REQUIRED, OPTIONAL = 0, 1, 2


class Opt:
    """One option.  ``const`` is the value an OPTIONAL option takes when given bare."""

    __slots__ = ("names", "dest", "arg", "multi", "const", "metavar", "help")

    def __init__(
        self,
        names: str,
        help: str,
        arg: int = NONE,
        dest: str | None = None,
        multi: bool = False,
        const: object = True,
        metavar: str = "VALUE",
    ) -> None:
        self.names = names.split("|")
        self.dest = dest or self.names[-1].lstrip("-").replace("-", "_")
        self.arg = arg
        self.multi = multi
        self.const = const
        self.metavar = metavar
        self.help = help


class Parser:
    """Parses one verb's arguments.  ``operands="stop"``: options end at the
    first operand (the command to run); ``"mixed"``: options and operands may
    interleave, as runc's verbs allow."""

    def __init__(self, prog: str, usage: str, opts: list[Opt], operands: str = "stop", about: str = "") -> None:
        self.prog = prog
        self.usage = usage
        self.opts = opts
        self.operands = operands
        self.about = about
        self._by_name: dict[str, Opt] = {}
        for o in opts:
            for n in o.names:
                self._by_name[n] = o

    def defaults(self) -> dict[str, object]:
        return {o.dest: ([] if o.multi else None) for o in self.opts}

    def parse(self, argv: list[str]) -> tuple[dict[str, object], list[str]]:
        values = self.defaults()
        rest: list[str] = []
        i = 0
        while i < len(argv):
            a = argv[i]
            i += 1
            if a == "--":
                rest.extend(argv[i:])
                break
            if a in ("-h", "--help"):
                raise HelpRequested(self.help_text())
            if a.startswith("--"):
                name, eq, value = a.partition("=")
                opt = self._long(name)
                if opt.arg == NONE:
                    if eq:
                        raise UsageError(f"option {name} takes no value")
                    self._store(values, opt, True)
                elif eq:
                    self._store(values, opt, value)
                elif opt.arg == REQUIRED:
                    if i >= len(argv):
                        raise UsageError(f"option {name} needs a value ({opt.metavar})")
                    self._store(values, opt, argv[i])
                    i += 1
                else:
                    self._store(values, opt, opt.const)
            elif a.startswith("-") and a != "-":
                j = 1
                while j < len(a):
                    opt = self._short("-" + a[j])
                    j += 1
                    if opt.arg == NONE:
                        self._store(values, opt, True)
                        continue
                    if opt.arg == OPTIONAL:
                        # As util-linux does it: the short form of an option whose
                        # value is optional is a plain flag, so -fpmiu still works.
                        self._store(values, opt, opt.const)
                        continue
                    attached = a[j:]
                    if attached:
                        self._store(values, opt, attached)
                    elif opt.arg == REQUIRED:
                        if i >= len(argv):
                            raise UsageError(f"option -{a[j - 1]} needs a value ({opt.metavar})")
                        self._store(values, opt, argv[i])
                        i += 1
                    break
            else:
                rest.append(a)
                if self.operands == "stop":
                    rest.extend(argv[i:])
                    break
        return values, rest

    def _long(self, name: str) -> Opt:
        opt = self._by_name.get(name)
        if opt is not None:
            return opt
        # getopt_long accepts any unambiguous prefix; so do we
        matches = {id(o): o for n, o in self._by_name.items() if n.startswith("--") and n.startswith(name)}
        if len(matches) == 1:
            return next(iter(matches.values()))
        if matches:
            raise UsageError(f"option {name} is ambiguous")
        raise UsageError(f"unknown option {name}")

    def _short(self, name: str) -> Opt:
        opt = self._by_name.get(name)
        if opt is None:
            raise UsageError(f"unknown option {name}")
        return opt

    @staticmethod
    def _store(values: dict[str, object], opt: Opt, value: object) -> None:
        if opt.multi:
            values[opt.dest].append(value)  # type: ignore[attr-defined]
        elif opt.arg == NONE and isinstance(values[opt.dest], int) and not isinstance(values[opt.dest], bool):
            values[opt.dest] += 1  # type: ignore[operator]
        else:
            values[opt.dest] = value

    def help_text(self) -> str:
        lines = [f"Usage: {self.prog} {self.usage}", ""]
        if self.about:
            lines += [self.about, ""]
        lines.append("Options:")
        for o in self.opts:
            names = ", ".join(o.names)
            if o.arg == REQUIRED:
                names += f" {o.metavar}"
            elif o.arg == OPTIONAL:
                names += f"[={o.metavar}]"
            lines.append(f"  {names:<34} {o.help}")
        lines.append(f"  {'-h, --help':<34} show this help")
        return "\n".join(lines) + "\n"


class HelpRequested(Exception):
    """Raised by Parser.parse on -h/--help; carries the text to print."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text
