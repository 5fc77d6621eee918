"""Command-line front ends: one thin module per verb.  They parse, call the
library, print, and return an exit status; only here is anything printed."""

#: the verbs that move a process into a new cgroup (see nsbox.cgroups.warmup)
MOVING_VERBS = ("create", "run", "exec")
#: the verbs that launch a container, through an early stage 1 (nsbox.process.early)
LAUNCHING_VERBS = ("create", "run")
#: the global options that take their value as the next argument
#: (nsbox.cli.main.GLOBAL; a test keeps the two in step)
VALUED_GLOBAL_OPTIONS = ("--root", "--log", "--log-format", "--rootless", "--criu")


def split_verb(argv: list[str]) -> tuple[list[str], str | None]:
    """(the global options, the verb) of ``[global options] VERB ...``, found
    without the parser."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] in VALUED_GLOBAL_OPTIONS else 1
    return argv[:i], (argv[i] if i < len(argv) else None)


def launch() -> None:
    """The nsbox command (bin/nsbox, python -m nsbox).  Before it imports the
    command line, a verb that moves a process into a new cgroup starts
    paying the kernel's grace period for that move (~1 ms earlier than the
    verb itself could; nsbox.cgroups.warmup), and one that launches a
    container forks its stage 1 (nsbox.process.early)."""
    import gc
    import sys

    # A verb lives for milliseconds and makes few cycles: no collection,
    # not even during its imports (each costs 0.1-1 ms, and more in forked
    # children, whose every touched page is a copy-on-write fault).
    gc.disable()
    global_options, verb = split_verb(sys.argv[1:])
    if verb in MOVING_VERBS:
        from nsbox.cgroups import warmup

        warmup.ensure_started()
    if verb in LAUNCHING_VERBS and "--trace" not in global_options:  # (a traced one is forked by the verb)
        from nsbox.process.early import EarlyStage1

        EarlyStage1.fork_for_verb()
    from nsbox.cli.main import entry

    entry()
