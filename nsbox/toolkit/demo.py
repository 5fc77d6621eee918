"""``nsbox demo``: each kind of namespace isolation, observed side by side with the host.

Every experiment runs one probe twice: plainly on the host, and inside new
namespaces through the real ``nsbox ns unshare`` (a child interpreter, so the
demo exercises the product and never changes the namespaces of the process
that runs it).  It compares what the two saw and decides whether that shows
isolation.  This module returns data and never prints; ``nsbox.cli.demo``
prints.

Nothing outlives an experiment: every child runs in its own session under a
timeout and is killed with its whole process group if it overstays; the
tmpfs dies with its mount namespace; the message queue is removed in a
``finally``.
"""

from __future__ import annotations

import os
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from nsbox.errors import NsboxError

#: seconds any one command may take; a healthy one takes well under one
TIMEOUT = 10.0

#: the product itself, run as a child so that its namespaces are never ours
NSBOX = [sys.executable, "-m", "nsbox"]

#: the hostname the UTS experiment sets, and the source name of its tmpfs
DEMO_NAME = "nsbox-demo"

#: CLOCK_BOOTTIME offset of the time experiment: one day
BOOT_OFFSET = 86400


class StepFailed(NsboxError):
    """One command of an experiment failed, timed out, or printed something unexpected."""


@dataclass(frozen=True)
class Row:
    """One observation: what was looked at, as the host sees it and as the inside sees it."""

    what: str
    host: str
    inside: str


@dataclass
class Outcome:
    """What one experiment observed.  ``command`` is the nsbox command line it ran,
    for the reader to repeat; ``error`` says why it could not observe, if it could not."""

    kind: str
    title: str
    lesson: str
    rows: list[Row] = field(default_factory=list)
    command: str = ""
    isolated: bool = False
    error: str | None = None


def row(what: str, host: object, inside: object) -> Row:
    # Values collapse to single-spaced one-liners so a table of them stays aligned.
    return Row(what, " ".join(str(host).split()), " ".join(str(inside).split()))


# --- running commands ------------------------------------------------------


@contextmanager
def _child(argv: list[str], stdin: int, show_stderr: bool) -> Iterator[subprocess.Popen[bytes]]:
    """Start *argv* in a session of its own; on the way out, kill whatever is left of it.

    The session is what makes "no processes remain" hold: nsbox may fork (the
    PID 1 of a new PID namespace), and killing the group reaches that child too.
    """
    proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                            stderr=None if show_stderr else subprocess.PIPE, start_new_session=True)
    try:
        yield proc
    finally:
        # Only while the leader is unreaped is its pid (= the group id) surely still ours.
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        proc.wait()


def _run(argv: list[str], shown: str, show_stderr: bool = False) -> str:
    """Run *argv* to completion and return its stdout; *shown* names it in errors."""
    with _child(argv, subprocess.DEVNULL, show_stderr) as proc:
        try:
            out, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            raise StepFailed(f"{shown}: no answer after {TIMEOUT:g} s") from None
    if proc.returncode != 0:
        raise StepFailed(_failure(shown, proc.returncode, err))
    return out.decode(errors="replace")


def _failure(shown: str, status: int, err: bytes | None) -> str:
    """``CMD exited N: LAST LINE OF ITS STDERR``; with --trace its stderr was not captured."""
    if err is None:
        return f"{shown} exited {status} (its messages are above)"
    lines = err.decode(errors="replace").strip().splitlines()
    return f"{shown} exited {status}: {lines[-1] if lines else '(no message)'}"


def _read_line(proc: subprocess.Popen[bytes], deadline: float) -> str:
    """The first line *proc* prints, read without blocking past *deadline*."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError
        chunk = os.read(fd, 4096)  # the raw fd: a buffered readline could block for good
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").partition("\n")[0]


class Probe:
    """Runs the commands of one experiment, and remembers the nsbox command line
    it ran last so the reader can repeat it."""

    def __init__(self, trace: bool = False) -> None:
        self.trace = trace
        self.command = ""

    def host(self, *argv: str) -> str:
        return _run(list(argv), f"`{shlex.join(argv)}`")

    def inside(self, opts: list[str], *argv: str) -> str:
        """Run *argv* under ``nsbox ns unshare OPTS``; with tracing on, its kernel
        calls go to our stderr so the reader sees them."""
        return _run(self._nsbox(opts, argv), f"`{self.command}`", show_stderr=self.trace)

    def inside_while(self, opts: list[str], argv: list[str], look: Callable[[], str]) -> tuple[str, str]:
        """Run *argv* inside until it prints its first line, then call *look* on the
        host while the namespaces still exist.  *argv* must then wait for a line on
        its stdin.  Returns (that first line, what *look* returned).

        Why concurrently: a mount seen absent from the host only after its
        namespace died would prove nothing.
        """
        full = self._nsbox(opts, argv)
        shown = f"`{self.command}`"
        with _child(full, subprocess.PIPE, self.trace) as proc:
            try:
                first = _read_line(proc, time.monotonic() + TIMEOUT)
            except TimeoutError:
                raise StepFailed(f"{shown}: no answer after {TIMEOUT:g} s") from None
            seen = look()
            assert proc.stdin is not None
            try:
                proc.stdin.write(b"\n")  # its `read` returns, and it finishes
                proc.stdin.close()
            except BrokenPipeError:
                pass  # it is gone already; its status says how it went
            try:
                status = proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                raise StepFailed(f"{shown}: did not finish within {TIMEOUT:g} s") from None
            err = proc.stderr.read() if proc.stderr is not None else None
        if status != 0:
            raise StepFailed(_failure(shown, status, err))
        return first, seen

    def _nsbox(self, opts: list[str], argv: tuple[str, ...] | list[str]) -> list[str]:
        args = ["--trace"] if self.trace else []
        args += ["ns", "unshare", *opts, *argv]
        self.command = shlex.join(["nsbox", *args])
        return [*NSBOX, *args]


# --- the experiments -------------------------------------------------------
# Each takes a Probe and returns (rows, isolated?).

Observation = tuple[list[Row], bool]


def uts(p: Probe) -> Observation:
    host = p.host("hostname").strip()
    inside = p.inside(["--uts", "--hostname", DEMO_NAME], "hostname").strip()
    return [row("hostname", host, inside)], inside == DEMO_NAME != host


def pid(p: Probe) -> Observation:
    # The same shell on both sides: its own pid, then one line per process ps can see.
    script = "echo $$; ps -e -o pid="
    host = p.host("sh", "-c", script).split()
    inside = p.inside(["--pid", "--fork", "--mount-proc"], "sh", "-c", script).split()
    if len(host) < 2 or len(inside) < 2:
        raise StepFailed(f"ps printed no processes: host {host!r}, inside {inside!r}")
    rows = [row("pid of the shell", host[0], inside[0]),
            row("processes ps -e lists", len(host) - 1, len(inside) - 1)]
    return rows, inside[0] == "1" and len(inside) < len(host)


def mount(p: Probe) -> Observation:
    script = f"mount -t tmpfs {DEMO_NAME} /tmp && grep {DEMO_NAME} /proc/self/mountinfo && read _"
    line, host = p.inside_while(["--mount"], ["sh", "-c", script],
                                lambda: ", ".join(mounts_of(DEMO_NAME)) or "absent")
    inside = ", ".join(mounts_of(DEMO_NAME, [line])) or "absent"
    return [row(f"tmpfs {DEMO_NAME!r} mounted on", host, inside)], host == "absent" != inside


def ipc(p: Probe) -> Observation:
    made = p.host("ipcmk", "-Q")
    qid = queue_id(made)
    try:
        host = queue_ids(p.host("ipcs", "-q"))
        inside = queue_ids(p.inside(["--ipc"], "ipcs", "-q"))
    finally:
        p.host("ipcrm", "-q", str(qid))  # always: a queue outlives every process
    listed = {True: "listed", False: "not listed"}
    rows = [row(f"queue {qid} (ipcmk -Q)", listed[qid in host], listed[qid in inside]),
            row("queues ipcs -q lists", len(host), len(inside))]
    return rows, qid in host and qid not in inside


def net(p: Probe) -> Observation:
    host = links(p.host("ip", "-o", "link"))
    inside = links(p.inside(["--net"], "ip", "-o", "link"))
    return [row("interfaces (state)", ", ".join(host), ", ".join(inside))], inside != host


def user(p: Probe) -> Observation:
    # As root, --map-root-user maps 0 to 0, so the uid alone looks the same on
    # both sides; the map shows the difference: inside, only one id exists.
    script = "id -u; cat /proc/self/uid_map"
    host = p.host("sh", "-c", script).splitlines()
    inside = p.inside(["--user", "--map-root-user"], "sh", "-c", script).splitlines()
    if len(host) < 2 or len(inside) < 2:
        raise StepFailed(f"no uid map: host {host!r}, inside {inside!r}")
    rows = [row("uid (id -u)", host[0], inside[0]),
            row("uid map (inside outside count)", "; ".join(host[1:]), "; ".join(inside[1:]))]
    return rows, inside[0].strip() == "0" and inside[1:] != host[1:]


def cgroup(p: Probe) -> Observation:
    script = "readlink /proc/self/ns/cgroup; cat /proc/self/cgroup"
    host_ns, *host_lines = p.host("sh", "-c", script).splitlines()
    inside_ns, *inside_lines = p.inside(["--cgroup"], "sh", "-c", script).splitlines()
    host, inside = cgroup_paths(host_lines), cgroup_paths(inside_lines)
    rows = [row("namespace", host_ns, inside_ns)]
    # Only the hierarchies where the host is below the root show the change.
    rows += [row(f"cgroup path ({name})", path, inside.get(name, "?"))
             for name, path in host.items() if inside.get(name) != path]
    if len(rows) == 1:
        rows.append(row("cgroup path (every hierarchy)", "/", "/"))
    return rows, host_ns != inside_ns and set(inside.values()) == {"/"}


def time_(p: Probe) -> Observation:
    host = uptime(p.host("cat", "/proc/uptime"))
    inside = uptime(p.inside(["--time", "--boottime", str(BOOT_OFFSET)], "cat", "/proc/uptime"))
    rows = [row("uptime (/proc/uptime)", duration(host), duration(inside))]
    # The inside was read a moment after the host: allow a minute of that.
    return rows, abs(inside - host - BOOT_OFFSET) < 60


# --- reading what the tools print ------------------------------------------


def mounts_of(source: str, lines: list[str] | None = None) -> list[str]:
    """Mount points of the mounts whose source is *source*, from mountinfo lines
    (default: this process's /proc/self/mountinfo)."""
    if lines is None:
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    points = []
    for line in lines:
        fields, _, tail = line.partition(" - ")
        parts, rest = fields.split(), tail.split()
        if len(parts) >= 5 and len(rest) >= 2 and rest[1] == source:
            points.append(f"{parts[4]} ({rest[0]})")
    return points


def queue_id(ipcmk_output: str) -> int:
    """The id in ipcmk's ``Message queue id: 3``."""
    try:
        return int(ipcmk_output.split(":")[-1])
    except ValueError:
        raise StepFailed(f"ipcmk -Q printed {ipcmk_output.strip()!r}, not a queue id; "
                         "remove the queue with ipcrm -q ID") from None


def queue_ids(ipcs_output: str) -> set[int]:
    """The msqid column of ``ipcs -q``: the rows are those whose key starts 0x."""
    return {int(f[1]) for f in (line.split() for line in ipcs_output.splitlines())
            if len(f) >= 2 and f[0].startswith("0x") and f[1].isdigit()}


def links(ip_output: str) -> list[str]:
    """``NAME STATE`` of each interface in ``ip -o link``."""
    out = []
    for line in ip_output.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        name = parts[1].rstrip(":").partition("@")[0]  # veth0@if3: the peer is not the name
        state = parts[parts.index("state") + 1] if "state" in parts[:-1] else "?"
        out.append(f"{name} {state}")
    return out


def cgroup_paths(lines: list[str]) -> dict[str, str]:
    """Hierarchy -> path from /proc/self/cgroup (``ID:CONTROLLERS:PATH``); cgroup v2's
    line has no controllers and is named cgroup2."""
    paths = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        paths[controllers or "cgroup2"] = path
    return paths


def uptime(text: str) -> float:
    try:
        return float(text.split()[0])
    except (IndexError, ValueError):
        raise StepFailed(f"/proc/uptime read {text.strip()!r}") from None


def duration(seconds: float) -> str:
    """``87601 s (1 d 00:20)``: seconds, and days hours:minutes so a day's jump shows."""
    s = int(seconds)
    return f"{s} s ({s // 86400} d {s % 86400 // 3600:02d}:{s % 3600 // 60:02d})"


# --- the catalogue ---------------------------------------------------------


@dataclass(frozen=True)
class Experiment:
    title: str
    lesson: str
    observe: Callable[[Probe], Observation]


#: in the order the demo shows them; the keys are the names --only takes
EXPERIMENTS: dict[str, Experiment] = {
    "uts": Experiment("UTS namespace: the hostname",
                      "a hostname set inside never reaches the host", uts),
    "pid": Experiment("PID namespace: process ids",
                      "inside, the command is PID 1 and sees only its own processes", pid),
    "mount": Experiment("mount namespace: the mount table",
                        "a mount made inside never shows in the host's (the command waits for Enter)",
                        mount),
    "ipc": Experiment("IPC namespace: System V message queues",
                      "a queue made on the host does not exist inside", ipc),
    "net": Experiment("network namespace: the interfaces",
                      "inside there is only a loopback device, and it is down", net),
    "user": Experiment("user namespace: user ids",
                       "uid 0 inside is the outside uid the map names: here root, and no other id",
                       user),
    "cgroup": Experiment("cgroup namespace: the cgroup a process sees",
                         "inside, the process's own cgroup looks like the root /", cgroup),
    "time": Experiment("time namespace: the boot clock",
                       f"--boottime {BOOT_OFFSET} sets the boot clock inside one day ahead", time_),
}

#: other names people type for an experiment
ALIASES = {"mnt": "mount", "network": "net", "uptime": "time", "hostname": "uts"}


def run_experiment(kind: str, trace: bool = False) -> Outcome:
    """Run one experiment (a key of EXPERIMENTS).  With *trace*, the nsbox
    children run with ``--trace`` and their stderr is ours."""
    exp = EXPERIMENTS[kind]
    probe = Probe(trace)
    outcome = Outcome(kind, exp.title, exp.lesson)
    try:
        outcome.rows, outcome.isolated = exp.observe(probe)
    except StepFailed as e:
        outcome.error = str(e)
    except OSError as e:  # a tool that is not installed, most likely
        outcome.error = f"{e.filename or 'running a command'}: {e.strerror or e}"
    outcome.command = probe.command
    return outcome
