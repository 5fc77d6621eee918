"""``nsbox ns unshare`` on the real kernel: every experiment of the lessons, observed."""

from __future__ import annotations

import ctypes
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from conftest import (
    UNPRIVILEGED_UID,
    children_of,
    ns_inode,
    nsbox,
    nsbox_as,
    requires_root,
    wait_for_line,
)

pytestmark = requires_root


def mountinfo_lines(pid: int | str = "self") -> list[str]:
    with open(f"/proc/{pid}/mountinfo") as f:
        return f.read().splitlines()


# --- UTS -------------------------------------------------------------------

def test_uts_hostname_differs_inside_only():
    host = socket.gethostname()
    r = nsbox("ns", "unshare", "--uts", "--hostname", "nsbox-uts-test", "--",
              "sh", "-c", "hostname; readlink /proc/self/ns/uts", check=True)
    name, link = r.stdout.split()
    assert name == "nsbox-uts-test"
    assert socket.gethostname() == host != name
    assert link != os.readlink("/proc/self/ns/uts")


def test_domainname():
    r = nsbox("ns", "unshare", "-u", "--domainname", "nsbox.example", "cat",
              "/proc/sys/kernel/domainname", check=True)
    assert r.stdout.strip() == "nsbox.example"
    with open("/proc/sys/kernel/domainname") as f:
        assert f.read().strip() != "nsbox.example"


# --- IPC -------------------------------------------------------------------

def sysv_queue_ids(text: str) -> set[int]:
    # /proc/sysvipc/msg: header line, then "key msqid perms ..."
    return {int(line.split()[1]) for line in text.splitlines()[1:] if line.strip()}


@pytest.fixture
def host_queue():
    out = subprocess.run(["ipcmk", "-Q"], capture_output=True, text=True, check=True).stdout
    qid = int(out.split(":")[-1])
    yield qid
    subprocess.run(["ipcrm", "-q", str(qid)], capture_output=True)


def test_ipc_sysv_queue_invisible_both_ways(host_queue):
    with open("/proc/sysvipc/msg") as f:
        assert host_queue in sysv_queue_ids(f.read())
    # Inside: the host's queue is absent; a queue made inside is listed there...
    r = nsbox("ns", "unshare", "--ipc", "--", "sh", "-c",
              "cat /proc/sysvipc/msg; echo ---; ipcmk -Q >/dev/null; cat /proc/sysvipc/msg", check=True)
    before, after = r.stdout.split("---\n")
    assert host_queue not in sysv_queue_ids(before)
    assert sysv_queue_ids(before) == set()
    assert len(sysv_queue_ids(after)) == 1
    # ...and never shows up outside (it died with the namespace; check it was not ours either).
    with open("/proc/sysvipc/msg") as f:
        host_ids = sysv_queue_ids(f.read())
    assert host_queue in host_ids


def queue_keys(text: str) -> set[str]:
    return {line.split()[0] for line in text.splitlines()[1:] if line.strip()}


def test_ipc_sysv_queue_made_inside_is_invisible_outside(background):
    p = background("ns", "unshare", "--ipc", "--fork", "--", "sh", "-c",
                   "ipcmk -Q >/dev/null; echo ready; exec sleep 60")
    wait_for_line(p)
    [child] = children_of(p.pid)
    # /proc/sysvipc shows the reader's IPC namespace: read it from in there
    inside = nsbox("ns", "enter", "-t", str(child), "--ipc", "cat", "/proc/sysvipc/msg", check=True).stdout
    with open("/proc/sysvipc/msg") as f:
        outside = f.read()
    [key] = queue_keys(inside)
    assert key not in queue_keys(outside)


POSIX_MQ_PROBE = """
import ctypes, os, sys
rt = ctypes.CDLL("librt.so.1", use_errno=True)
rt.mq_open.restype = ctypes.c_int
fd = rt.mq_open(sys.argv[1].encode(), os.O_RDONLY)
print("found" if fd >= 0 else "missing:" + os.strerror(ctypes.get_errno()))
"""


def test_ipc_posix_mq_invisible_inside():
    rt = ctypes.CDLL("librt.so.1", use_errno=True)
    name = f"/nsbox-test-{os.getpid()}".encode()
    fd = rt.mq_open(name, os.O_CREAT | os.O_RDWR, 0o600, None)
    assert fd >= 0, os.strerror(ctypes.get_errno())
    try:
        outside = subprocess.run([sys.executable, "-c", POSIX_MQ_PROBE, name.decode()],
                                 capture_output=True, text=True, check=True).stdout.strip()
        inside = nsbox("ns", "unshare", "--ipc", "--", sys.executable, "-c", POSIX_MQ_PROBE,
                       name.decode(), check=True).stdout.strip()
    finally:
        os.close(fd)
        rt.mq_unlink(name)
    assert outside == "found"
    assert inside == "missing:No such file or directory"


# --- PID -------------------------------------------------------------------

def test_pid_command_is_pid_1():
    r = nsbox("ns", "unshare", "--pid", "--fork", "--", "sh", "-c", "echo $$", check=True)
    assert r.stdout.strip() == "1"


def test_pid_mount_proc_shows_only_own_tree_and_host_proc_unchanged():
    host_proc_mounts = [line for line in mountinfo_lines() if " - proc " in line]
    r = nsbox("ns", "unshare", "--fork", "--pid", "--mount-proc", "--",
              "sh", "-c", "sleep 0 & ps -eo pid=,comm=; wait", check=True)
    rows = [line.split() for line in r.stdout.strip().splitlines()]
    assert rows[0] == ["1", "sh"]
    assert {row[1] for row in rows} <= {"sh", "ps", "sleep"} and len(rows) <= 3
    # The host's /proc still shows the host: our own pid, and many processes.
    assert os.readlink("/proc/self") == str(os.getpid())
    assert len([d for d in os.listdir("/proc") if d.isdigit()]) > 3
    assert [line for line in mountinfo_lines() if " - proc " in line] == host_proc_mounts


def test_pid_without_fork_is_the_classic_pitfall():
    # unshare(CLONE_NEWPID) moves only the children: the command itself keeps its pid.
    r = nsbox("ns", "unshare", "--pid", "--", "sh", "-c", "echo $$; sh -c 'echo $$'", check=True)
    first, second = r.stdout.split()
    assert first != "1" and second == "1"


# --- mount -----------------------------------------------------------------

def test_mount_inside_never_reaches_host(background, tmp_path):
    target = tmp_path / "m"
    target.mkdir()
    p = background("ns", "unshare", "--mount", "--", "sh", "-c",
                   f"mount -t tmpfs nsbox-test-tmpfs {target} && echo ready && exec sleep 60")
    wait_for_line(p)
    inside = mountinfo_lines(p.pid)
    assert any(f" {target} " in line and "nsbox-test-tmpfs" in line for line in inside)
    assert not any(str(target) in line for line in mountinfo_lines())


PITFALL = """
set -e
mount --make-rshared /
mkdir -p {d}
nsbox ns unshare --mount {prop} -- mount -t tmpfs nsbox-pitfall {d}
if grep -q " {d} " /proc/self/mountinfo; then echo leaked; umount {d}; else echo contained; fi
"""


@pytest.mark.parametrize("prop,expected", [("--propagation=unchanged", "leaked"), ("", "contained")])
def test_shared_subtree_pitfall(tmp_path, prop, expected):
    # A throwaway mount namespace plays a systemd host whose "/" is shared.
    # In it, a mount made inside a new mount namespace propagates back unless
    # the new namespace's propagation is changed first -- which is the default.
    if not shutil.which("unshare"):
        pytest.skip("util-linux unshare missing")
    script = PITFALL.format(d=tmp_path / "pit", prop=prop)
    r = subprocess.run(["unshare", "--mount", "--propagation", "unchanged", "sh", "-c",
                        f'nsbox() {{ {sys.executable} -m nsbox "$@"; }}\n' + script],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == expected


def test_mount_proc_pitfall_breaks_outer_proc_only_when_unchanged(tmp_path):
    # The lesson's pitfall itself: mounting /proc in a new mount namespace of a
    # shared-subtree host replaces the host's /proc, which then shows a dead
    # PID namespace.  The default private propagation prevents it.
    script = """
mount --make-rshared /
nsbox ns unshare --fork --pid --mount {prop} -- mount -t proc proc /proc
if [ -e /proc/self/stat ]; then echo proc-ok; else echo proc-broken; umount /proc; fi
"""
    results = {}
    for prop in ("--propagation=unchanged", ""):
        r = subprocess.run(["unshare", "--mount", "--propagation", "unchanged", "sh", "-c",
                            f'nsbox() {{ {sys.executable} -m nsbox "$@"; }}\n' + script.format(prop=prop)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        results[prop] = r.stdout.strip()
    assert results == {"--propagation=unchanged": "proc-broken", "": "proc-ok"}


# --- user ------------------------------------------------------------------

def test_user_root_inside_unprivileged_outside(tmp_path):
    script = ("id -u; id -g; cat /proc/self/uid_map; stat -c %u /etc/passwd; "
              "if echo x > /etc/nsbox-probe 2>/dev/null; then echo wrote; else echo denied; fi; "
              "if hostname nsbox-evil 2>/dev/null; then echo renamed; else echo refused; fi")
    r = nsbox_as(UNPRIVILEGED_UID, "ns", "unshare", "--user", "--map-root-user", "--", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    uid, gid, m_inner, m_outer, m_count, passwd_owner, write, rename = r.stdout.split()
    assert (uid, gid) == ("0", "0")
    assert (m_inner, m_outer, m_count) == ("0", str(UNPRIVILEGED_UID), "1")
    assert passwd_owner == "65534"  # host root is not mapped: the overflow uid
    # "root" in a user namespace has no power over what the host's user namespace owns
    assert write == "denied" and not os.path.exists("/etc/nsbox-probe")
    assert rename == "refused"


def test_user_process_is_unprivileged_as_seen_from_host():
    p = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; sys.path.insert(0, 'tests'); from conftest import nsbox_as; "
         f"nsbox_as({UNPRIVILEGED_UID}, 'ns', 'unshare', '-r', '--', 'sh', '-c', "
         f"'echo ready; exec sleep 60', timeout=60)"],
        cwd=os.path.dirname(os.path.dirname(__file__)), stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        sleeper = None
        while time.monotonic() < deadline and sleeper is None:
            for pid in (d for d in os.listdir("/proc") if d.isdigit()):
                try:
                    with open(f"/proc/{pid}/status") as f:
                        status = f.read()
                except OSError:
                    continue
                if f"Uid:\t{UNPRIVILEGED_UID}\t" in status and "Name:\tsleep" in status:
                    sleeper = pid
            time.sleep(0.05)
        assert sleeper, "the sleeping command did not appear"
        with open(f"/proc/{sleeper}/uid_map") as f:
            assert f.read().split() == ["0", str(UNPRIVILEGED_UID), "1"]
        with open(f"/proc/{sleeper}/status") as f:
            status = f.read()
        # from the host: an ordinary uid with no capabilities in the host's namespace
        assert f"Uid:\t{UNPRIVILEGED_UID}\t{UNPRIVILEGED_UID}" in status
    finally:
        subprocess.run(["pkill", "-9", "-U", str(UNPRIVILEGED_UID)], capture_output=True)
        p.wait(timeout=10)


def test_user_ranges_written_by_privileged_helper():
    r = nsbox("ns", "unshare", "--map-users=0:100000:65536", "--map-groups=0:100000:65536",
              "--", "sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; id -u",
              check=True)
    lines = r.stdout.split("\n")
    assert lines[0].split() == ["0", "100000", "65536"]
    assert lines[1].split() == ["0", "100000", "65536"]
    assert lines[2] == "allow"
    assert lines[3] == "65534"  # our own uid (0 outside) is not in the map


def test_user_setgroups_deny_and_allow():
    deny = nsbox("ns", "unshare", "-r", "cat", "/proc/self/setgroups", check=True).stdout.strip()
    allow = nsbox("ns", "unshare", "-r", "--setgroups=allow", "cat", "/proc/self/setgroups",
                  check=True).stdout.strip()
    assert (deny, allow) == ("deny", "allow")


def test_not_root_without_user_namespace_is_one_clear_line():
    r = nsbox_as(UNPRIVILEGED_UID, "ns", "unshare", "--uts", "true")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1
    assert r.stderr.startswith("nsbox: ns unshare: unshare(CLONE_NEWUTS): Operation not permitted:")
    assert "--user --map-root-user" in r.stderr


def test_user_namespaces_disabled_is_explained():
    # user.max_user_namespaces is per user namespace: set it to 0 inside a
    # throwaway one, so the host's setting is never touched.
    r = subprocess.run(
        ["unshare", "--user", "--map-root-user", "sh", "-c",
         f"echo 0 > /proc/sys/user/max_user_namespaces && {sys.executable} -m nsbox ns unshare -U true"],
        capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "unshare(CLONE_NEWUSER): No space left on device" in r.stderr
    assert "user.max_user_namespaces = 0" in r.stderr and r.stderr.count("\n") == 1


# --- net -------------------------------------------------------------------

def test_net_only_loopback_and_down():
    r = nsbox("ns", "unshare", "--net", "--", "ip", "-o", "link", check=True)
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1
    assert ": lo:" in lines[0] and "state DOWN" in lines[0]


def test_net_veth_moved_in_shows_up(background):
    p = background("ns", "unshare", "--net", "--fork", "--", "sh", "-c", "echo ready; exec sleep 60")
    wait_for_line(p)
    [child] = children_of(p.pid)
    subprocess.run(["ip", "link", "add", "nsbox-t0", "type", "veth", "peer", "name", "nsbox-t1"], check=True)
    try:
        subprocess.run(["ip", "link", "set", "nsbox-t1", "netns", str(child)], check=True)
        r = nsbox("ns", "enter", "-t", str(child), "--net", "--", "ip", "-o", "link", check=True)
        names = {line.split(":")[1].strip().split("@")[0] for line in r.stdout.strip().splitlines()}
        assert names == {"lo", "nsbox-t1"}
        host = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        assert "nsbox-t1" not in host and "nsbox-t0" in host
    finally:
        subprocess.run(["ip", "link", "del", "nsbox-t0"], capture_output=True)


# --- cgroup ----------------------------------------------------------------

def test_cgroup_namespace_root_is_own_cgroup():
    with open("/proc/self/cgroup") as f:
        host = f.read().splitlines()
    assert any(not line.endswith(":/") for line in host), "needs a host cgroup that is not the root"
    r = nsbox("ns", "unshare", "--cgroup", "cat", "/proc/self/cgroup", check=True)
    inside = r.stdout.strip().splitlines()
    assert len(inside) == len(host)
    assert all(line.endswith(":/") for line in inside)


# --- time ------------------------------------------------------------------

def test_time_monotonic_offset_inside_only():
    day = 86400
    r = nsbox("ns", "unshare", "--time", "--monotonic", str(day), "--",
              sys.executable, "-c", "import time; print(time.monotonic())", check=True)
    inside = float(r.stdout)
    outside = time.monotonic()
    assert day - 60 < inside - outside < day + 60
    assert time.monotonic() < inside  # the host clock was not moved


def test_time_boottime_offset():
    r = nsbox("ns", "unshare", "-T", "--boottime", "86400", "cat", "/proc/uptime", check=True)
    with open("/proc/uptime") as f:
        host = float(f.read().split()[0])
    assert 86400 - 60 < float(r.stdout.split()[0]) - host < 86400 + 60


# --- the process around the command ---------------------------------------

@pytest.mark.parametrize("args,status", [
    (["-f", "sh", "-c", "exit 7"], 7),
    (["sh", "-c", "exit 3"], 3),
    (["-f", "sh", "-c", "kill -TERM $$"], 128 + 15),
    (["-f", "sh", "-c", "kill -KILL $$"], 128 + 9),
])
def test_exit_status_is_the_commands(args, status):
    assert nsbox("ns", "unshare", "-u", *args).returncode == status


@pytest.mark.parametrize("extra", [[], ["--pid"]])
def test_kill_child_when_nsbox_dies(background, extra):
    p = background("ns", "unshare", "--kill-child", *extra, "--", "sh", "-c", "echo ready; exec sleep 60")
    wait_for_line(p)
    [child] = children_of(p.pid)
    os.kill(p.pid, 9)
    p.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{child}/stat") as f:
                if f.read().split(") ")[1].startswith("Z"):
                    break
        except FileNotFoundError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the child outlived nsbox despite --kill-child")


def test_sigterm_to_nsbox_reaches_the_command(background):
    p = background("ns", "unshare", "-f", "--", "sh", "-c", "trap 'echo got-term; exit 0' TERM; echo ready; "
                   "while :; do sleep 0.1; done")
    wait_for_line(p)
    p.send_signal(15)
    out, _ = p.communicate(timeout=10)
    assert "got-term" in out and p.returncode == 0


@pytest.fixture
def busybox_root(tmp_path):
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox-static missing (scripts/setup installs it)")
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "proc").mkdir()
    shutil.copy(busybox, root / "bin" / "busybox")
    for tool in ("sh", "ls", "pwd", "cat", "ps"):
        os.symlink("busybox", root / "bin" / tool)
    return root


def test_root_and_wd(busybox_root):
    r = nsbox("ns", "unshare", "-R", str(busybox_root), "-w", "/data", "--", "/bin/sh", "-c", "pwd; ls /",
              check=True)
    lines = r.stdout.split()
    assert lines[0] == "/data"
    assert sorted(lines[1:]) == ["bin", "data", "proc"]


def test_root_with_mount_proc_mounts_inside_the_new_root(busybox_root):
    r = nsbox("ns", "unshare", "-fp", "--mount-proc", "-R", str(busybox_root), "--", "/bin/ps", check=True)
    assert r.stdout.split()[-1] in ("ps", "/bin/ps") and len(r.stdout.strip().splitlines()) == 2
    assert not any(str(busybox_root) in line for line in mountinfo_lines())


def test_setuid_setgid():
    r = nsbox("ns", "unshare", "-u", "-S", "1234", "-G", "2345", "--", "sh", "-c", "id -u; id -g; id -G",
              check=True)
    assert r.stdout.split() == ["1234", "2345", "2345"]


@pytest.mark.parametrize("ids", [["--map-user=1000"], ["-r", "-S", "1", "-G", "1", "--map-users=1:100000:1",
                                                      "--map-groups=1:100000:1"]])
def test_keep_caps_across_exec_as_non_root(ids):
    script = "id -u; grep CapEff /proc/self/status"
    plain = nsbox("ns", "unshare", *ids, "--", "sh", "-c", script)
    kept = nsbox("ns", "unshare", *ids, "--keep-caps", "--", "sh", "-c", script)
    assert plain.returncode == 0 and kept.returncode == 0, plain.stderr + kept.stderr
    assert plain.stdout.split()[0] == kept.stdout.split()[0] != "0"
    assert int(plain.stdout.split()[2], 16) == 0
    assert int(kept.stdout.split()[2], 16) != 0


def test_persistent_namespace_file(tmp_path):
    holder = tmp_path / "uts"
    try:
        nsbox("ns", "unshare", f"--uts={holder}", "--hostname", "nsbox-kept", "true", check=True)
        assert any(f" {holder} " in line for line in mountinfo_lines())
        r = nsbox("ns", "enter", f"--uts={holder}", "hostname", check=True)
        assert r.stdout.strip() == "nsbox-kept"
    finally:
        subprocess.run(["umount", str(holder)], capture_output=True)
    assert not any(f" {holder} " in line for line in mountinfo_lines())


# --- errors ----------------------------------------------------------------

@pytest.mark.parametrize("args,status,message", [
    (["-u", "nsbox-no-such-command"], 127, "nsbox: ns unshare: cannot run nsbox-no-such-command: No such file"),
    (["-fu", "nsbox-no-such-command"], 127, "nsbox: ns unshare: cannot run nsbox-no-such-command: No such file"),
    (["-fu", "/etc/passwd"], 126, "nsbox: ns unshare: cannot run /etc/passwd: Permission denied"),
    (["--bogus", "true"], 2, "nsbox: ns unshare: unknown option --bogus"),
    (["-R", "/nonexistent-nsbox", "true"], 1, "nsbox: ns unshare: chroot: No such file or directory: /nonexistent"),
    (["-f", "--mount-proc=/nonexistent-nsbox", "true"], 1, "nsbox: ns unshare: mount: No such file or directory"),
])
def test_errors_are_one_line(args, status, message):
    r = nsbox("ns", "unshare", *args)
    assert r.returncode == status
    assert r.stderr.startswith(message), r.stderr
    assert r.stderr.count("\n") == 1


# --- --trace ---------------------------------------------------------------

def test_trace_shows_the_kernel_calls():
    r = nsbox("--trace", "ns", "unshare", "-fpmu", "--mount-proc", "-r", "--hostname", "t", "true", check=True)
    lines = r.stderr.splitlines()
    text = "\n".join(lines)
    assert "unshare(CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWUSER|CLONE_NEWPID) = 0" in text
    assert 'write("/proc/self/setgroups", "deny\\n") = 5' in text
    assert 'write("/proc/self/uid_map", "0 0 1\\n") = 6' in text
    assert 'mount("none", "/", NULL, MS_REC|MS_PRIVATE, NULL) = 0' in text
    assert 'mount("proc", "/proc", "proc", MS_NOSUID|MS_NODEV|MS_NOEXEC, NULL) = 0' in text
    assert 'sethostname("t") = 0' in text
    # the child is PID 1 of the new namespace, and its lines say so
    assert any(line.startswith("nsbox[1]: execve(") for line in lines)
    order = [next(i for i, line in enumerate(lines) if key in line)
             for key in ("unshare(", "uid_map", 'mount("none", "/"', "fork()", 'mount("proc"', "execve(")]
    assert order == sorted(order)


def test_trace_shows_errno_by_name():
    r = nsbox("--trace", "ns", "unshare", "-R", "/nonexistent-nsbox", "true")
    assert 'chroot("/nonexistent-nsbox") = -1 ENOENT (No such file or directory)' in r.stderr


def test_no_trace_output_when_off():
    r = nsbox("ns", "unshare", "-fpmu", "--mount-proc", "true", check=True)
    assert r.stderr == ""


def test_namespace_inodes_differ_from_host():
    r = nsbox("ns", "unshare", "--all", "--fork", "--", "sh", "-c",
              "for t in mnt uts ipc pid net user cgroup time; do stat -L -c %i /proc/self/ns/$t; done",
              check=True)
    inside = [int(x) for x in r.stdout.split()]
    outside = [ns_inode("self", t) for t in ("mnt", "uts", "ipc", "pid", "net", "user", "cgroup", "time")]
    assert all(a != b for a, b in zip(inside, outside))
