"""nsbox as the runtime of containerd's runc shim (v2) and of podman/conmon:
their exact command lines and configs, reproduced through the nsbox CLI.

The command lines are the ones the clients were seen to use (a wrapper that
logged argv): containerd 1.6 with ``--runc-binary``, podman 4.3 with
``--runtime``.  Neither client is needed here.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import pytest

from conftest import NSBOX, read_pty_until, requires_root
from nsbox.process.tty import receive_master
from nsbox.testing.bundle import read_config, write_config
from test_runtime import _linux, rt  # noqa: F401 - the fixture

pytestmark = requires_root


def shim(rt, tmp_path, *args, **kw):  # noqa: F811
    """nsbox with the global options containerd's shim puts before every verb."""
    return rt("--log", str(tmp_path / "log.json"), "--log-format", "json", *args, **kw)


def alive(pid: int) -> bool:
    """True while *pid* exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def wait_gone(pids, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids):
        assert time.monotonic() < deadline, f"still alive: {[p for p in pids if alive(p)]}"
        time.sleep(0.02)


def wait_file(path, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while not (os.path.exists(path) and open(path).read().strip()):
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.02)
    return open(path).read()


# --- containerd's shim ----------------------------------------------------------

def test_shim_lifecycle_command_lines(rt, tmp_path):  # noqa: F811
    # create --bundle --pid-file, start, exec --process --detach --pid-file,
    # ps --format json, pause, resume, kill, delete, delete --force: in the
    # order and form the shim sends them
    b = rt.bundle(["sleep", "60"])
    with open(tmp_path / "init.out", "w") as out:
        shim(rt, tmp_path, "create", "--bundle", b, "--pid-file", str(tmp_path / "init.pid"), "t1",
             check=True, stdout=out, stderr=subprocess.STDOUT)
    init = int((tmp_path / "init.pid").read_text())
    shim(rt, tmp_path, "start", "t1", check=True)
    process = {"args": ["sleep", "50"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}
    (tmp_path / "runc-process1").write_text(json.dumps(process))
    shim(rt, tmp_path, "exec", "--process", str(tmp_path / "runc-process1"), "--detach", "--pid-file",
         str(tmp_path / "e1.pid"), "t1", check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    exec_pid = int((tmp_path / "e1.pid").read_text())
    pids = json.loads(shim(rt, tmp_path, "ps", "--format", "json", "t1", check=True).stdout)
    assert sorted(pids) == sorted([init, exec_pid])
    shim(rt, tmp_path, "pause", "t1", check=True)
    assert rt.state("t1")["status"] == "paused"
    shim(rt, tmp_path, "resume", "t1", check=True)
    state = rt.state("t1")
    assert state["status"] == "running" and state["pid"] == init
    # runc's extra state fields, which go-runc decodes (created as RFC 3339, owner a string)
    assert state["rootfs"] == rt.rootfs and state["created"].endswith("Z") and isinstance(state["owner"], str)
    shim(rt, tmp_path, "kill", "t1", "9", check=True)
    rt.wait_status("t1", "stopped")
    shim(rt, tmp_path, "delete", "t1", check=True)
    # the shim always follows delete with delete --force
    assert shim(rt, tmp_path, "delete", "--force", "t1").returncode == 0
    wait_gone([exec_pid])
    assert not (tmp_path / "log.json").exists() or not (tmp_path / "log.json").read_text()


def test_shim_kill_all_after_init_exit_clears_the_survivors(rt, tmp_path):  # noqa: F811
    # A container that shares another PID namespace (here the host's, as
    # `ctr run --with-ns pid:...` or a pod without its own): init's children
    # outlive it.  After init exits the shim sends `kill --all ID 9`; it must
    # succeed on the stopped container and kill them (runc does), or they stay.
    linux = _linux()
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "pid"]
    child = tmp_path / "child.pid"
    b = rt.bundle(["sh", "-c", "sleep 60 & echo $! > /child.pid; exit 0"], linux=linux)
    spec = read_config(b)
    spec["mounts"].append({"destination": "/child.pid", "type": "bind", "source": str(child), "options": ["bind"]})
    write_config(b, spec)
    child.write_text("")
    with open(tmp_path / "shared.out", "w") as out:
        shim(rt, tmp_path, "create", "--bundle", b, "--pid-file", str(tmp_path / "shared.pid"), "shared",
             check=True, stdout=out, stderr=subprocess.STDOUT)
    shim(rt, tmp_path, "start", "shared", check=True)
    survivor = int(wait_file(child))
    rt.wait_status("shared", "stopped")
    assert alive(survivor)
    # without --all the answer stays runc's (containerd maps it to "not found")
    r = shim(rt, tmp_path, "kill", "shared", "9")
    assert r.returncode == 1 and "container not running" in r.stderr
    r = shim(rt, tmp_path, "kill", "--all", "shared", "9")
    assert r.returncode == 0, r.stderr
    wait_gone([survivor])
    shim(rt, tmp_path, "delete", "shared", check=True)
    # a stopped container with nothing left in it: no error either
    b2 = rt.bundle(["true"])
    rt("run", "--keep", "--bundle", b2, "kept", check=True)
    assert rt.state("kept")["status"] == "stopped"
    assert shim(rt, tmp_path, "kill", "--all", "kept", "KILL").returncode == 0


@pytest.mark.parametrize("all_processes", [False, True])
def test_sigkill_reaches_a_paused_container(rt, tmp_path, all_processes):  # noqa: F811
    # `ctr task kill -s KILL` / `ctr task rm -f` on a paused task: a task the v1
    # freezer holds takes no signal until thawed, so the kill must thaw it
    cid = f"frozen{int(all_processes)}"
    rt.create(cid, ["sh", "-c", "sleep 60 & wait"])
    rt("start", cid, check=True)
    time.sleep(0.1)
    pids = json.loads(rt("ps", "--format", "json", cid, check=True).stdout)
    shim(rt, tmp_path, "pause", cid, check=True)
    assert rt.state(cid)["status"] == "paused"
    args = ["kill", "--all", cid, "9"] if all_processes else ["kill", cid, "9"]
    shim(rt, tmp_path, *args, check=True)
    rt.wait_status(cid, "stopped")
    if all_processes:
        wait_gone(pids)
    shim(rt, tmp_path, "delete", cid, check=True)


def test_kill_all_with_another_signal_keeps_a_paused_container_paused(rt, tmp_path):  # noqa: F811
    rt.create("stays", ["sh", "-c", "trap 'echo got-term; exit 3' TERM; while :; do sleep 0.05; done"])
    rt("start", "stays", check=True)
    shim(rt, tmp_path, "pause", "stays", check=True)
    shim(rt, tmp_path, "kill", "--all", "stays", "15", check=True)
    time.sleep(0.2)
    assert rt.state("stays")["status"] == "paused"  # the signal waits for resume
    shim(rt, tmp_path, "resume", "stays", check=True)
    rt.wait_status("stays", "stopped")
    assert "got-term" in rt.output("stays")


def test_kill_all_of_a_running_container_leaves_it_thawed(rt, tmp_path):  # noqa: F811
    # kill --all freezes the cgroup while it signals (so nothing forks past
    # it); a signal that does not kill must find the container running after
    rt.create("thawed", ["sh", "-c", "trap 'echo usr1' USR1; while :; do sleep 0.05; done"])
    rt("start", "thawed", check=True)
    time.sleep(0.1)
    shim(rt, tmp_path, "kill", "--all", "thawed", "USR1", check=True)
    assert rt.state("thawed")["status"] == "running"
    deadline = time.monotonic() + 10
    while "usr1" not in rt.output("thawed"):
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_shim_update_resources_from_stdin(rt, tmp_path):  # noqa: F811
    # go-runc's Update: `update --resources=- ID`, linux.resources on stdin
    rt.create("upd", ["sleep", "60"])
    rt("start", "upd", check=True)
    resources = {"memory": {"limit": 64 << 20}, "pids": {"limit": 33}, "cpu": {"shares": 512}}
    r = subprocess.run([*__import__("conftest").NSBOX, "--root", rt.root, "update", "--resources=-", "upd"],
                       input=json.dumps(resources), text=True, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    pid = rt.state("upd")["pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        where = {line.split(":")[1]: line.split(":", 2)[2] for line in f.read().splitlines()}
    assert open(f"/sys/fs/cgroup/pids{where['pids']}/pids.max").read().strip() == "33"
    memory = "/sys/fs/cgroup/memory" + where["memory"] + "/memory.limit_in_bytes"
    if os.path.exists(memory):
        assert int(open(memory).read()) == 64 << 20


# --- podman / conmon ------------------------------------------------------------

def test_conmon_exec_with_tty_through_the_console_socket(rt, tmp_path):  # noqa: F811
    # podman exec -it: `exec --pid-file F --process P --detach --tty --console-socket S ID`;
    # conmon takes the pty master from the socket and waits for the pid itself
    rt.create("cm", ["sleep", "60"])
    rt("start", "cm", check=True)
    path = str(tmp_path / "conmon-term.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    process = {"args": ["sh", "-c", "tty; stty size; echo exec-tty-ok"], "cwd": "/", "env": ["PATH=/bin"],
               "terminal": True, "consoleSize": {"height": 30, "width": 100}, "user": {"uid": 0, "gid": 0}}
    (tmp_path / "exec-process").write_text(json.dumps(process))
    master = -1
    try:
        p = subprocess.Popen([*NSBOX, "--log-format=json", "--log", str(tmp_path / "oci-log"),
                              "--root", rt.root, "exec", "--pid-file", str(tmp_path / "exec_pid"), "--process",
                              str(tmp_path / "exec-process"), "--detach", "--tty", "--console-socket", path, "cm"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        listener.settimeout(20)
        master = receive_master(listener)
        assert p.wait(timeout=30) == 0, p.stderr.read()
        p.stderr.close()
        out = read_pty_until(master, b"exec-tty-ok")
    finally:
        listener.close()
        if master >= 0:
            os.close(master)
    assert b"/dev/pts/" in out and b"30 100" in out and b"exec-tty-ok" in out, out
    assert int((tmp_path / "exec_pid").read_text()) > 0


def test_podman_errors_in_the_json_log(rt, tmp_path):  # noqa: F811
    # podman puts `--log-format=json --log F` first when the runtime speaks JSON
    # (runtime_supports_json) and shows the last msg of F
    b = rt.bundle(["/nonexistent"])
    log = tmp_path / "oci-log"
    r = rt("--log-format=json", "--log", str(log), "create", "--bundle", b, "--pid-file", str(tmp_path / "pidfile"),
           "missing")
    assert r.returncode == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "/nonexistent" in entry["msg"] and "no such file" in entry["msg"]
    assert not os.path.exists(os.path.join(rt.root, "missing"))


def test_device_file_mode_with_the_type_bits_as_podman_sends_it(rt):  # noqa: F811
    linux = _linux()
    linux["devices"] = [{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3,
                         "fileMode": 0o20640, "uid": 0, "gid": 0}]
    status, out, err = rt.run(["stat", "-c", "%a %t:%T", "/dev/mynull"], linux=linux)
    assert (status, out.strip()) == (0, "640 1:3"), err


@pytest.mark.skipif(not os.path.isdir("/sys/fs/cgroup/devices"), reason="needs the v1 devices controller")
def test_device_access_is_what_the_client_asked_for(rt):  # noqa: F811
    linux = _linux()
    linux["devices"] = [{"path": "/dev/myfuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o600,
                         "uid": 0, "gid": 0}]
    linux["resources"] = {"devices": [{"allow": False, "access": "rwm"},
                                      {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "r"}]}
    rt.create("devr", ["sleep", "60"], linux=linux)
    pid = rt.state("devr")["pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        where = next(line for line in f.read().splitlines() if ":devices:" in line).split(":", 2)[2]
    rules = open(f"/sys/fs/cgroup/devices{where}/devices.list").read().splitlines()
    assert "c 10:229 r" in rules and "c 10:229 rwm" not in rules, rules
