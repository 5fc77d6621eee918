"""nsbox.cgroups on this host's real cgroups (root).  Limits are proven by
their effect on child processes; the pytest process itself never joins a
cgroup: each child blocks on its stdin until add() has moved it, and only
then runs its work.  Every cgroup made here is destroyed at teardown, and
``find /sys/fs/cgroup -name '*nsbox-test*'`` must come back empty."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from nsbox.cgroups import Cgroup, CgroupError
from tests.conftest import requires_root

pytestmark = requires_root

MiB = 1 << 20
PY = [sys.executable, "-I", "-S", "-c"]


def leftovers(pattern: str = "*nsbox-test*") -> list[str]:
    done = subprocess.run(["find", "/sys/fs/cgroup", "-name", pattern], capture_output=True, text=True, timeout=60)
    return done.stdout.split()


@pytest.fixture(scope="module", autouse=True)
def nothing_left_at_the_end():
    yield
    assert leftovers() == []


class Box:
    """Cgroups made for one test, and the children started in them."""

    def __init__(self) -> None:
        self.cgroups: list[Cgroup] = []
        self.procs: list[subprocess.Popen[str]] = []
        self.ids: list[str] = []

    def cgroup(self, resources: dict | None = None, cgroups_path: str | None = None, prefix: str = "nsbox-test-",
               **kw) -> Cgroup:
        cid = prefix + uuid.uuid4().hex[:10]
        self.ids.append(cid)
        cg = Cgroup.for_container(cgroups_path.replace("ID", cid) if cgroups_path else None, cid)
        self.cgroups.append(cg)
        cg.create()
        cg.apply(resources or {}, **kw)
        return cg

    def start(self, cg: Cgroup, argv: list[str]) -> subprocess.Popen[str]:
        """Run *argv* in *cg*: it waits on its stdin until it has been moved in."""
        p = subprocess.Popen(["sh", "-c", 'read _ && exec "$@"', "sh", *argv], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.procs.append(p)
        cg.add(p.pid)
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.close()
        p.stdin = None  # so that communicate() does not flush it
        return p

    def cleanup(self) -> None:
        for cg in reversed(self.cgroups):
            kill_all(cg)
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
            for stream in (p.stdout, p.stderr):
                if stream:
                    stream.close()
        errors = []
        for cg in reversed(self.cgroups):
            try:
                cg.destroy()
            except CgroupError as e:
                errors.append(str(e))
        assert errors == []
        for cid in self.ids:
            assert leftovers(f"*{cid}*") == [], cid


def kill_all(cg: Cgroup, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    if cg.frozen():
        cg.thaw()
    while pids := cg.pids():
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise AssertionError(f"processes {pids} survived SIGKILL")
        time.sleep(0.01)


@pytest.fixture
def box():
    b = Box()
    try:
        yield b
    finally:
        b.cleanup()


def cpu_ticks(pid: int) -> int:
    """utime + stime of *pid*, in clock ticks (/proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def own_cgroup(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/cgroup") as f:
        return {line.split(":", 2)[1]: line.split(":", 2)[2].strip() for line in f}


# -- placement and lifecycle ------------------------------------------------------

def test_create_add_destroy_in_every_hierarchy(box):
    cg = box.cgroup()
    assert cg.mode in ("v1", "v2", "hybrid")
    for h in cg.hierarchies:
        assert os.path.isdir(h.dir), h
    p = box.start(cg, ["sleep", "30"])
    # the child is in the container's cgroup in every hierarchy
    mine = own_cgroup(p.pid)
    for key, d in cg.paths().items():
        h = next(h for h in cg.hierarchies if h.key == key)
        assert h.mountpoint + mine[key] == d, (key, mine[key], d)
    assert cg.pids() == [p.pid]
    with pytest.raises(CgroupError, match=f"cannot remove .*: Device or resource busy: processes still inside: {p.pid}"):
        cg.destroy()
    kill_all(cg)
    p.wait(timeout=10)
    cg.destroy()
    cg.destroy()  # already gone: fine
    assert not cg.exists()


def test_relative_path_is_below_our_own_cgroups(box):
    cg = box.cgroup(cgroups_path="ID")
    p = box.start(cg, ["sleep", "30"])
    ours, theirs = own_cgroup(os.getpid()), own_cgroup(p.pid)
    for key in ours:
        if key in cg.paths():
            assert theirs[key] == ours[key].rstrip("/") + "/" + cg.path, key


def test_create_failure_in_a_later_hierarchy_leaves_nothing(box):
    parent = box.cgroup(cgroups_path="/ID")
    v2 = next((h for h in parent.hierarchies if h.kind == "v2"), None)
    if v2 is None:
        pytest.skip("needs a cgroup v2 tree (cgroup.max.depth)")
    with open(os.path.join(v2.dir, "cgroup.max.depth"), "w") as f:
        f.write("0")  # the kernel now refuses any child below it, in the v2 tree only
    child = Cgroup.for_container(parent.path + "/child", "child")
    with pytest.raises(CgroupError, match=r"^linux.cgroupsPath: cgroup2: cannot create .*/child: "):
        child.create()
    assert not child.exists()  # the v1 directories made before were removed


def test_pids_include_a_grandchild_in_a_sub_cgroup_and_destroy_removes_it(box):
    cg = box.cgroup()
    p = box.start(cg, ["sh", "-c", "sleep 30 & echo $!; wait"])
    assert p.stdout is not None
    grandchild = int(p.stdout.readline())
    sub = Cgroup.for_container(cg.path + "/sub", "sub")  # what a container with cgroupns would make
    sub.create()  # (cpuset gets its cpus and mems)
    sub.add(grandchild)
    assert own_cgroup(grandchild)[sub.hierarchies[0].key].endswith("/sub")
    assert cg.pids() == sorted([p.pid, grandchild])
    kill_all(cg)
    p.wait(timeout=10)
    cg.destroy()
    assert not sub.exists() and not cg.exists()


# -- limits, by effect --------------------------------------------------------------

def test_memory_limit_oom_kills_and_counts(box):
    cg = box.cgroup({"memory": {"limit": 32 * MiB}})
    before = cg.oom_count()
    p = box.start(cg, [*PY, "b = b'x' * (100 * 1024 * 1024)"])
    assert p.wait(timeout=60) == -signal.SIGKILL
    assert cg.oom_count() > before
    stats = cg.stats()["memory"]
    assert stats["usage"]["limit"] == 32 * MiB and stats["usage"]["failcnt"] > 0


def test_update_raising_the_memory_limit_lets_the_allocation_succeed(box):
    cg = box.cgroup({"memory": {"limit": 32 * MiB}})
    alloc = [*PY, "b = b'x' * (48 * 1024 * 1024); print('ok')"]
    assert box.start(cg, alloc).wait(timeout=60) == -signal.SIGKILL
    cg.update({"memory": {"limit": 128 * MiB}})
    p = box.start(cg, alloc)
    assert p.wait(timeout=60) == 0
    assert p.stdout is not None and p.stdout.read() == "ok\n"


def test_lowering_the_limit_below_usage(box):
    cg = box.cgroup({"memory": {"limit": 64 * MiB}})
    p = box.start(cg, [*PY, "b = b'x' * (24 * 1024 * 1024); print('held', flush=True); import time; time.sleep(60)"])
    assert p.stdout is not None and p.stdout.readline() == "held\n"
    with pytest.raises(CgroupError, match=r"^linux.resources.memory.limit: memory: rejecting memory limit 8388608: "
                                          r"at or below the current usage \d+$"):
        cg.update({"memory": {"limit": 8 * MiB, "checkBeforeUpdate": True}})
    if cg.hierarchy("memory", "memory").kind == "v1":
        # without the check the kernel tries to reclaim, and cannot: no swap for anonymous memory
        with pytest.raises(CgroupError, match=r"^linux.resources.memory.limit: memory: cannot write "
                                              r"memory.limit_in_bytes = 8388608: Device or resource busy: current usage"):
            cg.update({"memory": {"limit": 8 * MiB}})


def test_pids_limit_stops_the_21st_process(box):
    cg = box.cgroup({"pids": {"limit": 20}})
    p = box.start(cg, ["sh", "-c", "for i in $(seq 30); do sleep 5 & done; wait"])
    highest = 0
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        highest = max(highest, len(cg.pids()))
        time.sleep(0.05)
    assert 10 <= highest <= 20
    assert cg.stats()["pids"]["limit"] == 20
    kill_all(cg)
    p.wait(timeout=10)
    assert p.stderr is not None and "fork" in p.stderr.read().lower()


def test_cpu_quota_holds_a_busy_loop_near_20_percent(box):
    cg = box.cgroup({"cpu": {"quota": 20000, "period": 100000}})
    box.start(cg, [*PY, "while True: pass"])
    time.sleep(0.3)
    t0, u0 = time.monotonic(), cg.stats()["cpu"]["usage"]["total"]
    time.sleep(2.0)
    t1, u1 = time.monotonic(), cg.stats()["cpu"]["usage"]["total"]
    share = (u1 - u0) / 1e9 / (t1 - t0)
    assert 0.10 <= share <= 0.35, share
    assert cg.stats()["cpu"]["throttling"]["throttledPeriods"] > 0


def test_freeze_stops_a_busy_child_and_thaw_resumes_it(box):
    cg = box.cgroup()
    p = box.start(cg, [*PY, "while True: pass"])
    time.sleep(0.2)
    cg.freeze()
    assert cg.frozen()
    frozen_at = cpu_ticks(p.pid)
    time.sleep(0.5)
    assert cpu_ticks(p.pid) == frozen_at
    cg.thaw()
    assert not cg.frozen()
    time.sleep(0.5)
    assert cpu_ticks(p.pid) > frozen_at


def test_devices_deny_all_but_the_defaults(box):
    cg = box.cgroup({"devices": [{"allow": False, "access": "rwm"}]})
    if cg.hierarchy("devices") is None:
        pytest.skip("no v1 devices controller")
    disk = next(f"/dev/{d}" for d in sorted(os.listdir("/sys/block")) if os.path.exists(f"/dev/{d}"))
    p = box.start(cg, ["sh", "-c", f"head -c1 /dev/zero >/dev/null && echo zero-ok; head -c1 {disk} >/dev/null "
                                   "|| echo disk-denied"])
    out, err = p.communicate(timeout=10)
    assert out.split() == ["zero-ok", "disk-denied"]
    assert "Operation not permitted" in err


def test_cpuset_and_a_refused_value(box):
    cg = box.cgroup({"cpu": {"cpus": "0", "mems": "0"}})
    p = box.start(cg, ["sleep", "30"])
    with open(f"/proc/{p.pid}/status") as f:
        assert "Cpus_allowed_list:\t0\n" in f.read()
    with pytest.raises(CgroupError, match=r"^linux.resources.cpu.cpus: cpuset: cannot write cpuset.cpus = 4095: .*: "
                                          r"the parent cgroup allows \S+$"):
        cg.update({"cpu": {"cpus": "4095"}})


def test_hugetlb_limit_reads_back(box):
    cg = box.cgroup({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]})
    h = cg.hierarchy("hugetlb", "hugetlb")
    name = "hugetlb.2MB.limit_in_bytes" if h.kind == "v1" else "hugetlb.2MB.max"
    with open(os.path.join(h.dir, name)) as f:
        assert f.read().strip() == "0"


def test_unsupported_here_fails_before_writing(box):
    cg = box.cgroup()
    if cg.mode == "hybrid":
        with pytest.raises(CgroupError, match=r"^linux.resources.unified.memory.high: memory: the memory controller is "
                                              r"cgroup v1's on this hybrid host"):
            cg.update({"memory": {"limit": 64 * MiB}, "unified": {"memory.high": "1M"}})
        with open(os.path.join(cg.paths()["memory"], "memory.limit_in_bytes")) as f:
            assert int(f.read()) > 64 * MiB  # nothing was written
    if cg.hierarchy("net_cls") is None:
        with pytest.raises(CgroupError, match=r"^linux.resources.network.classID: net_cls: "):
            cg.update({"network": {"classID": 1}})


def test_stats_of_a_running_child(box):
    cg = box.cgroup({"pids": {"limit": 50}, "memory": {"limit": 256 * MiB}})
    p = box.start(cg, [*PY, "b = b'x' * (8 * 1024 * 1024); x = sum(range(3000000)); print('ready', flush=True); "
                            "import time; time.sleep(60)"])
    assert p.stdout is not None and p.stdout.readline() == "ready\n"
    s = cg.stats()
    assert s["pids"] == {"current": 1, "limit": 50}
    assert s["memory"]["usage"]["usage"] >= 8 * MiB and s["memory"]["usage"]["limit"] == 256 * MiB
    assert s["cpu"]["usage"]["total"] > 0 and s["cpu"]["usage"]["user"] > 0
    assert s["memory"]["raw"]


def test_every_field_this_host_offers_is_accepted_by_the_kernel(box):
    """One config with every field the host's controllers take; the kernel reads each value back."""
    disk = next(d for d in sorted(os.listdir("/sys/block")) if os.path.exists(f"/sys/block/{d}/dev"))
    major, minor = (int(n) for n in open(f"/sys/block/{disk}/dev").read().split(":"))
    throttle = {key: [{"major": major, "minor": minor, "rate": 1 << 20}] for key in
                ("throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice")}
    probe = Cgroup.for_container(None, "probe")
    memory = {"limit": 64 * MiB, "reservation": 32 * MiB, "kernel": MiB}
    if probe.hierarchy("memory", "memory").kind == "v1":
        memory.update({"swap": 128 * MiB, "kernelTCP": 8 * MiB, "swappiness": 10, "disableOOMKiller": False,
                       "useHierarchy": True})
    cg = box.cgroup({"memory": memory,
                     "cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 10000, "idle": 0,
                             "cpus": "0", "mems": "0"},
                     "pids": {"limit": 100}, "blockIO": throttle,
                     "hugepageLimits": [{"pageSize": "2MB", "limit": 0}]})
    readable = 0
    for path, value in dict(cg.journal).items():  # the last value written to each file
        name = os.path.basename(path)
        if name.startswith("devices.") or name in ("memory.oom_control", "cgroup.subtree_control"):
            continue  # write-only, or read back in another format
        with open(path) as f:
            assert f.read().strip() == value, path
        readable += 1
    assert readable >= 15
    if cg.hierarchy("devices") is not None:
        with open(os.path.join(cg.paths()["devices"], "devices.list")) as f:
            rules = f.read().split("\n")
        assert "c 1:3 rwm" in rules and "a *:* rwm" not in rules
    cg.update({"cpu": {"quota": -1}, "memory": {"limit": -1}})
    if cg.hierarchy("memory", "memory").kind == "v1":
        d = cg.paths()["memory"]
        assert int(open(f"{d}/memory.limit_in_bytes").read()) == int(open(f"{d}/memory.memsw.limit_in_bytes").read())
