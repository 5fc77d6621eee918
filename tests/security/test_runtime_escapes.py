"""Attacks from inside a container on what the runtime leaves within reach.
Each must fail, and the test checks it failed for the right reason."""

from __future__ import annotations


from conftest import requires_root, sh
from test_runtime import Runtime, rt  # noqa: F401 - the fixture

pytestmark = requires_root


def test_no_runtime_fd_reaches_the_container(rt):  # noqa: F811
    # CVE-2024-21626: a leaked fd (there, of the host's cgroupfs) let the
    # container walk out of its root.  Inside, only stdio may be open.
    status, out, err = rt.run(["sh", "-c", "ls /proc/self/fd; readlink /proc/self/cwd; readlink /proc/1/cwd"])
    assert status == 0, err
    lines = out.split()
    fds, cwds = lines[:-2], lines[-2:]
    # ls itself holds one fd for the directory it lists
    assert sorted(int(fd) for fd in fds) == [0, 1, 2, 3]
    assert cwds == ["/", "/"]


def test_preserved_fds_and_nothing_more(rt, tmp_path):  # noqa: F811
    b = rt.bundle(["sh", "-c", "ls /proc/self/fd; cat <&3"])
    (tmp_path / "passed").write_text("passed on\n")
    # the shell opens fd 3 in the child only: the pytest process's fds stay as they are
    r = sh(f"exec 3<{tmp_path}/passed; nsbox --root {rt.root} run --preserve-fds 1 --bundle {b} pfd", check=False)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert lines[-2:] == ["passed", "on"]
    assert sorted(int(x) for x in lines[:-2]) == [0, 1, 2, 3, 4]


def test_parked_init_is_not_reachable_from_inside(rt):  # noqa: F811
    # CVE-2019-5736: through /proc/<pid>/exe of a runtime process, a
    # container overwrote the runtime's binary.  Until it execs, init runs
    # the host's Python: it must not be dumpable, so /proc/1/exe is denied.
    rt.create("parked", ["true"])
    r = rt("exec", "parked", "sh", "-c", "readlink /proc/1/exe && echo reachable || echo denied; "
                                         "cat /proc/1/environ >/dev/null 2>&1 && echo readable || echo denied")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["denied", "denied"]


def test_joining_process_is_not_reachable_while_it_joins(rt):  # noqa: F811
    # The process `nsbox exec` forks into the container is the host's Python
    # until it execs; another process inside watches for it and tries its exe.
    rt.create("watched", ["sh", "-c", "while :; do for p in /proc/[0-9]*; do "
                                      "readlink $p/exe 2>/dev/null; done; done"])
    rt("start", "watched", check=True)
    for _ in range(5):
        rt("exec", "watched", "true", check=True)
    rt("kill", "watched", "KILL")
    rt.wait_status("watched", "stopped")
    seen = rt.output("watched").split()
    # the watcher may see busybox (itself, the exec'd `true`), never a Python
    assert seen and not any("python" in path for path in seen), set(seen)
