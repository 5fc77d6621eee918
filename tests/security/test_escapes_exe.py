"""CVE-2019-5736 class, the shebang variant: the container's program is a
script whose interpreter line is ``#!/proc/self/exe``.

The kernel resolves a script's interpreter in the process that calls
execve.  When that process is the runtime -- nsbox's init (for `start`) or
the joining process (for `exec`), both the host's Python interpreter until
they exec -- /proc/self/exe is the host's interpreter, so the container
ends up running the host's own binary.  A process inside then holds it
through /proc/<pid>/exe: runc's exploit opened it O_PATH and, once it was no
longer busy, reopened it for writing through /proc/self/fd/N and replaced
the runtime on the host.  Not being dumpable until execve (which these
runtime processes are) does not help: after the execve the process is the
container's, dumpable again, running the host file.

The defence (nsbox.process.trampoline): the runtime execs the container's
program through a sealed in-memory trampoline, so /proc/self/exe at that
moment is an anonymous sealed file, never a file of the host; run again by
the script, the trampoline refuses.

The test observes safely: it only stat()s /proc/<pid>/exe (dev:ino) and
compares it with the host interpreter's; nothing is ever opened for writing.
To give the interpreter time to be seen, the rootfs carries copies of the
libraries it needs and of the few stdlib files its start-up reads (copies:
other inodes than the host's), so it runs the script as Python: it prints
its own exe's dev:ino and sleeps.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import nsbox, requires_root

pytestmark = requires_root

#: what the runtime runs as: the interpreter behind sys.executable (the tests
#: run nsbox as ``sys.executable -m nsbox``)
HOST_INTERPRETER = os.path.realpath(sys.executable)

EVIL = """#!/proc/self/exe
import os, time
st = os.stat("/proc/self/exe")
print("evil:", st.st_dev, st.st_ino, flush=True)
time.sleep(1.5)
"""


def _give_the_interpreter_its_libraries(rootfs: str) -> None:
    if shutil.which("ldd") is None:
        # without its libraries the interpreter could not start inside, and
        # the test would pass for the wrong reason
        pytest.skip("ldd is not installed: cannot find the interpreter's libraries")
    ldd = subprocess.run(["ldd", HOST_INTERPRETER], capture_output=True, text=True).stdout
    for lib in re.findall(r"(/\S+) \(0x", ldd):  # the libraries and the dynamic loader, at their paths
        dst = rootfs + lib
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy(os.path.realpath(lib), dst)
    stdlib = getattr(sys, "_stdlib_dir", None) or os.path.dirname(os.__file__)
    os.makedirs(rootfs + stdlib + "/encodings")
    for name in ("__init__.py", "aliases.py", "utf_8.py"):
        shutil.copy(f"{stdlib}/encodings/{name}", rootfs + stdlib + "/encodings")
    with open(os.path.join(rootfs, "bin", "evil"), "w") as f:
        f.write(EVIL)
    os.chmod(os.path.join(rootfs, "bin", "evil"), 0o755)



@pytest.mark.parametrize("how", ["exec", "start", "ns-enter"])
def test_shebang_proc_self_exe_gives_no_handle_on_the_host_interpreter(box, how):
    host = os.stat(HOST_INTERPRETER)
    target = f"{host.st_dev}:{host.st_ino}"
    _give_the_interpreter_its_libraries(box.rootfs)
    # the watcher: every process's /proc/<pid>/exe, stat only, for ~8 s
    watcher = ["probe", "watch", str(host.st_dev), str(host.st_ino), "8"]
    if how in ("exec", "ns-enter"):
        box.create("watched", watcher)
        box("start", "watched", check=True)
        if how == "exec":
            r = box("exec", "watched", "/bin/evil")
        else:  # nsenter's way in, as an admin would
            r = nsbox("ns", "enter", "-t", str(box.rt.state("watched")["pid"]), "--all", "/bin/evil")
        evil_out, evil_err = r.stdout, r.stderr
        box("kill", "watched", "KILL")
        box.rt.wait_status("watched", "stopped")
        watched = box.rt.output("watched")
        assert watched.startswith("watching\n"), watched  # it did watch
    else:
        box.create("evil", ["/bin/evil"])
        box("start", "evil", check=True)
        box.rt.wait_status("evil", "stopped")
        evil_out, evil_err, watched = box.rt.output("evil"), open(box.tmp / "evil.err").read(), ""
    seen_by_itself = [line.split(None, 1)[1].replace(" ", ":") for line in evil_out.splitlines()
                      if line.startswith("evil:")]
    hits = sorted({line for line in watched.splitlines() if line.startswith("hit:")})
    assert target not in seen_by_itself and not hits, (
        f"the container's process runs the host's interpreter {HOST_INTERPRETER} ({target}): "
        f"its own /proc/self/exe {seen_by_itself}, the watcher's hits {hits}; stderr {evil_err.strip()[-300:]!r}")
    # and it was the trampoline, run a second time by the script, that said no
    assert "exec trampoline run again" in evil_err, evil_err
