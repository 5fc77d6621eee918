"""nsbox.cgroups.warmup: which cgroup.procs the warming child writes (fake
/proc trees), and what the child does on the real kernel."""

from __future__ import annotations

import os
import time

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


@requires_root
def test_the_child_moves_within_our_own_cgroup_and_ends():
    """Its moves change nothing (it stays where we are), and it goes away by
    itself; how much it saves is bench/runtime.sh's to show."""
    child = warmup.start()
    assert child is not None
    with open("/proc/self/cgroup") as f:
        ours = f.read()
    time.sleep(0.02)  # it has moved itself a few times by now
    with open(f"/proc/{child}/cgroup") as f:
        assert f.read() == ours
    started = time.monotonic()
    _, status = os.waitpid(child, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert time.monotonic() - started < warmup.LINGER + 1


@requires_root
def test_the_child_holds_none_of_our_fds():
    r, w = os.pipe()
    child = warmup.start()
    assert child is not None
    try:
        time.sleep(0.02)
        os.close(w)
        assert os.read(r, 1) == b""  # EOF at once: the child, still alive, has no copy of w
        assert os.waitpid(child, os.WNOHANG) == (0, 0)
    finally:
        os.close(r)
        os.waitpid(child, 0)


def test_the_launcher_finds_the_verb_behind_the_global_options():
    from nsbox.cli import VALUED_GLOBAL_OPTIONS, verb_of
    from nsbox.cli.main import GLOBAL
    from nsbox.cli.options import REQUIRED

    assert verb_of(["--root", "/r", "--debug", "create", "--bundle", "b", "x"]) == "create"
    assert verb_of(["--log=/l", "--log-format", "json", "exec", "x", "run"]) == "exec"
    assert verb_of(["--rootless", "true", "--criu", "c", "state", "run"]) == "state"
    assert verb_of(["--version"]) is None
    # the global options that take a value, as the parser knows them
    valued = {name for opt in GLOBAL.opts if opt.arg == REQUIRED for name in opt.names if name.startswith("--")}
    assert valued == set(VALUED_GLOBAL_OPTIONS)
