"""nsbox.cgroups.warmup: which cgroup.procs the warming thread writes (fake
/proc trees), and what the thread does on the real kernel."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import requires_root

from nsbox.cgroups import warmup


def _proc(tmp_path, mountinfo: str, cgroup: str) -> str:
    (tmp_path / "mountinfo").write_text(mountinfo)
    (tmp_path / "cgroup").write_text(cgroup)
    return str(tmp_path)


def test_v1_first_hierarchy_at_our_own_cgroup(tmp_path):
    proc = _proc(tmp_path,
                 "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
                 "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
                 "33 31 0:30 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n",
                 "2:pids:/user/5\n1:cpu,cpuacct:/user/5\n")
    assert warmup.own_procs_file(proc) == "/sys/fs/cgroup/cpu,cpuacct/user/5/cgroup.procs"


def test_v2_and_the_root_cgroup(tmp_path):
    proc = _proc(tmp_path, "30 23 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n", "0::/\n")
    assert warmup.own_procs_file(proc) == "/sys/fs/cgroup/cgroup.procs"


def test_a_mount_of_a_sub_tree(tmp_path):
    # inside a container: the hierarchy's root is our own cgroup
    proc = _proc(tmp_path, "30 23 0:27 /pod/ctr /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
                 "0::/pod/ctr/app\n")
    assert warmup.own_procs_file(proc) == "/sys/fs/cgroup/app/cgroup.procs"


def test_nothing_to_warm(tmp_path):
    assert warmup.own_procs_file(_proc(tmp_path, "22 27 0:21 / /proc rw - proc proc rw\n", "0::/\n")) is None
    # our cgroup lies outside what is mounted
    proc = _proc(tmp_path, "30 23 0:27 /other /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", "0::/mine\n")
    assert warmup.own_procs_file(proc) is None
    assert warmup.start(str(tmp_path / "missing")) is None


def _cgroupfs(tmp_path, listing: dict[str, str]) -> str:
    """A fake /sys/fs/cgroup: each key a directory whose cgroup.procs holds its value."""
    root = tmp_path / "cgroupfs"
    for d, procs in listing.items():
        (root / d).mkdir(parents=True, exist_ok=True)
        (root / d / "cgroup.procs").write_text(procs)
    return str(root)


def test_the_guess_takes_the_usual_layout_once_it_lists_us(tmp_path):
    proc = _proc(tmp_path, "", "3:name=systemd:/user/5\n2:pids:/user/5\n1:cpu,cpuacct:/user/5\n0::/user/5\n")
    fs = _cgroupfs(tmp_path, {"systemd/user/5": "41\n42\n", "pids/user/5": "42\n"})
    assert warmup.guess_own_procs_file(proc, fs, pid=42) == f"{fs}/systemd/user/5/cgroup.procs"
    # a file that does not list us is not ours, whatever its path says: the next line
    assert warmup.guess_own_procs_file(proc, fs, pid=41) == f"{fs}/systemd/user/5/cgroup.procs"
    assert warmup.guess_own_procs_file(proc, fs, pid=7) is None


def test_the_guess_takes_no_symlink(tmp_path):
    """A cgroup.procs is never a symlink; one that is, even to a file that
    lists us, is passed over (and the thread would not write through it)."""
    proc = _proc(tmp_path, "", "1:pids:/a\n")
    fs = _cgroupfs(tmp_path, {"elsewhere": "42\n"})
    os.makedirs(f"{fs}/pids/a")
    os.symlink(f"{fs}/elsewhere/cgroup.procs", f"{fs}/pids/a/cgroup.procs")
    assert warmup.guess_own_procs_file(proc, fs, pid=42) is None


def test_the_guess_on_a_v2_host_and_for_co_mounted_controllers(tmp_path):
    fs = _cgroupfs(tmp_path, {"": "1\n9\n", "cpu,cpuacct/a": "9\n"})
    assert warmup.guess_own_procs_file(_proc(tmp_path, "", "0::/\n"), fs, pid=9) == f"{fs}/cgroup.procs"
    assert warmup.guess_own_procs_file(_proc(tmp_path, "", "1:cpu,cpuacct:/a\n"), fs, pid=9) == \
        f"{fs}/cpu,cpuacct/a/cgroup.procs"
    # elsewhere (a path outside the mount, a missing /proc file): the mount table's turn
    assert warmup.guess_own_procs_file(_proc(tmp_path, "", "0::/../up\n"), fs, pid=9) is None
    assert warmup.guess_own_procs_file(str(tmp_path / "missing"), fs, pid=9) is None


_OBSERVE = """
import os, sys, time
from nsbox.cgroups import warmup
with open("/proc/self/cgroup") as f:
    before = f.read()
assert warmup.start() is not None
time.sleep(0.02)  # it has moved us a few times by now
during = len(os.listdir("/proc/self/task"))
# what it writes to: our own cgroup's cgroup.procs, as the kernel names the open file
writing = set()
for fd in os.listdir("/proc/self/fd"):
    try:
        writing.add(os.readlink(f"/proc/self/fd/{fd}"))
    except FileNotFoundError:
        pass  # listdir's own fd, closed by now
with open("/proc/self/cgroup") as f:
    moved = f.read()
time.sleep(warmup.LINGER + 0.2)
ours = [p for p in writing if p.endswith("/cgroup.procs") and str(os.getpid()) in open(p).read().split()]
print(during, len(os.listdir("/proc/self/task")), moved == before, len(ours) == 1)
"""


@requires_root
def test_the_thread_moves_us_within_our_own_cgroup_and_ends():
    """Its moves change nothing (we stay where we were), and it ends by
    itself; how much it saves is bench/runtime.sh's to show.  Observed in a
    child interpreter: the thread moves its whole process."""
    out = subprocess.run([sys.executable, "-c", _OBSERVE], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    # two threads, then one; the same cgroups; it held our own cgroup.procs open
    assert out.stdout.split() == ["2", "1", "True", "True"]


def test_the_launcher_finds_the_verb_behind_the_global_options():
    from nsbox.cli import VALUED_GLOBAL_OPTIONS, split_verb
    from nsbox.cli.main import GLOBAL
    from nsbox.cli.options import REQUIRED

    assert split_verb(["--root", "/r", "--debug", "create", "--bundle", "b", "x"])[1] == "create"
    assert split_verb(["--log=/l", "--log-format", "json", "exec", "x", "run"])[1] == "exec"
    assert split_verb(["--rootless", "true", "--criu", "c", "state", "run"])[1] == "state"
    assert split_verb(["--version"]) == (["--version"], None)
    # the launcher looks for --trace among them (a traced create forks its stage 1 itself)
    assert split_verb(["--root", "--trace", "--trace", "run", "--trace"]) == (["--root", "--trace", "--trace"], "run")
    # the global options that take a value, as the parser knows them
    valued = {name for opt in GLOBAL.opts if opt.arg == REQUIRED for name in opt.names if name.startswith("--")}
    assert valued == set(VALUED_GLOBAL_OPTIONS)
