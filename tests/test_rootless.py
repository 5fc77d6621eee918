"""Rootless: the OCI runtime run by an ordinary user, as podman runs runc
without root.

Each command runs as a real unprivileged process: ``setpriv`` drops to the
test user and execs ``python -m nsbox``.  Around it, a private mount
namespace (the child's, never pytest's) does two things this host needs: it
makes the interpreter reachable (it lives under /root, mode 0700, here) and
it gives the test user a passwd entry and /etc/subuid and /etc/subgid
ranges, which newuidmap/newgidmap read.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import ROOT, requires_root

from nsbox.oci.default import default_spec
from nsbox.testing.bundle import make_rootfs, write_config

pytestmark = [requires_root,
              pytest.mark.skipif(shutil.which("setpriv") is None or shutil.which("newuidmap") is None,
                                 reason="needs util-linux setpriv and the uidmap package")]

USER, UID = "nsboxrl", 23456
SUBID_START, SUBID_COUNT = 300000, 65536


def _unreachable_top(path: str) -> str | None:
    """The highest directory on *path* that others cannot search, if any."""
    parts = path.split("/")
    for i in range(2, len(parts) + 1):
        d = "/".join(parts[:i])
        if not os.stat(d).st_mode & 0o001:
            return d
    return None


class User:
    """Runs nsbox as the test user, with a state root ($XDG_RUNTIME_DIR/nsbox)
    of its own; clears every container it left at teardown."""

    def __init__(self, top: str) -> None:
        self.top = top
        self.xdg = os.path.join(top, "xdg")
        self.root = os.path.join(self.xdg, "nsbox")  # the default root for this user
        os.mkdir(self.xdg, 0o700)
        os.chown(self.xdg, UID, UID)
        etc = os.path.join(top, "etc")
        os.mkdir(etc)
        for name, line in (("passwd", f"{USER}:x:{UID}:{UID}::/:/bin/sh\n"),
                           ("group", f"{USER}:x:{UID}:\n")):
            with open(f"/etc/{name}") as f, open(os.path.join(etc, name), "w") as out:
                out.write(f.read() + line)
        for name in ("subuid", "subgid"):
            with open(os.path.join(etc, name), "w") as out:
                out.write(f"{USER}:{SUBID_START}:{SUBID_COUNT}\n")
        self.rootfs = make_rootfs(os.path.join(top, "rootfs"))
        _chown_tree(self.rootfs, UID)
        self.count = 0
        self.etc = etc
        self.script = self._prelude(etc)

    def before_dropping_root(self, lines: list[str]) -> None:
        """Run *lines* (sh) as root in the user's mount namespace before each command."""
        self.script = self._prelude(self.etc).replace("exec setpriv", "\n".join(lines) + "\nexec setpriv")

    def _prelude(self, etc: str) -> str:
        lines = ["set -e", "mount --make-rprivate /"]
        stash = os.path.join(self.top, "stash")
        moves = []
        needed = sorted({os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix), ROOT})
        tops: dict[str, list[str]] = {}
        for path in needed:
            top = _unreachable_top(path)
            if top is not None:
                tops.setdefault(top, []).append(path)
        for top, paths in tops.items():
            for path in paths:
                hold = f"{stash}/{len(moves)}"
                lines += [f"mkdir -p {hold}", f"mount --rbind {shlex.quote(path)} {hold}"]
                moves.append((hold, path))
            # a searchable stand-in for the directory, with only what we need in it
            lines.append(f"mount -t tmpfs -o mode=755 nsbox-rl {shlex.quote(top)}")
        for hold, path in moves:
            lines += [f"mkdir -p {shlex.quote(path)}", f"mount --move {hold} {shlex.quote(path)}"]
        for name in ("passwd", "group", "subuid", "subgid"):
            target = f"/etc/{name}"
            if not os.path.exists(target):
                lines.append(f": > {target}")
            lines.append(f"mount --bind {shlex.quote(os.path.join(etc, name))} {target}")
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/", "XDG_RUNTIME_DIR": self.xdg,
               "PYTHONDONTWRITEBYTECODE": "1"}
        lines.append(f"cd {shlex.quote(self.top)}")
        lines.append(f"exec setpriv --reuid={UID} --regid={UID} --clear-groups --inh-caps=-all -- env -i "
                     + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()) + ' "$@"')
        return "\n".join(lines)

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``nsbox ARGS`` as the user."""
        return self.command(sys.executable, "-m", "nsbox", *args, timeout=timeout)

    def command(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """*argv* as the user.  Output goes through files: a created container
        inherits the stdio of create, and would hold a pipe open."""
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            done = subprocess.run(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", self.script, "sh", *argv],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True, timeout=timeout)
            out.seek(0)
            err.seek(0)
            done.stdout, done.stderr = out.read(), err.read()
        return done

    def bundle(self, args: list[str], rootless: bool = True, **linux: object) -> str:
        """A bundle of nsbox's ``spec --rootless`` layout (the user's own id mapped to root)."""
        self.count += 1
        path = os.path.join(self.top, f"bundle{self.count}")
        os.mkdir(path)
        spec = default_spec(rootless=rootless, args=args, terminal=False)
        spec["root"] = {"path": self.rootfs, "readonly": True}
        assert isinstance(spec["linux"], dict)
        if rootless:
            spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": UID, "size": 1}]
            spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": UID, "size": 1}]
        spec["linux"].update(linux)
        write_config(path, spec)
        _chown_tree(path, UID)
        return path

    def state(self, cid: str) -> dict[str, object]:
        done = self("state", cid)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def cleanup(self) -> None:
        if os.path.isdir(self.root):
            for cid in os.listdir(self.root):
                if not cid.startswith("."):
                    subprocess.run([sys.executable, "-m", "nsbox", "--root", self.root, "delete", "--force", cid],
                                   capture_output=True, timeout=30)
        _kill_processes_of(range(UID, UID + 1), range(SUBID_START, SUBID_START + SUBID_COUNT))


def _chown_tree(top: str, uid: int) -> None:
    os.lchown(top, uid, uid)
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), uid, uid)


def _uid_of(pid: str) -> int | None:
    """The real uid of a live process; None for a zombie (this sandbox's
    PID 1 is slow to reap the orphans it inherits) or a gone one."""
    try:
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
    except OSError:
        return None
    if "\nState:\tZ" in status:
        return None
    return int(status.split("\nUid:")[1].split()[0])


def _processes_of(*uid_ranges: range) -> list[int]:
    return [int(p) for p in os.listdir("/proc")
            if p.isdigit() and any(_uid_of(p) in r for r in uid_ranges)]


def _kill_processes_of(*uid_ranges: range) -> list[int]:
    """SIGKILL what the user left running; returns what there was."""
    left = _processes_of(*uid_ranges)
    for pid in left:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    return left


@pytest.fixture
def user():
    top = tempfile.mkdtemp(prefix="nsbox-rootless-")
    os.chmod(top, 0o755)
    u = User(top)
    try:
        yield u
    finally:
        u.cleanup()
        shutil.rmtree(top)
    assert _processes_of(range(UID, UID + 1)) == [], "processes left behind"


def _assert_nothing_left(user: User) -> None:
    left = [n for n in os.listdir(user.root) if not n.startswith(".")] if os.path.isdir(user.root) else []
    assert left == [], "state left behind"
    # a killed container's processes take a moment to go
    deadline = time.monotonic() + 2
    while _processes_of(range(UID, UID + 1), range(SUBID_START, SUBID_START + SUBID_COUNT)):
        assert time.monotonic() < deadline, "processes left behind"
        time.sleep(0.01)


def test_run_maps_the_user_to_root_and_uses_the_users_state_dir(user):
    b = user.bundle(["sh", "-c", "id -u; id -g; cat /proc/self/uid_map; hostname; touch /dev/shm/made; "
                     "stat -c %u /dev/shm/made; ls /dev"])
    done = user("run", "--bundle", b, "c1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    assert lines[0:2] == ["0", "0"]
    assert lines[2].split() == ["0", str(UID), "1"]
    assert lines[3] == "nsbox"
    assert lines[4] == "0"
    assert {"null", "zero", "urandom", "tty", "pts", "shm"} <= set(lines[5:])
    # no --root: the state went to $XDG_RUNTIME_DIR/nsbox, which the user owns
    assert os.stat(user.root).st_uid == UID
    _assert_nothing_left(user)


def test_lifecycle_without_a_cgroup(user):
    b = user.bundle(["sleep", "60"])
    done = user("create", "--bundle", b, "c1")
    assert done.returncode == 0, done.stderr
    st = user.state("c1")
    assert st["status"] == "created" and st["owner"] == USER
    pid = int(st["pid"])
    # the host sees an ordinary process of the user's, in a user namespace of its own
    assert _uid_of(str(pid)) == UID
    assert os.stat(f"/proc/{pid}/ns/user").st_ino != os.stat("/proc/self/ns/user").st_ino
    # this host's cgroups are root's: the container stays in the caller's
    with open(f"/proc/{pid}/cgroup") as f, open("/proc/self/cgroup") as mine:
        assert f.read() == mine.read()
    # exec into the parked (created) container: its init is open to its owner
    done = user("exec", "c1", "id", "-u")
    assert (done.returncode, done.stdout) == (0, "0\n"), done.stderr
    assert user("start", "c1").returncode == 0
    assert user.state("c1")["status"] == "running"
    done = user("exec", "c1", "sh", "-c", "echo $$ >/dev/null; cat /proc/1/cmdline")
    assert done.stdout.split("\0")[:2] == ["sleep", "60"], done.stderr
    done = user("ps", "--format", "json", "c1")
    assert json.loads(done.stdout) == [pid], done.stderr
    done = user("pause", "c1")
    assert done.returncode == 1 and "has no cgroup" in done.stderr
    assert user("kill", "--all", "c1", "KILL").returncode == 0
    deadline = time.monotonic() + 10
    while user.state("c1")["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert user("delete", "c1").returncode == 0
    assert "does not exist" in user("state", "c1").stderr
    _assert_nothing_left(user)


def test_exec_into_a_container_whose_root_is_a_subordinate_id(user):
    """Root of the container is none of the user's own ids (a range of
    /etc/subuid): the parked init and the running process are still open to
    exec, since their user namespace is the user's."""
    ranges = [{"containerID": 0, "hostID": SUBID_START, "size": SUBID_COUNT}]
    b = user.bundle(["sleep", "60"], uidMappings=ranges, gidMappings=ranges)
    done = user("create", "--bundle", b, "c1")
    assert done.returncode == 0, done.stderr
    assert _uid_of(user.state("c1")["pid"]) == SUBID_START
    for status in ("created", "running"):
        assert user.state("c1")["status"] == status
        done = user("exec", "c1", "sh", "-c", "id -u; cat /proc/self/uid_map")
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["0", "0", str(SUBID_START), str(SUBID_COUNT)]
        if status == "created":
            assert user("start", "c1").returncode == 0
    assert user("delete", "--force", "c1").returncode == 0
    _assert_nothing_left(user)


def test_delete_of_a_created_container_kills_it(user):
    b = user.bundle(["sleep", "60"])
    assert user("create", "--bundle", b, "c1").returncode == 0
    pid = int(user.state("c1")["pid"])
    done = user("delete", "c1")
    assert done.returncode == 0, done.stderr
    assert not os.path.exists(f"/proc/{pid}/status") or _uid_of(str(pid)) != UID
    _assert_nothing_left(user)


def test_id_ranges_through_newuidmap(user):
    ranges = [{"containerID": 0, "hostID": UID, "size": 1},
              {"containerID": 1, "hostID": SUBID_START, "size": SUBID_COUNT}]
    b = user.bundle(["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; mkdir /dev/shm/d; "
                     "chown 1000:1000 /dev/shm/d; stat -c '%u %g' /dev/shm/d; "
                     "cat /proc/self/setgroups"], uidMappings=ranges, gidMappings=ranges)
    done = user("run", "--bundle", b, "c1")
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()]
    expected = [["0", str(UID), "1"], ["1", str(SUBID_START), str(SUBID_COUNT)]]
    assert rows[0:2] == expected and rows[2:4] == expected
    assert rows[4] == ["1000", "1000"]
    assert rows[5] == ["allow"]  # newgidmap's maps leave setgroups usable
    _assert_nothing_left(user)


def test_a_range_not_granted_is_refused_by_newuidmap(user):
    ranges = [{"containerID": 0, "hostID": UID, "size": 1},
              {"containerID": 1, "hostID": 900000, "size": 10}]
    b = user.bundle(["true"], uidMappings=ranges, gidMappings=ranges)
    done = user("run", "--bundle", b, "c1")
    assert done.returncode == 1
    assert "newgidmap" in done.stderr or "newuidmap" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    _assert_nothing_left(user)


def test_limits_without_a_cgroup_are_refused(user):
    b = user.bundle(["true"], resources={"memory": {"limit": 64 << 20}})
    done = user("run", "--bundle", b, "c1")
    assert done.returncode == 1
    assert "linux.resources" in done.stderr and "rootless" in done.stderr, done.stderr
    _assert_nothing_left(user)


def test_rootless_false_wants_a_cgroup(user):
    b = user.bundle(["true"])
    done = user("--rootless=false", "run", "--bundle", b, "c1")
    assert done.returncode == 1 and "Permission denied" in done.stderr, done.stderr
    _assert_nothing_left(user)


def test_a_user_namespace_is_required(user):
    b = user.bundle(["true"], rootless=False)
    done = user("run", "--bundle", b, "c1")
    assert done.returncode == 1 and "needs a user namespace" in done.stderr, done.stderr
    _assert_nothing_left(user)


def test_spec_rootless_maps_the_caller(user):
    path = os.path.join(user.top, "spec-bundle")
    os.mkdir(path)
    os.chown(path, UID, UID)
    done = user("spec", "--rootless", "--bundle", path)
    assert done.returncode == 0, done.stderr
    with open(os.path.join(path, "config.json")) as f:
        spec = json.load(f)
    assert spec["linux"]["uidMappings"] == [{"containerID": 0, "hostID": UID, "size": 1}]
    assert {"type": "user"} in spec["linux"]["namespaces"]
    # and it runs as written, but for the program, the terminal and the root
    spec["process"].update(args=["id", "-u"], terminal=False)
    spec["root"] = {"path": user.rootfs, "readonly": True}
    write_config(path, spec)
    done = user("run", "--bundle", path, "c1")
    assert (done.returncode, done.stdout) == (0, "0\n"), done.stderr
    _assert_nothing_left(user)


def test_terminals_run_and_exec(user):
    # script(1) gives nsbox a terminal of its own, which it proxies to the container's pty
    b = user.bundle(["sh", "-c", "tty; id -u; exit 3"])
    with open(os.path.join(b, "config.json")) as f:
        spec = json.load(f)
    spec["process"]["terminal"] = True
    write_config(b, spec)
    done = user.command("script", "-qec", f"{sys.executable} -m nsbox run --bundle {b} c1", "/dev/null")
    assert done.returncode == 3 and done.stdout.split() == ["/dev/pts/0", "0"], (done.stdout, done.stderr)
    assert user("run", "--detach", "--bundle", user.bundle(["sleep", "60"]), "c2").returncode == 0
    done = user.command("script", "-qec", f"{sys.executable} -m nsbox exec -t c2 sh -c tty", "/dev/null")
    assert done.returncode == 0 and done.stdout.split() == ["/dev/pts/0"], (done.stdout, done.stderr)
    assert user("delete", "--force", "c2").returncode == 0
    _assert_nothing_left(user)


# --- rootless podman: its runtime runs as root of podman's user namespace ----------

class RootlessPodman:
    """podman run by the test user, with nsbox (through an argv-logging
    wrapper) as its runtime: podman makes a user namespace from the user's
    /etc/subuid range and runs conmon and the runtime in it, as root there."""

    def __init__(self, user: User) -> None:
        from test_clients_e2e import IMAGE, oci_archive, runtime_wrapper

        self.user = user
        self.image = IMAGE
        home = os.path.join(user.top, "home")
        os.mkdir(home)
        self.runtime, self.log = runtime_wrapper(home, "nsbox-runtime")
        self.archive = oci_archive(os.path.join(home, "image.tar"), home)
        conf, storage = os.path.join(home, "containers.conf"), os.path.join(home, "storage.conf")
        with open(conf, "w") as f:
            f.write('[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]\n'
                    f'[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                    f'events_logfile_path = "{home}/events.log"\nruntime_supports_json = ["nsbox-runtime"]\n')
        with open(storage, "w") as f:  # vfs: nothing to mount, whatever the kernel allows a user
            f.write(f'[storage]\ndriver = "vfs"\nrunroot = "{user.xdg}/containers"\ngraphroot = "{home}/storage"\n')
        _chown_tree(home, UID)
        self.env = f"HOME={home} CONTAINERS_CONF={conf} CONTAINERS_STORAGE_CONF={storage}"

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.user.command("sh", "-c", f"env {self.env} podman --runtime {self.runtime} "
                                 + " ".join(shlex.quote(a) for a in args), timeout=timeout)


@pytest.fixture
def rootless_podman(user):
    if not (shutil.which("podman") and shutil.which("conmon")):
        pytest.skip("podman is not installed (apt-get install podman)")
    p = RootlessPodman(user)
    done = p("load", "-i", p.archive)
    assert done.returncode == 0, done.stderr
    try:
        yield p
    finally:
        p("rm", "-fa", "-t", "0")


def test_rootless_podman_runs_containers_with_nsbox(rootless_podman):
    from test_clients_e2e import verbs

    p = rootless_podman
    done = p("run", "--rm", "--network", "none", p.image, "sh", "-c", "id -u; cat /proc/self/uid_map; exit 5")
    assert done.returncode == 5, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "0"
    # the container is in podman's user namespace: root is the user, the rest its subordinate ids
    assert [line.split() for line in lines[1:]] == [["0", str(UID), "1"],
                                                    ["1", str(SUBID_START), str(SUBID_COUNT)]]
    done = p("run", "-d", "--name", "rl", "--network", "none", p.image, "sleep", "1000")
    assert done.returncode == 0, done.stderr
    done = p("exec", "rl", "sh", "-c", "echo in-exec; exit 6")
    assert (done.returncode, done.stdout) == (6, "in-exec\n"), done.stderr
    assert p("stop", "-t", "1", "rl").returncode == 0
    assert p("rm", "rl").returncode == 0
    assert {"create", "start", "exec", "kill", "delete"} <= set(verbs(p.log))
    # nsbox kept its state where a rootless runtime does, in the user's runtime
    # directory, and deleted it
    with open(p.log) as f:
        assert "--root" not in f.read()
    assert os.path.isdir(p.user.root)
    assert [name for name in os.listdir(p.user.root) if not name.startswith(".")] == []


def _cgroup2_mountpoint() -> str | None:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if " - cgroup2 " in line:
                return line.split()[4]
    return None


def test_a_delegated_cgroup_v2_subtree(user):
    """With a cgroup v2 subtree of its own (as systemd delegates one to a
    user), a rootless container gets its cgroup: ps, pause and resume work
    through it.  The user's commands see only cgroup v2 at /sys/fs/cgroup,
    as on a pure v2 host, and start inside the delegated cgroup."""
    v2 = _cgroup2_mountpoint()
    if v2 is None:
        pytest.skip("no cgroup2 mounted")
    name = f"nsbox-rl-deleg-{os.getpid()}"
    delegated = os.path.join(v2, name)
    os.mkdir(delegated)
    try:
        for path in (delegated, *(os.path.join(delegated, f) for f in
                                  ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads"))):
            os.chown(path, UID, UID)
        view = [] if v2 == "/sys/fs/cgroup" else [
            "grep ' - cgroup ' /proc/self/mountinfo | cut -d' ' -f5 | xargs -r -n1 umount",
            f"umount {shlex.quote(v2)}", "umount /sys/fs/cgroup", "mount -t cgroup2 none /sys/fs/cgroup"]
        user.before_dropping_root([*view, f"echo $$ > /sys/fs/cgroup/{name}/cgroup.procs"])
        b = user.bundle(["sleep", "60"], cgroupsPath="ctr")  # relative: below our own cgroup
        done = user("run", "--detach", "--bundle", b, "c1")
        assert done.returncode == 0, done.stderr
        pid = int(user.state("c1")["pid"])
        with open(f"/proc/{pid}/cgroup") as f:
            assert f"0::/{name}/ctr\n" in f.read()
        done = user("ps", "--format", "json", "c1")
        assert json.loads(done.stdout) == [pid], done.stderr
        assert user("pause", "c1").returncode == 0
        assert user.state("c1")["status"] == "paused"
        assert user("resume", "c1").returncode == 0
        assert user.state("c1")["status"] == "running"
        assert user("delete", "--force", "c1").returncode == 0
        assert not os.path.exists(os.path.join(delegated, "ctr"))
        _assert_nothing_left(user)
    finally:
        user.cleanup()
        for top, dirs, _ in os.walk(delegated, topdown=False):
            for d in dirs:
                os.rmdir(os.path.join(top, d))
        os.rmdir(delegated)
