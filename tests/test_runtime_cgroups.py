"""Limits that hold: the runtime's cgroups on this host, observed by effect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


from conftest import NSBOX, requires_root
from nsbox.testing.bundle import read_config, write_config
from test_runtime import Runtime, _linux, rt  # noqa: F401 - the fixture

pytestmark = requires_root


def cgroup_dirs(name: str) -> list[str]:
    found = []
    for top, dirs, _ in os.walk("/sys/fs/cgroup"):
        for d in dirs:
            if name in d:
                found.append(os.path.join(top, d))
    return found


def hierarchies_with(path: str) -> list[str]:
    """The cgroup hierarchies in which *path* exists."""
    return [h for h in os.listdir("/sys/fs/cgroup") if os.path.isdir(f"/sys/fs/cgroup/{h}{path}")]


def utime(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[11])


def with_resources(resources: dict, **extra) -> dict:
    linux = _linux()
    linux["resources"] = resources
    linux.update(extra)
    return {"linux": linux}


def test_default_cgroup_path_and_removal(rt):  # noqa: F811
    cid = f"cgpath{os.getpid()}"
    b = rt.bundle(["sleep", "60"])
    spec = read_config(b)
    del spec["linux"]["cgroupsPath"]
    write_config(b, spec)
    rt("create", "--bundle", b, cid, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = rt.state(cid)["pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        lines = f.read().splitlines()
    memory = next(line for line in lines if ":memory:" in line)
    assert memory.endswith(f"/nsbox-{cid}")
    assert cgroup_dirs(cid)
    rt("delete", "--force", cid, check=True)
    assert cgroup_dirs(cid) == []


def test_init_is_in_its_cgroups_before_the_hooks_and_the_process(rt, tmp_path):  # noqa: F811
    """Init is moved into its cgroups while it builds the rootfs: a prestart
    hook already finds it there, and the process sees a cgroup namespace
    rooted at the container's cgroup."""
    seen = tmp_path / "init.cgroup"
    copy = (f"import json, sys; pid = json.load(sys.stdin)['pid']; "
            f"open({str(seen)!r}, 'w').write(open(f'/proc/{{pid}}/cgroup').read())")
    b = rt.bundle(["cat", "/proc/self/cgroup"], hooks={"prestart": [{"path": sys.executable,
                                                                       "args": [sys.executable, "-c", copy]}]})
    path = read_config(b)["linux"]["cgroupsPath"]
    r = rt("run", "--bundle", b, "placed", timeout=60)
    assert r.returncode == 0, r.stderr
    controllers = [line.split(":", 2) for line in seen.read_text().splitlines()]
    memory = next(cg for _, names, cg in controllers if "memory" in names.split(","))
    assert memory.endswith(path)
    inside = [line.split(":", 2) for line in r.stdout.splitlines()]
    assert inside and all(cg == "/" for _, _, cg in inside), r.stdout


def test_memory_limit_oom_kills(rt):  # noqa: F811
    # awk doubles a string past 100 MiB of anonymous memory: under a 32 MiB
    # limit the OOM killer ends it (SIGKILL: 137), while the shell survives
    grow = "busybox awk 'BEGIN { s = \"x\"; while (length(s) < 100 * 1024 * 1024) s = s s; print length(s) }'"
    status, out, err = rt.run(["sh", "-c", f"{grow}; echo awk exit $?"],
                              **with_resources({"memory": {"limit": 32 << 20}}))
    assert status == 0, err
    assert out.strip().splitlines()[-1] == "awk exit 137", out
    unlimited, out2, err2 = rt.run(["sh", "-c", f"{grow} >/dev/null; echo awk exit $?"])
    assert out2.strip() == "awk exit 0", err2


def test_pids_limit(rt):  # noqa: F811
    # 20 tasks: the shell's 19 sleeps, then the shell becomes the 20th
    rt.create("forky", ["sh", "-c", "for i in $(seq 19); do sleep 10 & done; exec sleep 10"],
              **with_resources({"pids": {"limit": 20}}))
    rt("start", "forky", check=True)
    pid = rt.state("forky")["pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        path = next(line for line in f.read().splitlines() if ":pids:" in line).split(":", 2)[2]
    deadline = time.monotonic() + 10
    while int(open(f"/sys/fs/cgroup/pids{path}/pids.current").read()) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert int(open(f"/sys/fs/cgroup/pids{path}/pids.current").read()) == 20
    # the 21st: a process forked into the container's cgroup cannot be born
    r = rt("exec", "forky", "true")
    assert r.returncode == 1 and "Resource temporarily unavailable" in r.stderr, r.stderr


def test_pause_resume_and_state(rt):  # noqa: F811
    rt.create("busy", ["sh", "-c", "while :; do :; done"])
    rt("start", "busy", check=True)
    pid = rt.state("busy")["pid"]
    time.sleep(0.3)
    rt("pause", "busy", check=True)
    assert rt.state("busy")["status"] == "paused"
    before = utime(pid)
    time.sleep(0.5)
    assert utime(pid) == before
    r = rt("exec", "busy", "true", timeout=30)  # refused at once: in the frozen cgroup it would hang
    assert r.returncode == 1 and r.stderr == \
        "nsbox: exec: cannot exec in a paused container (use --ignore-paused to override)\n"
    # asked for, the process waits frozen and runs on resume
    late = subprocess.Popen([*NSBOX, "--root", rt.root, "exec", "--ignore-paused", "busy", "echo", "thawed"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        time.sleep(0.3)
        assert late.poll() is None
        rt("resume", "busy", check=True)
        out, err = late.communicate(timeout=30)
    finally:
        late.kill()
        late.wait()
    assert late.returncode == 0 and out == "thawed\n", err
    assert rt.state("busy")["status"] == "running"
    time.sleep(0.5)
    assert utime(pid) > before
    r = rt("resume", "busy")
    assert r.returncode == 1 and "cannot resume a container that is running" in r.stderr


def test_update_memory_without_restart(rt, tmp_path):  # noqa: F811
    rt.create("upd", ["sleep", "60"], **with_resources({"memory": {"limit": 64 << 20}}))
    rt("start", "upd", check=True)
    pid = rt.state("upd")["pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        path = next(line for line in f.read().splitlines() if ":memory:" in line).split(":", 2)[2]
    limit_file = f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"
    assert int(open(limit_file).read()) == 64 << 20
    rt("update", "--memory", "128m", "upd", check=True)
    assert int(open(limit_file).read()) == 128 << 20
    (tmp_path / "r.json").write_text(json.dumps({"memory": {"limit": 96 << 20}, "pids": {"limit": 50}}))
    rt("update", "--resources", str(tmp_path / "r.json"), "upd", check=True)
    assert int(open(limit_file).read()) == 96 << 20


def test_ps_and_kill_all_use_the_cgroup(rt):  # noqa: F811
    rt.create("tree", ["sh", "-c", "sleep 60 & sleep 60 & wait"])
    rt("start", "tree", check=True)
    time.sleep(0.2)
    pids = json.loads(rt("ps", "--format", "json", "tree", check=True).stdout)
    assert len(pids) == 3
    rt("kill", "--all", "tree", "KILL", check=True)
    rt.wait_status("tree", "stopped")
    path = read_config(rt.tmp / f"bundle{rt.count}")["linux"]["cgroupsPath"]
    assert hierarchies_with(path)
    rt("delete", "tree", check=True)
    assert hierarchies_with(path) == []


def test_events_stats(rt):  # noqa: F811
    rt.create("ev", ["sleep", "60"], **with_resources({"memory": {"limit": 64 << 20}, "pids": {"limit": 100}}))
    r = rt("events", "--stats", "ev", check=True)
    event = json.loads(r.stdout)
    assert event["type"] == "stats" and event["id"] == "ev"
    assert event["data"]["memory"]["usage"]["limit"] == 64 << 20
    assert event["data"]["pids"]["limit"] == 100 and event["data"]["pids"]["current"] >= 1


def test_a_limit_the_host_refuses_fails_create_and_leaves_nothing(rt):  # noqa: F811
    b = rt.bundle(["true"], **with_resources({"cpu": {"cpus": "9999"}}))
    r = rt("create", "--bundle", b, "badcpu")
    assert r.returncode == 1 and "cpuset" in r.stderr and r.stderr.count("\n") == 1
    assert hierarchies_with(read_config(b)["linux"]["cgroupsPath"]) == []
    assert not os.path.exists(os.path.join(rt.root, "badcpu"))


def test_delete_of_a_stopped_container_kills_what_its_init_left_and_removes_the_cgroups(rt):  # noqa: F811
    """Without a PID namespace the kernel does not end init's children with
    it: the container is stopped, yet its cgroups are not empty.  delete (no
    --force needed: it is stopped) kills what is left and still removes
    every cgroup (rmdir alone, delete's way for an empty one, cannot)."""
    from nsbox.state import process_start_time

    linux = _linux()
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "pid"]
    rt.create("left", ["sh", "-c", "sleep 60 & echo $! > /tmp/left-behind"], linux=linux)
    path = read_config(rt.tmp / f"bundle{rt.count}")["linux"]["cgroupsPath"]
    rt("start", "left", check=True)
    rt.wait_status("left", "stopped")
    pid_file = os.path.join(rt.rootfs, "tmp", "left-behind")
    deadline = time.monotonic() + 10
    while not os.path.exists(pid_file) and time.monotonic() < deadline:
        time.sleep(0.02)
    left = int(open(pid_file).read())
    assert process_start_time(left) is not None  # alive, in the container's cgroups
    assert hierarchies_with(path)
    rt("delete", "left", check=True)
    assert process_start_time(left) is None  # killed (a zombie at most: the host's init reaps it)
    assert hierarchies_with(path) == []


def test_a_cgroup_another_container_uses_is_refused(rt):  # noqa: F811
    """Two containers in one cgroup would share their limits, and the
    second's pause or delete would reach the first: the second create is
    refused (as runc refuses it), and the first goes on untouched."""
    first = rt.bundle(["sleep", "60"])
    path = read_config(first)["linux"]["cgroupsPath"]
    rt("create", "--bundle", first, "owner", check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = rt.bundle(["true"])
    spec = read_config(second)
    spec["linux"]["cgroupsPath"] = path
    write_config(second, spec)
    r = rt("create", "--bundle", second, "intruder")
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "linux.cgroupsPath" in r.stderr and "is not empty: 1 process(es)" in r.stderr
    assert not os.path.exists(os.path.join(rt.root, "intruder"))
    assert rt.state("owner")["status"] == "created"  # not killed by the failed create's cleanup
    assert hierarchies_with(path)


def test_a_frozen_cgroup_is_refused_rather_than_hanging_in(rt):  # noqa: F811
    """Init placed in a frozen cgroup would never say ready: create would
    hang.  A container whose cgroup would go under a frozen one is refused
    at once (the new cgroup would be frozen too)."""
    parent = f"/nsbox-frozen-{os.getpid()}"
    if os.path.isdir("/sys/fs/cgroup/freezer"):
        frozen, state, on, off = f"/sys/fs/cgroup/freezer{parent}", "freezer.state", "FROZEN", "THAWED"
    else:
        frozen, state, on, off = f"/sys/fs/cgroup{parent}", "cgroup.freeze", "1", "0"
    os.mkdir(frozen)
    try:
        with open(f"{frozen}/{state}", "w") as f:
            f.write(on)
        b = rt.bundle(["true"])
        spec = read_config(b)
        spec["linux"]["cgroupsPath"] = f"{parent}/c"
        write_config(b, spec)
        r = rt("create", "--bundle", b, "iced", timeout=30)
        assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
        assert f"{frozen}, where the container's cgroup would go, is frozen" in r.stderr
        assert not os.path.exists(os.path.join(rt.root, "iced"))
        assert hierarchies_with(f"{parent}/c") == []
    finally:
        with open(f"{frozen}/{state}", "w") as f:
            f.write(off)
        os.rmdir(frozen)
