"""The cgroup v2 device filter on the real kernel (root).

This host is hybrid: v1 controllers, devices among them, plus a cgroup2
mount.  A device program attaches to any cgroup2 cgroup whatever its
controllers, and the kernel asks both the program and the v1 devices
cgroup on every open and mknod of a device node, so the program is tested
here in cgroups of the cgroup2 tree while the v1 devices cgroup of the
processes stays the (allow-all) root.  The same rules written to a v1
devices cgroup give the reference: program, v1 kernel and devices.py's
model must agree.  The last test mounts a fresh cgroup2 at /sys/fs/cgroup in
a private mount namespace, so that nsbox sees a pure v2 host and takes the
BPF path through Cgroup.create/apply/add/update/destroy.

Only child processes join the test cgroups; every cgroup is removed and
every child killed at teardown, also when a test fails.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from nsbox._sys import bpf
from nsbox.cgroups import Cgroup, CgroupError
from nsbox.cgroups import bpf_devices as bd
from nsbox.cgroups.devices import effective, runc_rules, v1_allows, v1_writes
from nsbox.cgroups.files import write_file
from nsbox.mountinfo import parse_mountinfo
from tests.conftest import ROOT, requires_root
from tests.test_cgroups_bpf_unit import rules_of

pytestmark = requires_root

PY = [sys.executable, "-I", "-S", "-c"]

#: a child that waits to be moved into its cgroups, then runs one probe per
#: line of stdin and answers "ok" or the errno's name
PROBER = r"""
import errno, os, sys
for line in sys.stdin:
    words = line.split()
    try:
        if words[0] == "open":
            mode = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR}[words[2]]
            os.close(os.open(words[1], mode | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC))
        elif words[0] == "mknod":
            kind = 0o020000 if words[2] == "c" else 0o060000
            os.mknod(words[1], kind | 0o600, os.makedev(int(words[3]), int(words[4])))
            os.unlink(words[1])
        print("ok", flush=True)
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)), flush=True)
"""

#: device nodes every Linux host has (loop0 where the loop driver is loaded)
NODES = [("c", 1, 3, "/dev/null"), ("c", 1, 5, "/dev/zero"), ("c", 1, 7, "/dev/full"), ("c", 1, 8, "/dev/random"),
         ("c", 1, 9, "/dev/urandom"), ("c", 1, 11, "/dev/kmsg"), ("b", 7, 0, "/dev/loop0")]
NODES = [n for n in NODES if os.path.exists(n[3])]


def v2_mountpoint() -> str | None:
    with open("/proc/self/mountinfo") as f:
        return next((m.mountpoint for m in parse_mountinfo(f.read()) if m.fstype == "cgroup2"), None)


def wait_freed(prog_id: int, timeout: float = 10.0) -> bool:
    """True once the program *prog_id* is freed (the kernel frees a cgroup's
    programs from a work queue after its last reference goes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.close(bpf.prog_get_fd_by_id(prog_id))
        except OSError as e:
            assert e.errno == errno.ENOENT, e
            return True
        time.sleep(0.05)
    return False


class Prober:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([*PY, PROBER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     start_new_session=True)

    def move(self, cgroup_dirs: list[str]) -> Prober:
        for d in cgroup_dirs:
            write_file(os.path.join(d, "cgroup.procs"), str(self.proc.pid))
        return self

    def ask(self, *words: object) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(" ".join(map(str, words)) + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def probe(self, tmp: str) -> dict[tuple[str, int, int, str], str]:
        """{(type, major, minor, access): answer} for every node and access."""
        out = {}
        for t, major, minor, path in NODES:
            for access in ("r", "w", "rw"):
                out[(t, major, minor, access)] = self.ask("open", path, access)
            out[(t, major, minor, "m")] = self.ask("mknod", os.path.join(tmp, "node"), t, major, minor)
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream:
                stream.close()


class Lab:
    """Test cgroups (named nsbox-test-bpf-*) in the cgroup2 tree and the v1
    devices hierarchy, below our own cgroups, and the probers in them."""

    def __init__(self, tmp: str) -> None:
        self.tmp = tmp
        self.dirs: list[str] = []
        self.probers: list[Prober] = []
        # nsbox's own placement: a relative cgroupsPath is below our cgroup in each hierarchy
        self.layout = Cgroup.for_container("nsbox-test-bpf-" + uuid.uuid4().hex[:8], "x")

    def _mkdir(self, h_dir: str) -> str:
        d = f"{h_dir}-{len(self.dirs)}"
        os.mkdir(d)
        self.dirs.append(d)
        return d

    def v2(self, insns: bytes | None = None) -> str:
        h = self.layout._v2()
        if h is None:
            pytest.skip("no cgroup2 mount")
        d = self._mkdir(h.dir)
        if insns is not None:
            bd.install(d, insns)
        return d

    def v1(self, rules) -> str:  # type: ignore[no-untyped-def]
        h = self.layout.hierarchy("devices")
        if h is None:
            pytest.skip("no cgroup v1 devices hierarchy")
        d = self._mkdir(h.dir)
        for name, line, _rule in v1_writes(rules):
            write_file(os.path.join(d, name), line)
        return d

    def prober(self, *dirs: str) -> Prober:
        p = Prober()
        self.probers.append(p)  # killed at cleanup even if the move fails
        return p.move(list(dirs))

    def cleanup(self) -> None:
        for p in self.probers:
            p.stop()
        left = []
        for d in reversed(self.dirs):
            deadline = time.monotonic() + 10
            while os.path.isdir(d):
                try:
                    os.rmdir(d)
                except OSError as e:
                    if e.errno != errno.EBUSY or time.monotonic() > deadline:
                        left.append(f"{d}: {e.strerror}")
                        break
                    time.sleep(0.02)
        assert left == []


@pytest.fixture
def lab(tmp_path):
    b = Lab(str(tmp_path))
    try:
        yield b
    finally:
        b.cleanup()


def expected(rules, answers):  # type: ignore[no-untyped-def]
    state = effective(rules)
    return {key: "ok" if v1_allows(state, *key) else "EPERM" for key in answers}


# -- the brief's case ----------------------------------------------------------------

def test_program_filters_open_and_mknod(lab):
    insns = bd.program(rules_of("-a", "+c 1:3 rwm", "+c 1:5 r"))
    d = lab.v2(insns)
    assert len(bd.attached(d)) == 1
    p = lab.prober(d)
    assert p.ask("open", "/dev/null", "rw") == "ok"
    assert p.ask("open", "/dev/zero", "r") == "ok"
    assert p.ask("open", "/dev/zero", "w") == "EPERM"
    assert p.ask("open", "/dev/zero", "rw") == "EPERM"
    assert p.ask("open", "/dev/full", "r") == "EPERM"
    assert p.ask("mknod", os.path.join(lab.tmp, "full"), "c", 1, 7) == "EPERM"
    assert p.ask("mknod", os.path.join(lab.tmp, "null"), "c", 1, 3) == "ok"
    # the program removed, the same process can open everything
    assert bd.install(d, None) is None and bd.attached(d) == []
    assert set(p.probe(lab.tmp).values()) == {"ok"}


def test_without_a_program_everything_works(lab):
    p = lab.prober(lab.v2())
    answers = p.probe(lab.tmp)
    assert answers and set(answers.values()) == {"ok"}


# -- the program, the v1 kernel and the model agree -----------------------------------

CASES = [
    ["-a", "+c 1:3 rwm", "+c 1:5 r"],
    ["-a", "+c 1:3 r", "+c 1:3 w"],
    ["-a", "+c 1:* r", "+c 1:3 w"],
    ["-a", "+c 1:3 rwm", "-c 1:3 w"],
    ["-a", "+c 1:* rwm", "-c 1:3 rwm"],
    ["+a", "-c 1:3 w", "-b 7:* r"],
    ["+a", "-c 1:* w", "+c 1:3 w"],
    ["-a", "+c *:* m", "+b *:* rw"],
    ["-a", "+c 1:5 rwm", "+a", "-c 1:7 rw"],
    ["-a", "+c 1:9 m", "+c 1:9 r", "-c 1:9 m", "+c 1:11 rw"],
]


@pytest.mark.parametrize("specs", CASES, ids=[" ".join(c) for c in CASES])
def test_program_matches_the_v1_controller(lab, specs):
    rules = rules_of(*specs)
    v2 = lab.prober(lab.v2(bd.program(rules))).probe(lab.tmp)
    v1 = lab.prober(lab.v1(rules)).probe(lab.tmp)
    assert v1 == expected(rules, v1)  # the model is the v1 kernel's behaviour
    assert v2 == v1                   # and the program is the model


def test_runcs_standard_rules_match_the_v1_controller(lab):
    rules = runc_rules(rules_of("-a", "+c 1:11 rwm"))
    v2 = lab.prober(lab.v2(bd.program(rules))).probe(lab.tmp)
    assert v2 == lab.prober(lab.v1(rules)).probe(lab.tmp)
    assert v2[("c", 1, 11, "rw")] == "ok" and v2[("c", 1, 3, "rw")] == "ok"
    if ("b", 7, 0, "r") in v2:
        assert v2[("b", 7, 0, "r")] == "EPERM" and v2[("b", 7, 0, "m")] == "ok"


def test_the_kernel_asks_both_v1_and_the_program(lab):
    v1 = lab.v1(rules_of("-a", "+c 1:3 rwm", "+c 1:5 rwm"))
    v2 = lab.v2(bd.program(rules_of("-a", "+c 1:3 rwm", "+c 1:7 rwm")))
    p = lab.prober(v1, v2)
    assert p.ask("open", "/dev/null", "rw") == "ok"
    assert p.ask("open", "/dev/zero", "r") == "EPERM"  # the program says no
    assert p.ask("open", "/dev/full", "r") == "EPERM"  # v1 says no


# -- replacing and releasing ----------------------------------------------------------

def test_install_replaces_the_program_instead_of_stacking(lab):
    d = lab.v2()
    first = bd.install(d, bd.program(rules_of("-a", "+c 1:3 rwm")))
    p = lab.prober(d)
    assert p.ask("open", "/dev/zero", "r") == "EPERM"
    second = bd.install(d, bd.program(rules_of("-a", "+c 1:3 rwm", "+c 1:5 rw")))
    assert first != second and bd.attached(d) == [second]
    assert wait_freed(first)  # detached and no fd left: gone
    assert p.ask("open", "/dev/zero", "rw") == "ok"
    assert p.ask("open", "/dev/full", "r") == "EPERM"


def test_install_replaces_a_program_attached_without_allow_multi(lab):
    d = lab.v2()
    fd = bd.load(bd.program(rules_of("-a")))
    try:
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            bpf.prog_attach(dfd, fd, bpf.BPF_CGROUP_DEVICE, 0)  # exclusive: a MULTI attach next to it is refused
            assert bpf.prog_query(dfd, bpf.BPF_CGROUP_DEVICE)[0] == 0
        finally:
            os.close(dfd)
    finally:
        os.close(fd)
    new = bd.install(d, bd.program(rules_of("-a", "+c 1:3 rwm")))
    assert bd.attached(d) == [new]
    assert lab.prober(d).ask("open", "/dev/null", "rw") == "ok"


def test_removing_the_cgroup_frees_its_program(lab):
    d = lab.v2()
    prog_id = bd.install(d, bd.program(rules_of("-a", "+c 1:3 rwm")))
    assert prog_id is not None
    os.rmdir(d)
    assert wait_freed(prog_id)


# -- loading --------------------------------------------------------------------------

def test_programs_of_every_shape_pass_the_verifier():
    import random

    rng = random.Random(11)
    for _ in range(60):
        specs = [rng.choice(["+a", "-a", "+c 1:3 rw", "-c 1:3 w", "+b 8:* r", "-c *:* m", "+c 1:* rwm",
                             "+b *:0 m", "-c 136:* rwm"]) for _ in range(rng.randrange(0, 8))]
        os.close(bd.load(bd.program(rules_of(*specs))))

def verifier_steps(insns: bytes) -> int:
    """How many instructions the verifier walked to accept the program."""
    import ctypes
    import re

    log = ctypes.create_string_buffer(1 << 12)
    os.close(bpf.prog_load(bpf.BPF_PROG_TYPE_CGROUP_DEVICE, insns, bd.LICENSE, "stats", log, log_level=4))
    found = re.search(r"processed (\d+) insns", log.value.decode())
    assert found, log.value
    return int(found.group(1))


@pytest.mark.parametrize("default, verdict", [("-a", "+"), ("+a", "-")])
def test_verification_is_linear(default, verdict):
    # many rules sharing a major: the shape that defeats the verifier's
    # pruning when registers keep the values compared (see bpf_devices)
    big = rules_of(default, *(f"{verdict}c {i // 1000}:{i % 1000} rw" for i in range(3000)))
    insns = bd.program(big)
    assert len(insns) // 8 > 27_000
    assert verifier_steps(insns) < 2 * len(insns) // 8


def test_loading_needs_no_locked_memory():
    """Kernels >= 5.11 charge BPF memory to the memory cgroup, not to
    RLIMIT_MEMLOCK: a 300-rule filter loads even with the limit at 0."""
    script = f"""
import resource, sys
sys.path.insert(0, {ROOT!r})
resource.setrlimit(resource.RLIMIT_MEMLOCK, (0, 0))
from nsbox.cgroups import bpf_devices as bd
from tests.test_cgroups_bpf_unit import rules_of
rules = rules_of("-a", *(f"+c {{i % 250}}:{{i}} rw" for i in range(300)))
import os
os.close(bd.load(bd.program(rules)))
print("loaded", len(bd.program(rules)) // 8)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "loaded"


def test_a_refused_program_names_the_verifiers_reason():
    with pytest.raises(CgroupError, match=r"^linux.resources.devices: cgroup2: cannot load the device filter "
                                          r"\(1 BPF instructions\): bpf\(BPF_PROG_LOAD\): .*\(verifier: .+\)"):
        bd.load(bd.encode(bd.MOV32_K, 0, imm=1))  # no exit


def test_install_on_a_directory_that_is_no_cgroup(tmp_path):
    with pytest.raises(CgroupError, match=rf"^linux.resources.devices: cgroup2: cannot list the device programs of "
                                          rf"{tmp_path}: bpf\(BPF_PROG_QUERY\): "):
        bd.install(str(tmp_path), None)


# -- a pure cgroup v2 host --------------------------------------------------------------

#: run in a private mount namespace whose /sys/fs/cgroup is a lone cgroup2
#: mount; argv: nsbox's source root, the container id; prints the findings as JSON
PURE_V2 = r"""
import json, os, subprocess, sys
sys.path.insert(0, sys.argv[1])
from nsbox.cgroups import Cgroup, bpf_devices
from tests.test_cgroups_bpf_kernel import PROBER, PY
cid = sys.argv[2]
out = {}
cg = Cgroup.for_container("/" + cid, cid)
out["mode"] = cg.mode
d = cg.paths()[""]
out["dir"] = d
cg.create()
prober = None
try:
    cg.apply({"devices": [{"allow": False, "access": "rwm"},
                          {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "r"},
                          {"allow": True, "type": "b", "major": 7, "minor": 0, "access": "rwm"}]})
    out["warnings"] = cg.warnings
    out["attached"] = bpf_devices.attached(d)
    prober = subprocess.Popen([*PY, PROBER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    cg.add(prober.pid)

    def ask(*words):
        prober.stdin.write(" ".join(map(str, words)) + "\n")
        prober.stdin.flush()
        return prober.stdout.readline().strip()

    def probes():
        return {"null rw": ask("open", "/dev/null", "rw"), "kmsg r": ask("open", "/dev/kmsg", "r"),
                "kmsg w": ask("open", "/dev/kmsg", "w"), "loop0 r": ask("open", "/dev/loop0", "r"),
                "loop1 r": ask("open", "/dev/loop1", "r"), "full w": ask("open", "/dev/full", "w"),
                "mknod kmsg": ask("mknod", os.path.join(sys.argv[3], "kmsg"), "c", 1, 11)}

    out["applied"] = probes()
    # a later verb: the cgroup from state.json, an update of the devices only
    later = Cgroup.from_record(json.loads(json.dumps(cg.to_record())))
    later.update({"devices": [{"allow": False, "access": "rwm"}]})
    out["attached after update"] = bpf_devices.attached(d)
    out["updated"] = probes()
finally:
    if prober is not None:
        prober.kill()
        prober.wait()
    cg.destroy()
out["exists after destroy"] = os.path.exists(d)
print(json.dumps(out))
"""


def test_pure_v2_host_end_to_end(tmp_path):
    host_v2 = v2_mountpoint()
    if host_v2 is None:
        pytest.skip("no cgroup2 mount")
    if not os.path.exists("/dev/loop1") or not os.path.exists("/dev/kmsg"):
        pytest.skip("needs /dev/kmsg, /dev/loop0 and /dev/loop1")
    cid = "nsbox-test-bpf-v2-" + uuid.uuid4().hex[:8]
    host_dir = os.path.join(host_v2, cid)  # the same cgroup, as this namespace sees it
    setup = 'umount -R /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$@"'
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", setup, "sh",
            sys.executable, "-c", PURE_V2, ROOT, cid, str(tmp_path)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT, start_new_session=True)
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
    finally:
        # on failure the child may have left the cgroup (and a prober in it)
        if os.path.isdir(host_dir):
            with open(os.path.join(host_dir, "cgroup.procs")) as f:
                for pid in f.read().split():
                    os.kill(int(pid), 9)
            deadline = time.monotonic() + 10
            while os.path.isdir(host_dir) and time.monotonic() < deadline:
                try:
                    os.rmdir(host_dir)
                except OSError:
                    time.sleep(0.05)
    assert out["mode"] == "v2" and out["dir"] == f"/sys/fs/cgroup/{cid}"
    assert out["warnings"] == [] and len(out["attached"]) == 1
    assert out["applied"] == {"null rw": "ok", "kmsg r": "ok", "kmsg w": "EPERM", "loop0 r": "ok",
                              "loop1 r": "EPERM", "full w": "ok", "mknod kmsg": "ok"}
    # one program still, a new one: the spec's kmsg rule and the linux.devices node are gone
    assert len(out["attached after update"]) == 1 and out["attached after update"] != out["attached"]
    assert out["updated"] == {"null rw": "ok", "kmsg r": "EPERM", "kmsg w": "EPERM", "loop0 r": "EPERM",
                              "loop1 r": "EPERM", "full w": "ok", "mknod kmsg": "ok"}
    assert out["exists after destroy"] is False and not os.path.exists(host_dir)
    assert wait_freed(out["attached after update"][0])


def test_nothing_left():
    done = subprocess.run(["find", "/sys/fs/cgroup", "-name", "nsbox-test-bpf*"], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.split() == []
