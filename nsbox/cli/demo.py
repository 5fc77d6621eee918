"""``nsbox demo [--only TYPE[,TYPE...]]``: what a container is made of, one namespace at a time."""

from __future__ import annotations

import os

from nsbox._sys import trace
from nsbox.cli.options import REQUIRED, Opt, Parser
from nsbox.errors import NsboxError, UsageError
from nsbox.toolkit.demo import ALIASES, EXPERIMENTS, Outcome, run_experiment

PARSER = Parser(
    "nsbox demo",
    "[--only TYPE[,TYPE...]]",
    [Opt("--only", f"run only these experiments ({','.join(EXPERIMENTS)}); repeatable", REQUIRED,
         multi=True, metavar="TYPE[,TYPE...]")],
    about="Show each kind of namespace isolation side by side with the host, with the nsbox\n"
          "command that shows it.  Needs root; downloads nothing.  With `nsbox --trace demo`\n"
          "every experiment prints the kernel calls nsbox makes.  Exits 0 when every\n"
          "experiment showed isolation.",
)


def run(argv: list[str], ctx: object = None) -> int:
    o, rest = PARSER.parse(argv)
    if rest:
        raise UsageError(f"unexpected argument {rest[0]!r} (the demo takes only --only)")
    kinds = chosen(o["only"])  # type: ignore[arg-type]
    if os.geteuid() != 0:
        # Every namespace but the user namespace needs CAP_SYS_ADMIN.
        raise NsboxError("the demo needs root", "run it as root, e.g. sudo nsbox demo")
    outcomes = []
    for kind in kinds:
        # The title goes out first, so that --trace lines land under it.
        print(EXPERIMENTS[kind].title, flush=True)
        outcome = run_experiment(kind, trace=trace.enabled)
        print("\n".join(render(outcome)) + "\n", flush=True)
        outcomes.append(outcome)
    print(summary(outcomes))
    return 0 if all(o.isolated for o in outcomes) else 1


def chosen(only: list[str]) -> list[str]:
    """The experiments --only names, in the order given, each once; all without --only."""
    if not only:
        return list(EXPERIMENTS)
    kinds: list[str] = []
    for text in only:
        for name in text.split(","):
            kind = ALIASES.get(name.strip().lower(), name.strip().lower())
            if kind not in EXPERIMENTS:
                raise UsageError(f"--only: unknown experiment {name!r} (choose from {','.join(EXPERIMENTS)})")
            if kind not in kinds:
                kinds.append(kind)
    return kinds


def render(outcome: Outcome) -> list[str]:
    """The lines under an experiment's title: a table of host vs inside, the command, the verdict."""
    lines = []
    if outcome.rows:
        wide = max(len(r.what) for r in outcome.rows)
        host = max([len("host")] + [len(r.host) for r in outcome.rows])
        lines.append(f"  {'':<{wide}}  {'host':<{host}}  inside")
        lines += [f"  {r.what:<{wide}}  {r.host:<{host}}  {r.inside}" for r in outcome.rows]
    if outcome.error:
        lines.append(f"  error: {outcome.error}")
    if outcome.command:
        lines.append(f"  $ {outcome.command}")
    if outcome.isolated:
        lines.append(f"  isolated: yes - {outcome.lesson}")
    else:
        lines.append("  isolated: NO")
    return lines


def summary(outcomes: list[Outcome]) -> str:
    shown = sum(o.isolated for o in outcomes)
    line = f"{shown} of {len(outcomes)} experiments showed isolation"
    missed = [o.kind for o in outcomes if not o.isolated]
    return line + (f"; not: {', '.join(missed)}" if missed else "")
