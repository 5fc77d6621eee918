"""The OCI runtime on the real kernel: every verb, and the spec observed from inside."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import NSBOX, nsbox, read_pty_until, requires_root

from nsbox.state import SECCOMP_CACHE
from nsbox.testing.bundle import make_bundle, make_rootfs, read_config, write_config

pytestmark = requires_root


class Runtime:
    """nsbox with its own --root under tmp_path; deletes every container at teardown."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.root = str(tmp_path / "state")
        self.rootfs = make_rootfs(str(tmp_path / "rootfs"))
        self.count = 0

    def __call__(self, *args, **kw):
        return nsbox("--root", self.root, *args, **kw)

    def bundle(self, args, **overrides):
        self.count += 1
        path = str(self.tmp / f"bundle{self.count}")
        b = make_bundle(path, args=args, rootfs=self.rootfs, **overrides)
        spec = read_config(b)
        # cgroups are global: a path of this test run's own, so that two runs
        # (or a container id reused by another test) never share one
        spec["linux"].setdefault("cgroupsPath", f"/nsbox-rt-{os.getpid()}/{self.count}")
        write_config(b, spec)
        return b

    def run(self, args, **overrides):
        """``nsbox run`` in the foreground: (status, stdout, stderr)."""
        b = self.bundle(args, **overrides)
        r = self("run", "--bundle", b, f"c{self.count}", timeout=60)
        return r.returncode, r.stdout, r.stderr

    def create(self, cid, args, **overrides):
        b = self.bundle(args, **overrides)
        # the container inherits create's stdio: files, so no pipe stays open
        with open(self.tmp / f"{cid}.out", "w") as out, open(self.tmp / f"{cid}.err", "w+") as err:
            r = self("create", "--bundle", b, "--pid-file", str(self.tmp / f"{cid}.pid"), cid,
                     stdout=out, stderr=err)
            err.seek(0)
            assert r.returncode == 0, err.read()
        return b

    def output(self, cid):
        with open(self.tmp / f"{cid}.out") as f:
            return f.read()

    def state(self, cid):
        r = self("state", cid, check=True)
        return json.loads(r.stdout)

    def wait_status(self, cid, status, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state(cid)["status"] == status:
                return
            time.sleep(0.02)
        raise AssertionError(f"{cid} never became {status}: {self.state(cid)}")

    def cleanup(self):
        if os.path.isdir(self.root):
            # the compiled-seccomp cache is not a container's state
            for cid in set(os.listdir(self.root)) - {SECCOMP_CACHE}:
                self("delete", "--force", cid)
            assert set(os.listdir(self.root)) <= {SECCOMP_CACHE}, "state left behind"


@pytest.fixture
def rt(tmp_path):
    runtime = Runtime(tmp_path)
    yield runtime
    runtime.cleanup()
    assert _mounts_under(str(tmp_path)) == [], "mounts left behind on the host"


def _mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(path)]


# --- the lifecycle ---------------------------------------------------------

def test_create_start_state_delete(rt):
    rt.create("life", ["sh", "-c", "echo started; sleep 0.3"])
    state = rt.state("life")
    assert state["status"] == "created" and state["id"] == "life"
    pid = state["pid"]
    assert int(open(rt.tmp / "life.pid").read()) == pid
    assert os.path.exists(f"/proc/{pid}")
    assert rt.output("life") == ""  # parked: the program has not run
    rt("start", "life", check=True)
    assert rt.state("life")["status"] in ("running", "stopped")
    rt.wait_status("life", "stopped")
    assert rt.output("life") == "started\n"
    assert "pid" not in rt.state("life")
    rt("delete", "life", check=True)
    r = rt("state", "life")
    assert r.returncode == 1 and "container life does not exist" in r.stderr


def test_status_verbs_do_without_os(rt):
    # In a -S interpreter, as the launcher starts one, `import os` costs
    # ~1.3 ms, a seventh of such a verb: state, kill, start, list and delete
    # of a stopped container must not import it (nsbox.state says how).
    from conftest import ROOT

    def imports_os(*args):
        code = (f"import sys; sys.path.append({ROOT!r}); sys.argv = ['nsbox', *{list(args)!r}]\n"
                "from nsbox.cli.main import main\n"
                "status = main(); sys.stdout.flush()\n"
                "sys.stderr.write(f'status={status} os={\"os\" in sys.modules}')\n")
        r = subprocess.run([sys.executable, "-S", "-P", "-c", code], capture_output=True, text=True, timeout=30)
        last = r.stderr.splitlines()[-1] if r.stderr else ""
        assert last.startswith("status=0 "), r.stderr
        return last.endswith("os=True")

    rt.create("lean", ["true"])
    assert not imports_os("--root", rt.root, "state", "lean")
    assert not imports_os("--root", rt.root, "kill", "lean", "CONT")  # harmless to the parked init
    assert not imports_os("--root", rt.root, "start", "lean")
    rt.wait_status("lean", "stopped")
    assert not imports_os("--root", rt.root, "list")
    assert not imports_os("--root", rt.root, "delete", "lean")
    assert not os.path.exists(os.path.join(rt.root, "lean"))
    # the check itself sees os where it is imported
    assert imports_os("--root", rt.root, "spec", "--bundle", str(rt.tmp))


def test_run_foreground_exit_status_and_output(rt):
    status, out, _ = rt.run(["sh", "-c", "echo hello from $(hostname); exit 3"])
    assert (status, out) == (3, "hello from nsbox\n")
    assert set(os.listdir(rt.root)) <= {SECCOMP_CACHE}  # run deletes what it made (the cache is not state)


def test_run_detach_then_kill(rt):
    b = rt.bundle(["sleep", "60"])
    rt("run", "-d", "--bundle", b, "bg", check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert rt.state("bg")["status"] == "running"
    rt("kill", "bg", "KILL", check=True)
    rt.wait_status("bg", "stopped")
    rt("delete", "bg", check=True)


def test_start_twice_and_delete_running_are_refused(rt):
    rt.create("twice", ["sleep", "60"])
    rt("start", "twice", check=True)
    r = rt("start", "twice")
    assert r.returncode == 1 and "cannot start a container that is running" in r.stderr
    r = rt("delete", "twice")
    assert r.returncode == 1 and "cannot delete a running container" in r.stderr
    rt("delete", "--force", "twice", check=True)
    assert rt("state", "twice").returncode == 1


def test_delete_created_kills_its_init(rt):
    rt.create("parked", ["true"])
    pid = rt.state("parked")["pid"]
    rt("delete", "parked", check=True)
    assert not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split(")")[1][:3]


def test_delete_force_of_missing_succeeds(rt):
    assert rt("delete", "--force", "never-was").returncode == 0
    r = rt("delete", "never-was")
    assert r.returncode == 1 and "does not exist" in r.stderr


def test_delete_force_clears_what_a_killed_create_left(rt):
    # a client that times out kills create mid-way (runtime-tools does):
    # its state dir, cgroups and parked init must not stay forever
    hook_pid = rt.tmp / "hook.pid"
    b = rt.bundle(["true"], hooks={"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", f"echo $$ > {hook_pid}; exec sleep 30"]}]})
    cgroup_dir = f"/sys/fs/cgroup/pids{read_config(b)['linux']['cgroupsPath']}"
    create = subprocess.Popen([*NSBOX, "--root", rt.root, "create", "--bundle", b, "killed"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not (hook_pid.exists() and hook_pid.read_text().strip()):
            assert time.monotonic() < deadline, "the hook never ran"
            time.sleep(0.02)
        init_pids = open(f"{cgroup_dir}/cgroup.procs").read().split()
        assert init_pids  # init is parked in its cgroup
        create.kill()
        create.wait()
    finally:
        os.kill(int(hook_pid.read_text()), 9) if hook_pid.exists() and hook_pid.read_text().strip() else None
    assert os.path.isdir(os.path.join(rt.root, "killed"))
    assert rt("delete", "--force", "killed").returncode == 0
    assert not os.path.exists(os.path.join(rt.root, "killed"))
    assert not os.path.exists(cgroup_dir)
    for pid in init_pids:
        assert not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split(")")[1][:3]


def test_create_duplicate_id(rt):
    rt.create("dup", ["true"])
    b = rt.bundle(["true"])
    r = rt("create", "--bundle", b, "dup")
    assert r.returncode == 1 and "container dup already exists" in r.stderr


def _stage1_processes() -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().rstrip("\n")
        except OSError:
            continue
        if comm == "nsbox:[stage1]":
            found.append(int(pid))
    return found


def test_an_early_stage1_that_dies_is_reported_by_its_own_error(rt):
    import sys

    b = rt.bundle(["true"])
    code = ("import sys\nimport nsbox.process.create as create\n"
            "def broken(chan, hold):\n    raise RuntimeError('stage 1 could not start')\n"
            "create.early_stage1 = broken\n"
            "from nsbox.cli.main import main\n"
            f"sys.exit(main(['--root', {rt.root!r}, 'run', '--bundle', {b!r}, 'dead']))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and r.stderr == "nsbox: run: RuntimeError: stage 1 could not start\n", r.stderr
    assert not os.path.exists(os.path.join(rt.root, "dead"))


def test_trace_shows_the_container_side_too(rt):
    """With --trace the verb forks stage 1 itself (the launcher's would not
    trace): stage 1's unshare and init's pivot_root are in the trace."""
    b = rt.bundle(["true"])
    r = rt("--trace", "run", "--bundle", b, "traced")
    assert r.returncode == 0, r.stderr
    assert "unshare(CLONE_NEWNS|" in r.stderr
    assert "nsbox[1]: pivot_root(" in r.stderr and "nsbox[1]: sethostname(\"nsbox\") = 0" in r.stderr


def test_a_create_that_fails_before_launch_stops_its_early_stage1(rt):
    # create and run fork stage 1 as they start; a verb that fails before it
    # launches (here: a config that is not JSON) must not leave it behind
    b = rt.bundle(["true"])
    with open(os.path.join(b, "config.json"), "w") as f:
        f.write("{not json")
    before = set(_stage1_processes())
    for verb in ("create", "run"):
        r = rt(verb, "--bundle", b, "bad")
        assert r.returncode == 1 and "not valid JSON" in r.stderr
    assert set(_stage1_processes()) - before == set()
    assert not os.path.exists(os.path.join(rt.root, "bad"))


def test_kill_all_and_signal_names(rt):
    rt.create("k", ["sh", "-c", "sleep 60 & sleep 60 & wait"])
    rt("start", "k", check=True)
    time.sleep(0.2)
    r = rt("ps", "--format", "json", "k", check=True)
    pids = json.loads(r.stdout)
    assert len(pids) == 3
    rt("kill", "--all", "k", "SIGKILL", check=True)
    rt.wait_status("k", "stopped")
    assert not any(os.path.exists(f"/proc/{p}/cmdline") and open(f"/proc/{p}/cmdline").read() for p in pids)


def test_list(rt):
    rt.create("l1", ["true"])
    r = rt("list", "--format", "json", check=True)
    rows = json.loads(r.stdout)
    assert [(row["id"], row["status"]) for row in rows] == [("l1", "created")]
    assert rt("list", "-q", check=True).stdout == "l1\n"
    assert "l1" in rt("list", check=True).stdout


# --- the spec, observed from inside -----------------------------------------

def test_process_fields(rt):
    status, out, err = rt.run(
        ["sh", "-c", "id -u; id -g; id -G; pwd; echo $FOO; umask; ulimit -n; cat /proc/self/oom_score_adj; "
         "grep NoNewPrivs /proc/self/status"],
        process={"user": {"uid": 1000, "gid": 1001, "additionalGids": [1002, 1003], "umask": 0o27},
                 "cwd": "/tmp", "env": ["PATH=/bin", "FOO=bar"], "oomScoreAdj": 500,
                 "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 512}], "noNewPrivileges": True})
    assert status == 0, err
    lines = out.split("\n")
    assert lines[0:3] == ["1000", "1001", "1001 1002 1003"]
    assert lines[3:8] == ["/tmp", "bar", "0027", "512", "500"]
    assert lines[8].split() == ["NoNewPrivs:", "1"]


def test_capabilities_are_exactly_the_spec(rt):
    caps = {"bounding": ["CAP_CHOWN", "CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"],
            "inheritable": [], "ambient": []}
    status, out, err = rt.run(["grep", "^Cap", "/proc/self/status"],
                              process={"capabilities": caps, "cwd": "/",
                                       "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}})
    assert status == 0, err
    values = {line.split(":")[0]: int(line.split()[1], 16) for line in out.strip().splitlines()}
    assert values["CapBnd"] == (1 << 0) | (1 << 5)
    assert values["CapEff"] == values["CapPrm"] == 1 << 5
    assert values["CapInh"] == values["CapAmb"] == 0


def test_a_capability_the_runtime_lacks_is_named(rt):
    # root on this host lacks CAP_SYS_RESOURCE (runtime-tools asks for all 41)
    with open("/proc/self/status") as f:
        held = int(next(line for line in f if line.startswith("CapPrm:")).split()[1], 16)
    if held >> 24 & 1:
        pytest.skip("this host gives root CAP_SYS_RESOURCE")
    caps = {name: ["CAP_KILL", "CAP_SYS_RESOURCE"] for name in ("bounding", "effective", "permitted")}
    status, out, err = rt.run(["true"], process={"capabilities": caps, "args": ["true"]})
    assert status == 1
    assert "process.capabilities: CAP_SYS_RESOURCE cannot be granted" in err and err.count("\n") == 1, err


def test_hostname_namespaces_and_pid_1(rt):
    status, out, err = rt.run(["sh", "-c", "hostname; echo $$; ls /proc | grep -c '^[0-9]'"])
    assert status == 0 and len(out.split()) == 3, (status, out, err)
    name, pid, procs = out.split()
    assert (name, pid) == ("nsbox", "1") and int(procs) <= 3


@pytest.fixture
def userns_rootfs(tmp_path_factory):
    """A rootfs the mapped root (host uid 100000) owns, on a path it can reach:
    pytest's own tmp dirs are 0700 root."""
    import shutil
    import tempfile

    top = tempfile.mkdtemp(prefix="nsbox-userns-")
    os.chmod(top, 0o755)
    rootfs = make_rootfs(os.path.join(top, "rootfs"))
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), 100000, 100000)
    yield rootfs
    shutil.rmtree(top)


def test_user_namespace_mappings(rt, userns_rootfs):
    overrides = rt_userns()
    status, out, err = rt.run(["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u"],
                              root={"path": userns_rootfs, "readonly": False}, **overrides)
    assert status == 0, err
    rows = [line.split() for line in out.strip().splitlines()]
    assert rows[0] == ["0", "100000", "65536"] and rows[1] == ["0", "100000", "65536"] and rows[2] == ["0"]


def rt_userns():
    from nsbox.oci.default import default_spec

    linux = default_spec()["linux"]
    linux["namespaces"] = linux["namespaces"] + [{"type": "user"}]
    linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    return {"linux": linux}


def test_masked_and_readonly_paths(rt):
    # /proc/kcore does not exist on every kernel (not on this one); /proc/keys does
    assert open("/proc/keys").read() and os.listdir("/sys/firmware")
    status, out, err = rt.run(["sh", "-c", "wc -c < /proc/keys; echo 1 > /proc/sys/kernel/ns_last_pid "
                                           "2>/dev/null && echo wrote || echo denied; ls /sys/firmware | wc -l; "
                                           "echo 1 > /proc/sysrq-trigger 2>/dev/null && echo wrote || echo denied"])
    assert status == 0, err
    assert out.split() == ["0", "denied", "0", "denied"]


def test_mounts_tmpfs_bind_ro(rt, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "f").write_text("from the host\n")
    from nsbox.oci.default import default_spec

    mounts = default_spec()["mounts"] + [
        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "mode=1777"]},
        {"destination": "/data", "type": "bind", "source": str(shared), "options": ["rbind", "ro"]},
    ]
    status, out, err = rt.run(["sh", "-c", "stat -c %a /scratch; cat /data/f; touch /data/g 2>/dev/null "
                                           "&& echo wrote || echo read-only; grep ' /scratch ' /proc/self/mountinfo"],
                              mounts=mounts)
    assert status == 0, err
    lines = out.strip().splitlines()
    assert lines[:3] == ["1777", "from the host", "read-only"]
    assert "tmpfs" in lines[3] and "size=1024k" in lines[3]
    assert not (shared / "g").exists()


def test_default_devices(rt):
    status, out, err = rt.run(["sh", "-c", "for d in null zero urandom; do stat -c '%t:%T %F' /dev/$d; done; "
                                           "readlink /dev/ptmx; readlink /dev/fd; echo x > /dev/null && echo ok"])
    assert status == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "1:3 character special file"
    assert lines[1] == "1:5 character special file" and lines[2] == "1:9 character special file"
    assert lines[3:6] == ["pts/ptmx", "/proc/self/fd", "ok"]


def test_sysctl_inside_only(rt):
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        host = f.read().strip()
    status, out, err = rt.run(["cat", "/proc/sys/net/ipv4/ip_forward"],
                              linux={**_linux(), "sysctl": {"net.ipv4.ip_forward": "1" if host == "0" else "0"}})
    assert status == 0, err
    assert out.strip() != host
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read().strip() == host


def _linux():
    from nsbox.oci.default import default_spec

    return default_spec()["linux"]


def test_readonly_root(rt):
    status, out, _ = rt.run(["sh", "-c", "touch /x 2>/dev/null && echo wrote || echo read-only"],
                            root={"path": rt.rootfs, "readonly": True})
    assert out.strip() == "read-only"
    assert not os.path.exists(os.path.join(rt.rootfs, "x"))


def test_hooks_get_the_state_on_stdin(rt, tmp_path):
    log = tmp_path / "hooks.log"
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"read s; echo \"$0 $s\" >> {log}"]}

    def named(name):
        return {**hook, "args": ["sh", "-c", f"read s; echo \"{name} $s\" >> {log}"]}

    hooks = {name: [named(name)] for name in ("prestart", "createRuntime", "poststart", "poststop")}
    rt.create("hooked", ["true"], hooks=hooks)
    rt("start", "hooked", check=True)
    rt.wait_status("hooked", "stopped")
    rt("delete", "hooked", check=True)
    entries = [line.split(" ", 1) for line in log.read_text().splitlines()]
    assert [name for name, _ in entries] == ["prestart", "createRuntime", "poststart", "poststop"]
    states = [json.loads(s) for _, s in entries]
    assert all(s["id"] == "hooked" for s in states)
    assert states[0]["pid"] > 0 and states[3]["status"] == "stopped"


def test_a_lone_start_container_hook_gets_the_state(rt, tmp_path):
    # the state reaches init in the prestart handshake, which only hooks need
    hooks = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /tmp/state.json"]}]}
    rt.create("lone", ["cat", "/tmp/state.json"], hooks=hooks, mounts=[
        *read_config(rt.bundle(["true"]))["mounts"],
        {"destination": "/tmp", "type": "bind", "source": str(tmp_path), "options": ["rbind", "rw"]}])
    rt("start", "lone", check=True)
    rt.wait_status("lone", "stopped")
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["id"] == "lone" and state["pid"] > 0 and state["bundle"]


def test_failing_hook_fails_create_and_leaves_nothing(rt):
    hooks = {"prestart": [{"path": "/bin/false"}]}
    b = rt.bundle(["true"], hooks=hooks)
    r = rt("create", "--bundle", b, "badhook")
    assert r.returncode == 1
    assert "hooks.prestart[0] (/bin/false) failed: exit status 1" in r.stderr
    assert rt("state", "badhook").returncode == 1


def test_failing_poststart_and_poststop_hooks_are_warnings(rt, tmp_path):
    # the spec: a warning, and the remaining hooks and the lifecycle go on
    log = tmp_path / "after.log"
    after = {"path": "/bin/sh", "args": ["sh", "-c", f"echo ran >> {log}"]}
    hooks = {"poststart": [{"path": "/bin/false"}, after], "poststop": [{"path": "/bin/false"}, after]}
    rt.create("warned", ["sleep", "30"], hooks=hooks)
    r = rt("start", "warned")
    assert r.returncode == 0
    assert r.stderr == "nsbox: start: warning: hooks.poststart[0] (/bin/false) failed: exit status 1\n"
    assert rt.state("warned")["status"] == "running"
    r = rt("delete", "--force", "warned")
    assert r.returncode == 0
    assert r.stderr == "nsbox: delete: warning: hooks.poststop[0] (/bin/false) failed: exit status 1\n"
    assert log.read_text() == "ran\nran\n"


# --- bad input ---------------------------------------------------------------

def test_missing_program_fails_create_and_leaves_nothing(rt):
    b = rt.bundle(["/nonexistent"])
    r = rt("create", "--bundle", b, "noprog")
    assert r.returncode == 1 and "/nonexistent" in r.stderr and r.stderr.count("\n") == 1
    assert not os.path.exists(os.path.join(rt.root, "noprog"))


def test_rlimit_the_host_cannot_grant(rt):
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    b = rt.bundle(["true"])
    spec = read_config(b)
    spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": hard + 1000, "hard": hard + 1000}]
    write_config(b, spec)
    r = rt("create", "--bundle", b, "rlim")
    assert r.returncode == 1
    assert "RLIMIT_NOFILE" in r.stderr and "CAP_SYS_RESOURCE" in r.stderr and r.stderr.count("\n") == 1
    assert not os.path.exists(os.path.join(rt.root, "rlim"))


def test_malformed_config_names_the_json_path(rt, tmp_path):
    b = rt.bundle(["true"])
    spec = read_config(b)
    spec["process"]["args"] = "not-a-list"
    write_config(b, spec)
    r = rt("create", "--bundle", b, "bad")
    assert r.returncode == 1
    assert r.stderr == "nsbox: create: process.args: must be an array of strings\n"
    assert not os.path.exists(os.path.join(rt.root, "bad"))


def test_json_log_for_clients(rt, tmp_path):
    log = tmp_path / "log.json"
    r = rt("--log", str(log), "--log-format", "json", "start", "nope")
    assert r.returncode == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "container nope does not exist" in entry["msg"] and entry["time"]


def test_global_options_before_the_verb_in_both_forms(rt):
    rt.create("g", ["true"])
    for args in (["--root", rt.root], [f"--root={rt.root}"]):
        r = nsbox(*args, "state", "g", check=True)
        assert json.loads(r.stdout)["status"] == "created"


# --- exec ----------------------------------------------------------------------

def test_exec_joins_the_container(rt):
    rt.create("ex", ["sleep", "60"])
    rt("start", "ex", check=True)
    r = rt("exec", "ex", "sh", "-c", "hostname; echo $$; cat /proc/1/cmdline | tr '\\0' ' '; exit 5")
    assert r.returncode == 5, r.stderr
    name, pid, init_cmd = r.stdout.strip().split("\n")
    assert name == "nsbox" and int(pid) > 1 and init_cmd.strip() == "sleep 60"


def test_exec_names_why_the_programs_own_exec_failed(rt):
    # the program passes the runtime's checks (it exists, it is executable)
    # but the kernel refuses it: the trampoline's report reaches the runtime
    with open(os.path.join(rt.rootfs, "bin", "notelf"), "w") as f:
        f.write("\x7fELF but not really\n")
    os.chmod(os.path.join(rt.rootfs, "bin", "notelf"), 0o755)
    rt.create("bad-exec", ["sleep", "60"])
    rt("start", "bad-exec", check=True)
    r = rt("exec", "bad-exec", "/bin/notelf")
    assert r.returncode == 126, r.stderr
    assert "nsbox: exec: exec: '/bin/notelf': Exec format error" in r.stderr, r.stderr


def test_exec_process_file_and_user(rt, tmp_path):
    rt.create("exp", ["sleep", "60"])
    rt("start", "exp", check=True)
    process = {"args": ["sh", "-c", "id -u; pwd; echo $X"], "cwd": "/tmp", "env": ["PATH=/bin", "X=y"],
               "user": {"uid": 123, "gid": 456}}
    (tmp_path / "p.json").write_text(json.dumps(process))
    r = rt("exec", "--process", str(tmp_path / "p.json"), "exp")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["123", "/tmp", "y"]


def test_exec_detach_with_pid_file(rt, tmp_path):
    rt.create("exd", ["sleep", "60"])
    rt("start", "exd", check=True)
    pidfile = tmp_path / "exec.pid"
    rt("exec", "-d", "--pid-file", str(pidfile), "exd", "sleep", "30", check=True,
       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = int(pidfile.read_text())
    assert open(f"/proc/{pid}/cmdline").read().split("\0")[0] == "sleep"
    assert os.stat(f"/proc/{pid}/ns/pid").st_ino == os.stat(f"/proc/{rt.state('exd')['pid']}/ns/pid").st_ino


def test_exec_in_stopped_container_is_refused(rt):
    rt.create("exs", ["true"])
    rt("start", "exs", check=True)
    rt.wait_status("exs", "stopped")
    r = rt("exec", "exs", "true")
    assert r.returncode == 1 and "cannot exec in a stopped container" in r.stderr


def test_spec_and_features(tmp_path):
    r = nsbox("spec", "--bundle", str(tmp_path), check=True)
    spec = json.loads((tmp_path / "config.json").read_text())
    assert spec["process"]["args"] == ["sh"] and spec["root"]["path"] == "rootfs"
    r = nsbox("spec", "--bundle", str(tmp_path))
    assert r.returncode == 1 and "exists already" in r.stderr
    features = json.loads(nsbox("features", check=True).stdout)
    assert features["ociVersionMax"].startswith("1.") and "user" in features["linux"]["namespaces"]
    assert "CAP_SYS_ADMIN" in features["linux"]["capabilities"]


# --- terminals -------------------------------------------------------------

def _drive_terminal(argv: list[str], status: int) -> str:
    """Run *argv* (nsbox run or exec with a terminal) on a pty of ours, type
    a line at the shell's prompt, and return what the terminal showed."""
    import pty
    import select

    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    seen = b""
    sent = False
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and p.poll() is None:
            if not sent and b"# " in seen:  # the prompt: the shell reads its input from here on
                os.write(master, f"tty; echo $((6*7)); exit {status}\n".encode())
                sent = True
            if select.select([master], [], [], 0.1)[0]:
                try:
                    seen += os.read(master, 4096)
                except OSError:  # EIO: nsbox closed the terminal
                    break
        assert p.wait(timeout=10) == status, seen
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    return seen.decode(errors="replace")


def test_run_foreground_proxies_a_terminal(rt):
    b = rt.bundle(["sh"])
    spec = read_config(b)
    spec["process"]["terminal"] = True
    write_config(b, spec)
    text = _drive_terminal([*NSBOX, "--root", rt.root, "run", "--bundle", b, "tty1"], 7)
    assert "/dev/pts/0" in text and "42" in text


def test_exec_tty_in_the_foreground_proxies_a_terminal(rt):
    # no --console-socket: exec makes its own, as runc does
    rt.create("ttyx", ["sleep", "60"])
    rt("start", "ttyx", check=True)
    text = _drive_terminal([*NSBOX, "--root", rt.root, "exec", "-t", "ttyx", "sh"], 5)
    assert "/dev/pts/0" in text and "42" in text
    assert set(os.listdir(rt.root)) <= {"ttyx", SECCOMP_CACHE}  # its console socket is gone


def test_console_socket_gets_the_pty_master(rt, tmp_path):
    import socket

    from nsbox.process.tty import receive_master

    path = str(tmp_path / "console.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    b = rt.bundle(["sh", "-c", "tty; echo via-console"])
    spec = read_config(b)
    spec["process"]["terminal"] = True
    write_config(b, spec)
    try:
        r = rt("create", "--bundle", b, "--console-socket", path, "cs", stdout=subprocess.DEVNULL,
               stderr=subprocess.PIPE)
        assert r.returncode == 0, r.stderr
        master = receive_master(listener)
        rt("start", "cs", check=True)
        out = read_pty_until(master, b"via-console")
        os.close(master)
    finally:
        listener.close()
    assert b"/dev/pts/0" in out and b"via-console" in out


def test_terminal_without_console_socket_is_refused_for_create(rt):
    b = rt.bundle(["sh"])
    spec = read_config(b)
    spec["process"]["terminal"] = True
    write_config(b, spec)
    r = rt("create", "--bundle", b, "nocs")
    assert r.returncode == 1 and "process.terminal: a terminal needs --console-socket" in r.stderr
    assert not os.path.exists(os.path.join(rt.root, "nocs"))


@pytest.mark.parametrize("verb,why", [("checkpoint", "not supported"), ("restore", "not supported")])
def test_verbs_not_done_yet_say_so(verb, why):
    r = nsbox(verb, "x")
    assert r.returncode == 1 and why in r.stderr and r.stderr.count("\n") == 1


def test_systemd_cgroup_without_systemd():
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("systemd runs here")
    r = nsbox("--systemd-cgroup", "list")
    assert r.returncode == 2 and "systemd is not running" in r.stderr


def test_config_edits_after_create_do_not_affect_the_container(rt):
    b = rt.create("frozen", ["sh", "-c", "echo original"])
    write_config(b, {"ociVersion": "1.0.0"})
    rt("start", "frozen", check=True)
    rt.wait_status("frozen", "stopped")
    assert rt.output("frozen") == "original\n"
    rt("delete", "frozen", check=True)


def test_hostname_of_a_joined_uts_namespace(rt, background):
    from conftest import children_of, wait_for_line

    holder = background("ns", "unshare", "--uts", "--fork", "--", "sh", "-c", "echo ready; exec sleep 60")
    wait_for_line(holder)
    [pid] = children_of(holder.pid)
    linux = _linux()
    linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "uts"] + [
        {"type": "uts", "path": f"/proc/{pid}/ns/uts"}]
    status, out, err = rt.run(["hostname"], linux=linux, hostname="joined-name")
    assert status == 0, err
    assert out.strip() == "joined-name"
    r = nsbox("ns", "enter", "-t", str(pid), "--uts", "hostname", check=True)
    assert r.stdout.strip() == "joined-name"  # it is that namespace that was renamed


@pytest.mark.parametrize("section,value,message", [
    ("process", {"apparmorProfile": "docker-default"}, "process.apparmorProfile: AppArmor"),
    ("process", {"selinuxLabel": "system_u:system_r:container_t:s0"}, "process.selinuxLabel: SELinux"),
])
def test_settings_nsbox_cannot_apply_are_errors(rt, section, value, message):
    b = rt.bundle(["true"])
    spec = read_config(b)
    spec[section].update(value)
    write_config(b, spec)
    r = rt("create", "--bundle", b, "refused")
    assert r.returncode == 1 and message in r.stderr and r.stderr.count("\n") == 1
    assert not os.path.exists(os.path.join(rt.root, "refused"))


def test_no_namespaces_at_all_and_nothing_left_on_the_host(rt):
    # linux.namespaces empty: the container inherits every namespace of the
    # host, so its mounts are the host's, under its rootfs; delete detaches them
    linux = _linux()
    linux["namespaces"] = []
    b = rt.bundle(["sh", "-c", "for t in uts ipc net pid mnt; do stat -L -c %i /proc/self/ns/$t; done; "
                               "stat -c %t:%T /dev/null; exec sleep 60"], linux=linux)
    spec = read_config(b)
    spec.pop("hostname", None)
    write_config(b, spec)
    with open(rt.tmp / "inherit.out", "w") as out:
        rt("create", "--bundle", b, "inherit", check=True, stdout=out, stderr=subprocess.DEVNULL)
    rt("start", "inherit", check=True)
    deadline = time.monotonic() + 10
    while len(rt.output("inherit").split()) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = rt.output("inherit").split()
    assert [int(x) for x in lines[:5]] == [os.stat(f"/proc/self/ns/{t}").st_ino
                                           for t in ("uts", "ipc", "net", "pid", "mnt")]
    assert lines[5] == "1:3"
    assert _mounts_under(rt.rootfs)  # the host sees the container's mounts while it runs
    rt("delete", "--force", "inherit", check=True)
    assert _mounts_under(rt.rootfs) == []


@pytest.mark.parametrize("flags,expect_own", [([], True), (["--no-new-keyring"], False)])
def test_session_keyring_of_its_own(rt, flags, expect_own):
    linux = _linux()
    linux["maskedPaths"] = [p for p in linux["maskedPaths"] if p != "/proc/keys"]
    b = rt.bundle(["cat", "/proc/keys"], linux=linux)
    cid = f"keys{len(flags)}"
    with open(rt.tmp / f"{cid}.out", "w") as out:
        rt("create", *flags, "--bundle", b, cid, check=True, stdout=out, stderr=subprocess.DEVNULL)
    rt("start", cid, check=True)
    rt.wait_status(cid, "stopped")
    keys = rt.output(cid)
    assert (f"_ses.{cid}" in keys) == expect_own, keys
