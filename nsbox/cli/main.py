"""``nsbox [global options] VERB [options] [args]``: global options and dispatch.

Verb modules are imported only when chosen, so a hot verb pays for its own
imports and no one else's.
"""

from __future__ import annotations

import os
import sys

from nsbox.cli.options import NONE, HelpRequested, Opt, Parser
from nsbox.errors import ExecError, NsboxError, UsageError

VERSION = "0.1.0"

#: verb -> (module, one-line description)
VERBS: dict[str, tuple[str, str]] = {
    "ns": ("nsbox.cli.ns", "namespace toolkit: unshare, enter, ls"),
    "demo": ("nsbox.cli.demo", "show each kind of isolation side by side with the host"),
}

GLOBAL = Parser(
    "nsbox",
    "[global options] VERB [options] [args]",
    [
        Opt("--trace", "print every kernel call to stderr as it happens", NONE),
        Opt("--debug", "show a traceback on errors", NONE),
        Opt("-v|--version", "print the version and exit", NONE),
    ],
    about="Verbs:\n" + "\n".join(f"  {v:<8} {d}" for v, (_, d) in VERBS.items()),
)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    debug = False
    verb = ""
    try:
        opts, rest = GLOBAL.parse(args)
        debug = bool(opts["debug"])
        if opts["version"]:
            print(f"nsbox version {VERSION}")
            return 0
        if opts["trace"]:
            from nsbox._sys import trace

            trace.enable()
        if not rest:
            raise HelpRequested(GLOBAL.help_text())
        verb = rest[0]
        if verb not in VERBS:
            raise UsageError(f"unknown verb {verb!r} (try: nsbox --help)")
        module = __import__(VERBS[verb][0], fromlist=["run"])
        if rest[1:2] and rest[1] in getattr(module, "SUBVERBS", ()):
            verb = f"{verb} {rest[1]}"  # errors name the subverb too: "nsbox: ns unshare: ..."
        return int(module.run(rest[1:]))
    except HelpRequested as h:
        sys.stdout.write(h.text)
        return 0
    except KeyboardInterrupt:
        return 130
    except BaseException as e:  # noqa: BLE001 - the one place errors become a line
        if isinstance(e, SystemExit):
            raise
        return report(e, verb, debug)


def report(e: BaseException, verb: str, debug: bool) -> int:
    """Print ``nsbox: VERB: what failed: why`` and return the exit status."""
    if debug:
        import traceback

        traceback.print_exception(e)
    where = f"nsbox: {verb}: " if verb else "nsbox: "
    if isinstance(e, OSError):
        text = e.strerror or str(e)
        if e.filename is not None:
            text += f": {e.filename}"
    elif isinstance(e, (NsboxError, ValueError)):
        text = str(e)
    else:
        text = f"internal error: {type(e).__name__}: {e} (run with --debug for a traceback)"
    try:
        sys.stderr.write(f"{where}{text}\n")
        sys.stderr.flush()
    except OSError:
        pass
    if isinstance(e, ExecError):
        return e.exit_code
    if isinstance(e, UsageError):
        return 2
    return 1


def entry() -> None:
    """The console script.  Exits with os._exit after flushing: interpreter
    teardown is a measurable slice of a hot verb's run time, and nothing of
    ours needs it."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            code = code or 1
    os._exit(code)
