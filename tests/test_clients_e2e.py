"""containerd (ctr, runc shim v2) and podman with nsbox as their runtime.

scripts/setup installs both (Debian: containerd, podman), so CI runs these;
where one is missing its tests skip and say so.  tests/test_clients_runtime.py
replays the clients' command lines without them.

Everything lives under pytest's tmp dir: containerd's root, state and socket,
podman's root, runroot, tmpdir and configs.  The runtime is a wrapper script
that logs each argv, then execs nsbox, so the tests also check what the
clients ask of it.  Teardown removes the containers, stops containerd and
every shim it started, and takes away the mounts and cgroups the clients made.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time

import pytest

from conftest import ROOT, requires_root
from nsbox.testing.bundle import make_rootfs

pytestmark = requires_root

IMAGE = "docker.io/library/nsbox-e2e:latest"


# --- shared pieces ----------------------------------------------------------------

def oci_archive(path: str, work: str) -> str:
    """An OCI image layout tarball: one layer (busybox-static and its applets), config, manifest, index."""
    rootfs = make_rootfs(os.path.join(work, "image-rootfs"))

    def as_root(ti: tarfile.TarInfo) -> tarfile.TarInfo:
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        ti.mtime = 0
        return ti

    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name in sorted(os.listdir(rootfs)):
            t.add(os.path.join(rootfs, name), arcname=name, filter=as_root)
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return digest

    layer_digest = blob(layer.getvalue())
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "WorkingDir": "/"},
                         "rootfs": {"type": "layers", "diff_ids": [layer_digest]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest,
                    "size": len(blobs[layer_digest])}]}).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": blob(manifest), "size": len(manifest),
        "annotations": {"io.containerd.image.name": IMAGE, "org.opencontainers.image.ref.name": "latest"}}]}).encode()
    with tarfile.open(path, "w") as t:
        for name, data in [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index)] + \
                [(f"blobs/sha256/{d.split(':')[1]}", b) for d, b in blobs.items()]:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return path


def runtime_wrapper(directory: str, name: str) -> tuple[str, str]:
    """A runtime binary that appends its argv (one JSON list a line) to a log, then execs nsbox."""
    log = os.path.join(directory, f"{name}.argv")
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(f"""#!{sys.executable}
import json, os, sys
with open({log!r}, "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
os.environ["PYTHONPATH"] = {ROOT!r}
os.execv(sys.executable, [sys.executable, "-m", "nsbox", *sys.argv[1:]])
""")
    os.chmod(path, 0o755)
    return path, log


def argv_log(log: str) -> list[list[str]]:
    if not os.path.exists(log):
        return []
    with open(log) as f:
        return [json.loads(line) for line in f if line.strip()]


def verbs(log: str) -> list[str]:
    """The verbs the client ran, global options skipped."""
    known = {"create", "start", "state", "kill", "delete", "exec", "ps", "pause", "resume", "update", "events",
             "checkpoint", "features", "--version"}
    return [next((a for a in argv if a in known), "?") for argv in argv_log(log)]


def cgroup_dirs() -> set[str]:
    found = set()
    base = "/sys/fs/cgroup"
    for hierarchy in os.listdir(base):
        top = os.path.join(base, hierarchy)
        if os.path.isdir(top):
            for dirpath, _, _ in os.walk(top):
                found.add(dirpath)
    return found


def remove_new_cgroups(before: set[str], top: str) -> None:
    """rmdir the cgroups made since *before* under /<top> of each hierarchy (the
    client's parent cgroups, which the runtime leaves as runc does); others'
    cgroups are none of our business."""
    for d in sorted(cgroup_dirs() - before, key=len, reverse=True):
        parts = d.split("/")  # "", sys, fs, cgroup, <hierarchy>, <top>, ...
        if len(parts) > 5 and parts[5] == top:
            try:
                os.rmdir(d)
            except OSError:
                pass


def unmount_under(path: str) -> None:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f if line.split()[4].startswith(path)]
    for point in reversed(points):
        subprocess.run(["umount", "-l", point], capture_output=True)


def kill_processes_mentioning(text: str) -> None:
    """SIGKILL the processes whose command line names *text* (our own unique tmp path)."""
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            try:
                os.kill(int(name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def drive_pty(argv: list[str], lines: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, str]:
    """Run *argv* on a pty (30x100), type *lines* once output goes quiet; (exit status, output)."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.execvpe(argv[0], argv, env or os.environ)
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    out = b""
    pending = list(lines)
    last = time.monotonic()
    deadline = last + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    break
                if not data:
                    break
                out += data
                last = time.monotonic()
            elif pending and time.monotonic() - last > 0.5:
                os.write(fd, pending.pop(0).encode() + b"\r")
    finally:
        os.close(fd)
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        status = 0
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


# --- containerd -----------------------------------------------------------------------

class Containerd:
    def __init__(self, tmp: str) -> None:
        self.tmp = tmp
        self.ns = f"nsbox-e2e-{os.getpid()}"
        self.address = os.path.join(tmp, "containerd.sock")
        self.binary, self.log = runtime_wrapper(tmp, "nsbox-runtime")
        self.runc_root = os.path.join(tmp, "runc-root")
        self.proc: subprocess.Popen[bytes] | None = None

    def ctr(self, *args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess[str]:
        kw.setdefault("capture_output", True)
        return subprocess.run(["ctr", "-a", self.address, "-n", self.ns, *args], text=True, timeout=timeout,
                              stdin=kw.pop("stdin", subprocess.DEVNULL), **kw)

    def runtime_args(self) -> list[str]:
        return ["--runtime", "io.containerd.runc.v2", "--runc-binary", self.binary, "--runc-root", self.runc_root]

    def start(self) -> None:
        config = os.path.join(self.tmp, "config.toml")
        with open(config, "w") as f:
            f.write(f"""version = 2
root = "{self.tmp}/root"
state = "{self.tmp}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{self.address}"
[ttrpc]
  address = "{self.address}.ttrpc"
""")
        with open(os.path.join(self.tmp, "containerd.log"), "wb") as out:
            self.proc = subprocess.Popen(["containerd", "--config", config], stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while self.ctr("version", timeout=10).returncode != 0:
            assert self.proc.poll() is None and time.monotonic() < deadline, "containerd did not start"
            time.sleep(0.1)

    def stop(self) -> None:
        try:
            for line in self.ctr("task", "ls", "-q").stdout.split():
                self.ctr("task", "kill", "-s", "KILL", line)
                self.ctr("task", "rm", "-f", line)
            for line in self.ctr("container", "ls", "-q").stdout.split():
                self.ctr("container", "rm", line)
        finally:
            if self.proc is not None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            kill_processes_mentioning(self.address)  # shims still running


@pytest.fixture(scope="module")
def containerd(tmp_path_factory):
    if not (shutil.which("containerd") and shutil.which("ctr") and shutil.which("containerd-shim-runc-v2")):
        pytest.skip("containerd is not installed (apt-get install containerd)")
    tmp = str(tmp_path_factory.mktemp("ctrd"))
    before = cgroup_dirs()
    run_dir_existed = os.path.exists("/run/containerd")
    c = Containerd(tmp)
    try:
        c.start()
        r = c.ctr("image", "import", oci_archive(os.path.join(tmp, "image.tar"), tmp), timeout=120)
        assert r.returncode == 0, r.stderr
        yield c
    finally:
        c.stop()
        unmount_under(tmp)
        remove_new_cgroups(before, c.ns)
        if not run_dir_existed:
            shutil.rmtree("/run/containerd", ignore_errors=True)  # the shims' sockets, ctr's fifos
        shutil.rmtree(tmp, ignore_errors=True)


def test_containerd_run_exit_status_and_output(containerd):
    r = containerd.ctr("run", "--rm", *containerd.runtime_args(), IMAGE, "exit1",
                       "sh", "-c", "echo hello from pid $$; exit 3")
    assert (r.returncode, r.stdout) == (3, "hello from pid 1\n"), r.stderr


def test_containerd_detached_task_verbs(containerd):
    c = containerd
    assert c.ctr("run", "-d", *c.runtime_args(), IMAGE, "det", "sleep", "1000").returncode == 0
    try:
        r = c.ctr("task", "exec", "--exec-id", "e1", "det", "sh", "-c", "echo in-exec; exit 5")
        assert (r.returncode, r.stdout) == (5, "in-exec\n"), r.stderr
        assert "PID" in c.ctr("task", "ps", "det").stdout
        metrics = c.ctr("task", "metrics", "det")
        assert metrics.returncode == 0 and "pids.current" in metrics.stdout, metrics.stderr
        assert c.ctr("task", "pause", "det").returncode == 0
        assert "PAUSED" in c.ctr("task", "ls").stdout
        assert c.ctr("task", "resume", "det").returncode == 0
        assert c.ctr("task", "kill", "-s", "KILL", "det").returncode == 0
        deadline = time.monotonic() + 20
        while "STOPPED" not in c.ctr("task", "ls").stdout:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert c.ctr("task", "delete", "det").returncode == 0
    finally:
        c.ctr("task", "rm", "-f", "det")
        c.ctr("container", "rm", "det")
    seen = [argv for argv in argv_log(c.log) if argv[-1] == "det" or argv[-2:-1] == ["det"]]
    for argv in seen:  # the shim's global options, before every verb
        assert argv[:2] == ["--root", f"{c.runc_root}/{c.ns}"] and argv[2] == "--log" and argv[4:6] == ["--log-format", "json"]
    forms = {tuple(a for a in argv[6:] if not a.startswith("/")) for argv in seen}
    for expected in [("create", "--bundle", "--pid-file", "det"), ("start", "det"),
                     ("exec", "--process", "--detach", "--pid-file", "det"), ("ps", "--format", "json", "det"),
                     ("pause", "det"), ("resume", "det"), ("kill", "det", "9"), ("delete", "det"),
                     ("delete", "--force", "det")]:
        assert expected in forms, (expected, forms)


def test_containerd_terminal(containerd):
    c = containerd
    status, out = drive_pty(["ctr", "-a", c.address, "-n", c.ns, "run", "--rm", "-t", *c.runtime_args(), IMAGE,
                             "tty1", "sh"], ["stty size", "echo $((6*7))", "exit 4"])
    assert status == 4 and "30 100" in out and "42" in out, out


def test_containerd_shared_pid_namespace_and_paused_kill(containerd):
    c = containerd
    assert c.ctr("run", "-d", *c.runtime_args(), IMAGE, "host1", "sleep", "1000").returncode == 0
    try:
        pid = c.ctr("task", "ls").stdout.split("host1", 1)[1].split()[0]
        r = c.ctr("run", "-d", *c.runtime_args(), "--with-ns", f"pid:/proc/{pid}/ns/pid", IMAGE, "guest1",
                  "sh", "-c", "sleep 1000 & sleep 0.5; exit 0")
        assert r.returncode == 0, r.stderr
        # after guest1's init exits, the shim's kill --all clears its sleep
        # (busybox ps shows a zombie as [sleep]: only live ones match)
        deadline = time.monotonic() + 20
        for n in range(1000):
            ps = c.ctr("task", "exec", "--exec-id", f"ps{n}", "host1", "ps").stdout
            if len([line for line in ps.splitlines() if "sleep 1000" in line]) == 1:
                break  # host1's own init only
            assert time.monotonic() < deadline, ps
            time.sleep(0.2)
        assert any(argv[6:] == ["kill", "--all", "guest1", "9"] for argv in argv_log(c.log))
        assert c.ctr("task", "pause", "host1").returncode == 0
        r = c.ctr("task", "rm", "-f", "host1", timeout=30)
        assert r.returncode == 0, r.stderr
    finally:
        for cid in ("guest1", "host1"):
            c.ctr("task", "rm", "-f", cid)
            c.ctr("container", "rm", cid)


# --- podman -----------------------------------------------------------------------------

class Podman:
    def __init__(self, tmp: str) -> None:
        self.tmp = tmp
        self.binary, self.log = runtime_wrapper(tmp, "nsbox-runtime")
        conf = os.path.join(tmp, "containers.conf")
        with open(conf, "w") as f:
            # this host's hard RLIMIT_NOFILE is 20000 and root lacks CAP_SYS_RESOURCE:
            # podman's default (1048576) cannot be granted, so the default ulimits fit
            f.write(f"""[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{tmp}/events.log"
runtime_supports_json = ["nsbox-runtime"]
tmp_dir = "{tmp}/tmp"
static_dir = "{tmp}/root/libpod"
volume_path = "{tmp}/root/volumes"
[network]
network_config_dir = "{tmp}/networks"
""")
        storage = os.path.join(tmp, "storage.conf")
        with open(storage, "w") as f:
            f.write(f'[storage]\ndriver = "overlay"\nrunroot = "{tmp}/runroot"\ngraphroot = "{tmp}/root"\n')
        self.env = {**os.environ, "CONTAINERS_CONF": conf, "CONTAINERS_STORAGE_CONF": storage}
        self.base = ["podman", "--runtime", self.binary, "--cgroup-manager=cgroupfs", "--root", f"{tmp}/root",
                     "--runroot", f"{tmp}/runroot", "--tmpdir", f"{tmp}/tmp"]

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.base, *args], text=True, capture_output=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=self.env)


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    if not (shutil.which("podman") and shutil.which("conmon")):
        pytest.skip("podman is not installed (apt-get install podman)")
    tmp = str(tmp_path_factory.mktemp("podman"))
    before = cgroup_dirs()
    run_dir_existed = os.path.exists("/run/containers")
    cache_existed = os.path.exists("/var/lib/containers")  # podman load writes its blob-info cache there
    # podman as root passes no --root: nsbox keeps its state (and seccomp cache) in the default root
    state_root_existed = os.path.exists("/run/nsbox")
    p = Podman(tmp)
    try:
        r = p("load", "-i", oci_archive(os.path.join(tmp, "image.tar"), tmp), timeout=120)
        assert r.returncode == 0, r.stderr
        yield p
    finally:
        p("rm", "-fa", "-t", "0")
        kill_processes_mentioning(tmp)  # a conmon left behind
        unmount_under(tmp)
        remove_new_cgroups(before, "libpod_parent")  # conmon's and the containers'
        if not run_dir_existed:
            shutil.rmtree("/run/containers", ignore_errors=True)  # the network backend's run dir, unused here
        if not cache_existed:
            shutil.rmtree("/var/lib/containers", ignore_errors=True)
        if not state_root_existed:
            shutil.rmtree("/run/nsbox/.seccomp-cache", ignore_errors=True)
            with contextlib.suppress(OSError):
                os.rmdir("/run/nsbox")  # not when a container is left: the suite's check names it
        shutil.rmtree(tmp, ignore_errors=True)


def test_podman_run_limits_and_exit_status(podman):
    r = podman("run", "--rm", "--network", "none", "--memory", "64m", "--cpus", "0.5", "--pids-limit", "50",
               IMAGE, "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
                                  "/sys/fs/cgroup/pids/pids.max; exit 42")
    assert r.returncode == 42, r.stderr
    assert r.stdout.split() == [str(64 << 20), "50000", "50"]


def test_podman_errors_name_the_cause(podman):
    r = podman("run", "--rm", "--network", "none", IMAGE, "/nonexistent")
    assert r.returncode == 127 and "/nonexistent" in r.stderr
    r = podman("run", "--rm", "--network", "none", "--ulimit", "nofile=1048576:1048576", IMAGE, "true")
    assert r.returncode != 0 and "RLIMIT_NOFILE" in r.stderr


def test_podman_interactive_terminal(podman):
    status, out = drive_pty([*podman.base, "run", "--rm", "-it", "--network", "none", IMAGE, "sh"],
                            ["stty size", "echo $((6*7))", "exit 4"], env=podman.env)
    assert status == 4 and "30 100" in out and "42" in out, out


def test_podman_detached_exec_pause_update_stop(podman):
    p = podman
    r = p("run", "-d", "--name", "pd", "--network", "none", "--memory", "64m", IMAGE, "sleep", "1000")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        r = p("exec", "pd", "sh", "-c", "echo in-exec; exit 6")
        assert (r.returncode, r.stdout) == (6, "in-exec\n"), r.stderr
        assert p("pause", "pd").returncode == 0
        assert p("inspect", "-f", "{{.State.Status}}", "pd").stdout.strip() == "paused"
        assert p("unpause", "pd").returncode == 0
        r = p("update", "--memory", "128m", "pd")
        assert r.returncode == 0, r.stderr
        with open(f"/sys/fs/cgroup/memory/libpod_parent/libpod-{cid}/memory.limit_in_bytes") as f:
            assert int(f.read()) == 128 << 20
        assert p("stop", "-t", "1", "pd").returncode == 0
        assert p("rm", "pd").returncode == 0
    finally:
        p("rm", "-f", "-t", "0", "pd")
    assert {"create", "start", "exec", "pause", "resume", "update", "kill", "delete"} <= set(verbs(p.log))
