"""nsbox.rootfs against the kernel: a busybox rootfs set up in a child's own
mount namespace, observed from inside after pivot_root.

Every test forks (conftest.in_child); the child unshares its mount namespace
(and uts/ipc/net, so sysfs and mqueue are its own) and dies with it, taking
every mount along.  The ``host_mounts`` fixture checks that nothing reached
the pytest process's mount table.  Observations are returned as plain data:
after pivot_root the child cannot import anything, and pytest's assertion
machinery stays in the parent.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess

import pytest

from conftest import in_child, requires_root
from nsbox._sys.consts import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_REC,
)
from nsbox._sys.mount import mount
from nsbox._sys.ns import unshare
from nsbox.oci.spec import Spec, SpecError
from nsbox.rootfs import finish_rootfs, setup_rootfs

pytestmark = requires_root

BUSYBOX = shutil.which("busybox")
APPLETS = ("sh", "ls", "cat", "echo", "mount", "touch", "stat", "mkdir", "true")

# The mounts runc's `runc spec` writes (with a 1 MiB /dev/shm, to check sizes).
DEFAULT_MOUNTS = [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=1m"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
     "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
]
MASKED = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
          "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/proc/does-not-exist"]
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", "/no/such/path"]

# Host mount points whose entries must never change because of a test.
SENSITIVE = ("/", "/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/tmp", "/work", "/sys/fs/cgroup")


def _mounts() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return set(f.read().splitlines())


def _mountpoint(line: str) -> str:
    return line.split()[4]


@pytest.fixture(autouse=True)
def host_mounts(tmp_path):
    """Nothing a test mounts may show up in the pytest process's namespace."""
    before = _mounts()
    yield
    after = _mounts()
    changed = [line for line in after ^ before
               if _mountpoint(line).startswith(str(tmp_path)) or _mountpoint(line) in SENSITIVE]
    assert not changed, f"host mount table changed: {changed}"


@pytest.fixture
def bundle(tmp_path):
    """A bundle dir with a tiny busybox rootfs."""
    if BUSYBOX is None:
        pytest.skip("busybox is not installed")
    b = tmp_path / "bundle"
    root = b / "rootfs"
    for d in ("bin", "proc", "sys", "dev", "tmp", "etc"):
        (root / d).mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in APPLETS:
        os.symlink("busybox", root / "bin" / applet)
    (root / "etc" / "hostname").write_text("container\n")
    return b


def make_spec(bundle, mounts=None, readonly=False, **linux) -> dict:
    linux.setdefault("namespaces", [{"type": "mount"}])
    return {
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs", "readonly": readonly},
        "process": {"args": ["sh"], "cwd": "/"},
        "mounts": DEFAULT_MOUNTS if mounts is None else mounts,
        "linux": linux,
    }


def run(bundle, spec_dict, observe, *, before_pivot=None, in_user_namespace=False, no_pivot=False,
        prepare=None, finish=True):
    """In a child: new namespaces, setup_rootfs + finish_rootfs, then
    ``observe()``; returns its result, or ("error", type, errno, message)."""

    def child():
        unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET)
        mount(None, "/", None, MS_REC | MS_PRIVATE, None)
        if prepare is not None:
            prepare()
        spec = Spec(spec_dict, str(bundle))
        try:
            setup_rootfs(spec, in_user_namespace=in_user_namespace, no_pivot=no_pivot, before_pivot=before_pivot)
            if finish:
                finish_rootfs(spec)
        except OSError as e:
            return ("error", "OSError", e.errno, str(e))
        except SpecError as e:
            return ("error", "SpecError", None, str(e))
        return observe()

    return in_child(child)


def try_write(path: str) -> int:
    """0 if *path* could be written (created), else the errno."""
    try:
        with open(path, "w") as f:
            f.write("x")
        return 0
    except OSError as e:
        return e.errno


def self_mounts() -> dict[str, tuple[str, str, str]]:
    """mountpoint -> (fstype, per-mount options, super options), the top one."""
    out = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, r = left.split(), right.split()
            out[fields[4]] = (r[0], fields[5], r[2] if len(r) > 2 else "")
    return out


# -- the whole thing -----------------------------------------------------------


def test_default_container(bundle):
    host_has_kcore = os.path.exists("/proc/kcore")
    host_has_acpi = os.path.isdir("/proc/acpi")
    host_has_sysrq = os.path.exists("/proc/sysrq-trigger")

    def observe():
        m = self_mounts()
        null = os.stat("/dev/null")
        shm = os.stat("/dev/shm")
        shm_fs = os.statvfs("/dev/shm")
        with open("/dev/null", "w") as f:
            f.write("discarded")
        kcore = open("/proc/kcore", "rb").read(16) if os.path.exists("/proc/kcore") else None
        keys = open("/proc/keys", "rb").read()
        out = subprocess.run(["/bin/busybox", "echo", "hi"], capture_output=True, text=True)
        return {
            "mounts": m,
            "proc_self": os.path.exists("/proc/self/status"),
            "null": (stat.S_ISCHR(null.st_mode), os.major(null.st_rdev), os.minor(null.st_rdev),
                     stat.S_IMODE(null.st_mode)),
            "devices": {d: stat.S_ISCHR(os.stat(f"/dev/{d}").st_mode)
                        for d in ("zero", "full", "random", "urandom", "tty")},
            "ptmx": os.readlink("/dev/ptmx"),
            "pts_ptmx": os.path.exists("/dev/pts/ptmx"),
            "links": {n: os.readlink(f"/dev/{n}") for n in ("fd", "stdin", "stdout", "stderr")},
            "core": os.readlink("/dev/core") if os.path.islink("/dev/core") else None,
            "shm": (stat.S_IMODE(shm.st_mode), shm_fs.f_blocks * shm_fs.f_frsize),
            "shm_write": try_write("/dev/shm/x"),
            "kcore": kcore,
            "keys": keys,
            "acpi": os.listdir("/proc/acpi") if os.path.isdir("/proc/acpi") else None,
            # the second masked directory: a bind of the first one's read-only tmpfs
            "firmware": (os.listdir("/sys/firmware"), try_write("/sys/firmware/x"))
            if os.path.isdir("/sys/firmware") else None,
            "acpi_write": try_write("/proc/acpi/x") if os.path.isdir("/proc/acpi") else None,
            "sys_write": try_write("/proc/sys/kernel/hostname"),
            "sysrq_write": try_write("/proc/sysrq-trigger"),
            "sysfs_write": try_write("/sys/kernel/uevent_helper"),
            "work": os.path.exists("/work"),
            "hostname_file": open("/etc/hostname").read(),
            "echo": out.stdout,
            "cgroup": sorted(os.listdir("/sys/fs/cgroup")),
            "cgroup_write": try_write("/sys/fs/cgroup/memory/x") if os.path.isdir("/sys/fs/cgroup/memory") else None,
            "cwd": os.getcwd(),
        }

    spec = make_spec(bundle, maskedPaths=MASKED, readonlyPaths=READONLY)
    r = run(bundle, spec, observe)
    assert not isinstance(r, tuple), r
    m = r["mounts"]
    assert m["/proc"][0] == "proc" and r["proc_self"]
    assert r["null"] == (True, 1, 3, 0o666)
    assert all(r["devices"].values()), r["devices"]
    assert r["ptmx"] == "pts/ptmx" and r["pts_ptmx"]
    assert r["links"] == {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
                          "stderr": "/proc/self/fd/2"}
    assert r["core"] == ("/proc/kcore" if host_has_kcore else None)
    assert m["/dev"][0] == "tmpfs" and "nosuid" in m["/dev"][1]
    assert m["/dev/pts"][0] == "devpts" and "ptmxmode=666" in m["/dev/pts"][2]
    assert m["/dev/mqueue"][0] == "mqueue"
    assert r["shm"] == (0o1777, 1 << 20)
    assert r["shm_write"] == 0
    assert "noexec" in m["/dev/shm"][1] and "nodev" in m["/dev/shm"][1]
    if host_has_kcore:
        assert r["kcore"] == b""
    assert r["keys"] == b"" and "/proc/keys" in m  # a masked file: /dev/null bound over it
    if host_has_acpi:
        assert r["acpi"] == [] and r["acpi_write"] == errno.EROFS
    if os.path.isdir("/sys/firmware"):
        assert r["firmware"] == ([], errno.EROFS)
    assert r["sys_write"] == errno.EROFS
    if host_has_sysrq:
        assert r["sysrq_write"] == errno.EROFS
    assert m["/sys"][0] == "sysfs" and m["/sys"][1].startswith("ro")
    assert r["sysfs_write"] == errno.EROFS
    assert not r["work"], "the host's /work is visible after pivot_root"
    assert not any(p.startswith("/work") or p.startswith("/tmp/pytest") for p in m), m.keys()
    assert r["hostname_file"] == "container\n"
    assert r["echo"] == "hi\n"
    assert {"memory", "cpu", "systemd", "unified"} <= set(r["cgroup"]), r["cgroup"]
    assert m["/sys/fs/cgroup"][0] == "tmpfs" and m["/sys/fs/cgroup"][1].startswith("ro")
    assert m["/sys/fs/cgroup/memory"][0] == "cgroup"
    assert r["cgroup_write"] == errno.EROFS
    assert r["cwd"] == "/"


def test_root_readonly_and_cwd(bundle):
    def observe():
        return {"root": try_write("/newfile"), "tmp": try_write("/dev/shm/ok"),
                "cwd": os.path.isdir("/work/dir"), "mode": self_mounts()["/"][1].split(",")[0]}

    spec = make_spec(bundle, readonly=True)
    spec["process"]["cwd"] = "/work/dir"
    r = run(bundle, spec, observe)
    assert r == {"root": errno.EROFS, "tmp": 0, "cwd": True, "mode": "ro"}, r
    assert (bundle / "rootfs" / "work" / "dir").is_dir()  # made before / became read-only


def test_no_pivot(bundle):
    def observe():
        return {"work": os.path.exists("/work"), "root": sorted(os.listdir("/")),
                "proc": os.path.exists("/proc/self/status")}

    r = run(bundle, make_spec(bundle, mounts=DEFAULT_MOUNTS[:2]), observe, no_pivot=True)
    assert r["work"] is False and "bin" in r["root"] and r["proc"], r


def test_before_pivot_sees_host_and_container_mounts(bundle):
    rootfs = str(bundle / "rootfs")

    def before():
        assert os.path.ismount(rootfs + "/proc") and os.path.exists("/work")
        with open(rootfs + "/dev/shm/from-hook", "w") as f:
            f.write("hook")
        assert os.path.realpath(os.getcwd()) == rootfs

    r = run(bundle, make_spec(bundle), lambda: open("/dev/shm/from-hook").read(), before_pivot=before)
    assert r == "hook"


# -- mount types and options ---------------------------------------------------------


def test_bind_mounts_ro_and_rw(bundle, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "file").write_text("from host")
    single = tmp_path / "single.txt"
    single.write_text("one file")
    mounts = [
        {"destination": "/ro", "type": "bind", "source": str(data), "options": ["rbind", "ro", "nosuid"]},
        {"destination": "/rw", "source": str(data), "options": ["bind"]},
        {"destination": "/etc/single.txt", "source": str(single), "options": ["bind", "ro"]},
        {"destination": "/rel", "source": "rootfs/etc", "options": ["bind"]},  # relative to the bundle
    ] + DEFAULT_MOUNTS[:1]

    def observe():
        m = self_mounts()
        return {"read": open("/ro/file").read(), "ro": try_write("/ro/new"), "rw": try_write("/rw/new"),
                "single": open("/etc/single.txt").read(), "single_w": try_write("/etc/single.txt"),
                "flags": m["/ro"][1], "rel": os.path.exists("/rel/hostname")}

    r = run(bundle, make_spec(bundle, mounts=mounts), observe)
    assert r["read"] == "from host" and r["ro"] == errno.EROFS and r["rw"] == 0, r
    assert r["single"] == "one file" and r["single_w"] == errno.EROFS
    assert r["flags"].startswith("ro") and "nosuid" in r["flags"]
    assert r["rel"]
    assert (data / "new").read_text() == "x"  # the rw bind wrote through to the host


def test_rro_makes_submounts_readonly(bundle, tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)

    def prepare():  # a submount inside the bind source, in the child's namespace
        mount("tmpfs", str(data / "sub"), "tmpfs", 0, "size=1m")

    mounts = [
        {"destination": "/plain", "source": str(data), "options": ["rbind", "ro"]},
        {"destination": "/rec", "source": str(data), "options": ["rbind", "rro"]},
    ]

    def observe():
        return {"plain": try_write("/plain/x"), "plain_sub": try_write("/plain/sub/x"),
                "rec": try_write("/rec/x"), "rec_sub": try_write("/rec/sub/y")}

    r = run(bundle, make_spec(bundle, mounts=mounts), observe, prepare=prepare)
    # "ro" remounts only the top of an rbind; "rro" reaches every submount.
    assert r == {"plain": errno.EROFS, "plain_sub": 0, "rec": errno.EROFS, "rec_sub": errno.EROFS}, r


def test_tmpfs_ro_is_deferred_and_keeps_mode(bundle, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    os.chmod(bundle / "rootfs" / "tmp", 0o1777)
    mounts = [
        {"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "size=1m"]},
        # inside a read-only tmpfs: works only because ro comes at the end
        {"destination": "/data/inner", "source": str(src), "options": ["bind"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
        {"destination": "/tmp700", "type": "tmpfs", "source": "tmpfs", "options": ["mode=700"]},
    ]

    def observe():
        return {"data": try_write("/data/x"), "inner": try_write("/data/inner/x"),
                "tmp_mode": stat.S_IMODE(os.stat("/tmp").st_mode),
                "tmp700": stat.S_IMODE(os.stat("/tmp700").st_mode)}

    r = run(bundle, make_spec(bundle, mounts=mounts), observe)
    assert r == {"data": errno.EROFS, "inner": 0, "tmp_mode": 0o1777, "tmp700": 0o700}, r


def test_tmpcopyup(bundle):
    etc = bundle / "rootfs" / "etc"
    (etc / "sub").mkdir()
    (etc / "sub" / "deep").write_text("deep")
    os.chmod(etc / "sub" / "deep", 0o640)
    os.symlink("/nowhere", etc / "link")
    os.mkfifo(etc / "fifo")
    mounts = DEFAULT_MOUNTS[:1] + [{"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["tmpcopyup"]}]

    def observe():
        return {"hostname": open("/etc/hostname").read(), "deep": open("/etc/sub/deep").read(),
                "deep_mode": stat.S_IMODE(os.stat("/etc/sub/deep").st_mode), "link": os.readlink("/etc/link"),
                "fifo": stat.S_ISFIFO(os.stat("/etc/fifo").st_mode), "fs": self_mounts()["/etc"][0],
                "write": try_write("/etc/written")}

    r = run(bundle, make_spec(bundle, mounts=mounts), observe)
    assert r == {"hostname": "container\n", "deep": "deep", "deep_mode": 0o640, "link": "/nowhere", "fifo": True,
                 "fs": "tmpfs", "write": 0}, r
    assert not (etc / "written").exists()  # the copy is the container's, the rootfs is untouched


def test_overlay(bundle, tmp_path):
    lower, upper, work = tmp_path / "lower", tmp_path / "upper", tmp_path / "work"
    for d in (lower, upper, work):
        d.mkdir()
    (lower / "base").write_text("lower")
    mounts = DEFAULT_MOUNTS[:1] + [{"destination": "/merged", "type": "overlay", "source": "overlay",
               "options": [f"lowerdir={lower}", f"upperdir={upper}", f"workdir={work}"]}]

    def observe():
        return open("/merged/base").read(), try_write("/merged/new"), self_mounts()["/merged"][0]

    assert run(bundle, make_spec(bundle, mounts=mounts), observe) == ("lower", 0, "overlay")
    assert (upper / "new").read_text() == "x"


def test_propagation_option(bundle):
    mounts = DEFAULT_MOUNTS[:1] + [
              {"destination": "/shared", "type": "tmpfs", "source": "tmpfs", "options": ["rshared"]},
              {"destination": "/priv", "type": "tmpfs", "source": "tmpfs", "options": ["private"]}]

    def observe():
        with open("/proc/self/mountinfo") as f:
            lines = {ln.split()[4]: ln for ln in f}
        return "shared:" in lines["/shared"], "shared:" in lines["/priv"]

    assert run(bundle, make_spec(bundle, mounts=mounts), observe) == (True, False)


def test_rootfs_propagation_shared(bundle):
    spec = make_spec(bundle, mounts=DEFAULT_MOUNTS[:1], rootfsPropagation="shared")

    def observe():
        with open("/proc/self/mountinfo") as f:
            return [ln for ln in f if ln.split()[4] == "/"][-1]

    assert "shared:" in run(bundle, spec, observe)


def test_podman_config(bundle, tmp_path):
    """The mounts and paths of a real podman config.json (its storage files
    replaced by temp files)."""
    import json

    path = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures", "clients", "podman-config.json")
    if not os.path.exists(path):
        pytest.skip("client fixtures are not beside the checkout")
    with open(path) as f:
        config = json.load(f)
    for i, m in enumerate(config["mounts"]):
        if m["source"].startswith(("/run/containers", "/var/lib/containers")):
            if m["destination"] == "/dev/shm":
                (tmp_path / f"src{i}").mkdir()
            else:
                (tmp_path / f"src{i}").write_text(f"podman {m['destination']}\n")
            m["source"] = str(tmp_path / f"src{i}")
    spec = make_spec(bundle, mounts=config["mounts"], maskedPaths=config["linux"]["maskedPaths"],
                     readonlyPaths=config["linux"]["readonlyPaths"])

    def observe():
        m = self_mounts()
        return {"hostname": open("/etc/hostname").read(), "env": os.path.isfile("/run/.containerenv"),
                "shm": try_write("/dev/shm/x"), "cgroup": m["/sys/fs/cgroup"][1].split(",")[0],
                "sys_ro": try_write("/proc/sys/kernel/hostname"), "proc": m["/proc"][0]}

    r = run(bundle, spec, observe)
    assert r == {"hostname": "podman /etc/hostname\n", "env": True, "shm": 0, "cgroup": "ro",
                 "sys_ro": errno.EROFS, "proc": "proc"}, r


def test_cgroup_mounts_in_a_cgroup_namespace(bundle):
    """With a cgroup namespace, the v1 layout is fresh mounts (our cgroup is
    their root), and cgroup2 mounts directly."""
    from nsbox._sys.consts import CLONE_NEWCGROUP

    mounts = DEFAULT_MOUNTS[:1] + [
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid"]},
        {"destination": "/cg2", "type": "cgroup2", "source": "cgroup2", "options": ["nosuid"]},
    ]
    spec = make_spec(bundle, mounts=mounts, namespaces=[{"type": "cgroup"}, {"type": "mount"}])

    def observe():
        with open("/proc/self/mountinfo") as f:
            info = {ln.split()[4]: ln.split() for ln in f}
        return {"memory_root": info["/sys/fs/cgroup/memory"][3],
                "memory_files": os.path.exists("/sys/fs/cgroup/memory/cgroup.procs"),
                "systemd": info["/sys/fs/cgroup/systemd"][-1],
                "cg2": os.path.exists("/cg2/cgroup.controllers"), "write": try_write("/sys/fs/cgroup/memory/x")}

    r = run(bundle, spec, observe, prepare=lambda: unshare(CLONE_NEWCGROUP))
    systemd = r.pop("systemd")
    assert r == {"memory_root": "/", "memory_files": True, "cg2": True, "write": errno.EROFS}, r
    assert "name=systemd" in systemd


# -- devices ---------------------------------------------------------------------------


def test_spec_devices_override_defaults(bundle):
    devices = [
        {"type": "c", "path": "/dev/null", "major": 1, "minor": 3, "fileMode": 0o600},
        {"type": "c", "path": "/dev/extra/mynull", "major": 1, "minor": 3, "fileMode": 0o640,
         "uid": 1000, "gid": 2000},
        {"type": "b", "path": "/dev/myloop", "major": 7, "minor": 200},
        {"type": "p", "path": "/dev/myfifo"},
    ]

    def observe():
        out = {}
        for p in ("/dev/null", "/dev/extra/mynull", "/dev/myloop", "/dev/myfifo"):
            st = os.stat(p)
            out[p] = (stat.S_IFMT(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev),
                      stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
        return out

    r = run(bundle, make_spec(bundle, mounts=DEFAULT_MOUNTS[:2], devices=devices), observe)
    assert r["/dev/null"] == (stat.S_IFCHR, 1, 3, 0o600, 0, 0)
    assert r["/dev/extra/mynull"] == (stat.S_IFCHR, 1, 3, 0o640, 1000, 2000)
    assert r["/dev/myloop"] == (stat.S_IFBLK, 7, 200, 0o666, 0, 0)
    assert r["/dev/myfifo"][0] == stat.S_IFIFO


def test_devices_by_bind_mount(bundle):
    """in_user_namespace=True: nodes are the host's devices bound onto files."""

    def observe():
        st = os.stat("/dev/null")
        with open("/dev/zero", "rb") as f:
            zeros = f.read(4)
        return stat.S_ISCHR(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev), zeros, \
            "/dev/null" in self_mounts()

    r = run(bundle, make_spec(bundle, mounts=DEFAULT_MOUNTS[:2]), observe, in_user_namespace=True, finish=False)
    assert r == (True, 1, 3, b"\0\0\0\0", True)


def test_bind_mounted_dev_is_left_alone(bundle, tmp_path):
    mydev = tmp_path / "mydev"
    mydev.mkdir()
    mounts = [{"destination": "/dev", "source": str(mydev), "options": ["rbind"]}]
    r = run(bundle, make_spec(bundle, mounts=mounts), lambda: sorted(os.listdir("/dev")), finish=False)
    assert r == []


# -- errors ---------------------------------------------------------------------------


def test_mount_error_names_the_mount(bundle):
    mounts = DEFAULT_MOUNTS[:2] + [{"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                                    "options": ["newinstance", "bogusoption=1"]}]
    r = run(bundle, make_spec(bundle, mounts=mounts), lambda: "mounted?!")
    assert r[:3] == ("error", "OSError", errno.EINVAL), r
    assert "mounts[2] (/dev/pts): mount: Invalid argument" in r[3]


def test_missing_bind_source(bundle, tmp_path):
    mounts = [{"destination": "/x", "source": str(tmp_path / "absent"), "options": ["bind"]}]
    r = run(bundle, make_spec(bundle, mounts=mounts), lambda: "mounted?!")
    assert r[:3] == ("error", "OSError", errno.ENOENT) and "mounts[0] (/x)" in r[3], r


def test_idmap_refused(bundle):
    mounts = [{"destination": "/x", "source": "/tmp", "options": ["bind", "idmap"]}]
    r = run(bundle, make_spec(bundle, mounts=mounts), lambda: "mounted?!")
    assert r[:2] == ("error", "SpecError") and "mounts[0].options[1]" in r[3] and "not supported yet" in r[3], r


def test_without_a_mount_namespace_root_is_entered_by_chroot(bundle):
    # No mount namespace in the spec: the container shares its creator's (here
    # the child's throwaway one), so "/" is neither pivoted nor moved: the
    # rootfs is entered by chroot, with the spec's mounts made under it.
    spec = make_spec(bundle, namespaces=[{"type": "pid"}])
    rootfs = os.path.realpath(os.path.join(str(bundle), "rootfs"))

    def observe():
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
        # mount points read relative to our (chroot) root: the rootfs bind is "/"
        points = [line.split()[4] for line in lines]
        return sorted(os.listdir("/"))[:2], "/" in points and "/proc" in points, os.path.exists(rootfs)

    # and the host path of the rootfs means nothing in here: we are chrooted
    assert run(bundle, spec, observe) == (["bin", "dev"], True, False)


# -- security -------------------------------------------------------------------------


def test_symlink_to_host_path_stays_inside(bundle, tmp_path):
    """CVE-2021-30465 class: /evil -> /abs/host/dir means <rootfs>/abs/host/dir."""
    hostdir = tmp_path / "hostdir-outside"
    hostdir.mkdir()
    hostdir2 = tmp_path / "hostdir-outside2"
    hostdir2.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    (src / "marker").write_text("bound")
    rootfs = bundle / "rootfs"
    os.symlink(str(hostdir), rootfs / "evil")
    os.symlink(str(hostdir2), rootfs / "evil2")
    mounts = DEFAULT_MOUNTS[:1] + [
        {"destination": "/evil", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
        {"destination": "/evil2/sub", "source": str(src), "options": ["bind"]},
    ]
    seen = {}

    def before():  # host paths are still visible here
        m = self_mounts()
        seen["host_mounted"] = str(hostdir) in m or str(hostdir2 / "sub") in m
        seen["inside_mounted"] = str(rootfs) + str(hostdir) in m and str(rootfs) + str(hostdir2) + "/sub" in m

    def observe():
        return {**seen, "marker": open("/evil2/sub/marker").read(), "tmpfs": self_mounts()[str(hostdir)][0],
                "write": try_write("/evil/x")}

    r = run(bundle, make_spec(bundle, mounts=mounts), observe, before_pivot=before)
    assert r == {"host_mounted": False, "inside_mounted": True, "marker": "bound", "tmpfs": "tmpfs", "write": 0}, r
    assert os.listdir(hostdir) == [] and os.listdir(hostdir2) == []
    assert (rootfs / str(hostdir).lstrip("/")).is_dir()


def test_dotdot_destinations_stay_inside(bundle, tmp_path):
    rootfs = bundle / "rootfs"
    os.symlink("../../../../../../../../", rootfs / "up")
    mounts = DEFAULT_MOUNTS[:1] + [
        {"destination": "/../../../escape-dotdot", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/up/escape-link", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/up/up/../tmp/x", "type": "tmpfs", "source": "tmpfs"},
    ]
    r = run(bundle, make_spec(bundle, mounts=mounts), lambda: sorted(
        p for p in self_mounts() if p.startswith(("/escape", "/tmp/x"))))
    assert r == ["/escape-dotdot", "/escape-link", "/tmp/x"], r
    assert (rootfs / "escape-dotdot").is_dir() and (rootfs / "escape-link").is_dir()
    for up in range(1, 8):
        base = os.path.normpath(os.path.join(rootfs, *[".."] * up))
        assert not os.path.exists(os.path.join(base, "escape-dotdot"))
        assert not os.path.exists(os.path.join(base, "escape-link"))


def test_device_paths_do_not_follow_symlinks_out(bundle, tmp_path):
    rootfs = bundle / "rootfs"
    hostdev = tmp_path / "hostdev"
    hostdev.mkdir()
    os.rmdir(rootfs / "dev")
    os.symlink(str(hostdev), rootfs / "dev")  # /dev -> a host directory
    (rootfs / "dev2").mkdir()
    hostfile = tmp_path / "hostfile"
    os.symlink(str(hostfile), rootfs / "dev2" / "node")  # the node itself is a symlink out
    devices = [{"type": "c", "path": "/dev/mynull", "major": 1, "minor": 3},
               {"type": "c", "path": "/dev2/node", "major": 1, "minor": 3}]

    def observe():
        st = os.stat("/dev/mynull")
        return stat.S_ISCHR(st.st_mode), os.path.islink("/dev2/node")

    r = run(bundle, make_spec(bundle, mounts=[], devices=devices), observe, finish=False)
    assert r == (True, True), r
    assert os.listdir(hostdev) == []
    assert not os.path.lexists(hostfile)
    inside = rootfs / str(hostdev).lstrip("/")
    assert stat.S_ISCHR(os.stat(inside / "mynull").st_mode)
    assert os.readlink(inside / "ptmx") == "pts/ptmx"


def test_nothing_may_be_mounted_inside_proc(bundle):
    rootfs = bundle / "rootfs"
    os.symlink("/proc/sys/kernel", rootfs / "sneaky")
    cases = [
        [{"destination": "/proc/self/attr", "type": "tmpfs", "source": "tmpfs"}],
        [{"destination": "/sneaky", "type": "tmpfs", "source": "tmpfs"}],  # via a symlink into /proc
        [{"destination": "/proc", "type": "tmpfs", "source": "tmpfs"}],
    ]
    for extra in cases:
        r = run(bundle, make_spec(bundle, mounts=DEFAULT_MOUNTS[:1] + extra), lambda: "mounted?!")
        assert r[:2] == ("error", "SpecError") and "mounts[1].destination" in r[3], r
    ok = [{"destination": "/proc/uptime", "source": "/proc/uptime", "options": ["bind"]}]
    assert run(bundle, make_spec(bundle, mounts=DEFAULT_MOUNTS[:1] + ok), lambda: "ok") == "ok"


def test_proc_not_mounted_through_final_symlink(bundle, tmp_path):
    rootfs = bundle / "rootfs"
    os.rmdir(rootfs / "proc")
    os.symlink(str(tmp_path), rootfs / "proc")
    r = run(bundle, make_spec(bundle, mounts=DEFAULT_MOUNTS[:1]), lambda: "mounted?!")
    assert r[:3] == ("error", "OSError", errno.ENOTDIR) and "ordinary directory" in r[3], r


def test_masked_dev_null_must_be_the_null_device(bundle, tmp_path):
    """CVE-2025-31133: a /dev/null the container controls is not trusted."""
    mydev = tmp_path / "mydev"
    mydev.mkdir()
    (mydev / "null").write_text("not a device")
    mounts = DEFAULT_MOUNTS[:1] + [{"destination": "/dev", "source": str(mydev), "options": ["rbind"]}]
    r = run(bundle, make_spec(bundle, mounts=mounts, maskedPaths=["/proc/kcore"]), lambda: "masked?!")
    assert r[:3] == ("error", "OSError", errno.EINVAL) and "not the null device" in r[3], r


# -- user namespace ---------------------------------------------------------------------


def test_in_user_namespace_locked_flags_and_sysfs_fallback(bundle, tmp_path):
    """In a user namespace: inherited mounts have locked flags (the remount
    keeps them), sysfs without an owned netns falls back to an rbind of /sys,
    devices are bind mounts."""
    locked = tmp_path / "locked"
    locked.mkdir()

    def prepare():
        mount("tmpfs", str(locked), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=1m")
        with open(locked / "f", "w") as f:
            f.write("locked")
        # A user namespace (root mapped to root), then a mount namespace it
        # owns: everything inherited is now locked.  The net namespace stays
        # the parent's, so sysfs may not be mounted.
        unshare(CLONE_NEWUSER)
        for name, text in (("setgroups", "deny"), ("uid_map", "0 0 1"), ("gid_map", "0 0 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
        unshare(CLONE_NEWNS)

    mounts = [
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
        {"destination": "/proc", "source": "/proc", "options": ["rbind"]},  # no pid namespace of its own
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/locked", "source": str(locked), "options": ["bind", "ro"]},
    ]
    locked_index = 3

    def observe():
        m = self_mounts()
        st = os.stat("/dev/null")
        return {"locked": m["/locked"][1], "read": open("/locked/f").read(), "write": try_write("/locked/x"),
                "sys": m["/sys"][0], "sys_write": try_write("/sys/kernel/uevent_helper"),
                "sys_submounts": "/sys/fs/cgroup/memory" in m,
                "null": (stat.S_ISCHR(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev))}

    r = run(bundle, make_spec(bundle, mounts=mounts), observe, prepare=prepare, in_user_namespace=True)
    assert not isinstance(r, tuple), r
    assert r["locked"].startswith("ro") and all(f in r["locked"] for f in ("nosuid", "nodev", "noexec"))
    assert r["read"] == "locked" and r["write"] == errno.EROFS
    assert r["sys"] == "sysfs" and r["sys_write"] == errno.EROFS
    assert r["sys_submounts"], "expected the host's /sys rbound (with its submounts), read-only"
    assert r["null"] == (True, 1, 3)

    # Explicitly asking to clear a locked flag is an error, not a silent no.
    mounts[locked_index]["options"] = ["bind", "ro", "suid"]
    r = run(bundle, make_spec(bundle, mounts=mounts), lambda: "mounted?!", prepare=prepare, in_user_namespace=True)
    assert r[:3] == ("error", "OSError", errno.EPERM) and "cannot clear locked flags MS_NOSUID" in r[3], r
