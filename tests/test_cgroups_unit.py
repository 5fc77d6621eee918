"""nsbox.cgroups without root: fake cgroup trees in tmp_path for the v1, pure
v2 and hybrid layouts, with fake mountinfo and /proc/self/cgroup files.

A fake "kernel" stands in for cgroupfs: mkdir in a fake hierarchy fills the
new directory with the control files the real kernel would show (with their
default values); writes land in those plain files, so a test reads back what
was written.  Files written several times (devices.allow, io.max) are checked
through Cgroup.journal, the ordered record of every write.
"""

from __future__ import annotations

import errno
import json
import os

import pytest

from nsbox.cgroups import Cgroup, CgroupError, bpf_devices, convert, tree
from nsbox.cgroups.devices import RUNC_DEFAULT_RULES, allows_everything, runc_rules
from nsbox.cgroups.layout import clean_path
from nsbox.cgroups.resources import Resources

MiB = 1 << 20
V1_UNLIMITED = "9223372036854771712"

#: default control files per v1 controller (what a new cgroup shows)
V1_FILES: dict[str, dict[str, str]] = {
    "cpu": {"cpu.shares": "1024", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1", "cpu.cfs_burst_us": "0",
            "cpu.idle": "0", "cpu.rt_period_us": "1000000", "cpu.rt_runtime_us": "0",
            "cpu.stat": "nr_periods 10\nnr_throttled 4\nthrottled_time 5000\n"},
    "cpuacct": {"cpuacct.usage": "3000", "cpuacct.usage_percpu": "1000 2000 ", "cpuacct.usage_percpu_sys": "100 200",
                "cpuacct.usage_percpu_user": "900 1800", "cpuacct.usage_user": "2700", "cpuacct.usage_sys": "300",
                "cpuacct.stat": "user 1\nsystem 2\n"},
    "cpuset": {"cpuset.cpus": "\n", "cpuset.mems": "\n", "cpuset.effective_cpus": "\n", "cpuset.effective_mems": "\n"},
    "memory": {"memory.limit_in_bytes": V1_UNLIMITED, "memory.memsw.limit_in_bytes": V1_UNLIMITED,
               "memory.soft_limit_in_bytes": V1_UNLIMITED, "memory.kmem.limit_in_bytes": V1_UNLIMITED,
               "memory.kmem.tcp.limit_in_bytes": V1_UNLIMITED, "memory.swappiness": "60",
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n", "memory.use_hierarchy": "1",
               "memory.usage_in_bytes": "0", "memory.max_usage_in_bytes": "0", "memory.failcnt": "0",
               "memory.memsw.usage_in_bytes": "0", "memory.memsw.max_usage_in_bytes": "0", "memory.memsw.failcnt": "0",
               "memory.kmem.usage_in_bytes": "0", "memory.kmem.max_usage_in_bytes": "0", "memory.kmem.failcnt": "0",
               "memory.kmem.tcp.usage_in_bytes": "0", "memory.kmem.tcp.max_usage_in_bytes": "0",
               "memory.kmem.tcp.failcnt": "0", "memory.stat": "cache 4096\nrss 8192\n"},
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm\n"},
    "freezer": {"freezer.state": "THAWED\n", "freezer.self_freezing": "0\n", "freezer.parent_freezing": "0\n"},
    "blkio": {"blkio.weight": "500", "blkio.leaf_weight": "500", "blkio.weight_device": "",
              "blkio.leaf_weight_device": "", "blkio.throttle.read_bps_device": "",
              "blkio.throttle.write_bps_device": "", "blkio.throttle.read_iops_device": "",
              "blkio.throttle.write_iops_device": "",
              "blkio.throttle.io_service_bytes_recursive": "254:0 Read 4096\n254:0 Write 8192\nTotal 12288\n",
              "blkio.throttle.io_serviced_recursive": "254:0 Read 1\n254:0 Write 2\nTotal 3\n"},
    "pids": {"pids.max": "max", "pids.current": "0"},
    "hugetlb": {"hugetlb.2MB.limit_in_bytes": V1_UNLIMITED, "hugetlb.2MB.rsvd.limit_in_bytes": V1_UNLIMITED,
                "hugetlb.1GB.limit_in_bytes": V1_UNLIMITED, "hugetlb.2MB.usage_in_bytes": "0",
                "hugetlb.2MB.max_usage_in_bytes": "0", "hugetlb.2MB.failcnt": "0"},
    "net_cls": {"net_cls.classid": "0"},
    "net_prio": {"net_prio.ifpriomap": "", "net_prio.prioidx": "1"},
    "rdma": {"rdma.max": ""},
}

#: v2 files per controller, and the core files every non-root v2 cgroup has
V2_FILES: dict[str, dict[str, str]] = {
    "cpu": {"cpu.weight": "100", "cpu.max": "max 100000\n", "cpu.max.burst": "0", "cpu.idle": "0"},
    "cpuset": {"cpuset.cpus": "\n", "cpuset.mems": "\n", "cpuset.cpus.effective": "0-3\n"},
    "memory": {"memory.max": "max\n", "memory.swap.max": "max\n", "memory.low": "0", "memory.current": "0",
               "memory.swap.current": "0", "memory.peak": "0",
               "memory.events": "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n", "memory.stat": "anon 8192\nfile 4096\n"},
    "io": {"io.weight": "default 100\n", "io.max": "", "io.stat": "254:0 rbytes=4096 wbytes=8192 rios=1 wios=2\n"},
    "pids": {"pids.max": "max", "pids.current": "0"},
    "hugetlb": {"hugetlb.2MB.max": "max", "hugetlb.2MB.rsvd.max": "max", "hugetlb.2MB.current": "0",
                "hugetlb.2MB.events": "max 0\n"},
    "rdma": {"rdma.max": ""},
}
V2_CORE = {"cgroup.procs": "", "cgroup.subtree_control": "", "cgroup.freeze": "0\n",
           "cgroup.events": "populated 0\nfrozen 0\n", "cgroup.type": "domain\n",
           "cpu.stat": "usage_usec 3\nuser_usec 2\nsystem_usec 1\nnr_periods 10\nnr_throttled 4\nthrottled_usec 5\n"}


class FakeHost:
    """A cgroup layout under tmp_path, with its mountinfo and /proc/self/cgroup."""

    def __init__(self, tmp_path, v1: dict[str, str], v2: str | None, v2_controllers: str = "",
                 own: dict[str, str] | None = None, roots: dict[str, str] | None = None) -> None:
        """*v1*: {"cpu,cpuacct": mount dir name}; *v2*: mount dir name ("" for the cgroup root itself)."""
        self.base = str(tmp_path / "sys-fs-cgroup")
        os.makedirs(self.base)
        self.kinds: dict[str, tuple[str, tuple[str, ...]]] = {}
        own = own or {}
        lines, proc = [], []
        n = 30
        for i, (ctrls, name) in enumerate(v1.items(), start=1):
            mp = os.path.join(self.base, name)
            os.makedirs(mp)
            self.kinds[mp] = ("v1", tuple(ctrls.split(",")))
            root = (roots or {}).get(ctrls, "/")
            lines.append(f"{n + i} 29 0:{n + i} {root} {mp} rw,nosuid,nodev,noexec,relatime shared:{i} - cgroup cgroup "
                         f"rw,{ctrls}")
            proc.append(f"{i}:{ctrls}:{own.get(ctrls, '/')}")
            self._fill(mp, root=True)
        if v2 is not None:
            mp = os.path.join(self.base, v2) if v2 else self.base
            os.makedirs(mp, exist_ok=True)
            self.kinds[mp] = ("v2", tuple(v2_controllers.split()))
            lines.append(f"90 29 0:90 / {mp} rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 "
                         "rw,nsdelegate")
            proc.append(f"0::{own.get('', '/')}")
            with open(os.path.join(mp, "cgroup.controllers"), "w") as f:
                f.write(v2_controllers + "\n")
            with open(os.path.join(mp, "cgroup.subtree_control"), "w") as f:
                f.write("")
            with open(os.path.join(mp, "cgroup.procs"), "w") as f:
                f.write("1\n")
        self.mountinfo = str(tmp_path / "mountinfo")
        self.proc_cgroup = str(tmp_path / "proc-self-cgroup")
        with open(self.mountinfo, "w") as f:
            f.write("22 1 0:21 / /sys rw - sysfs sysfs rw\n29 22 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n")
            f.write("\n".join(lines) + "\n")
        with open(self.proc_cgroup, "w") as f:
            f.write("\n".join(reversed(proc)) + "\n")
        # the own cgroups of a relative path exist already
        for key, path in own.items():
            for mp, (kind, ctrls) in self.kinds.items():
                if (key == "" and kind == "v2") or (kind == "v1" and set(ctrls) == set(key.split(","))):
                    d = mp
                    for part in path.strip("/").split("/"):
                        d = os.path.join(d, part)
                        if not os.path.isdir(d):
                            self.mkdir(d)

    def hierarchy_of(self, path: str) -> tuple[str, str, tuple[str, ...]]:
        for mp, (kind, ctrls) in sorted(self.kinds.items(), key=lambda kv: -len(kv[0])):
            if path == mp or path.startswith(mp + "/"):
                return mp, kind, ctrls
        raise AssertionError(f"{path} is in no fake hierarchy")

    def _fill(self, d: str, root: bool = False) -> None:
        mp, kind, ctrls = self.hierarchy_of(d)
        files: dict[str, str] = {}
        if kind == "v1":
            files.update({"cgroup.procs": "", "tasks": "", "notify_on_release": "0"})
            for c in ctrls:
                files.update(V1_FILES.get(c, {}))
            if "cpuset" in ctrls and root:
                files.update({"cpuset.cpus": "0-3\n", "cpuset.mems": "0\n", "cpuset.effective_cpus": "0-3\n"})
            if root:  # the root cgroup has no limit files for these
                for name in ("freezer.state", "pids.max"):
                    files.pop(name, None)
        else:
            parent = os.path.dirname(d)
            with open(os.path.join(parent, "cgroup.subtree_control")) as f:
                enabled = [w.lstrip("+") for w in f.read().split()]
            files.update(V2_CORE)
            files["cgroup.controllers"] = " ".join(enabled) + "\n"
            for c in enabled:
                files.update(V2_FILES.get(c, {}))
        for name, value in files.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(value)

    def mkdir(self, d: str, mode: int = 0o755) -> None:
        """What the kernel does on mkdir in a cgroupfs: a directory full of control files."""
        os.mkdir(d, mode)
        self._fill(d)

    @staticmethod
    def rmdir(d: str) -> None:
        """And on rmdir: the control files go with the directory (sub-directories are cgroups: EBUSY)."""
        if any(os.path.isdir(os.path.join(d, n)) for n in os.listdir(d)):
            raise OSError(errno.EBUSY, "Device or resource busy", d)
        for name in os.listdir(d):
            os.unlink(os.path.join(d, name))
        os.rmdir(d)

    def cgroup(self, cgroups_path: str | None = None, container_id: str = "c1") -> Cgroup:
        return Cgroup.for_container(cgroups_path, container_id, mountinfo=self.mountinfo,
                                    proc_cgroup=self.proc_cgroup)

    def path(self, *parts: str) -> str:
        return os.path.join(self.base, *parts)


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def v1_host(tmp_path) -> FakeHost:
    """A classic cgroup v1 host (cpu,cpuacct and net_cls,net_prio co-mounted), our memory cgroup nested."""
    return FakeHost(tmp_path, {"cpu,cpuacct": "cpu,cpuacct", "cpuset": "cpuset", "memory": "memory",
                               "devices": "devices", "freezer": "freezer", "blkio": "blkio", "pids": "pids",
                               "hugetlb": "hugetlb", "net_cls,net_prio": "net_cls,net_prio", "rdma": "rdma",
                               "name=systemd": "systemd"}, None, own={"memory": "/user/1000"})


def v2_host(tmp_path, controllers: str = "cpuset cpu io memory hugetlb pids rdma misc") -> FakeHost:
    return FakeHost(tmp_path, {}, "", controllers, own={"": "/user.slice/session-1.scope"})


def hybrid_host(tmp_path) -> FakeHost:
    """Like the development host: separate cpu and cpuacct, no hugetlb/net_cls in v1, hugetlb in v2."""
    return FakeHost(tmp_path, {"cpu": "cpu", "cpuacct": "cpuacct", "cpuset": "cpuset", "memory": "memory",
                               "devices": "devices", "freezer": "freezer", "blkio": "blkio", "pids": "pids",
                               "name=systemd": "systemd"}, "unified", "hugetlb",
                    own={"memory": "/process_api/4b26"})


class FakeBPF:
    """The device programs "attached" to fake v2 cgroups: {dir: instructions}."""

    def __init__(self) -> None:
        self.programs: dict[str, bytes] = {}
        self.calls: list[tuple[str, bytes | None]] = []

    def install(self, directory: str, insns: bytes | None) -> int | None:
        if not os.path.isdir(directory):
            raise CgroupError(f"cannot open {directory}: No such file or directory")
        self.calls.append((directory, insns))
        if insns is None:
            self.programs.pop(directory, None)
            return None
        self.programs[directory] = insns
        return len(self.calls)


@pytest.fixture
def kernel(monkeypatch):
    """Route nsbox.cgroups' mkdir through the fake host's (control files
    appear), and its BPF device programs into ``kernel.bpf``."""
    hosts: list[FakeHost] = []
    bpf = FakeBPF()
    monkeypatch.setattr(bpf_devices, "install", bpf.install)

    def mkdir(d: str) -> None:
        for host in hosts:
            if d.startswith(host.base + "/"):
                host.mkdir(d)
                return
        os.mkdir(d)

    def rmdir(d: str) -> None:
        if any(d.startswith(host.base + "/") for host in hosts):
            FakeHost.rmdir(d)
        else:
            os.rmdir(d)

    monkeypatch.setattr(tree, "_mkdir", mkdir)
    monkeypatch.setattr(tree, "_rmdir", rmdir)

    def make(layout, *args, **kw) -> FakeHost:
        host = layout(*args, **kw)
        hosts.append(host)
        return host

    make.bpf = bpf  # type: ignore[attr-defined]
    return make


def made(host: FakeHost, resources: dict, cgroups_path: str | None = None) -> Cgroup:
    cg = host.cgroup(cgroups_path)
    cg.create()
    cg.apply(resources)
    return cg


def written(cg: Cgroup, name: str) -> list[str]:
    """Every value written to files called *name*, in order."""
    return [v for p, v in cg.journal if os.path.basename(p) == name]


# -- layout and placement -------------------------------------------------------

def test_modes_and_hierarchies(tmp_path):
    v1 = v1_host(tmp_path / "a").cgroup()
    assert v1.mode == "v1"
    assert sorted(v1.paths()) == sorted(["cpu,cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
                                         "hugetlb", "net_cls,net_prio", "rdma", "name=systemd"])
    v2 = v2_host(tmp_path / "b").cgroup()
    assert v2.mode == "v2" and list(v2.paths()) == [""]
    assert v2.hierarchies[0].controllers == ("cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc")
    hy = hybrid_host(tmp_path / "c").cgroup()
    assert hy.mode == "hybrid"
    # the v2 tree serves only what no v1 hierarchy has
    assert hy.hierarchy("hugetlb", "hugetlb").kind == "v2"
    assert hy.hierarchy("memory", "memory").kind == "v1"
    assert hy.hierarchy("blkio", "io").kind == "v1"


def test_hybrid_v2_tree_never_takes_a_v1_controller(tmp_path):
    host = FakeHost(tmp_path, {"memory": "memory", "blkio": "blkio"}, "unified", "memory io hugetlb")
    (h2,) = [h for h in host.cgroup().hierarchies if h.kind == "v2"]
    assert h2.controllers == ("hugetlb",)  # io is blkio's v2 name


@pytest.mark.parametrize("layout", [v1_host, v2_host, hybrid_host])
def test_default_path_is_nsbox_id_below_each_root(tmp_path, layout):
    host = layout(tmp_path)
    cg = host.cgroup(None, "web")
    assert cg.path == "/nsbox-web"  # one level, as runc's /<id>: no shared parent to make and remove
    for h in cg.hierarchies:
        assert h.dir == h.mountpoint + "/nsbox-web"


def test_absolute_path_is_below_each_hierarchy_root_even_when_nested(tmp_path):
    host = hybrid_host(tmp_path)
    cg = host.cgroup("/pods/p1/c1")
    assert cg.paths()["memory"] == host.path("memory", "pods/p1/c1")  # not below /process_api/…
    assert cg.paths()[""] == host.path("unified", "pods/p1/c1")


def test_relative_path_is_below_our_own_cgroup(tmp_path):
    host = hybrid_host(tmp_path)
    cg = host.cgroup("ctr/c1")
    assert cg.path == "ctr/c1"
    assert cg.paths()["memory"] == host.path("memory", "process_api/4b26/ctr/c1")
    assert cg.paths()["pids"] == host.path("pids", "ctr/c1")
    v2 = v2_host(tmp_path / "v2").cgroup("c1")
    assert v2.paths()[""].endswith("/sys-fs-cgroup/user.slice/session-1.scope/c1")


def test_relative_path_with_a_mount_root_below_the_hierarchy_root(tmp_path):
    # a bind of /docker/abc as the memory mount, our cgroup /docker/abc/sub
    host = FakeHost(tmp_path, {"memory": "memory"}, None, own={"memory": "/docker/abc/sub"},
                    roots={"memory": "/docker/abc"})
    os.makedirs(host.path("memory", "sub"), exist_ok=True)
    assert host.cgroup("c1").paths()["memory"] == host.path("memory", "sub", "c1")


def test_relative_path_outside_the_mount_is_refused(tmp_path):
    host = FakeHost(tmp_path, {"memory": "memory"}, None, own={"memory": "/elsewhere"},
                    roots={"memory": "/docker/abc"})
    with pytest.raises(CgroupError, match=r"^linux.cgroupsPath: .*outside its mount"):
        host.cgroup("c1")


def test_co_mounted_controllers_match_in_any_order(tmp_path):
    host = FakeHost(tmp_path, {"cpu,cpuacct": "cpu,cpuacct"}, None, own={"cpu,cpuacct": "/a"})
    text = read(host.proc_cgroup).replace("cpu,cpuacct", "cpuacct,cpu")
    with open(host.proc_cgroup, "w") as f:
        f.write(text)
    assert host.cgroup("x").paths()["cpu,cpuacct"] == host.path("cpu,cpuacct", "a", "x")


@pytest.mark.parametrize("given, cleaned", [
    (None, "/nsbox-c1"), ("", "/nsbox-c1"), ("/a/b", "/a/b"), ("/a/../../b", "/b"), ("//a//b/", "/a/b"),
    ("a/b", "a/b"), ("../../a", "a"), ("./a/./b", "a/b"),
])
def test_paths_are_cleaned_lexically(given, cleaned):
    assert clean_path(given, "c1") == cleaned


@pytest.mark.parametrize("given", ["/", "/..", ".", "..", "a/.."])
def test_a_path_naming_a_root_or_our_own_cgroup_is_refused(given):
    with pytest.raises(CgroupError, match="^linux.cgroupsPath: "):
        clean_path(given, "c1")


def test_bad_container_id_for_the_default_path():
    with pytest.raises(CgroupError):
        clean_path(None, "a/b")


def test_no_cgroup_mounted(tmp_path):
    (tmp_path / "mi").write_text("22 1 0:21 / /sys rw - sysfs sysfs rw\n")
    (tmp_path / "pc").write_text("")
    with pytest.raises(CgroupError, match="no cgroup filesystem"):
        Cgroup.for_container(None, "x", mountinfo=str(tmp_path / "mi"), proc_cgroup=str(tmp_path / "pc"))


def test_record_round_trip(tmp_path):
    cg = hybrid_host(tmp_path).cgroup("/a/b")
    record = json.loads(json.dumps(cg.to_record()))
    back = Cgroup.from_record(record)
    assert back.mode == cg.mode and back.path == cg.path and back.paths() == cg.paths()
    assert [h.controllers for h in back.hierarchies] == [h.controllers for h in cg.hierarchies]


@pytest.mark.parametrize("record", [{}, {"version": 9}, {"version": 1, "mode": "v3", "path": "/", "hierarchies": []},
                                    {"version": 1, "mode": "v1", "path": "/a", "hierarchies": [{"kind": "v1"}]},
                                    {"version": 1, "mode": "v1", "path": "/a", "hierarchies": [
                                        {"kind": "v1", "controllers": ["memory"], "mountpoint": "/sys/fs/cgroup/memory",
                                         "dir": "/etc"}]}])
def test_malformed_records_are_refused(record):
    with pytest.raises(CgroupError, match="cgroup record"):
        Cgroup.from_record(record)


# -- create, add, pids, destroy ---------------------------------------------------

@pytest.mark.parametrize("layout", [v1_host, v2_host, hybrid_host])
def test_create_makes_the_cgroup_in_every_hierarchy(tmp_path, kernel, layout):
    host = kernel(layout, tmp_path)
    cg = host.cgroup()
    cg.create()
    for h in cg.hierarchies:
        assert os.path.isdir(h.dir), h
    assert cg.exists()
    cg.create()  # again: joins what is there


def test_create_v1_cpuset_copies_the_parents_cpus_and_mems_at_every_level(tmp_path, kernel):
    host = kernel(v1_host, tmp_path)
    cg = host.cgroup("/a/b")
    cg.create()
    for d in (host.path("cpuset", "a"), host.path("cpuset", "a", "b")):
        assert read(f"{d}/cpuset.cpus") == "0-3" and read(f"{d}/cpuset.mems") == "0"


def test_create_v2_enables_the_controllers_in_every_parent(tmp_path, kernel):
    host = kernel(v2_host, tmp_path, "cpu memory pids")
    cg = host.cgroup("/a/b")
    cg.create()
    assert read(host.path("cgroup.subtree_control")) == "+cpu +memory +pids"
    assert read(host.path("a", "cgroup.subtree_control")) == "+cpu +memory +pids"
    assert read(host.path("a", "b", "cgroup.controllers")) == "cpu memory pids"
    assert read(host.path("a", "b", "cgroup.subtree_control")) == ""  # never the leaf: it holds processes


def test_create_hybrid_enables_only_what_the_v2_tree_serves(tmp_path, kernel):
    host = kernel(hybrid_host, tmp_path)
    host.cgroup().create()
    assert read(host.path("unified", "cgroup.subtree_control")) == "+hugetlb"


def test_create_leaves_nothing_when_it_fails_part_way(tmp_path, kernel):
    host = kernel(hybrid_host, tmp_path)
    os.makedirs(host.path("memory", "shared"))  # a parent that was there: must survive
    # the pids hierarchy cannot take it (a file where the parent should be)
    with open(host.path("pids", "shared"), "w") as f:
        f.write("")
    cg = host.cgroup("/shared/c1")
    with pytest.raises(CgroupError, match=r"^linux.cgroupsPath: pids: cannot create .*pids/shared/c1: Not a directory"):
        cg.create()
    assert not any(os.path.exists(h.dir) for h in cg.hierarchies)
    assert not os.path.exists(host.path("cpu", "shared"))  # made by create, removed again
    assert os.path.isdir(host.path("memory", "shared"))


def test_add_writes_the_pid_into_every_hierarchy(tmp_path, kernel):
    host = kernel(hybrid_host, tmp_path)
    cg = made(host, {})
    cg.add(4242)
    for h in cg.hierarchies:
        assert read(f"{h.dir}/cgroup.procs") == "4242"


def test_add_to_a_missing_cgroup_names_it(tmp_path):
    cg = hybrid_host(tmp_path).cgroup()
    with pytest.raises(CgroupError, match="cannot write cgroup.procs = 7: the cgroup does not exist"):
        cg.add(7)


@pytest.mark.parametrize("layout", [v1_host, v2_host, hybrid_host])
def test_pids_walks_the_sub_cgroups(tmp_path, kernel, layout):
    host = kernel(layout, tmp_path)
    cg = made(host, {})
    for h in cg.hierarchies:
        host.mkdir(f"{h.dir}/sub")
        host.mkdir(f"{h.dir}/sub/deeper")
        with open(f"{h.dir}/cgroup.procs", "w") as f:
            f.write("10\n11\n")
        with open(f"{h.dir}/sub/deeper/cgroup.procs", "w") as f:
            f.write("12\n")
    assert cg.pids() == [10, 11, 12]


def test_destroy_removes_sub_cgroups_deepest_first_and_is_idempotent(tmp_path, kernel, monkeypatch):
    host = kernel(v1_host, tmp_path)
    cg = made(host, {})
    order = []
    fake_rmdir = tree._rmdir

    def rmdir(d):
        fake_rmdir(d)  # EBUSY if a sub-cgroup is still there
        order.append(d)  # what went, in order

    monkeypatch.setattr(tree, "_rmdir", rmdir)
    memory = cg.paths()["memory"]
    host.mkdir(f"{memory}/a")
    host.mkdir(f"{memory}/a/b")
    cg.destroy()
    cg.destroy()
    assert not cg.exists()
    assert [d for d in order if d.startswith(memory)] == [f"{memory}/a/b", f"{memory}/a", memory]


def test_a_shared_parent_stays(tmp_path, kernel):
    # a client's parent (podman's /libpod_parent) is the client's, as with runc
    host = kernel(v1_host, tmp_path)
    cg = host.cgroup("/shared/c1")
    cg.create()
    host.mkdir(host.path("memory", "shared", "another-container"))
    cg.destroy()
    assert not cg.exists()
    assert os.path.isdir(host.path("memory", "shared", "another-container"))
    assert os.path.isdir(host.path("pids", "shared"))


def test_destroy_retries_ebusy_then_names_the_cgroup(tmp_path, monkeypatch):
    host = hybrid_host(tmp_path)
    cg = host.cgroup()
    for h in cg.hierarchies:
        os.makedirs(h.dir)
    busy = {"left": 3}
    real_rmdir = tree._rmdir

    def rmdir(d):
        if busy["left"] > 0:
            busy["left"] -= 1
            raise OSError(errno.EBUSY, "Device or resource busy", d)
        real_rmdir(d)

    monkeypatch.setattr(tree, "_rmdir", rmdir)
    cg.destroy()  # three EBUSYs while "processes exit", then it goes
    assert not cg.exists()
    for h in cg.hierarchies:
        os.makedirs(h.dir)
    with open(f"{cg.paths()['pids']}/cgroup.procs", "w") as f:
        f.write("99\n")
    def always_busy(d):
        raise OSError(errno.EBUSY, "Device or resource busy", d)

    monkeypatch.setattr(tree, "_rmdir", always_busy)
    with pytest.raises(CgroupError, match=r"cannot remove .*nsbox-c1 \(and 9 more\): Device or resource busy"):
        tree.destroy(cg.hierarchies, timeout=0.05)


# -- v1 (and hybrid): every field ----------------------------------------------

@pytest.mark.parametrize("layout", [v1_host, hybrid_host])
def test_v1_memory_fields(tmp_path, kernel, layout):
    host = kernel(layout, tmp_path)
    cg = made(host, {"memory": {"limit": 64 * MiB, "reservation": 32 * MiB, "swap": 128 * MiB, "kernel": 8 * MiB,
                                "kernelTCP": 4 * MiB, "swappiness": 10, "disableOOMKiller": True,
                                "useHierarchy": True}})
    d = cg.paths()["memory"]
    assert read(f"{d}/memory.limit_in_bytes") == str(64 * MiB)
    assert read(f"{d}/memory.soft_limit_in_bytes") == str(32 * MiB)
    assert read(f"{d}/memory.memsw.limit_in_bytes") == str(128 * MiB)  # v1: memory+swap as given
    assert read(f"{d}/memory.kmem.limit_in_bytes") == V1_UNLIMITED  # kernel: deprecated, ignored (runc)
    assert read(f"{d}/memory.kmem.tcp.limit_in_bytes") == str(4 * MiB)
    assert read(f"{d}/memory.swappiness") == "10"
    assert read(f"{d}/memory.oom_control") == "1"
    assert read(f"{d}/memory.use_hierarchy") == "1"


def test_v1_memory_swap_order_keeps_limit_below_memsw(tmp_path, kernel):
    host = kernel(v1_host, tmp_path)
    cg = made(host, {"memory": {"limit": 64 * MiB, "swap": 128 * MiB}})
    # a new cgroup: limit "unlimited" > 128M, so the limit goes first
    assert [os.path.basename(p) for p, _ in cg.journal if "memory." in p] == \
        ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
    cg.journal.clear()
    cg.update({"memory": {"limit": 256 * MiB, "swap": 512 * MiB}})  # raising both: memsw first
    assert [os.path.basename(p) for p, _ in cg.journal] == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
    cg.journal.clear()
    cg.update({"memory": {"limit": 16 * MiB, "swap": 32 * MiB}})  # lowering both: limit first
    assert [os.path.basename(p) for p, _ in cg.journal] == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]


def test_v1_memory_unlimited_limit_also_frees_swap(tmp_path, kernel):
    host = kernel(v1_host, tmp_path)
    cg = made(host, {"memory": {"limit": -1}})
    d = cg.paths()["memory"]
    assert read(f"{d}/memory.limit_in_bytes") == "-1" and read(f"{d}/memory.memsw.limit_in_bytes") == "-1"


def test_v1_memory_zero_means_unset(tmp_path, kernel):
    host = kernel(v1_host, tmp_path)
    cg = made(host, {"memory": {"limit": 0, "reservation": 0, "swap": 0}})
    assert cg.journal == [e for e in cg.journal if "memory." not in e[0]]


@pytest.mark.parametrize("layout", [v1_host, v2_host])
def test_check_before_update_refuses_a_limit_below_usage(tmp_path, kernel, layout):
    host = kernel(layout, tmp_path)
    cg = made(host, {})
    d = cg.paths().get("memory") or cg.paths()[""]
    usage = "memory.usage_in_bytes" if layout is v1_host else "memory.current"
    with open(f"{d}/{usage}", "w") as f:
        f.write(str(100 * MiB))
    with pytest.raises(CgroupError, match=r"^linux.resources.memory.limit: memory: rejecting memory limit 52428800: "
                                          r"at or below the current usage 104857600$"):
        cg.update({"memory": {"limit": 50 * MiB, "checkBeforeUpdate": True}})
    cg.update({"memory": {"limit": 200 * MiB, "checkBeforeUpdate": True}})
    cg.update({"memory": {"limit": 50 * MiB}})  # without the check the kernel decides


def test_v1_cpu_fields(tmp_path, kernel):
    host = kernel(v1_host, tmp_path)
    cg = made(host, {"cpu": {"shares": 512, "quota": 20000, "period": 50000, "burst": 1000, "idle": 0,
                             "realtimeRuntime": 950, "realtimePeriod": 1000, "cpus": "1-2", "mems": "0"}})
    d = cg.paths()["cpu,cpuacct"]
    assert read(f"{d}/cpu.shares") == "512"
    assert read(f"{d}/cpu.cfs_quota_us") == "20000"
    assert read(f"{d}/cpu.cfs_period_us") == "50000"
    assert read(f"{d}/cpu.cfs_burst_us") == "1000"
    assert read(f"{d}/cpu.idle") == "0"
    assert read(f"{d}/cpu.rt_runtime_us") == "950"
    assert read(f"{d}/cpu.rt_period_us") == "1000"
    s = cg.paths()["cpuset"]
    assert read(f"{s}/cpuset.cpus") == "1-2" and read(f"{s}/cpuset.mems") == "0"
    # cpuset goes first (runc's order)
    assert "cpuset.cpus" in cg.journal[[p for p, _ in cg.journal].index(f"{s}/cpuset.cpus")][0]


def test_v1_cpu_quota_minus_one_is_unlimited(tmp_path, kernel):
    host = kernel(v1_host, tmp_path)
    cg = made(host, {"cpu": {"quota": -1}})
    assert read(f"{cg.paths()['cpu,cpuacct']}/cpu.cfs_quota_us") == "-1"


def test_v1_cpu_period_refused_until_the_quota_is_written(tmp_path, kernel, monkeypatch):
    """The kernel may refuse a smaller period (EINVAL) before the new quota is
    in; it is written again after the quota."""
    host = kernel(v1_host, tmp_path)
    cg = made(host, {})
    from nsbox.cgroups import files
    real = files.write_file
    refused = []

    def write_file(path, value):
        if path.endswith("cpu.cfs_period_us") and not refused:
            refused.append(value)
            raise OSError(errno.EINVAL, "Invalid argument", path)
        real(path, value)

    monkeypatch.setattr(files, "write_file", write_file)
    cg.update({"cpu": {"quota": 5000, "period": 10000}})
    assert [os.path.basename(p) for p, _ in cg.journal[-2:]] == ["cpu.cfs_quota_us", "cpu.cfs_period_us"]
    assert refused == ["10000"]


def test_v1_cpu_shares_clamped_by_the_kernel_is_an_error(tmp_path, kernel, monkeypatch):
    host = kernel(v1_host, tmp_path)
    cg = made(host, {})
    from nsbox.cgroups import files
    real = files.write_file
    monkeypatch.setattr(files, "write_file",
                        lambda p, v: real(p, "262144" if p.endswith("cpu.shares") else v))
    with pytest.raises(CgroupError, match=r"^linux.resources.cpu.shares: cpu: cpu.shares 300000 is out of range: "
                                          r"the maximum is 262144$"):
        cg.update({"cpu": {"shares": 300000}})


@pytest.mark.parametrize("limit, value", [(20, "20"), (0, "max"), (-1, "max")])
@pytest.mark.parametrize("layout", [v1_host, v2_host])
def test_pids_limit(tmp_path, kernel, layout, limit, value):
    host = kernel(layout, tmp_path)
    cg = made(host, {"pids": {"limit": limit}})
    d = cg.paths().get("pids") or cg.paths()[""]
    assert read(f"{d}/pids.max") == value


def test_v1_block_io_fields(tmp_path, kernel):
    host = kernel(v1_host, tmp_path)
    cg = made(host, {"blockIO": {
        "weight": 300, "leafWeight": 200,
        "weightDevice": [{"major": 8, "minor": 0, "weight": 400, "leafWeight": 100}],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
        "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2000}],
        "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 30}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 40}]}})
    d = cg.paths()["blkio"]
    assert read(f"{d}/blkio.weight") == "300"
    assert read(f"{d}/blkio.leaf_weight") == "200"
    assert read(f"{d}/blkio.weight_device") == "8:0 400"
    assert read(f"{d}/blkio.leaf_weight_device") == "8:0 100"
    assert read(f"{d}/blkio.throttle.read_bps_device") == "8:0 1000"
    assert read(f"{d}/blkio.throttle.write_bps_device") == "8:0 2000"
    assert read(f"{d}/blkio.throttle.read_iops_device") == "8:16 30"
    assert read(f"{d}/blkio.throttle.write_iops_device") == "8:16 40"


def test_v1_block_io_weight_uses_bfq_files_and_fails_without_either(tmp_path, kernel):
    host = kernel(v1_host, tmp_path)
    cg = made(host, {})
    d = cg.paths()["blkio"]
    os.unlink(f"{d}/blkio.weight")
    os.unlink(f"{d}/blkio.weight_device")
    for name in ("blkio.bfq.weight", "blkio.bfq.weight_device"):
        with open(f"{d}/{name}", "w") as f:
            f.write("100")
    cg.update({"blockIO": {"weight": 700, "weightDevice": [{"major": 8, "minor": 0, "weight": 50}]}})
    assert read(f"{d}/blkio.bfq.weight") == "700" and read(f"{d}/blkio.bfq.weight_device") == "8:0 50"
    os.unlink(f"{d}/blkio.bfq.weight")
    with pytest.raises(CgroupError, match=r"^linux.resources.blockIO.weight: blkio: cannot set weight 700: no "
                                          r"blkio.weight or blkio.bfq.weight"):
        cg.update({"blockIO": {"weight": 700}})


def test_v1_hugetlb_limits_and_reservations(tmp_path, kernel):
    host = kernel(v1_host, tmp_path)
    cg = made(host, {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}, {"pageSize": "1GB", "limit": 0}]})
    d = cg.paths()["hugetlb"]
    assert read(f"{d}/hugetlb.2MB.limit_in_bytes") == str(4 * MiB)
    assert read(f"{d}/hugetlb.2MB.rsvd.limit_in_bytes") == str(4 * MiB)
    assert read(f"{d}/hugetlb.1GB.limit_in_bytes") == "0"
    with pytest.raises(CgroupError, match=r"^linux.resources.hugepageLimits\[0\].pageSize: hugetlb: hugepage size "
                                          r"64KB is not supported here \(no hugetlb.64KB.limit_in_bytes\)"):
        cg.update({"hugepageLimits": [{"pageSize": "64KB", "limit": 1}]})


def test_v1_network_and_rdma(tmp_path, kernel):
    host = kernel(v1_host, tmp_path)
    cg = made(host, {"network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5},
                                                                   {"name": "lo", "priority": 2}]},
                     "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}, "mlx4_0": {"hcaObjects": 7}}})
    d = cg.paths()["net_cls,net_prio"]
    assert read(f"{d}/net_cls.classid") == "1048577"
    assert written(cg, "net_prio.ifpriomap") == ["eth0 5", "lo 2"]
    assert written(cg, "rdma.max") == ["mlx5_1 hca_handle=3 hca_object=10000", "mlx4_0 hca_object=7"]


def test_hybrid_network_controllers_not_mounted(tmp_path, kernel):
    host = kernel(hybrid_host, tmp_path)
    cg = made(host, {})
    with pytest.raises(CgroupError, match=r"^linux.resources.network.classID: net_cls: needs the cgroup v1 net_cls "
                                          r"controller, and it is not mounted on this host$"):
        cg.apply({"network": {"classID": 1}})
    with pytest.raises(CgroupError, match=r"^linux.resources.network.priorities: net_prio: "):
        cg.apply({"network": {"priorities": [{"name": "eth0", "priority": 1}]}})


#: the writes runc's default rules add after the spec's own (/dev/null & co)
DEFAULTS = [("devices.allow", line) for line in
            ("c *:* m", "b *:* m", "c 1:3 rwm", "c 1:8 rwm", "c 1:7 rwm", "c 5:0 rwm", "c 1:5 rwm", "c 1:9 rwm",
             "c 136:* rwm", "c 5:2 rwm", "c 10:200 rwm")]


def device_writes(cg: Cgroup) -> list[tuple[str, str]]:
    return [(os.path.basename(p), v) for p, v in cg.journal if "/devices/" in p]


def test_v1_devices_deny_all_first_then_the_rules_in_order(tmp_path, kernel):
    host = kernel(v1_host, tmp_path)
    cg = made(host, {"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "c", "major": 136, "access": "rw"},
        {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "m"},
        {"allow": True, "type": "b", "minor": 0, "access": "r"}]})
    assert device_writes(cg) == [("devices.deny", "a"), ("devices.allow", "c 1:3 rwm"), ("devices.allow", "c 136:* rw"),
                                 ("devices.deny", "c 1:3 m"), ("devices.allow", "b *:0 r"), *DEFAULTS]


def test_v1_devices_given_or_not_are_runcs_deny_all_plus_defaults(tmp_path, kernel):
    # the config's device nodes get no rule of their own (runc 1.1 adds none)
    host = kernel(v1_host, tmp_path)
    cg = host.cgroup()
    cg.create()
    cg.apply({})
    assert device_writes(cg) == [("devices.deny", "a"), *DEFAULTS]
    cg.journal.clear()
    cg.update({"memory": {"limit": MiB}})  # update leaves devices alone unless given (runc)
    assert device_writes(cg) == []


def test_v1_devices_without_a_wildcard_still_start_from_deny_all(tmp_path, kernel):
    host = kernel(v1_host, tmp_path)
    cg = made(host, {"devices": [{"allow": True, "type": "c", "major": 4, "minor": 5, "access": "rwm"}]})
    assert device_writes(cg) == [("devices.deny", "a"), ("devices.allow", "c 4:5 rwm"), *DEFAULTS]


def test_v1_devices_last_wildcard_wins(tmp_path, kernel):
    host = kernel(v1_host, tmp_path)
    cg = made(host, {"devices": [{"allow": False, "access": "rwm"},
                                 {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
                                 {"allow": True, "type": "a"},
                                 {"allow": False, "type": "b", "major": 8, "minor": 0, "access": "w"}]})
    assert device_writes(cg) == [("devices.allow", "a"), ("devices.deny", "b 8:0 w"), *DEFAULTS]


def test_runc_default_device_rules_are_valid_and_restrictive():
    rules = Resources({"devices": [{"allow": False, "access": "rwm"}, *RUNC_DEFAULT_RULES]}).devices
    assert rules is not None and not allows_everything(rules)
    assert rules[3].cgroup_string() == "c 1:3 rwm"


def test_unified_is_refused_on_v1(tmp_path, kernel):
    host = kernel(v1_host, tmp_path)
    cg = made(host, {})
    with pytest.raises(CgroupError, match=r"^linux.resources.unified: needs cgroup v2, and this host has cgroup v1 only$"):
        cg.apply({"memory": {"limit": MiB}, "unified": {"memory.high": "1M"}})
    assert not written(cg, "memory.limit_in_bytes")  # checked before anything was written


def test_unified_on_hybrid_only_for_the_v2_trees_controllers(tmp_path, kernel):
    host = kernel(hybrid_host, tmp_path)
    cg = made(host, {})
    with pytest.raises(CgroupError, match=r"^linux.resources.unified.memory.high: memory: the memory controller is "
                                          r"cgroup v1's on this hybrid host \(the cgroup v2 tree has only: hugetlb\)$"):
        cg.apply({"unified": {"memory.high": "1M"}})
    cg.apply({"unified": {"hugetlb.2MB.max": "4194304"}})
    assert read(f"{cg.paths()['']}/hugetlb.2MB.max") == "4194304"


def test_hybrid_hugetlb_goes_to_the_v2_tree(tmp_path, kernel):
    host = kernel(hybrid_host, tmp_path)
    cg = made(host, {"hugepageLimits": [{"pageSize": "2MB", "limit": 2 * MiB}]})
    assert read(f"{cg.paths()['']}/hugetlb.2MB.max") == str(2 * MiB)
    assert read(f"{cg.paths()['']}/hugetlb.2MB.rsvd.max") == str(2 * MiB)


# -- v2: every field and conversion ---------------------------------------------

def test_v2_memory_fields_and_swap_conversion(tmp_path, kernel):
    host = kernel(v2_host, tmp_path)
    cg = made(host, {"memory": {"limit": 64 * MiB, "reservation": 32 * MiB, "swap": 96 * MiB, "kernel": 1,
                                "swappiness": 30, "useHierarchy": True}})
    d = cg.paths()[""]
    assert read(f"{d}/memory.max") == str(64 * MiB)
    assert read(f"{d}/memory.swap.max") == str(32 * MiB)  # swap - limit
    assert read(f"{d}/memory.low") == str(32 * MiB)
    # swappiness has no v2 file: ignored as runc does; kernel: deprecated
    assert not [p for p, _ in cg.journal if "swappiness" in p or "kmem" in p]


@pytest.mark.parametrize("memory, swap_max, mem_max", [
    ({"limit": -1}, "max", "max"),                    # unlimited memory and swap (runc)
    ({"limit": 64 * MiB, "swap": -1}, "max", str(64 * MiB)),
    ({"limit": -1, "swap": 32 * MiB}, str(32 * MiB), "max"),  # unlimited memory: swap as given
    ({"limit": 64 * MiB, "swap": 64 * MiB}, "0", str(64 * MiB)),  # swap == limit: no swap at all
    ({"limit": 64 * MiB}, "max", str(64 * MiB)),      # swap not given: left alone
])
def test_v2_swap_semantics(tmp_path, kernel, memory, swap_max, mem_max):
    host = kernel(v2_host, tmp_path)
    cg = made(host, {"memory": memory})
    d = cg.paths()[""]
    assert read(f"{d}/memory.swap.max") == swap_max
    assert read(f"{d}/memory.max") == mem_max


@pytest.mark.parametrize("memory, message", [
    ({"swap": 64 * MiB}, r"^linux.resources.memory.swap: memory: needs memory.limit as well"),
    ({"limit": 64 * MiB, "swap": 32 * MiB}, r"^linux.resources.memory.swap: memory: memory\+swap 33554432 is less than"),
    ({"kernelTCP": MiB}, r"^linux.resources.memory.kernelTCP: memory: there is no kernel TCP memory limit in cgroup v2"),
    ({"disableOOMKiller": True}, r"^linux.resources.memory.disableOOMKiller: memory: cgroup v2 cannot disable"),
    ({"useHierarchy": False}, r"^linux.resources.memory.useHierarchy: memory: cgroup v2 is always hierarchical"),
])
def test_v2_memory_refusals(tmp_path, kernel, memory, message):
    host = kernel(v2_host, tmp_path)
    cg = made(host, {})
    with pytest.raises(CgroupError, match=message):
        cg.apply({"memory": memory})
    assert not [p for p, _ in cg.journal if "/memory." in p]


def test_v2_update_limit_alone_keeps_the_memory_plus_swap_total(tmp_path, kernel):
    host = kernel(v2_host, tmp_path)
    cg = made(host, {"memory": {"limit": 100 * MiB, "swap": 200 * MiB}})
    d = cg.paths()[""]
    assert read(f"{d}/memory.swap.max") == str(100 * MiB)
    cg.update({"memory": {"limit": 150 * MiB}})
    assert read(f"{d}/memory.max") == str(150 * MiB) and read(f"{d}/memory.swap.max") == str(50 * MiB)
    cg.update({"memory": {"swap": 400 * MiB}})  # swap alone: against the current limit
    assert read(f"{d}/memory.swap.max") == str(250 * MiB)
    with pytest.raises(CgroupError, match="above the memory\\+swap limit"):
        cg.update({"memory": {"limit": 500 * MiB}})


@pytest.mark.parametrize("shares, weight", [(2, 1), (1024, 39), (512, 20), (262144, 10000), (1, 1), (500000, 10000)])
def test_shares_to_weight(shares, weight):
    assert convert.shares_to_weight(shares) == weight
    assert convert.shares_to_weight(shares) == 1 + ((min(max(shares, 2), 262144) - 2) * 9999) // 262142


@pytest.mark.parametrize("blkio, io", [(10, 1), (1000, 10000), (500, 4950), (100, 910)])
def test_blkio_weight_to_io_weight(blkio, io):
    assert convert.blkio_weight_to_io_weight(blkio) == io


def test_v2_cpu_fields(tmp_path, kernel):
    host = kernel(v2_host, tmp_path)
    cg = made(host, {"cpu": {"shares": 1024, "quota": 20000, "period": 50000, "burst": 1000, "idle": 0,
                             "cpus": "0-1", "mems": "0"}})
    d = cg.paths()[""]
    assert read(f"{d}/cpu.weight") == "39"
    assert read(f"{d}/cpu.max") == "20000 50000"
    assert read(f"{d}/cpu.max.burst") == "1000"
    assert read(f"{d}/cpu.idle") == "0"
    assert read(f"{d}/cpuset.cpus") == "0-1" and read(f"{d}/cpuset.mems") == "0"


@pytest.mark.parametrize("cpu, cpu_max", [
    ({"quota": 30000}, "30000 100000"), ({"quota": -1, "period": 20000}, "max 20000"), ({"period": 20000}, "max 20000"),
])
def test_v2_cpu_max(tmp_path, kernel, cpu, cpu_max):
    host = kernel(v2_host, tmp_path)
    cg = made(host, {"cpu": cpu})
    assert read(f"{cg.paths()['']}/cpu.max") == cpu_max


def test_v2_cpu_update_one_half_keeps_the_other(tmp_path, kernel):
    host = kernel(v2_host, tmp_path)
    cg = made(host, {"cpu": {"quota": 20000, "period": 50000}})
    cg.update({"cpu": {"quota": 10000}})
    assert read(f"{cg.paths()['']}/cpu.max") == "10000 50000"
    cg.update({"cpu": {"period": 40000}})
    assert read(f"{cg.paths()['']}/cpu.max") == "10000 40000"


@pytest.mark.parametrize("key", ["realtimeRuntime", "realtimePeriod"])
def test_v2_realtime_is_refused(tmp_path, kernel, key):
    host = kernel(v2_host, tmp_path)
    cg = made(host, {})
    with pytest.raises(CgroupError, match=rf"^linux.resources.cpu.{key}: cpu: realtime scheduling limits exist only "
                                          r"in cgroup v1"):
        cg.apply({"cpu": {"shares": 100, key: 1000}})
    assert not [p for p, _ in cg.journal if "cpu." in p]  # nothing written, shares included


def test_v2_io_fields(tmp_path, kernel):
    host = kernel(v2_host, tmp_path)
    cg = made(host, {"blockIO": {
        "weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 100}],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
        "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2000}],
        "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 0}, {"major": 8, "minor": 16, "rate": 30}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 40}]}})
    assert written(cg, "io.weight") == ["4950", "8:0 910"]
    # one io.max line per device, every limit of it together; rate 0 is "no limit"
    assert written(cg, "io.max") == ["8:0 rbps=1000 wbps=2000 riops=max", "8:16 riops=30 wiops=40"]


def test_v2_io_prefers_bfq_with_the_v1_scale(tmp_path, kernel):
    host = kernel(v2_host, tmp_path)
    cg = made(host, {})
    d = cg.paths()[""]
    with open(f"{d}/io.bfq.weight", "w") as f:
        f.write("default 100\n")
    cg.update({"blockIO": {"weight": 500}})
    assert read(f"{d}/io.bfq.weight") == "500"
    with open(f"{d}/io.bfq.weight", "w") as f:
        f.write("default 100\n")
    cg.update({"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 300}]}})
    assert read(f"{d}/io.bfq.weight") == "8:0 300"


def test_v2_leaf_weight_is_refused(tmp_path, kernel):
    host = kernel(v2_host, tmp_path)
    cg = made(host, {})
    with pytest.raises(CgroupError, match=r"^linux.resources.blockIO.leafWeight: io: leaf weights do not exist"):
        cg.apply({"blockIO": {"leafWeight": 100}})
    with pytest.raises(CgroupError, match=r"^linux.resources.blockIO.weightDevice\[0\].leafWeight: io: "):
        cg.apply({"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "leafWeight": 100}]}})


def test_v2_hugetlb_and_rdma(tmp_path, kernel):
    host = kernel(v2_host, tmp_path)
    cg = made(host, {"hugepageLimits": [{"pageSize": "2MB", "limit": 6 * MiB}],
                     "rdma": {"mlx5_1": {"hcaHandles": 2}}})
    d = cg.paths()[""]
    assert read(f"{d}/hugetlb.2MB.max") == str(6 * MiB) and read(f"{d}/hugetlb.2MB.rsvd.max") == str(6 * MiB)
    assert read(f"{d}/rdma.max") == "mlx5_1 hca_handle=2"


def test_v2_unified_written_last_line_by_line(tmp_path, kernel):
    host = kernel(v2_host, tmp_path)
    cg = made(host, {"memory": {"limit": 64 * MiB},
                     "unified": {"memory.max": "33554432", "io.max": "8:0 rbps=1\n8:16 wbps=2"}})
    d = cg.paths()[""]
    assert read(f"{d}/memory.max") == "33554432"  # unified overrides memory.limit
    assert written(cg, "io.max") == ["8:0 rbps=1", "8:16 wbps=2"]
    assert [os.path.basename(p) for p, _ in cg.journal][-3:] == ["memory.max", "io.max", "io.max"]


def test_v2_unified_key_of_a_controller_not_enabled(tmp_path, kernel):
    host = kernel(v2_host, tmp_path, "cpu memory")
    cg = made(host, {})
    with pytest.raises(CgroupError, match=r"^linux.resources.unified.pids.max: pids: cannot write pids.max = 5: "
                                          r"No such file or directory: the pids controller is not enabled"):
        cg.apply({"unified": {"pids.max": "5"}})


@pytest.mark.parametrize("key", ["../memory.max", "memory.max/x", "nodot", ""])
def test_unified_keys_must_be_file_names(key):
    with pytest.raises(CgroupError, match=r"^linux.resources.unified"):
        Resources({"unified": {key: "1"}})


@pytest.mark.parametrize("rules", [
    [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 4, "minor": 1, "access": "rwm"}],
    [{"allow": False, "type": "b", "major": 8, "minor": 0, "access": "rw"}],
    [{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}, {"allow": False, "access": "rwm"}],
    [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
     {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}],
    [],
    [{"allow": False, "access": "rwm"}, *RUNC_DEFAULT_RULES],
])
def test_v2_device_rules_become_the_bpf_program(tmp_path, kernel, rules):
    host = kernel(v2_host, tmp_path)
    cg = made(host, {"devices": rules})
    d = cg.paths()[""]
    expected = bpf_devices.program(runc_rules(Resources({"devices": rules}).devices))
    assert kernel.bpf.calls == [(d, expected)]
    assert cg.warnings == []
    assert [p for p, _ in cg.journal if "devices" in p] == []


@pytest.mark.parametrize("rules", [
    [{"allow": True, "access": "rwm"}],
    [{"allow": False, "access": "rwm"}, {"allow": True, "type": "a", "access": "rwm"}],
])
def test_v2_device_rules_allowing_everything_need_no_program(tmp_path, kernel, rules):
    host = kernel(v2_host, tmp_path)
    cg = made(host, {"devices": rules})
    assert kernel.bpf.calls == [(cg.paths()[""], None)]
    assert kernel.bpf.programs == {} and cg.warnings == []


def test_v2_update_replaces_the_device_program_only_when_devices_are_given(tmp_path, kernel):
    host = kernel(v2_host, tmp_path)
    cg = made(host, {})
    d = cg.paths()[""]
    first = kernel.bpf.programs[d]
    cg.update({"memory": {"limit": MiB}})
    assert len(kernel.bpf.calls) == 1  # devices not given: the program stays
    rules = [{"allow": True, "type": "c", "major": 4, "minor": 64, "access": "rw"}]
    cg.update({"devices": rules})
    assert kernel.bpf.programs[d] == bpf_devices.program(runc_rules(Resources({"devices": rules}).devices))
    assert kernel.bpf.programs[d] != first
    cg.update({"devices": [{"allow": True, "access": "rwm"}]})
    assert kernel.bpf.programs == {} and kernel.bpf.calls[-1] == (d, None)


def test_v2_device_program_is_written_after_the_checks(tmp_path, kernel):
    host = kernel(v2_host, tmp_path, "cpu memory")
    cg = made(host, {})
    kernel.bpf.calls.clear()
    with pytest.raises(CgroupError, match=r"^linux.resources.pids"):
        cg.apply({"devices": [], "pids": {"limit": 5}})  # no pids controller: nothing is done
    assert kernel.bpf.calls == []


def test_v1_host_without_a_devices_controller(tmp_path, kernel):
    host = kernel(FakeHost, tmp_path, {"memory": "memory"}, None)
    cg = made(host, {"devices": [{"allow": False, "access": "rwm"}]})
    assert cg.warnings and cg.warnings[0].startswith("linux.resources.devices: not enforced: this host mounts neither")
    with pytest.raises(CgroupError, match=r"^linux.resources.devices: devices: cannot be enforced"):
        cg.apply({"devices": [{"allow": False, "type": "c", "major": 1, "minor": 3}]})


def test_runc_rules_are_the_spec_rules_then_the_defaults():
    given = Resources({"devices": [{"allow": False, "access": "rwm"}]}).devices
    rules = runc_rules(given)
    assert [r.cgroup_string() for r in rules[:1]] == ["a *:* rwm"]
    assert [("devices.allow", r.cgroup_string()) for r in rules[1:]] == DEFAULTS


def test_hybrid_devices_use_the_v1_controller(tmp_path, kernel):
    host = kernel(hybrid_host, tmp_path)
    cg = made(host, {"devices": [{"allow": False, "access": "rwm"}]})
    assert written(cg, "devices.deny") == ["a"]


def test_v2_network_is_refused(tmp_path, kernel):
    host = kernel(v2_host, tmp_path)
    cg = made(host, {})
    with pytest.raises(CgroupError, match=r"^linux.resources.network.classID: net_cls: needs the cgroup v1 net_cls "
                                          r"controller, and cgroup v2 has no equivalent"):
        cg.apply({"network": {"classID": 1}})


def test_v2_controller_not_enabled_for_the_cgroup(tmp_path, kernel):
    host = kernel(v2_host, tmp_path, "cpu memory pids")
    cg = host.cgroup()
    cg.create()
    with open(f"{cg.paths()['']}/cgroup.controllers", "w") as f:
        f.write("cpu pids\n")  # a parent with processes refused to enable memory
    with pytest.raises(CgroupError, match=r"^linux.resources.memory: memory: the memory controller is not enabled for "):
        cg.apply({"memory": {"limit": MiB}})


def test_controller_absent_from_the_host(tmp_path, kernel):
    host = kernel(v2_host, tmp_path, "cpu memory")
    cg = made(host, {})
    with pytest.raises(CgroupError, match=r"^linux.resources.pids: the pids controller is not available on this host"):
        cg.apply({"pids": {"limit": 5}})


# -- errors -------------------------------------------------------------------

@pytest.mark.parametrize("resources, path", [
    ({"memory": {"limit": "1g"}}, "linux.resources.memory.limit: must be an integer"),
    ({"memory": {"limit": -2}}, "linux.resources.memory.limit: -2 is not a size"),
    ({"memory": {"swappiness": 101}}, "linux.resources.memory.swappiness: 101 is out of range"),
    ({"memory": {"disableOOMKiller": 1}}, "linux.resources.memory.disableOOMKiller: must be true or false"),
    ({"cpu": {"shares": -1}}, "linux.resources.cpu.shares: -1 is out of range"),
    ({"cpu": {"cpus": 1}}, "linux.resources.cpu.cpus: must be a string"),
    ({"blockIO": {"weight": 70000}}, "linux.resources.blockIO.weight: 70000 is out of range"),
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}},
     "linux.resources.blockIO.throttleReadBpsDevice[0].rate: is required"),
    ({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}, "linux.resources.hugepageLimits[0].pageSize: '2M' is not"),
    ({"devices": [{"allow": True, "access": ""}]}, "linux.resources.devices[0].access: '' is not a combination"),
    ({"devices": [{"allow": True, "type": "p"}]}, "linux.resources.devices[0].type: 'p' is not a device type"),
    ({"devices": [{"access": "r"}]}, "linux.resources.devices[0].allow: is required"),
    ({"network": {"priorities": [{"name": "eth0"}]}}, "linux.resources.network.priorities[0].priority: is required"),
    ({"rdma": {"mlx5": {"hcaHandles": -1}}}, "linux.resources.rdma.mlx5.hcaHandles: -1 is out of range"),
    ({"unified": {"memory.max": 5}}, "linux.resources.unified.memory.max: must be a string"),
    ({"memory": []}, "linux.resources.memory: must be an object"),
])
def test_malformed_fields_name_their_json_path(resources, path):
    with pytest.raises(CgroupError) as e:
        Resources(resources)
    assert str(e.value).startswith(path)


def test_unknown_fields_are_ignored_as_the_runtime_spec_requires(tmp_path, kernel):
    host = kernel(v1_host, tmp_path)
    cg = made(host, {"memory": {"limit": MiB, "futureKnob": 1}, "futureSection": {}})
    assert read(f"{cg.paths()['memory']}/memory.limit_in_bytes") == str(MiB)


def test_kernel_refusal_names_path_controller_file_and_value(tmp_path, kernel, monkeypatch):
    host = kernel(v1_host, tmp_path)
    cg = made(host, {})
    from nsbox.cgroups import files
    real = files.write_file

    def busy(path, value):
        if path.endswith("memory.limit_in_bytes"):
            raise OSError(errno.EBUSY, "Device or resource busy", path)
        real(path, value)

    monkeypatch.setattr(files, "write_file", busy)
    with pytest.raises(CgroupError) as e:
        cg.update({"memory": {"limit": 1}})
    assert str(e.value).startswith("linux.resources.memory.limit: memory: cannot write memory.limit_in_bytes = 1: "
                                   "Device or resource busy: current usage 0 bytes")
    assert (e.value.json_path, e.value.controller, e.value.value, e.value.errno) == \
        ("linux.resources.memory.limit", "memory", "1", errno.EBUSY)
    assert e.value.path == f"{cg.paths()['memory']}/memory.limit_in_bytes"


def test_cpuset_refusal_names_what_the_parent_allows(tmp_path, kernel, monkeypatch):
    host = kernel(v1_host, tmp_path)
    cg = made(host, {})
    from nsbox.cgroups import files
    real = files.write_file

    def refuse(path, value):
        if path.endswith("/nsbox-c1/cpuset.cpus"):
            raise OSError(errno.EINVAL, "Invalid argument", path)
        real(path, value)

    with open(host.path("cpuset", "cpuset.effective_cpus"), "w") as f:  # the parent: the root here
        f.write("0-3\n")
    monkeypatch.setattr(files, "write_file", refuse)
    with pytest.raises(CgroupError, match=r"^linux.resources.cpu.cpus: cpuset: cannot write cpuset.cpus = 7: Invalid "
                                          r"argument: the parent cgroup allows 0-3$"):
        cg.update({"cpu": {"cpus": "7"}})


def test_a_missing_control_file_says_so(tmp_path, kernel):
    host = kernel(v1_host, tmp_path)
    cg = made(host, {})
    os.unlink(f"{cg.paths()['cpu,cpuacct']}/cpu.idle")
    with pytest.raises(CgroupError, match=r"^linux.resources.cpu.idle: cpu: cannot write cpu.idle = 1: No such file or "
                                          r"directory: this cgroup has no cpu.idle"):
        cg.update({"cpu": {"idle": 1}})


def test_everything_is_checked_before_the_first_write(tmp_path, kernel):
    host = kernel(v2_host, tmp_path)
    cg = made(host, {})
    before = list(cg.journal)
    with pytest.raises(CgroupError, match="realtimePeriod"):
        cg.apply({"memory": {"limit": MiB}, "pids": {"limit": 3}, "cpu": {"cpus": "0", "realtimePeriod": 5}})
    assert cg.journal == before
    assert read(f"{cg.paths()['']}/memory.max") == "max"


# -- freezer, stats, oom ----------------------------------------------------------

@pytest.mark.parametrize("layout", [v1_host, hybrid_host])
def test_v1_freeze_thaw(tmp_path, kernel, layout):
    host = kernel(layout, tmp_path)
    cg = made(host, {})
    assert not cg.frozen()
    cg.freeze()
    d = cg.paths()["freezer"]
    assert read(f"{d}/freezer.state") == "FROZEN"
    with open(f"{d}/freezer.self_freezing", "w") as f:
        f.write("1\n")  # what the kernel shows for a cgroup frozen by itself
    assert cg.frozen()
    with open(f"{d}/freezer.self_freezing", "w") as f:
        f.write("0\n")  # frozen because a parent is: not paused (runc)
    assert not cg.frozen()
    cg.thaw()
    assert read(f"{d}/freezer.state") == "THAWED" and not cg.frozen()


def test_v2_freeze_waits_for_cgroup_events(tmp_path, kernel):
    host = kernel(v2_host, tmp_path)
    cg = made(host, {})
    d = cg.paths()[""]
    with open(f"{d}/cgroup.events", "w") as f:
        f.write("populated 1\nfrozen 1\n")
    cg.freeze()
    assert read(f"{d}/cgroup.freeze") == "1" and cg.frozen()
    cg.thaw()
    assert read(f"{d}/cgroup.freeze") == "0" and not cg.frozen()


def test_v2_freeze_gives_up_and_thaws(tmp_path, kernel):
    from nsbox.cgroups import freezer
    host = kernel(v2_host, tmp_path)
    cg = made(host, {})
    with pytest.raises(CgroupError, match="did not say frozen"):
        freezer.freeze(cg._freezer(), timeout=0.05)
    assert read(f"{cg.paths()['']}/cgroup.freeze") == "0"


def test_refuse_unfit_v1_a_cgroup_in_use_or_under_a_frozen_one(tmp_path, kernel):
    host = kernel(v1_host, tmp_path)
    cg = host.cgroup("/shared/c")
    cg.refuse_unfit()  # nothing there yet
    cg.create()
    cg.refuse_unfit()  # there, empty, thawed: fit (a path made ahead of time, as a client may)
    with open(f"{cg.paths()['pids']}/cgroup.procs", "w") as f:
        f.write("4242\n")
    with pytest.raises(CgroupError, match=r"^linux.cgroupsPath: the container's cgroup \S+/pids/shared/c is not "
                                          r"empty: 1 process\(es\) in it: containers must not share"):
        cg.refuse_unfit()
    iced = host.cgroup("/ice/c")
    host.mkdir(host.path("freezer", "ice"))
    with open(host.path("freezer", "ice", "freezer.state"), "w") as f:
        f.write("FREEZING\n")
    with pytest.raises(CgroupError, match=r"^linux.cgroupsPath: freezer: \S+/freezer/ice, where the container's "
                                          r"cgroup would go, is frozen: thaw it"):
        iced.refuse_unfit()
    assert not os.path.exists(host.path("freezer", "ice", "c"))  # it only reads


def test_refuse_unfit_v2_frozen_itself_or_by_an_ancestor(tmp_path, kernel):
    host = kernel(v2_host, tmp_path)
    cg = host.cgroup("/ice/c")
    host.mkdir(host.path("ice"))
    cg.refuse_unfit()
    with open(host.path("ice", "cgroup.events"), "w") as f:
        f.write("populated 0\nfrozen 1\n")  # frozen through its own parent, say
    with pytest.raises(CgroupError, match="where the container's cgroup would go, is frozen"):
        cg.refuse_unfit()
    with open(host.path("ice", "cgroup.events"), "w") as f:
        f.write("populated 0\nfrozen 0\n")
    cg.create()
    with open(f"{cg.paths()['']}/cgroup.freeze", "w") as f:
        f.write("1\n")  # asked to freeze, not frozen yet
    with pytest.raises(CgroupError, match=r"cgroup2: the container's cgroup \S+/ice/c is frozen"):
        cg.refuse_unfit()


def test_frozen_of_a_removed_cgroup_is_false(tmp_path):
    assert not hybrid_host(tmp_path).cgroup().frozen()


def test_v1_stats_shape_and_values(tmp_path, kernel):
    host = kernel(v1_host, tmp_path)
    cg = made(host, {"pids": {"limit": 20}, "memory": {"limit": 64 * MiB}})
    with open(f"{cg.paths()['pids']}/pids.current", "w") as f:
        f.write("3\n")
    with open(f"{cg.paths()['memory']}/memory.oom_control", "w") as f:
        f.write("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    s = cg.stats()
    assert set(s) == {"cpu", "memory", "pids", "blkio", "hugetlb"}
    assert s["cpu"]["usage"] == {"total": 3000, "percpu": [1000, 2000], "percpu_kernel": [100, 200],
                                 "percpu_user": [900, 1800], "kernel": 300, "user": 2700}
    assert s["cpu"]["throttling"] == {"periods": 10, "throttledPeriods": 4, "throttledTime": 5000}
    assert s["memory"]["usage"] == {"limit": 64 * MiB, "usage": 0, "max": 0, "failcnt": 0}
    assert s["memory"]["raw"] == {"cache": 4096, "rss": 8192} and s["memory"]["cache"] == 4096
    assert set(s["memory"]) == {"cache", "usage", "swap", "kernel", "kernelTCP", "raw"}
    assert s["pids"] == {"current": 3, "limit": 20}
    assert s["blkio"]["ioServiceBytesRecursive"] == [{"major": 254, "minor": 0, "op": "Read", "value": 4096},
                                                     {"major": 254, "minor": 0, "op": "Write", "value": 8192}]
    assert s["hugetlb"] == {"1GB": {"usage": 0, "max": 0, "failcnt": 0}, "2MB": {"usage": 0, "max": 0, "failcnt": 0}}
    assert cg.oom_count() == 2
    json.dumps(s)


def test_v2_stats_shape_and_values(tmp_path, kernel):
    host = kernel(v2_host, tmp_path)
    cg = made(host, {"memory": {"limit": 64 * MiB, "swap": 96 * MiB}})
    s = cg.stats()
    assert s["cpu"]["usage"]["total"] == 3000 and s["cpu"]["usage"]["user"] == 2000
    assert s["cpu"]["throttling"] == {"periods": 10, "throttledPeriods": 4, "throttledTime": 5000}
    assert s["memory"]["usage"]["limit"] == 64 * MiB and s["memory"]["usage"]["failcnt"] == 2
    assert s["memory"]["swap"]["limit"] == 96 * MiB  # reported as memory+swap, as in v1
    assert s["memory"]["cache"] == 4096
    assert s["pids"] == {"current": 0, "limit": 0}  # "max" is reported as 0 (runc)
    assert s["blkio"]["ioServicedRecursive"] == [{"major": 254, "minor": 0, "op": "Read", "value": 1},
                                                 {"major": 254, "minor": 0, "op": "Write", "value": 2}]
    assert s["hugetlb"] == {"2MB": {"usage": 0, "max": 0, "failcnt": 0}}
    assert cg.oom_count() == 1
    json.dumps(s)


def test_stats_of_a_removed_cgroup_are_zeros(tmp_path):
    s = hybrid_host(tmp_path).cgroup().stats()
    assert s["memory"]["usage"]["usage"] == 0 and s["pids"]["current"] == 0


# --- recorded: delete's rmdir-only way for a stopped container -------------

def _record(tmp_path, mode, hierarchies):
    """A Cgroup.to_record() of *hierarchies* ((kind, controllers, name)) made
    as directories under tmp_path, each with the container's dir inside."""
    out = []
    for kind, controllers, name in hierarchies:
        d = tmp_path / name / "nsbox-c"
        d.mkdir(parents=True)
        out.append({"kind": kind, "controllers": controllers, "mountpoint": str(tmp_path / name), "dir": str(d)})
    return {"version": 1, "mode": mode, "path": "/nsbox-c", "hierarchies": out}


def test_procs_source_is_the_hierarchy_cgroup_pids_reads():
    from nsbox.cgroups.recorded import procs_source

    v1 = [("v1", ["cpu"]), ("v1", ["memory"]), ("v1", ["pids"]), ("v2", [])]
    assert procs_source("hybrid", v1) == 2  # pids first
    assert procs_source("hybrid", v1[:2] + v1[3:]) == 1  # then memory
    assert procs_source("hybrid", [("v1", ["cpu"]), ("v2", [])]) == 1  # then v2
    assert procs_source("v1", [("v1", ["cpu"])]) == 0  # then the first
    assert procs_source("v2", [("v2", ["memory", "pids"])]) == 0
    assert procs_source("v1", []) is None


def test_remove_if_empty_removes_every_dir(tmp_path):
    from nsbox.cgroups.recorded import remove_if_empty

    record = _record(tmp_path, "hybrid", [("v1", ["cpu"], "cpu"), ("v1", ["pids"], "pids"), ("v2", [], "unified")])
    os.rmdir(record["hierarchies"][0]["dir"])  # already gone: fine
    assert remove_if_empty(record) is True
    assert not any(os.path.exists(h["dir"]) for h in record["hierarchies"])


def test_remove_if_empty_stops_at_a_busy_dir_and_keeps_the_one_that_lists_the_processes(tmp_path):
    """A sub-cgroup makes rmdir fail (as processes inside do): False, and the
    pids hierarchy, tried last, is still there for Cgroup to find them in."""
    from nsbox.cgroups.recorded import remove_if_empty

    record = _record(tmp_path, "v1", [("v1", ["pids"], "pids"), ("v1", ["cpu"], "cpu"), ("v1", ["memory"], "mem")])
    busy = record["hierarchies"][2]["dir"]
    os.mkdir(os.path.join(busy, "sub"))
    assert remove_if_empty(record) is False
    assert not os.path.exists(record["hierarchies"][1]["dir"])  # empty: removed on the way
    assert os.path.isdir(busy) and os.path.isdir(record["hierarchies"][0]["dir"])


@pytest.mark.parametrize("bad", [
    None, {"version": 2, "mode": "v1", "hierarchies": []}, {"version": 1, "mode": "v1", "hierarchies": None},
    {"version": 1, "mode": "v1", "hierarchies": ["x"]},
    {"version": 1, "mode": "v1", "hierarchies": [{"kind": "v1", "controllers": ["cpu"], "mountpoint": "/a",
                                                  "dir": "/b/c"}]},  # not under its mount
])
def test_remove_if_empty_leaves_a_record_it_does_not_know_to_cgroup(tmp_path, bad):
    from nsbox.cgroups.recorded import remove_if_empty

    assert remove_if_empty(bad) is False


def test_frozen_reads_the_freezer_a_record_names_and_passes_over_a_malformed_one(tmp_path):
    from nsbox.cgroups.recorded import frozen

    record = _record(tmp_path, "hybrid",
                     [("v1", ["cpu"], "cpu"), ("v1", ["freezer"], "freezer"), ("v2", [], "unified")])
    freezer = record["hierarchies"][1]["dir"]
    with open(f"{freezer}/freezer.state", "w") as f:
        f.write("FROZEN\n")
    with open(f"{freezer}/freezer.self_freezing", "w") as f:
        f.write("1\n")
    assert frozen(record)
    with open(f"{freezer}/freezer.self_freezing", "w") as f:
        f.write("0\n")  # a frozen parent: not paused
    assert not frozen(record)
    # a hierarchy without its dir, or with one outside its mount: not read, and no error
    record["hierarchies"][1] = {"kind": "v1", "controllers": ["freezer"], "mountpoint": str(tmp_path)}
    assert not frozen(record)
    record["hierarchies"][1] = {"kind": "v1", "controllers": ["freezer"], "mountpoint": "/a", "dir": freezer}
    assert not frozen(record)
    assert not frozen({"hierarchies": "x"})


# --- own: where our own cgroups are --------------------------------------------

def test_own_reads_proc_cgroup_and_v1_mount_options():
    from nsbox.cgroups.own import dir_under, own_path, parse_proc_cgroup, v1_controllers

    own = parse_proc_cgroup("12:cpuacct,cpu:/user/5\n1:name=systemd:/init.scope\n0::/user/5\n")
    assert own == {"cpuacct,cpu": "/user/5", "name=systemd": "/init.scope", "": "/user/5"}
    assert own_path(own, "cpu,cpuacct") == "/user/5"  # co-mounted controllers, in another order
    assert own_path(own, "memory") is None
    options = "rw,nsdelegate,cpu,cpuacct,release_agent=/x,name=systemd"
    assert v1_controllers(options) == ("cpu", "cpuacct", "name=systemd")
    assert dir_under("/sys/fs/cgroup/cpu", "/", "/user/5") == "/sys/fs/cgroup/cpu/user/5"
    assert dir_under("/c", "/user", "/user/5") == "/c/5"  # a mount of a sub-tree
    assert dir_under("/c", "/user", "/user") == "/c"
    assert dir_under("/c", "/user", "/users/5") is None  # not under the mount's root
