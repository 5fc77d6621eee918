"""CVE-2024-21626 class ("Leaky Vessels"): a file descriptor of the host --
the runtime's own, or one its caller left open -- still open when the
container's process is set up, reached through ``process.cwd`` or
/proc/<pid>/fd.

runc's exploit: an image whose WorkingDir is /proc/self/fd/7 (7 being runc's
fd of the host's /sys/fs/cgroup).  chdir(2) follows the magic link to the
host directory, so the program starts with a working directory outside its
root and walks up to the host's / with "..".  The defence has two halves:
no fd of the host may be open in the process that does the chdir (close or
O_CLOEXEC them first), and the working directory must be checked to be
under the container's root once the chdir is done.

Every test here looks for the same outcome from inside: climbing ".." from
the working directory must end at the container's own / (``inside``), or
the runtime must refuse to start the process.
"""

from __future__ import annotations

import shlex

from conftest import requires_root, sh
from security.helpers import lines

pytestmark = requires_root

#: Run with the cwd under test: where ".." leads, and what is there.
CLIMB = ("top=$(stat -c %d:%i /); cd ../../../../../../../../../../../..; "
         "[ \"$(stat -c %d:%i .)\" = \"$top\" ] && echo inside || echo \"outside: $(ls | head -4 | tr '\\n' ' ')\"")


def _cwd(path: str):
    def edit(spec):
        spec["process"]["cwd"] = path
    return edit


def test_process_cwd_through_the_runtimes_own_fds(box):
    # The runc exploit, against nsbox's create: cwd /proc/self/fd/N for
    # every N a runtime could plausibly have open (3..12).  Each `run` must
    # fail or start the program inside its root.
    escaped = {}
    for n in range(3, 13):
        status, out, err = box.run(["sh", "-c", CLIMB], edit=_cwd(f"/proc/self/fd/{n}"))
        result = lines(out)
        if status == 0 and result != ["inside"]:
            escaped[n] = result
        elif status != 0:
            assert "nsbox: run:" in err, (n, err)
    assert escaped == {}, f"process.cwd /proc/self/fd/N left the container's root: {escaped}"


def test_process_cwd_through_an_fd_the_caller_leaked(box):
    # The same through an fd the runtime's caller left open (not passed with
    # --preserve-fds): a directory of the host as fd 5.  The runtime must
    # not let it through to the container, for `run` and for `exec`.
    hostdir = box.tmp / "host-dir"
    hostdir.mkdir()
    (hostdir / "host-file").write_text("the host's\n")
    b = box.bundle(["sh", "-c", CLIMB], edit=_cwd("/proc/self/fd/5"))
    r = sh(f"exec 5<{hostdir}; nsbox --root {box.rt.root} run --bundle {b} leak-run", check=False)
    run_result = (r.returncode, lines(r.stdout), r.stderr.strip())

    box.create("leak-exec", ["sleep", "30"])
    box("start", "leak-exec", check=True)
    r = sh(f"exec 5<{hostdir}; nsbox --root {box.rt.root} exec --cwd /proc/self/fd/5 leak-exec sh -c {shlex.quote(CLIMB)}",
           check=False)
    exec_result = (r.returncode, lines(r.stdout), r.stderr.strip())
    # and no such fd is visible in the exec'd process either
    r = sh(f"exec 5<{hostdir}; nsbox --root {box.rt.root} exec leak-exec ls /proc/self/fd", check=False)
    fds = sorted(int(x) for x in r.stdout.split())

    escaped = {what: out for what, (status, out, _) in (("run", run_result), ("exec", exec_result))
               if status == 0 and out != ["inside"]}
    assert escaped == {}, f"cwd /proc/self/fd/5 (a host dir the caller leaked) left the container's root: {escaped}"
    assert fds == [0, 1, 2, 3], fds  # stdio, and ls's own fd of the directory


def test_exec_cwd_through_the_runtimes_own_fds(box):
    # `nsbox exec --cwd /proc/self/fd/N`: the process that does the chdir
    # was forked from the runtime after it joined the container; any fd the
    # runtime had open (state dir, lock, cgroup dirs) is a way out.
    box.create("cwd-exec", ["sleep", "30"])
    box("start", "cwd-exec", check=True)
    escaped = {}
    for n in range(3, 13):
        r = box("exec", "--cwd", f"/proc/self/fd/{n}", "cwd-exec", "sh", "-c", CLIMB)
        if r.returncode == 0 and lines(r.stdout) != ["inside"]:
            escaped[n] = lines(r.stdout)
    assert escaped == {}, f"exec --cwd /proc/self/fd/N left the container's root: {escaped}"


def test_parked_init_fds_cwd_and_root_are_out_of_reach(box):
    # A created container's init is still the runtime (the host's Python)
    # until `start`: its fds (the exec fifo, and whatever else it holds),
    # cwd and root link are host objects.  Defence: init is not dumpable,
    # so every /proc/1/* link is a ptrace check that fails (EACCES), even
    # for the container's own root.  (That fd numbers can be listed is the
    # directory's mode, not a way in: the links themselves are refused.)
    box.create("parked", ["true"])
    r = box("exec", "parked", "sh", "-c",
            "for fd in $(ls /proc/1/fd); do readlink /proc/1/fd/$fd || echo fd $fd denied; done; "
            "readlink /proc/1/cwd || echo cwd denied; readlink /proc/1/root || echo root denied; "
            "ls /proc/1/root/ 2>&1; cd /proc/1/cwd 2>&1; cat /proc/1/fd/0 2>&1 | head -1")
    assert r.returncode == 0, r.stderr
    out = lines(r.stdout)
    denied_fds = [line for line in out if line.startswith("fd ")]
    assert denied_fds and all(line.endswith(" denied") for line in denied_fds), out
    rest = out[len(denied_fds):]
    assert rest[:3] == ["cwd denied", "root denied", "ls: /proc/1/root/: Permission denied"], out
    assert rest[3].endswith("can't cd to /proc/1/cwd: Permission denied"), out
    assert rest[4] == "cat: can't open '/proc/1/fd/0': Permission denied", out
