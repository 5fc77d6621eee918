"""``nsbox ns enter`` on the real kernel."""

from __future__ import annotations

import os

import pytest

from conftest import children_of, nsbox, requires_root, wait_for_line

pytestmark = requires_root

TYPES = ("mnt", "uts", "ipc", "pid", "net", "user", "cgroup", "time")
INODES = "for t in " + " ".join(TYPES) + "; do stat -L -c %i /proc/self/ns/$t; done"


def inodes_of(pid: int) -> list[int]:
    return [os.stat(f"/proc/{pid}/ns/{t}").st_ino for t in TYPES]


@pytest.fixture
def container(background):
    """A process in new namespaces of every type, as a container would be."""
    p = background("ns", "unshare", "--all", "--fork", "--mount-proc", "-r", "--hostname", "nsbox-enter",
                   "--", "sh", "-c", "cd /tmp; echo ready; exec sleep 60")
    wait_for_line(p)
    [child] = children_of(p.pid)
    return child


def test_enter_all_reports_the_same_namespace_inodes(container):
    r = nsbox("ns", "enter", "-t", str(container), "--all", "--", "sh", "-c", INODES, check=True)
    assert [int(x) for x in r.stdout.split()] == inodes_of(container)
    assert inodes_of(container) != inodes_of(os.getpid())


def test_enter_lives_in_the_pid_namespace_and_sees_its_tree(container):
    r = nsbox("ns", "enter", "-t", str(container), "--all", "--", "sh", "-c",
              "echo $$; hostname; ps -eo pid=,comm=", check=True)
    lines = r.stdout.strip().splitlines()
    assert lines[1] == "nsbox-enter"
    assert int(lines[0]) > 1  # a new process of that PID namespace, not its init
    procs = {tuple(line.split()) for line in lines[2:]}
    assert ("1", "sleep") in procs


def test_enter_user_namespace_becomes_its_root(container):
    r = nsbox("ns", "enter", "-t", str(container), "--user", "--", "sh", "-c", "id -u; cat /proc/self/uid_map",
              check=True)
    uid, *uid_map = r.stdout.split()
    assert uid == "0" and uid_map == ["0", "0", "1"]


def test_enter_single_type_leaves_the_others(container):
    r = nsbox("ns", "enter", "-t", str(container), "--uts", "--", "sh", "-c", INODES, check=True)
    got = [int(x) for x in r.stdout.split()]
    ours = inodes_of(os.getpid())
    theirs = inodes_of(container)
    for i, t in enumerate(TYPES):
        assert got[i] == (theirs[i] if t == "uts" else ours[i]), t


def test_enter_root_and_wd_follow_the_target(container):
    r = nsbox("ns", "enter", "-t", str(container), "--mount", "-r", "-w", "--", "pwd", check=True)
    assert r.stdout.strip() == "/tmp"


def test_enter_by_namespace_file(container):
    r = nsbox("ns", "enter", f"--uts=/proc/{container}/ns/uts", "hostname", check=True)
    assert r.stdout.strip() == "nsbox-enter"


def test_enter_trace_uses_a_pidfd_when_all_come_from_the_target(container):
    r = nsbox("--trace", "ns", "enter", "-t", str(container), "--all", "true", check=True)
    assert f"pidfd_open({container}, 0) = " in r.stderr
    assert f'setns("pidfd:{container}", ' in r.stderr
    assert "prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) = 0" in r.stderr  # before any join


def test_enter_missing_pid_is_one_line():
    r = nsbox("ns", "enter", "-t", "999999", "--all", "true")
    assert r.returncode == 1
    assert r.stderr == "nsbox: ns enter: no process with pid 999999\n"


@pytest.mark.parametrize("args,message", [
    (["--all", "true"], "no target process"),
    (["-t", "1", "true"], "no namespace to enter"),
    (["-t", "abc", "--all", "true"], "--target takes a number"),
])
def test_enter_usage_errors(args, message):
    r = nsbox("ns", "enter", *args)
    assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1


def test_enter_exit_status_passes_through(container):
    assert nsbox("ns", "enter", "-t", str(container), "--all", "sh", "-c", "exit 9").returncode == 9
    assert nsbox("ns", "enter", "-t", str(container), "--uts", "sh", "-c", "exit 4").returncode == 4
