"""``nsbox [global options] VERB [options] [args]``: global options and dispatch.

Verb modules are imported only when chosen, so a hot verb pays for its own
imports and no one else's.  Nor does this module import ``os`` (~1.3 ms; see
nsbox.state), which the status verbs do without.
"""

from __future__ import annotations

import posix
import sys

from nsbox.cli.options import NONE, REQUIRED, HelpRequested, Opt, Parser
from nsbox.errors import ExecError, NsboxError, UsageError

VERSION = "0.1.0"

#: verb -> (module, one-line description)
VERBS: dict[str, tuple[str, str]] = {
    "ns": ("nsbox.cli.ns", "namespace toolkit: unshare, enter, ls"),
    "demo": ("nsbox.cli.demo", "show each kind of isolation side by side with the host"),
    "create": ("nsbox.cli.create", "create a container from a bundle; its process waits for start"),
    "start": ("nsbox.cli.start", "start the process of a created container"),
    "run": ("nsbox.cli.run", "create and start a container"),
    "state": ("nsbox.cli.state", "print the OCI state of a container"),
    "kill": ("nsbox.cli.kill", "send a signal to a container's init (or all its processes)"),
    "delete": ("nsbox.cli.delete", "delete a stopped container and what it used"),
    "list": ("nsbox.cli.list", "list the containers"),
    "ls": ("nsbox.cli.list", "list the containers"),
    "exec": ("nsbox.cli.exec", "run a new process in a running container"),
    "pause": ("nsbox.cli.pause", "freeze a container's processes"),
    "resume": ("nsbox.cli.resume", "thaw a paused container"),
    "update": ("nsbox.cli.update", "change a running container's cgroup limits"),
    "events": ("nsbox.cli.events", "print a container's stats and OOM events"),
    "ps": ("nsbox.cli.ps", "show a container's processes"),
    "spec": ("nsbox.cli.spec", "write a default config.json"),
    "features": ("nsbox.cli.features", "print what this runtime supports (OCI features document)"),
}

GLOBAL = Parser(
    "nsbox",
    "[global options] VERB [options] [args]",
    [
        Opt("--trace", "print every kernel call to stderr as it happens", NONE),
        Opt("--debug", "show a traceback on errors", NONE),
        Opt("--root", "the containers' state directory (default /run/nsbox; not root: $XDG_RUNTIME_DIR/nsbox)",
            REQUIRED, metavar="DIR"),
        Opt("--log", "write errors to FILE too (clients read the last one)", REQUIRED, metavar="FILE"),
        Opt("--log-format", "text or json (lines with level, msg, time, as runc writes them)", REQUIRED,
            metavar="text|json"),
        Opt("--systemd-cgroup", "manage cgroups through systemd (needs a running systemd)", NONE),
        Opt("--rootless", "run without root privileges: auto, true or false", REQUIRED,
            metavar="auto|true|false"),
        Opt("--criu", "accepted for runc compatibility; checkpointing is not supported", REQUIRED,
            metavar="PATH"),
        Opt("-v|--version", "print the version and exit", NONE),
    ],
    about="Verbs:\n" + "\n".join(f"  {v:<8} {d}" for v, (_, d) in VERBS.items()),
)


class Context:
    """The global options, as every verb sees them."""

    __slots__ = ("root", "log", "log_format", "debug", "systemd_cgroup", "rootless")

    def __init__(self, opts: dict[str, object]) -> None:
        self.rootless = opts["rootless"] or "auto"
        if self.rootless not in ("auto", "true", "false"):
            raise UsageError(f"--rootless takes auto, true or false, not {self.rootless!r}")
        self.root = str(opts["root"] or default_root())
        self.log = opts["log"]
        self.log_format = opts["log_format"] or "text"
        if self.log_format not in ("text", "json"):
            raise UsageError(f"--log-format takes text or json, not {self.log_format!r}")
        self.debug = bool(opts["debug"])
        self.systemd_cgroup = bool(opts["systemd_cgroup"])

    def is_rootless(self) -> bool:
        """Whether to run as runc does without root: no cgroup where none can
        be made (unless limits are asked for), and a user namespace required.
        ``auto``: when not root, or root only of a user namespace."""
        if self.rootless != "auto":
            return self.rootless == "true"
        if posix.geteuid() != 0:
            return True
        from nsbox.userns import running_in_user_namespace

        return running_in_user_namespace()


def default_root() -> str:
    """/run/nsbox for root; a user's own runtime directory otherwise, as runc
    picks $XDG_RUNTIME_DIR/runc (else /run/user/UID, what pam_systemd makes).
    Root of a user namespace (rootless podman runs its runtime so) counts as
    a user when $XDG_RUNTIME_DIR is set, unless $USER says root (runc's rule)."""
    uid = posix.geteuid()
    xdg = environ_get("XDG_RUNTIME_DIR")
    if uid == 0:
        if not xdg or environ_get("USER") == "root":
            return "/run/nsbox"
        from nsbox.userns import running_in_user_namespace

        if not running_in_user_namespace():
            return "/run/nsbox"
    return f"{(xdg or f'/run/user/{uid}').rstrip('/')}/nsbox"


def _systemd_running() -> bool:
    import os  # only with --systemd-cgroup

    return os.path.isdir("/run/systemd/system")


def environ_get(name: str) -> str | None:
    """os.environ.get, without os.  posix.environ is the dict that os.environ
    wraps (bytes, decoded as os.environ decodes them), so it sees changes
    made through os.environ."""
    value = posix.environ.get(name.encode())
    return None if value is None else value.decode(sys.getfilesystemencoding(), "surrogateescape")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    debug = False
    verb = ""
    ctx: Context | None = None
    try:
        opts, rest = GLOBAL.parse(args)
        debug = bool(opts["debug"])
        ctx = Context(opts)
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
            from nsbox.cli.unsupported import REASONS, refuse

            if verb in REASONS:
                return refuse(verb)
            unknown, verb = verb, ""
            raise UsageError(f"unknown verb {unknown!r} (try: nsbox --help)")
        module = __import__(VERBS[verb][0], fromlist=["run"])
        if rest[1:2] and rest[1] in getattr(module, "SUBVERBS", ()):
            verb = f"{verb} {rest[1]}"  # errors name the subverb too: "nsbox: ns unshare: ..."
        if ctx.systemd_cgroup and not _systemd_running():
            raise UsageError("--systemd-cgroup: systemd is not running on this host (no /run/systemd/system); "
                             "drop the flag to use the cgroupfs driver")
        return int(module.run(rest[1:], ctx))
    except HelpRequested as h:
        sys.stdout.write(h.text)
        return 0
    except KeyboardInterrupt:
        return 130
    except BaseException as e:  # noqa: BLE001 - the one place errors become a line
        if isinstance(e, SystemExit):
            raise
        return report(e, verb, debug, ctx)


def report(e: BaseException, verb: str, debug: bool, ctx: Context | None = None) -> int:
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
    if ctx is not None and ctx.log:
        log_error(str(ctx.log), ctx.log_format, f"{verb}: {text}" if verb else text)
    if isinstance(e, ExecError):
        return e.exit_code
    if isinstance(e, UsageError):
        return 2
    return 1


def log_error(path: str, fmt: str, msg: str) -> None:
    """Append the error to --log as runc does; a client shows the last msg."""
    log_line(path, fmt, "error", msg)


def log_line(path: str, fmt: str, level: str, msg: str) -> None:
    import time

    from nsbox import jsonio

    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if fmt == "json":
        line = jsonio.dumps({"level": level, "msg": msg, "time": stamp})
    else:
        line = f"time={jsonio.dumps(stamp)} level={level} msg={jsonio.dumps(msg)}"
    try:
        with open(path, "a") as f:
            f.write(line + "\n")
    except OSError:
        pass


def entry() -> None:
    """The console script.  Exits with _exit after flushing: interpreter
    teardown is a measurable slice of a hot verb's run time, and nothing of
    ours needs it."""
    code = main()  # with the collector off (launch)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            code = code or 1
    posix._exit(code)
