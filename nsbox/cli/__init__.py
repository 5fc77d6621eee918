"""Command-line front ends: one thin module per verb.  They parse, call the
library, print, and return an exit status; only here is anything printed."""

#: the verbs that move a process into a new cgroup (see nsbox.cgroups.warmup)
MOVING_VERBS = ("create", "run", "exec")
#: the global options that take their value as the next argument
#: (nsbox.cli.main.GLOBAL; a test keeps the two in step)
VALUED_GLOBAL_OPTIONS = ("--root", "--log", "--log-format", "--rootless", "--criu")


def verb_of(argv: list[str]) -> str | None:
    """The verb in ``[global options] VERB ...``, found without the parser."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] in VALUED_GLOBAL_OPTIONS else 1
    return argv[i] if i < len(argv) else None


def prelude(argv: list[str]) -> None:
    """What the launcher does before it imports the command line: a verb
    that moves a process into a new cgroup starts paying the kernel's grace
    period for that move now (~1 ms earlier than the verb itself could)."""
    if verb_of(argv) in MOVING_VERBS:
        from nsbox.cgroups import warmup

        warmup.ensure_started()
