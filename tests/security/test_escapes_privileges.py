"""Escapes by gaining privilege: capabilities outside the bounding set,
setuid and file-capability binaries, kernel modules, other processes
(ptrace and /proc/<pid>), and the host's keyrings.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess

import pytest

from conftest import requires_root
from security.helpers import caps, lines, linux

from nsbox.oci.default import DEFAULT_CAPABILITIES
from nsbox.security.capabilities import NUMBERS

pytestmark = requires_root

CAP_SYS_ADMIN = NUMBERS["CAP_SYS_ADMIN"]
CAP_SYS_MODULE = NUMBERS["CAP_SYS_MODULE"]


def _status_caps(out: str) -> dict[str, int]:
    return {line.split(":")[0]: int(line.split()[1], 16) for line in lines(out) if line.startswith("Cap")}


def test_capabilities_outside_the_bounding_set_cannot_be_raised(box):
    # Attack: give oneself CAP_SYS_ADMIN (then mount, setns, ...) with
    # capset(2), through the inheritable set, or as an ambient capability.
    # Defence: the runtime drops it from the bounding set and from every
    # other set before the program runs; capset may only shrink the
    # permitted set, and inheritable/ambient additions must be in the
    # bounding set (EPERM for all three).
    status, out, err = box.sh(f"grep ^Cap /proc/self/status; probe capset {CAP_SYS_ADMIN}")
    sets = _status_caps(out)
    default = sum(1 << NUMBERS[name] for name in DEFAULT_CAPABILITIES)
    assert sets == {"CapInh": 0, "CapPrm": default, "CapEff": default, "CapBnd": default, "CapAmb": 0}, out
    assert [line for line in lines(out) if not line.startswith("Cap")] == [
        "bounding: lacks", "capset: EPERM", "capset-inheritable: EPERM", "ambient: EPERM"], (out, err)


def _fcap_v2(*numbers: int) -> bytes:
    """A security.capability xattr (VFS_CAP_REVISION_2, effective bit set)
    granting *numbers* in the file's permitted set."""
    bits = sum(1 << n for n in numbers)
    return struct.pack("<IIIII", 0x02000000 | 0x1, bits & 0xFFFFFFFF, 0, bits >> 32, 0)


def test_file_capabilities_cannot_exceed_the_bounding_set(box):
    # Attack: a binary in the image with the file capability
    # cap_sys_admin+ep, run by an ordinary user of the container.
    # Defences: the bounding set caps what exec can grant (and the kernel
    # refuses the exec of such a "capability-dumb" binary outright: EPERM);
    # no_new_privs makes exec ignore file capabilities altogether.
    fcap = os.path.join(box.rootfs, "bin", "fcap-probe")
    shutil.copy2(box.probe, fcap)
    os.setxattr(fcap, "security.capability", _fcap_v2(CAP_SYS_ADMIN))
    user = {"uid": 1000, "gid": 1000}
    script = "fcap-probe caps 2>&1 | grep -e CapEff -e denied -e permitted"
    # bounding set alone (no_new_privs off, so only the bounding set is in the way)
    status, out, err = box.sh(script, process={"user": user, "noNewPrivileges": False})
    assert lines(out) == ["sh: fcap-probe: Operation not permitted"], (out, err)
    # no_new_privs alone (CAP_SYS_ADMIN left in the bounding set)
    status, out, err = box.sh(script, process={"user": user, "noNewPrivileges": True,
                                               "capabilities": {"bounding": caps("CAP_SYS_ADMIN")["bounding"]}})
    assert _status_caps(out) == {"CapEff": 0}, (out, err)

    # Control: with both defences off the binary does get CAP_SYS_ADMIN.
    status, out, err = box.sh(script, process={"user": user, "noNewPrivileges": False,
                                               "capabilities": {"bounding": caps("CAP_SYS_ADMIN")["bounding"]}})
    assert _status_caps(out) == {"CapEff": 1 << CAP_SYS_ADMIN}, (out, err)


def test_setuid_root_binary_under_no_new_privs(box):
    # Attack: a setuid-root binary in the image (here a copy of the probe),
    # run by uid 1000 to become root again.  Defence: process.noNewPrivileges
    # (on in the default spec): exec no longer honours the setuid bit.
    suid = os.path.join(box.rootfs, "bin", "suid-probe")
    shutil.copy2(box.probe, suid)
    os.chown(suid, 0, 0)
    os.chmod(suid, 0o4755)
    user = {"uid": 1000, "gid": 1000}
    status, out, err = box.sh("suid-probe ids; grep NoNewPrivs /proc/self/status", process={"user": user})
    assert lines(out) == ["uid: 1000 1000 1000", "NoNewPrivs:\t1"], (out, err)

    # Control: without no_new_privs the same exec makes euid 0.
    status, out, err = box.sh("suid-probe ids", process={"user": user, "noNewPrivileges": False})
    assert lines(out) == ["uid: 1000 0 0"], (out, err)


def test_kernel_modules_cannot_be_loaded(box):
    # Attack: load a kernel module (code in the host kernel) with
    # init_module or finit_module.  Defence: both need CAP_SYS_MODULE, which
    # is not in the bounding set (EPERM).  A kernel built without module
    # support (this one: no /proc/modules) answers ENOSYS to everyone; the
    # bounding set is then checked on its own.
    expected = "EPERM" if os.path.exists("/proc/modules") else "ENOSYS"
    status, out, err = box.sh(f"probe module; probe capset {CAP_SYS_MODULE} | head -1")
    assert lines(out) == [f"init_module: {expected}", f"finit_module: {expected}", "bounding: lacks"], (out, err)
    if expected == "EPERM":
        # Control: with the capability the call reaches the module loader,
        # which refuses the blob (it is not a module): not EPERM any more.
        status, out, err = box.sh("probe module", process={"capabilities": caps("CAP_SYS_MODULE")})
        assert "init_module: EPERM" not in out and "init_module: ok" not in out, out


@pytest.fixture
def host_process():
    """A process of the host (root, all of root's capabilities) with a known
    environment variable."""
    p = subprocess.Popen(["sleep", "60"], env={"NSBOX_HOST_SENTINEL": "host-secret"})
    try:
        yield p.pid
    finally:
        p.kill()
        p.wait()


def test_host_processes_are_out_of_sight_from_a_pid_namespace(box, host_process):
    # Attack: ptrace, signal or read /proc of a host process.  Defence: the
    # PID namespace: the host's pids do not exist inside (ENOENT, ESRCH).
    pid = host_process
    status, out, err = box.sh(f"ls -d /proc/{pid} 2>&1; kill -0 {pid} 2>&1; probe ptrace {pid}")
    assert lines(out) == [f"ls: /proc/{pid}: No such file or directory",
                          f"sh: can't kill pid {pid}: No such process", "ptrace: ESRCH"], (out, err)


def test_host_processes_in_a_shared_pid_namespace(box, host_process):
    # Attack: a container that shares the host's PID namespace (no "pid" in
    # linux.namespaces, like docker --pid=host) attaches to a host root
    # process, reads its memory or environment, follows its /proc/<pid>/root
    # or joins its mount namespace.  Defence: all of these are ptrace access
    # checks, and a process may only trace one whose capabilities are a
    # subset of its own unless it holds CAP_SYS_PTRACE, which the default set
    # lacks (EPERM/EACCES) -- same uid 0 or not.
    # (Signals are another matter: kill(2) only compares uids, so the
    # container's root may signal the host's root processes here, as with
    # docker --pid=host.  Not attempted.)
    pid = host_process
    shared = linux(namespaces=[ns for ns in linux()["namespaces"] if ns["type"] != "pid"])
    script = (f"ls -d /proc/{pid}; cat /proc/{pid}/environ 2>&1; head -c 1 /proc/{pid}/mem 2>&1; "
              f"ls /proc/{pid}/root/ 2>&1; readlink /proc/{pid}/exe || echo exe denied; "
              f"readlink /proc/{pid}/fd/0 || echo fd denied; "
              f"probe ptrace {pid}; probe setns /proc/{pid}/ns/mnt")
    status, out, err = box.sh(script, linux=shared)
    assert lines(out) == [f"/proc/{pid}", f"cat: can't open '/proc/{pid}/environ': Permission denied",
                          f"head: /proc/{pid}/mem: Permission denied", f"ls: /proc/{pid}/root/: Permission denied",
                          "exe denied", "fd denied", "ptrace: EPERM", "open: EACCES"], (out, err)

    # Control: with CAP_SYS_PTRACE the same container reads the host
    # process's environment and may attach to it (PTRACE_SEIZE does not stop
    # it; the probe's exit detaches).
    status, out, err = box.sh(f"tr '\\0' '\\n' < /proc/{pid}/environ; probe ptrace {pid}", linux=shared,
                              process={"capabilities": caps("CAP_SYS_PTRACE")})
    assert lines(out) == ["NSBOX_HOST_SENTINEL=host-secret", "ptrace: ok"], (out, err)


def test_the_session_keyring_is_the_containers_own(box):
    # Attack: use the keys of whoever started the container (the runtime's
    # caller: its session keyring -- kerberos tickets, fscrypt and ecryptfs
    # keys, ...).  Defence: init joins a new session keyring of its own
    # ("_ses.<id>") before the program runs, so the caller's session keyring
    # is not the container's; and a key found by serial is not possessed, so
    # its payload is not readable (EACCES).
    # The host side: a child joins a fresh session keyring, adds a user key
    # to it and runs nsbox from there (the pytest process's keyrings are
    # never touched).
    (box.tmp / "keys").write_text("")
    b = box.bundle(["sh", "-c", "probe keyring; probe keysearch nsbox-test-key; probe keyread $(cat /key-serial)"])
    result = {}
    for variant, flags in (("default", []), ("control", ["--no-new-keyring"])):
        script = (f'cut -d" " -f2 {box.tmp}/keys > {box.rootfs}/key-serial; {box.probe} keyring; exec "$@"')
        r = subprocess.run([box.probe, "host-keyring", "nsbox-test-key", "host-secret", str(box.tmp / "keys"), "--",
                            "sh", "-c", script, "sh", *box.command("run", *flags, "--bundle", b, f"key-{variant}")],
                           capture_output=True, text=True, timeout=60)
        result[variant] = lines(r.stdout)
    host_ring = result["default"][0].split()[1]
    default = result["default"][1:]
    assert default[0].startswith("keyring: ") and default[0].endswith(";_ses.key-default"), result
    assert default[0].split()[1] != host_ring
    assert default[1:] == ["keysearch: ENOKEY", "keyread: EACCES"], result

    # Control: with --no-new-keyring the container keeps the caller's
    # session keyring, finds the key and reads it.
    control = result["control"]
    assert control[1].split()[1] == control[0].split()[1], result  # the same keyring
    assert control[2].startswith("keysearch: found ") and control[3] == "keyread: ok host-secret", result


KEY_UID = 54321  # a uid nobody on this host uses: its user keyring is ours alone


def test_the_host_users_user_keyring(box):
    # Attack: without a user namespace, uid N inside is uid N outside, and
    # the kernel keeps one user keyring per uid ("_uid.N", reachable from any
    # process of that uid via KEY_SPEC_USER_KEYRING and possessed through
    # it).  A container process of uid N searches it, links the key into its
    # own session keyring and reads the host user's secret.  Defence: the
    # default seccomp profile refuses keyctl/add_key/request_key (EPERM), as
    # docker's does: this test runs with it (seccomp=True).
    # The host side: a process of uid KEY_UID adds a user key to its user
    # keyring, and invalidates it when the test closes its stdin.
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    owner = subprocess.Popen(["setpriv", f"--reuid={KEY_UID}", f"--regid={KEY_UID}", "--clear-groups",
                              box.probe, "host-userkey", "nsbox-user-key", "user-secret"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline().startswith("key: ")
        user = {"uid": KEY_UID, "gid": KEY_UID}
        status, out, err = box.sh("probe usersteal nsbox-user-key", process={"user": user}, seccomp=True)
        assert lines(out) == ["usersearch: EPERM"], (out, err)

        # Control: without the seccomp profile the key is found and read --
        # the profile is this attack's only defence short of a user namespace.
        status, out, err = box.sh("probe usersteal nsbox-user-key", process={"user": user})
        assert lines(out) == ["usersearch: ok", "link: ok", "steal: ok user-secret"], (out, err)
    finally:
        owner.stdin.close()
        assert owner.stdout.read() == "invalidate: ok\n"
        owner.wait()
        owner.stdout.close()
