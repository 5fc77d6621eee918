"""Shared fixtures.  Kernel tests run nsbox in child processes only: the
pytest process itself never changes namespace."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NSBOX = [sys.executable, "-m", "nsbox"]


def nsbox(*args: str, check: bool = False, timeout: float = 30, **kw) -> subprocess.CompletedProcess[str]:
    """Run ``nsbox ARGS...`` and capture its output as text."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("stdin", subprocess.DEVNULL)
    done = subprocess.run([*NSBOX, *args], text=True, timeout=timeout, check=False, **kw)
    if check and done.returncode != 0:
        raise AssertionError(f"nsbox {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done


def sh(script: str, check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess[str]:
    """Run a shell script (with ``nsbox`` on PATH as a function) and capture its output."""
    prelude = f'nsbox() {{ {" ".join(NSBOX)} "$@"; }}\n'
    done = subprocess.run(["sh", "-c", prelude + script], text=True, capture_output=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    if check and done.returncode != 0:
        raise AssertionError(f"script exited {done.returncode}:\n{script}\nstdout:\n{done.stdout}\n"
                             f"stderr:\n{done.stderr}")
    return done


def ns_inode(pid: int | str, name: str) -> int:
    return os.stat(f"/proc/{pid}/ns/{name}").st_ino


requires_root = pytest.mark.skipif(os.geteuid() != 0, reason="kernel test: needs root")


@pytest.fixture
def background():
    """Start long-running nsbox processes; all are killed and reaped at teardown."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str, **kw) -> subprocess.Popen[str]:
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen([*NSBOX, *args], text=True, start_new_session=True, **kw)
        procs.append(p)
        return p

    yield start
    for p in procs:
        try:
            os.killpg(p.pid, 9)
        except ProcessLookupError:
            pass
        p.wait(timeout=10)
        for stream in (p.stdout, p.stderr):
            if stream:
                stream.close()


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def wait_for_line(proc: subprocess.Popen[str], expected: str = "ready", timeout: float = 10) -> str:
    """Read *proc*'s stdout until a line equal to *expected* (fails after *timeout*)."""
    import selectors

    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    import time

    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        if sel.select(timeout=max(0.0, deadline - time.monotonic())):
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if line.strip() == expected:
                return line
    stderr = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
    raise AssertionError(f"no {expected!r} line from {proc.args}; got {seen!r}; stderr {stderr!r}")


#: Modules nsbox needs on its unshare/enter paths; imported while still root,
#: because an unprivileged uid cannot read this machine's interpreter tree.
_PRELOAD = ("nsbox.cli.main nsbox.cli.ns nsbox.cli.ns_unshare nsbox.cli.ns_enter nsbox.cli.signals "
            "nsbox.toolkit.unshare nsbox.toolkit.enter nsbox.toolkit.launch nsbox.userns "
            "nsbox.namespaces nsbox.process.errpipe nsbox._sys.trace subprocess pwd grp traceback ctypes "
            "encodings.idna")

UNPRIVILEGED_UID = 12345


def read_pty_until(master: int, marker: bytes, timeout: float = 10) -> bytes:
    """What a container writes to its terminal, read from the pty master
    until *marker* shows up (or the pty closes, or *timeout* passes)."""
    import time

    out = b""
    deadline = time.monotonic() + timeout
    while marker not in out and time.monotonic() < deadline:
        try:
            out += os.read(master, 4096)
        except OSError:  # EIO: the last process of the pty's session is gone
            break
    return out


def nsbox_as(uid: int, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``nsbox ARGS`` as *uid* (gid the same, no groups, no capabilities).

    The interpreter starts as root, imports what nsbox needs, then drops to
    *uid* for good before nsbox runs: from then on it is an ordinary
    unprivileged process, which is what the test needs.
    """
    code = (
        "import os, sys\n"
        f"for m in {_PRELOAD!r}.split(): __import__(m)\n"
        "os.chdir('/')\n"
        f"os.setgroups([]); os.setresgid({uid}, {uid}, {uid}); os.setresuid({uid}, {uid}, {uid})\n"
        # Changing uids made us non-dumpable, which makes /proc/self/* root's;
        # a process exec'd by that user normally would be dumpable.
        "import ctypes; ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)\n"
        "from nsbox.cli.main import main\n"
        "sys.stdout.flush(); code = main(sys.argv[1:]); sys.stdout.flush(); os._exit(code)\n"
    )
    return subprocess.run([sys.executable, "-c", code, *args], text=True, capture_output=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, cwd="/")


def in_child(fn, *args):
    """Run ``fn(*args)`` in a forked child and return its result (or raise its
    exception here).  For tests that must change namespaces: the child does,
    the pytest process never does."""
    import pickle

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            payload = pickle.dumps((True, fn(*args)))
        except BaseException as e:  # noqa: BLE001 - sent to the parent
            try:
                payload = pickle.dumps((False, e))
            except Exception:  # an unpicklable exception
                payload = pickle.dumps((False, RuntimeError(repr(e))))
        with os.fdopen(w, "wb") as f:
            f.write(payload)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    ok, value = pickle.loads(data)
    if not ok:
        raise value
    return value


def mountpoints() -> set[str]:
    """Every mount point of our mount namespace, from mountinfo (a directory
    bound onto itself keeps its st_dev, so os.path.ismount misses it)."""
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


def _nsbox_cgroups() -> set[str]:
    found = set()
    for top, dirs, _ in os.walk("/sys/fs/cgroup"):
        found.update(os.path.join(top, d) for d in dirs if "nsbox" in d)
    return found


def _nsbox_processes() -> set[int]:
    """Live processes an nsbox launch made and named (stage 1, a parked init)."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                comm, state = f.read().split(" (", 1)[1].rsplit(") ", 1)
        except (OSError, IndexError, ValueError):
            continue
        if comm.startswith("nsbox:") and not state.startswith("Z"):
            found.add(int(pid))
    return found


def _state_dirs() -> set[str]:
    try:
        return set(os.listdir("/run/nsbox"))
    except FileNotFoundError:
        return set()


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_after_the_suite():
    """After every test: no mount, cgroup, state directory or nsbox process
    that was not there before the suite (torn down last, after the cgroup
    parents below are removed)."""
    if os.geteuid() != 0:
        yield
        return
    before = (mountpoints(), _nsbox_cgroups(), _nsbox_processes(), _state_dirs())
    yield
    import time

    deadline = time.monotonic() + 5  # a killed container's last processes are being reaped
    while True:
        after = (mountpoints(), _nsbox_cgroups(), _nsbox_processes(), _state_dirs())
        left = {name: sorted(now - then) for name, now, then in
                zip(("mounts", "cgroups", "processes", "state dirs in /run/nsbox"), after, before) if now - then}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not left, f"the test suite left behind: {left}"


@pytest.fixture(scope="session", autouse=True)
def _remove_cgroup_parents_we_caused():
    """Containers' cgroups are removed by delete; their shared parents stay
    (as with runc).  At the end of the run, remove the one this run's
    runtime tests share when it is empty: /nsbox-rt-<pid>."""
    yield
    root = "/sys/fs/cgroup"
    if not os.path.isdir(root) or os.geteuid() != 0:
        return
    names = {f"nsbox-rt-{os.getpid()}"}
    for top, dirs, _ in os.walk(root, topdown=False):
        for d in dirs:
            path = os.path.join(top, d)
            if any(part in names for part in os.path.relpath(path, root).split("/")[1:]):
                try:
                    os.rmdir(path)
                except OSError:
                    pass  # not empty: another run's container, or a leak the tests report
