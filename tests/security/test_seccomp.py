"""linux.seccomp: the profile compiled by libseccomp and loaded by init,
observed from inside a container (errnos, kills, conditions, exec, notify),
and the profile checks that need no kernel."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest

from conftest import requires_root
from test_runtime import Runtime, rt  # noqa: F401 - the fixture

from nsbox._sys import seccomp as _sc
from nsbox._sys import seccomp_abi as abi
from nsbox.oci.spec import SpecError
from nsbox.security.seccomp import compile_profile, parse_profile
from nsbox.testing.bundle import read_config, write_config

EROFS, EPERM, ENOSYS = 30, 1, 38


def allow_but(*rules, **extra):
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": list(rules), **extra}


def rule(names, action, **extra):
    return {"names": names if isinstance(names, list) else [names], "action": action, **extra}


# ---- the kernel: observed from inside -----------------------------------

@requires_root
def test_a_denied_syscall_returns_the_configured_errno(rt):  # noqa: F811
    profile = allow_but(rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errnoRet=EROFS))
    status, out, err = rt.run(["sh", "-c", "mkdir /made; echo rc=$?; touch /touched && echo touched"],
                              linux={"seccomp": profile})
    assert status == 0, err
    # the root is writable (touch works): only the filter can say read-only
    assert "Read-only file system" in err
    assert out.split() == ["rc=1", "touched"]


@requires_root
def test_errno_defaults_to_eperm(rt):  # noqa: F811
    profile = allow_but(rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO"))
    status, out, err = rt.run(["sh", "-c", "mkdir /made"], linux={"seccomp": profile})
    assert status == 1
    assert "Operation not permitted" in err


@requires_root
@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP"])
def test_kill_and_trap_end_the_process_with_sigsys(rt, action):  # noqa: F811
    profile = allow_but(rule(["sync"], action))
    status, out, err = rt.run(["sh", "-c", "busybox sync; echo rc=$?"], linux={"seccomp": profile})
    assert status == 0, err
    assert out.strip() == "rc=159"  # 128 + SIGSYS (31): the shell survived, sync did not


@requires_root
def test_conditions_on_arguments(rt):  # noqa: F811
    # kill(pid, SIGUSR1) is denied, any other signal goes through
    profile = allow_but(rule("kill", "SCMP_ACT_ERRNO", errnoRet=EPERM,
                             args=[{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]))
    status, out, err = rt.run(["sh", "-c", "kill -0 $$ && echo zero-ok; kill -USR1 $$; echo usr1-rc=$?"],
                              linux={"seccomp": profile})
    assert status == 0, err
    assert out.split() == ["zero-ok", "usr1-rc=1"]


@requires_root
def test_masked_equality(rt):  # noqa: F811
    # deny umask(m) when m & 0o7 == 0o7 (MASKED_EQ: value is the mask, valueTwo the result)
    profile = allow_but(rule("umask", "SCMP_ACT_ERRNO", errnoRet=EPERM,
                             args=[{"index": 0, "value": 0o7, "valueTwo": 0o7, "op": "SCMP_CMP_MASKED_EQ"}]))
    status, out, err = rt.run(["sh", "-c", "umask 022; umask; umask 027; umask"], linux={"seccomp": profile})
    assert status == 0, err
    # 027 & 7 == 7: that umask call failed, the mask stayed 0022
    assert out.split() == ["0022", "0022"]


@requires_root
def test_the_runtime_setup_is_not_filtered(rt):  # noqa: F811
    # mount, pivot_root and sethostname denied: the runtime still made its
    # mounts, pivoted and named the host, so the filter came after them
    profile = allow_but(rule(["mount", "pivot_root", "sethostname", "umount2"], "SCMP_ACT_ERRNO",
                             errnoRet=ENOSYS))
    status, out, err = rt.run(["sh", "-c", "hostname; test -r /proc/self/status && echo proc; "
                                           "mount -t tmpfs t /mnt; echo rc=$?"],
                              linux={"seccomp": profile}, hostname="filtered")
    assert status == 0, err
    assert out.split() == ["filtered", "proc", "rc=255"]
    assert "Function not implemented" in err  # ENOSYS from the filter, before any capability check


@requires_root
@pytest.mark.parametrize("no_new_privs", [True, False])
def test_the_filter_holds_for_a_non_root_user_either_way(rt, no_new_privs):  # noqa: F811
    # without no_new_privs the filter is loaded before the capabilities are
    # dropped (it needs CAP_SYS_ADMIN); with it, as late as possible
    profile = allow_but(rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errnoRet=EROFS))
    status, out, err = rt.run(["sh", "-c", "id -u; mkdir /tmp/d"], linux={"seccomp": profile},
                              process={"user": {"uid": 1000, "gid": 1000}, "noNewPrivileges": no_new_privs,
                                       "args": ["sh", "-c", "id -u; mkdir /tmp/d"]})
    assert status == 1
    assert out.strip() == "1000"
    assert "Read-only file system" in err
    assert "Seccomp:\t2" in _status_of_process(rt, no_new_privs, profile)


def _status_of_process(rt, no_new_privs, profile):  # noqa: F811
    status, out, err = rt.run(["cat", "/proc/self/status"], linux={"seccomp": profile},
                              process={"user": {"uid": 1000, "gid": 1000}, "noNewPrivileges": no_new_privs,
                                       "args": ["cat", "/proc/self/status"]})
    assert status == 0, err
    return out


@requires_root
def test_exec_gets_the_containers_filter(rt):  # noqa: F811
    profile = allow_but(rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errnoRet=EROFS))
    rt.create("filtered", ["sleep", "30"], linux={"seccomp": profile})
    rt("start", "filtered", check=True)
    r = rt("exec", "filtered", "sh", "-c", "mkdir /from-exec; echo rc=$?; grep Seccomp: /proc/self/status")
    assert r.returncode == 0, r.stderr
    assert "Read-only file system" in r.stderr
    assert r.stdout.split() == ["rc=1", "Seccomp:", "2"]


@requires_root
def test_a_client_profile_runs_and_denies(rt):  # noqa: F811
    # podman's own profile (an allow-list, ENOSYS by default), from this host
    here = os.path.dirname(__file__)
    fixture = os.path.join(here, "..", "..", "..", "shared", "fixtures", "clients", "podman-config.json")
    if not os.path.exists(fixture):
        pytest.skip("../shared/fixtures is not beside this checkout")
    with open(fixture) as f:
        profile = json.load(f)["linux"]["seccomp"]
    status, out, err = rt.run(["sh", "-c", "echo alive; grep Seccomp: /proc/self/status"],
                              linux={"seccomp": profile})
    assert status == 0, err
    assert out.split() == ["alive", "Seccomp:", "2"]


@requires_root
def test_unknown_syscall_names_are_skipped(rt):  # noqa: F811
    profile = allow_but(rule(["no_such_syscall_anywhere", "mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errnoRet=EROFS))
    status, out, err = rt.run(["mkdir", "/x"], linux={"seccomp": profile})
    assert status == 1
    assert "Read-only file system" in err


@requires_root
@pytest.mark.parametrize("flag", ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                  "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"])
def test_flags_are_passed_to_the_kernel(rt, flag):  # noqa: F811
    profile = allow_but(rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errnoRet=EROFS), flags=[flag])
    status, out, err = rt.run(["mkdir", "/x"], linux={"seccomp": profile})
    assert status == 1
    assert "Read-only file system" in err


@requires_root
def test_compiled_programs_are_cached(rt):  # noqa: F811
    profile = allow_but(rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errnoRet=EROFS))
    assert rt.run(["true"], linux={"seccomp": profile})[0] == 0
    cache = os.path.join(rt.root, ".seccomp-cache")
    [entry] = [name for name in os.listdir(cache) if name.endswith(".bpf")]
    # a damaged entry is rebuilt, not trusted
    with open(os.path.join(cache, entry), "wb") as f:
        f.write(b"\x06\x00\x00\x00\x00\x00\xff")
    status, out, err = rt.run(["mkdir", "/x"], linux={"seccomp": profile})
    assert status == 1 and "Read-only file system" in err
    assert os.path.getsize(os.path.join(cache, entry)) % 8 == 0


def test_a_cache_hit_loads_no_libseccomp(tmp_path):
    import subprocess
    import sys

    (tmp_path / "profile.json").write_text(json.dumps(allow_but(rule("mkdir", "SCMP_ACT_ERRNO"))))
    code = ("import sys, json; from nsbox.security.seccomp import compile_profile; "
            f"p = compile_profile(json.load(open({str(tmp_path / 'profile.json')!r})), "
            f"cache_dir={str(tmp_path / 'cache')!r}); "
            "print(len(p.bpf), 'ctypes' in sys.modules, open('/proc/self/maps').read().count('libseccomp') > 0)")
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert first[1:] == ["True", "True"]  # built: the library was loaded
    assert again == [first[0], "False", "False"]  # the same program, and neither ctypes nor libseccomp


def test_a_different_library_file_misses_the_cache(tmp_path):
    profile = allow_but(rule("mkdir", "SCMP_ACT_ERRNO"))
    lib = RecordingLib()
    fake = tmp_path / "libseccomp.so.2.5.4"
    fake.write_bytes(b"v1")
    lib.library_path = lambda: str(fake)
    compile_profile(profile, cache_dir=str(tmp_path / "cache"), lib=lib)
    assert [c[0] for c in lib.calls] == ["init", "rule"]
    lib.calls.clear()
    compile_profile(profile, cache_dir=str(tmp_path / "cache"), lib=lib)
    assert lib.calls == []  # a hit
    fake.unlink()
    fake.write_bytes(b"v2, upgraded")  # a new file: another inode and size
    compile_profile(profile, cache_dir=str(tmp_path / "cache"), lib=lib)
    assert [c[0] for c in lib.calls] == ["init", "rule"]


def test_the_cache_keeps_the_newest_builds(tmp_path, monkeypatch):
    from nsbox.security import seccomp

    monkeypatch.setattr(seccomp, "CACHE_ENTRIES", 3)
    lib = RecordingLib()
    (tmp_path / "libseccomp.so.2").write_bytes(b"lib")
    lib.library_path = lambda: str(tmp_path / "libseccomp.so.2")
    cache = tmp_path / "cache"
    for errno in range(1, 6):
        compile_profile(allow_but(rule("mkdir", "SCMP_ACT_ERRNO", errnoRet=errno)), cache_dir=str(cache), lib=lib)
        time.sleep(0.02)  # file times may tick by the jiffy: keep the builds' order visible
    assert len([n for n in os.listdir(cache) if n.endswith(".bpf")]) == 3
    lib.calls.clear()
    compile_profile(allow_but(rule("mkdir", "SCMP_ACT_ERRNO", errnoRet=5)), cache_dir=str(cache), lib=lib)
    assert lib.calls == []  # the newest is still there
    compile_profile(allow_but(rule("mkdir", "SCMP_ACT_ERRNO", errnoRet=1)), cache_dir=str(cache), lib=lib)
    assert lib.calls != []  # the oldest was dropped: built again


@requires_root
@pytest.mark.parametrize("change,message", [
    ({"defaultAction": "SCMP_ACT_MAYBE"}, "linux.seccomp.defaultAction: unknown action 'SCMP_ACT_MAYBE'"),
    ({"architectures": ["SCMP_ARCH_Z80"]}, "linux.seccomp.architectures[0]: unknown architecture"),
    ({"flags": ["SECCOMP_FILTER_FLAG_FAST"]}, "linux.seccomp.flags[0]: unknown flag"),
    ({"syscalls": [rule("mkdir", "SCMP_ACT_ALLOW", errnoRet=1)]},
     "linux.seccomp.syscalls[0].errnoRet: SCMP_ACT_ALLOW returns no errno"),
    ({"syscalls": [rule("mkdir", "SCMP_ACT_ERRNO", args=[{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}])]},
     "linux.seccomp.syscalls[0].args[0].index: 6 is out of range"),
    ({"syscalls": [rule("mkdir", "SCMP_ACT_ERRNO", args=[{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}])]},
     "linux.seccomp.syscalls[0].args[0].op: unknown operator"),
    ({"syscalls": [rule("mkdir", "SCMP_ACT_NOTIFY")]}, "linux.seccomp.listenerPath: is required"),
    ({"syscalls": [rule("write", "SCMP_ACT_NOTIFY")], "listenerPath": "/x"},
     "SCMP_ACT_NOTIFY cannot be used for the write syscall"),
])
def test_bad_profiles_fail_create_in_one_line_and_leave_nothing(rt, change, message):  # noqa: F811
    profile = {"defaultAction": "SCMP_ACT_ALLOW", **change}
    b = rt.bundle(["true"])
    spec = read_config(b)
    spec["linux"]["seccomp"] = profile
    write_config(b, spec)
    r = rt("create", "--bundle", b, "bad")
    assert r.returncode == 1
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not os.path.exists(os.path.join(rt.root, "bad"))


# ---- SCMP_ACT_NOTIFY: a listener gets the fd and answers ------------------

class Listener:
    """A seccomp agent on a unix socket: takes the fd and the state the
    runtime sends, then answers every notification with *reply*."""

    def __init__(self, path, reply):
        self.path = path
        self.reply = reply
        self.messages = []
        self.seen = []
        self.errors = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
            with conn:
                data, fds, _, _ = socket.recv_fds(conn, 65536, 4)
            self.messages.append(json.loads(data))
            [fd] = fds
            try:
                while True:
                    try:
                        n = _sc.notify_receive(fd)
                    except OSError:
                        return  # the filter's last process is gone
                    self.seen.append(n.syscall)
                    _sc.notify_respond(fd, n.id, *self.reply)
            finally:
                os.close(fd)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append(e)

    def close(self):
        self.sock.close()
        self.thread.join(10)


@requires_root
def test_notify_hands_the_fd_and_state_to_the_listener(rt, tmp_path):  # noqa: F811
    path = str(tmp_path / "agent.sock")
    listener = Listener(path, reply=(0, 0))  # "success", without doing it
    try:
        profile = allow_but(rule(["mkdir", "mkdirat"], "SCMP_ACT_NOTIFY"),
                            listenerPath=path, listenerMetadata="made-by-test")
        status, out, err = rt.run(["sh", "-c", "mkdir /faked && echo mkdir-ok; test -d /faked || echo absent"],
                                  linux={"seccomp": profile})
    finally:
        listener.close()
    assert not listener.errors, listener.errors
    assert status == 0, err
    # the listener answered (mkdir "succeeded") without making the directory
    assert out.split() == ["mkdir-ok", "absent"]
    assert _sc.syscall_number("mkdir") in listener.seen or _sc.syscall_number("mkdirat") in listener.seen
    [message] = listener.messages
    assert message["fds"] == ["seccompFd"]
    assert message["metadata"] == "made-by-test"
    assert message["state"]["status"] == "creating"
    assert message["pid"] == message["state"]["pid"] > 0
    assert message["ociVersion"].startswith("1.")


@requires_root
def test_a_missing_listener_fails_create_cleanly(rt, tmp_path):  # noqa: F811
    profile = allow_but(rule("mkdir", "SCMP_ACT_NOTIFY"), listenerPath=str(tmp_path / "nobody.sock"))
    b = rt.bundle(["true"], linux={"seccomp": profile})
    r = rt("create", "--bundle", b, "lonely")
    assert r.returncode == 1
    assert "linux.seccomp.listenerPath" in r.stderr and "No such file" in r.stderr
    assert not os.path.exists(os.path.join(rt.root, "lonely"))


# ---- the profile, without a kernel ----------------------------------------

class RecordingLib:
    """Stands in for nsbox._sys.seccomp: records what the profile asks of libseccomp."""

    NUMBERS = {"read": 0, "write": 1, "kill": 62, "mkdir": 83}

    def __init__(self):
        self.calls = []

    def version(self):
        return (2, 5, 4)

    def arch_token(self, name):
        return {"x86_64": 0xC000003E, "x86": 0x40000003}.get(name, 0)

    def syscall_number(self, name):
        return self.NUMBERS.get(name)

    def Filter(self, default):  # noqa: N802 - mirrors the class
        lib = self
        lib.calls.append(("init", default))

        class F:
            def add_arch(self, token):
                lib.calls.append(("arch", token))

            def add_rule(self, action, nr, conds):
                lib.calls.append(("rule", action, nr, conds))

            def export_bpf(self):
                return b"\x06\x00\x00\x00\x00\x00\xff\x7f"

            def __enter__(self):
                return self

            def __exit__(self, *a):
                pass

        return F()


def test_conditions_on_one_argument_become_separate_rules():
    lib = RecordingLib()
    compile_profile(allow_but(rule("kill", "SCMP_ACT_ERRNO", args=[
        {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 15, "op": "SCMP_CMP_EQ"}])), lib=lib)
    rules = [c for c in lib.calls if c[0] == "rule"]
    assert rules == [("rule", abi.act_errno(1), 62, [(1, abi.CMP_EQ, 9, 0)]),
                     ("rule", abi.act_errno(1), 62, [(1, abi.CMP_EQ, 15, 0)])]


def test_conditions_on_different_arguments_are_anded():
    lib = RecordingLib()
    compile_profile(allow_but(rule("kill", "SCMP_ACT_ERRNO", errnoRet=13, args=[
        {"index": 0, "value": 1, "op": "SCMP_CMP_GT"},
        {"index": 1, "value": 0xF0, "valueTwo": 0x10, "op": "SCMP_CMP_MASKED_EQ"}])), lib=lib)
    assert [c for c in lib.calls if c[0] == "rule"] == [
        ("rule", abi.act_errno(13), 62, [(0, abi.CMP_GT, 1, 0), (1, abi.CMP_MASKED_EQ, 0xF0, 0x10)])]


def test_rules_that_repeat_the_default_and_unknown_names_are_dropped():
    lib = RecordingLib()
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "architectures": ["SCMP_ARCH_X86"],
               "syscalls": [rule(["read", "no_such_call"], "SCMP_ACT_ALLOW"),
                            rule("write", "SCMP_ACT_ERRNO", errnoRet=38),
                            rule("mkdir", "SCMP_ACT_ERRNO")]}
    compile_profile(profile, lib=lib)
    assert lib.calls == [("init", abi.act_errno(38)), ("arch", 0x40000003),
                         ("rule", abi.ACT_ALLOW, 0, []), ("rule", abi.act_errno(1), 83, [])]


def test_trace_takes_errno_ret_as_its_message():
    default, _, _, rules, _ = parse_profile(allow_but(rule("mkdir", "SCMP_ACT_TRACE", errnoRet=7)))
    assert rules[0].action == abi.act_trace(7)


def test_notify_asks_the_kernel_for_a_listener():
    p = compile_profile(allow_but(rule("mkdir", "SCMP_ACT_NOTIFY"), listenerPath="/run/agent.sock",
                                  flags=["SECCOMP_FILTER_FLAG_TSYNC"]), lib=RecordingLib())
    assert p.notify and p.listener_path == "/run/agent.sock"
    assert p.flags == abi.FILTER_FLAG_TSYNC | abi.FILTER_FLAG_NEW_LISTENER | abi.FILTER_FLAG_TSYNC_ESRCH


def test_notify_cannot_be_the_default():
    with pytest.raises(SpecError, match="cannot be the default action"):
        parse_profile({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"})


def test_the_real_library_compiles_a_profile_for_three_arches():
    p = compile_profile({"defaultAction": "SCMP_ACT_ERRNO", "architectures":
                         ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                         "syscalls": [rule(["read", "write", "exit_group", "socketcall"], "SCMP_ACT_ALLOW")]})
    assert p.bpf and len(p.bpf) % 8 == 0 and not p.notify


def _run_bpf(program: bytes, nr: int, arch: int, args: tuple[int, ...]) -> tuple[int, bool]:
    """The action a classic-BPF seccomp program returns for one call (struct
    seccomp_data: nr, arch, instruction_pointer, args[6]), and whether it
    read the arguments; only the opcodes libseccomp emits."""
    import struct

    data = struct.pack("<iIQ6Q", nr, arch, 0, *args)
    insns = [struct.unpack_from("<HBBI", program, i) for i in range(0, len(program), 8)]
    a = x = pc = 0
    mem = [0] * 16
    read_args = False
    for _ in range(100_000):
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:                                  # ld  [k]
            a = struct.unpack_from("<I", data, k)[0]
            read_args |= k >= 16
        elif code == 0x00:                                # ld  #k
            a = k
        elif code == 0x60:                                # ld  M[k]
            a = mem[k]
        elif code == 0x61:                                # ldx M[k]
            x = mem[k]
        elif code == 0x02:                                # st  M[k]
            mem[k] = a
        elif code == 0x03:                                # stx M[k]
            mem[k] = x
        elif code == 0x54:                                # and #k
            a &= k
        elif code == 0x07:                                # tax
            x = a
        elif code == 0x87:                                # txa
            a = x
        elif code == 0x05:                                # ja
            pc += k
        elif code in (0x15, 0x25, 0x35, 0x45):            # jeq, jgt, jge, jset #k
            taken = {0x15: a == k, 0x25: a > k, 0x35: a >= k, 0x45: bool(a & k)}[code]
            pc += jt if taken else jf
        elif code == 0x06:                                # ret #k
            return k, read_args
        else:
            raise AssertionError(f"opcode {code:#x} at {pc - 1} is not one libseccomp emits")
    raise AssertionError("the program does not end")


def test_the_binary_tree_layout_decides_every_call_as_the_list_does(monkeypatch):
    """Filter builds the syscalls as a binary tree (the kernel loads it in half
    the time); for the default profile it must decide every syscall number,
    on each of its architectures, with arguments that meet and miss its
    conditions, exactly as libseccomp's plain list does."""
    from nsbox.oci.default_seccomp import default_seccomp

    profile = default_seccomp(["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
    tree = compile_profile(profile).bpf
    real = _sc.library()

    class ListLayout:
        """libseccomp, except that the optimize attribute is left unset."""

        def __getattr__(self, name):
            return getattr(real, name)

        def seccomp_attr_set(self, ctx, attr, value):
            return 0 if attr == abi.ATTR_CTL_OPTIMIZE else real.seccomp_attr_set(ctx, attr, value)

    monkeypatch.setattr(_sc, "library", lambda: ListLayout())
    linear = compile_profile(profile).bpf
    assert tree != linear, "the optimize attribute changed nothing: is libseccomp older than 2.5?"
    arches = [_sc.arch_token(name) for name in ("x86_64", "x86", "x32", "aarch64")]
    values = sorted({0, 1, 0x7E020000, 0x10000000, 0xFFFFFFFF} | {
        int(a.get(k, 0)) & 0xFFFFFFFF for r in profile["syscalls"] for a in r.get("args") or () for k in ("value", "valueTwo")})
    seen = set()
    for arch in arches:
        for nr in list(range(0, 460)) + [0x40000000 + n for n in range(0, 560, 7)]:
            for v in values:
                args = (v, v, v, 0, 0, 0)
                (action, tree_read), (expected, list_read) = _run_bpf(tree, nr, arch, args), \
                    _run_bpf(linear, nr, arch, args)
                assert action == expected, (arch, nr, v)
                seen.add(action)
                if not (tree_read or list_read):
                    break  # the arguments play no part in this call's decision
    assert {abi.ACT_ALLOW, abi.act_errno(EPERM)} <= seen


def test_features_report_seccomp():
    from nsbox.oci.features import features

    s = features()["linux"]["seccomp"]  # type: ignore[index]
    assert s["enabled"] is True
    assert "SCMP_ACT_NOTIFY" in s["actions"] and "SCMP_CMP_MASKED_EQ" in s["operators"]
    assert "SCMP_ARCH_X86_64" in s["archs"]
    assert set(s["supportedFlags"]) <= set(s["knownFlags"])


@requires_root
@pytest.mark.parametrize("no_new_privs", [True, False])
def test_a_profile_without_close_range_still_starts(rt, no_new_privs):  # noqa: F811
    # CPython falls back to one close() per fd when close_range fails: the
    # runtime must bound that loop by the fds really open (runtime-tools'
    # profile lacks close_range; an unbounded loop hung create)
    profile = allow_but(rule("close_range", "SCMP_ACT_ERRNO"))
    status, out, err = rt.run(["sh", "-c", "ls /proc/self/fd"], linux={"seccomp": profile},
                              process={"noNewPrivileges": no_new_privs, "args": ["sh", "-c", "ls /proc/self/fd"]})
    assert status == 0, err
    assert out.split() == ["0", "1", "2", "3"]
