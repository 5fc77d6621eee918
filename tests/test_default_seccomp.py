"""The default seccomp profile: its lists, its filters, and that this host's
libseccomp accepts every rule of it (compiled in a child, never loaded)."""

from __future__ import annotations

import ctypes
import errno
import json
import subprocess
import sys

import pytest

from nsbox.oci import default_seccomp as ds
from nsbox.oci.default import DEFAULT_CAPABILITIES, default_spec
from nsbox.oci.default_seccomp import (ALLOWED, ALWAYS_DENIED, CAPABILITY_SYSCALLS, DEFAULT_DENIED,
                                       NEWER_NAMES, default_seccomp)

MACHINES = ["x86_64", "i686", "aarch64", "armv7l", "ppc64le", "ppc64", "s390x", "riscv64",
            "mips64", "mips64el", "mips", "mipsel", "parisc64"]
ALL_CAPS = sorted(set(CAPABILITY_SYSCALLS) | set(DEFAULT_CAPABILITIES))
NEW_KERNEL = (6, 1)

# linux/sched.h
CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x2000000, 0x4000000, 0x8000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000


def libseccomp() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libseccomp.so.2")
    except OSError:
        pytest.skip("libseccomp.so.2 missing")
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    return lib


def profile(caps=DEFAULT_CAPABILITIES, machine="x86_64", kernel=NEW_KERNEL) -> dict:
    return default_seccomp(caps, machine=machine, kernel=kernel)


def allowed(p: dict) -> set[str]:
    """Names allowed whatever their arguments."""
    return {n for r in p["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args")
            for n in r["names"]}


def rules_for(p: dict, name: str) -> list[dict]:
    return [r for r in p["syscalls"] if name in r["names"]]


def arch_name(oci: str) -> str:
    return oci.removeprefix("SCMP_ARCH_").lower()


# --- names ------------------------------------------------------------------

def every_arch() -> list[str]:
    return sorted({arch_name(a) for m in MACHINES for a in profile(machine=m)["architectures"]})


def numbers(lib, name: str, arches) -> dict[str, int]:
    """name's number on each of *arches* where it is a real syscall (pseudo
    numbers below -1 mean "known, but not on this arch"; -1 unknown)."""
    out = {}
    for arch in arches:
        nr = lib.seccomp_syscall_resolve_name_arch(lib.seccomp_arch_resolve_name(arch.encode()), name.encode())
        if nr >= 0:
            out[arch] = nr
    return out


def known(lib, name: str) -> bool:
    token = lib.seccomp_arch_resolve_name(b"x86_64")
    return lib.seccomp_syscall_resolve_name_arch(token, name.encode()) != -1


def test_every_name_is_a_syscall_somewhere_or_newer_than_libseccomp():
    lib = libseccomp()
    arches = every_arch()
    for arch in arches:
        assert lib.seccomp_arch_resolve_name(arch.encode()), f"libseccomp lacks the architecture {arch}"
    names = {n for m in MACHINES for r in profile(ALL_CAPS, m)["syscalls"] for n in r["names"]}
    unknown = {n for n in names if not known(lib, n)}
    assert unknown <= NEWER_NAMES, f"neither syscalls nor listed as newer: {sorted(unknown - NEWER_NAMES)}"
    # a known name must be a real syscall on at least one ABI: catches typos
    # that a libseccomp pseudo number would hide
    nowhere = sorted(n for n in names - unknown if not numbers(lib, n, arches))
    assert not nowhere, nowhere
    # NEWER_NAMES holds no stale entry
    assert NEWER_NAMES <= names


@pytest.mark.parametrize("machine", MACHINES)
def test_arch_groups_exist_on_their_arches_only(machine):
    lib = libseccomp()
    p = profile(ALL_CAPS, machine)
    family, arches = ds._machine(machine)
    extra = set(ds._ARCH_FAMILY_SYSCALLS.get(family, ()))
    for name in extra - NEWER_NAMES:
        assert numbers(lib, name, [arch_name(a) for a in arches]), (machine, name)
    others = {n for f, names in ds._ARCH_FAMILY_SYSCALLS.items() if f != family for n in names} - extra
    assert not others & allowed(p), sorted(others & allowed(p))


def test_architectures_follow_the_machine():
    assert profile(machine="x86_64")["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert profile(machine="aarch64")["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert profile(machine="s390x")["architectures"] == ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"]
    assert profile(machine="ppc64le")["architectures"] == ["SCMP_ARCH_PPC64LE"]
    assert profile(machine="riscv64")["architectures"] == ["SCMP_ARCH_RISCV64"]
    assert profile(machine="mips64el")["architectures"][0] == "SCMP_ARCH_MIPSEL64"
    assert profile(machine="vax")["architectures"] == []  # native only
    assert default_seccomp(DEFAULT_CAPABILITIES)["architectures"] == list(ds._machine(None)[1])  # this host's
    assert "arch_prctl" in allowed(profile(machine="x86_64"))
    assert "arch_prctl" not in allowed(profile(machine="aarch64"))
    assert "set_tls" in allowed(profile(machine="aarch64"))
    assert "s390_runtime_instr" in allowed(profile(machine="s390x"))


def test_the_shape():
    p = default_seccomp(DEFAULT_CAPABILITIES)
    assert p["defaultAction"] == "SCMP_ACT_ERRNO" and p["defaultErrnoRet"] == errno.EPERM
    assert json.loads(json.dumps(p)) == p
    assert default_seccomp(DEFAULT_CAPABILITIES) == p  # stable output
    assert 340 <= len(ALLOWED) <= 400
    for r in p["syscalls"]:
        assert r["names"] and r["action"] in ("SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO")
        assert set(r) <= {"names", "action", "errnoRet", "args"}
        assert len(r.get("args", ())) <= 1  # one condition a rule: no AND/OR question
        for a in r.get("args", ()):
            assert 0 <= a["index"] <= 5 and a["op"].startswith("SCMP_CMP_")


# --- what is allowed and what is not ------------------------------------------

#: what a runtime calls between loading the filter and execve, and what
#: busybox and the Python interpreter need to start and do ordinary work
NEEDED = (
    "capset", "capget", "setresuid", "setresgid", "setgroups", "prctl", "close_range", "close",
    "getdents64", "read", "write", "openat", "fcntl", "execve", "execveat", "rt_sigaction",
    "rt_sigprocmask", "rt_sigreturn", "exit_group", "exit", "memfd_create", "sendmsg", "recvmsg",
    "poll", "ppoll", "newfstatat", "fstat", "statx", "lseek", "ioctl", "brk", "mmap", "munmap",
    "mprotect", "mremap", "madvise", "futex", "set_robust_list", "rseq", "set_tid_address",
    "getrandom", "prlimit64", "sched_getaffinity", "getcwd", "chdir", "uname", "getpid", "getppid",
    "getuid", "geteuid", "getgid", "getegid", "wait4", "vfork", "fork", "kill", "pipe2", "dup2",
    "dup3", "readlink", "readlinkat", "faccessat2", "access", "umask", "sysinfo", "nanosleep",
    "clock_nanosleep", "clock_gettime", "getpgrp", "setpgid", "arch_prctl", "sigaltstack",
    "unlinkat", "mkdirat", "fchmodat", "fchownat", "utimensat", "socketpair",
    "epoll_create1", "epoll_ctl", "epoll_wait", "eventfd2", "pidfd_open", "chroot", "ptrace",
)


def test_a_runtime_busybox_and_python_have_what_they_need():
    missing = sorted(set(NEEDED) - allowed(profile()))
    assert not missing, missing


def test_dangerous_calls_are_refused_with_the_default_capabilities():
    p = profile()
    assert not set(DEFAULT_DENIED) & allowed(p)
    for name in DEFAULT_DENIED:
        assert not [r for r in rules_for(p, name) if r["action"] == "SCMP_ACT_ALLOW"], name
    assert set(ALWAYS_DENIED) <= set(DEFAULT_DENIED)


def test_always_denied_even_with_every_capability():
    for machine in MACHINES:
        p = profile(ALL_CAPS, machine)
        named = {n for r in p["syscalls"] for n in r["names"]}
        assert not set(ALWAYS_DENIED) & named, machine
    assert {"io_uring_setup", "io_uring_enter", "io_uring_register", "keyctl", "kexec_load"} <= set(ALWAYS_DENIED)


@pytest.mark.parametrize("cap", sorted(CAPABILITY_SYSCALLS))
def test_a_capability_group_appears_exactly_with_its_capability(cap):
    without = [c for c in DEFAULT_CAPABILITIES if c != cap]
    base = allowed(profile(without))
    group = set(CAPABILITY_SYSCALLS[cap])
    # granted elsewhere: the ordinary list, another capability held, ptrace on 4.8+
    elsewhere = set(ALLOWED) | {"ptrace"} | {
        n for c in without for n in CAPABILITY_SYSCALLS.get(c, ())}
    assert not (group - elsewhere) & base
    assert allowed(profile(without + [cap])) - base == group - base


def test_chroot_is_allowed_by_the_default_capability_set():
    assert "CAP_SYS_CHROOT" in DEFAULT_CAPABILITIES
    assert "chroot" in allowed(profile())
    assert "chroot" not in allowed(profile([c for c in DEFAULT_CAPABILITIES if c != "CAP_SYS_CHROOT"]))


def test_ptrace_needs_a_4_8_kernel_or_the_capability():
    assert "ptrace" not in allowed(profile(kernel=(4, 7)))
    assert "ptrace" in allowed(profile(kernel=(4, 8)))
    assert "ptrace" in allowed(profile(DEFAULT_CAPABILITIES + ["CAP_SYS_PTRACE"], kernel=(4, 7)))
    for name in ("process_vm_readv", "process_vm_writev", "kcmp"):
        assert name not in allowed(profile(kernel=(6, 8)))


def test_time_setting_needs_cap_sys_time_reading_does_not():
    p = allowed(profile())
    assert {"adjtimex", "clock_adjtime", "clock_gettime"} <= p
    assert not {"settimeofday", "clock_settime", "clock_settime64", "stime"} & p
    assert {"settimeofday", "clock_settime"} <= allowed(profile(DEFAULT_CAPABILITIES + ["CAP_SYS_TIME"]))


@pytest.mark.parametrize("machine", MACHINES)
@pytest.mark.parametrize("caps", [DEFAULT_CAPABILITIES, ALL_CAPS], ids=["default", "all"])
def test_no_name_has_two_meanings(machine, caps):
    p = profile(caps, machine)
    plain: dict[str, tuple] = {}
    filtered: set[str] = set()
    for r in p["syscalls"]:
        for n in r["names"]:
            if r.get("args"):
                filtered.add(n)
                assert r["action"] == "SCMP_ACT_ALLOW"
            else:
                assert n not in plain, f"{n} in two rules"
                plain[n] = (r["action"], r.get("errnoRet"))
    assert not filtered & set(plain), sorted(filtered & set(plain))
    assert all(len(r["names"]) == len(set(r["names"])) for r in p["syscalls"])


# --- argument filters -----------------------------------------------------------

def test_personality_allows_the_harmless_values_only():
    p = profile()
    rules = rules_for(p, "personality")
    assert sorted(r["args"][0]["value"] for r in rules) == [0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF]
    for r in rules:
        assert r["names"] == ["personality"] and r["action"] == "SCMP_ACT_ALLOW"
        assert r["args"] == [{"index": 0, "value": r["args"][0]["value"], "op": "SCMP_CMP_EQ"}]
    assert "personality" not in allowed(profile(ALL_CAPS))


@pytest.mark.parametrize("machine,index", [("x86_64", 0), ("aarch64", 0), ("s390x", 1), ("riscv64", 0)])
def test_clone_without_cap_sys_admin_cannot_make_namespaces(machine, index):
    mask = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
    p = profile(machine=machine)
    (clone,) = rules_for(p, "clone")
    assert clone["action"] == "SCMP_ACT_ALLOW"
    assert clone["args"] == [{"index": index, "value": mask, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]
    (clone3,) = rules_for(p, "clone3")
    # ENOSYS, not EPERM: glibc falls back to clone(), whose flags the filter sees
    assert clone3 == {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS}


def test_cap_sys_admin_gets_clone_and_clone3_unfiltered():
    p = profile(DEFAULT_CAPABILITIES + ["CAP_SYS_ADMIN"])
    assert {"clone", "clone3", "mount", "unshare", "setns"} <= allowed(p)
    assert all(not r.get("args") and r["action"] == "SCMP_ACT_ALLOW"
               for name in ("clone", "clone3") for r in rules_for(p, name))


def socket_allowed(p: dict, family: int) -> bool:
    """What the profile's socket rules say about a 64-bit first argument."""
    for r in rules_for(p, "socket"):
        (a,) = r["args"]
        assert a["index"] == 0 and a["op"] == "SCMP_CMP_MASKED_EQ" and a["value"] >> 32 == 0
        if family & a["value"] == a["valueTwo"]:
            return True
    return False


def test_socket_refuses_alg_and_vsock_whatever_the_high_bits():
    p = profile()
    assert "socket" not in allowed(p)
    for low in [*range(0, 300), 0x7FFFFFFF, 0x80000000, 0xFFFFFFD8, 0xFFFFFFFF]:
        expected = low < ds.SOCKET_FAMILY_LIMIT and low not in (38, 40)
        for high in (0, 1, 0xFFFFFFFF):
            # the kernel reads the low 32 bits as the family: so must we
            assert socket_allowed(p, high << 32 | low) == expected, hex(high << 32 | low)
    assert len(rules_for(p, "socket")) == 8


# --- the spec -----------------------------------------------------------------

def test_default_spec_carries_the_profile_and_can_leave_it_out():
    for rootless in (False, True):
        spec = default_spec(rootless=rootless)
        caps = spec["process"]["capabilities"]["bounding"]
        assert spec["linux"]["seccomp"] == default_seccomp(caps)
        assert "seccomp" not in default_spec(rootless=rootless, seccomp=False)["linux"]


@pytest.mark.parametrize("rootless", [False, True])
def test_nsbox_spec_writes_a_profile_that_parses(tmp_path, rootless):
    from nsbox.cli import spec as spec_cli
    from nsbox.oci.spec import parse, read_config

    spec_cli.run(["--bundle", str(tmp_path)] + (["--rootless"] if rootless else []), None)
    raw = read_config(str(tmp_path))
    assert json.loads(raw)["linux"]["seccomp"] == default_seccomp(DEFAULT_CAPABILITIES)
    spec = parse(raw, str(tmp_path))
    assert spec.linux.seccomp == default_seccomp(DEFAULT_CAPABILITIES)


# --- libseccomp accepts every rule ------------------------------------------------

#: run in a child: libseccomp's own state stays out of pytest.  Reads a list
#: of profiles on stdin; for each, builds the filter the way a runtime does
#: (numbers resolved against the native ABI, unknown names skipped, one
#: seccomp_rule_add per name) and exports its pseudo-code (nothing is loaded).
#: Its own binding rather than nsbox.security.seccomp: to build a filter for
#: another machine (a big-endian one) the native ABI must be taken out,
#: which a runtime never does.
COMPILER = r"""
import ctypes, json, sys, tempfile
L = ctypes.CDLL("libseccomp.so.2")
L.seccomp_init.restype = ctypes.c_void_p
L.seccomp_init.argtypes = [ctypes.c_uint32]
L.seccomp_release.argtypes = [ctypes.c_void_p]
L.seccomp_arch_resolve_name.restype = ctypes.c_uint32
L.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
L.seccomp_arch_native.restype = ctypes.c_uint32
L.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
L.seccomp_arch_remove.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
L.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
L.seccomp_export_pfc.argtypes = [ctypes.c_void_p, ctypes.c_int]
class Cmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]
L.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                     ctypes.POINTER(Cmp)]
OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
       "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
def action(name, ret):
    return {"SCMP_ACT_ALLOW": 0x7FFF0000, "SCMP_ACT_ERRNO": 0x00050000 | (1 if ret is None else ret)}[name]
out = []
for p in json.load(sys.stdin):
    default = action(p["defaultAction"], p.get("defaultErrnoRet"))
    f = L.seccomp_init(default)
    res = {"failures": [], "skipped": []}
    tokens = [L.seccomp_arch_resolve_name(a.removeprefix("SCMP_ARCH_").lower().encode())
              for a in p["architectures"]]
    if tokens and L.seccomp_arch_native() not in tokens:
        L.seccomp_arch_remove(f, L.seccomp_arch_native())
    for t in tokens:
        if t != L.seccomp_arch_native():
            rc = L.seccomp_arch_add(f, t)
            if rc:
                res["failures"].append(["arch", t, rc])
    for r in p["syscalls"]:
        act = action(r["action"], r.get("errnoRet"))
        args = r.get("args", [])
        cmps = (Cmp * max(1, len(args)))(*[Cmp(a["index"], OPS[a["op"]], a["value"], a.get("valueTwo", 0))
                                           for a in args])
        for name in r["names"]:
            nr = L.seccomp_syscall_resolve_name(name.encode())
            if nr == -1:
                res["skipped"].append(name)
                continue
            rc = L.seccomp_rule_add_array(f, act, nr, len(args), cmps)
            if rc:
                res["failures"].append([name, rc])
    with tempfile.TemporaryFile() as t:
        res["export"] = L.seccomp_export_pfc(f, t.fileno())
        t.seek(0)
        res["pfc"] = t.read().decode()
    L.seccomp_release(f)
    out.append(res)
json.dump(out, sys.stdout)
"""

#: in a child: the default profile compiled and loaded by the runtime's own
#: code (nsbox.security.seccomp), after no_new_privs as the default spec has
#: it; then each probe is a raw syscall, reported as its return value or -errno
UNDER_THE_FILTER = r"""
import ctypes, json, os, subprocess, sys
from nsbox._sys import seccomp as sc
from nsbox.security.filter import install
from nsbox.security.seccomp import compile_profile
def probe():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    def call(name, *args):
        nr = sc.syscall_number(name)
        ret = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
        if ret == 0 and name == "clone":
            os._exit(0)  # a child the filter should not have let us make
        if ret > 0 and name == "socket":
            os.close(ret)
        return ret if ret >= 0 else -ctypes.get_errno()
    out = {
        "socket inet": call("socket", 2, 1, 0),
        "socket inet, high bits": call("socket", 1 << 32 | 2, 1, 0),
        "socket vsock": call("socket", 40, 1, 0),
        "socket vsock, high bits": call("socket", 1 << 32 | 40, 1, 0),
        "socket alg": call("socket", 38, 5, 0),
        "unshare user": call("unshare", 0x10000000),
        "clone newuser": call("clone", 0x10000000 | 17, 0, 0, 0, 0),
        "clone3": call("clone3", 0, 0),
        "personality query": call("personality", 0xFFFFFFFF),
        "personality read-implies-exec": call("personality", 0x0400000),
        "keyctl": call("keyctl", 0, 0, 0, 0, 0),
        "io_uring_setup": call("io_uring_setup", 1, 0),
        "mount": call("mount", 0, 0, 0, 0, 0),
    }
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    out["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    out["subprocess"] = subprocess.run(["/bin/sh", "-c", "exit 3"]).returncode
    return out
program = compile_profile(json.load(sys.stdin))
ctypes.CDLL(None).prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
install(program)
json.dump(probe(), sys.stdout)
"""


def compile_in_child(profiles: list[dict]) -> list[dict]:
    libseccomp()
    done = subprocess.run([sys.executable, "-I", "-c", COMPILER], input=json.dumps(profiles),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_libseccomp_accepts_every_rule_on_every_machine():
    cases = [(m, caps, kernel) for m in MACHINES for caps in (DEFAULT_CAPABILITIES, ALL_CAPS)
             for kernel in ((4, 4), NEW_KERNEL)]
    results = compile_in_child([profile(caps, m, kernel) for m, caps, kernel in cases])
    for (machine, caps, kernel), res in zip(cases, results):
        assert res["failures"] == [] and res["export"] == 0, (machine, len(caps), kernel, res["failures"])
        assert set(res["skipped"]) <= NEWER_NAMES


def test_the_compiled_default_filter_says_what_we_mean():
    (res,) = compile_in_child([default_seccomp(DEFAULT_CAPABILITIES, machine="x86_64", kernel=NEW_KERNEL)])
    pfc = res["pfc"]
    assert res["failures"] == [] and "filter for arch x86_64" in pfc and "filter for arch x86 " in pfc
    for line in ('filter for syscall "personality"', 'filter for syscall "clone"', "ERRNO(38)",
                 'filter for syscall "ptrace"'):
        assert line in pfc, line
    for name in ("mount", "kexec_load", "io_uring_setup", "bpf", "keyctl"):
        assert f'"{name}"' not in pfc, name


def test_a_process_under_the_filter_works_and_is_refused_what_it_should_be():
    """Loaded for real, in a child that does nothing else afterwards."""
    done = subprocess.run([sys.executable, "-c", UNDER_THE_FILTER], capture_output=True, text=True, timeout=60,
                          input=json.dumps(default_seccomp(DEFAULT_CAPABILITIES)))
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    eperm, enosys = -errno.EPERM, -errno.ENOSYS
    assert got["socket inet"] >= 0 and got["socket inet, high bits"] >= 0, got
    assert got["socket vsock"] == got["socket vsock, high bits"] == got["socket alg"] == eperm, got
    assert got["unshare user"] == got["clone newuser"] == eperm, got
    assert got["clone3"] == enosys, got
    assert got["personality query"] >= 0 and got["personality read-implies-exec"] == eperm, got
    assert got["keyctl"] == got["io_uring_setup"] == got["mount"] == eperm, got
    # fork, and posix_spawn/vfork through clone3's ENOSYS fallback, still work
    assert got["fork"] == 7 and got["subprocess"] == 3, got
