"""Process-level syscalls: identity of the host, prctl, capabilities, and
traced versions of the plain calls (fork, exec, chroot, chdir, writes to
/proc files) so that ``--trace`` shows the whole story of a launch.
(pidfds: nsbox._sys.pidfd.)"""

from __future__ import annotations

import os

from nsbox._sys import libc as _libc
from nsbox._sys import trace
from nsbox._sys.consts import LINUX_CAPABILITY_VERSION_3, PRCTL_OPTION_NAMES
from nsbox._sys.libc import check, os_call

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ctypes

_lib: ctypes.CDLL | None = None


def _c() -> ctypes.CDLL:
    """libc with this module's prototypes, and its structures, made on first
    use: the plain calls below (fork, writes, pidfds) need no ctypes."""
    global _lib, _CapHeader, _CapData, _Rlimit
    if _lib is None:
        import ctypes

        lib = _libc.libc
        lib.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        lib.setdomainname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        lib.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        lib.personality.argtypes = [ctypes.c_ulong]

        class _CapHeader(ctypes.Structure):  # type: ignore[no-redef]
            _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

        class _CapData(ctypes.Structure):  # type: ignore[no-redef]
            _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                        ("inheritable", ctypes.c_uint32)]

        class _Rlimit(ctypes.Structure):  # type: ignore[no-redef]
            _fields_ = [("cur", ctypes.c_uint64), ("max", ctypes.c_uint64)]

        _lib = lib
    return _lib


def sethostname(name: str) -> None:
    raw = name.encode()
    ret = _c().sethostname(raw, len(raw))
    if ret == -1 or trace.enabled:
        check(ret, "sethostname", None, f"sethostname({trace.quote(name)})")


def setdomainname(name: str) -> None:
    raw = name.encode()
    ret = _c().setdomainname(raw, len(raw))
    if ret == -1 or trace.enabled:
        check(ret, "setdomainname", None, f"setdomainname({trace.quote(name)})")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    ret: int = _c().prctl(option, arg2, arg3, arg4, arg5)
    if ret == -1 or trace.enabled:
        name = PRCTL_OPTION_NAMES.get(option, str(option))
        check(ret, f"prctl({name})", None, f"prctl({name}, {arg2}, {arg3}, {arg4}, {arg5})")
    return ret


def capget(pid: int = 0) -> tuple[int, int, int]:
    """The (effective, permitted, inheritable) capability masks of *pid* (0: self)."""
    import ctypes

    libc = _c()
    header = _CapHeader(LINUX_CAPABILITY_VERSION_3, pid)
    data = (_CapData * 2)()
    ret = libc.capget(ctypes.byref(header), data)
    if ret == -1 or trace.enabled:
        check(ret, "capget", None, f"capget({pid})")
    return (
        data[0].effective | data[1].effective << 32,
        data[0].permitted | data[1].permitted << 32,
        data[0].inheritable | data[1].inheritable << 32,
    )


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set this thread's capability masks."""
    import ctypes

    libc = _c()
    header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i, shift in ((0, 0), (1, 32)):
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    ret = libc.capset(ctypes.byref(header), data)
    if ret == -1 or trace.enabled:
        check(ret, "capset", None, f"capset(eff={effective:#x}, prm={permitted:#x}, inh={inheritable:#x})")


def kill_if_alive(pid: int, sig: int = 9) -> None:
    """kill(2), and nothing when the process is gone already."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def fork() -> int:
    pid = os.fork()
    if trace.enabled and pid:
        trace.result("fork()", pid)
    return pid


def execvpe(file: str, args: list[str], env: dict[str, str] | None = None) -> None:
    """Exec *file* (searched on PATH like a shell would); only returns by raising."""
    if trace.enabled:
        trace.emit(f"execve({trace.quote(file)}, [{', '.join(trace.quote(a) for a in args)}])")
    try:
        if env is None:
            os.execvp(file, args)
        else:
            os.execvpe(file, args, env)
    except OSError as e:
        if trace.enabled:
            trace.failure(f"execve({trace.quote(file)})", e.errno)
        raise OSError(e.errno, f"execve: {os.strerror(e.errno)}", file) from None


def chroot(path: str) -> None:
    os_call("chroot", f"chroot({trace.quote(path)})", path, os.chroot, path)


def chdir(path: str) -> None:
    os_call("chdir", f"chdir({trace.quote(path)})", path, os.chdir, path)


def fchdir(fd: int, path: str | None = None) -> None:
    os_call("fchdir", f"fchdir({path or fd})", None, os.fchdir, fd)


def write_file(path: str, data: str) -> None:
    """Write *data* to an existing kernel file (uid_map, setgroups, timens_offsets)
    in one write(2), as those files require."""
    raw = data.encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            n = os.write(fd, raw)
        finally:
            os.close(fd)
    except OSError as e:
        if trace.enabled:
            trace.failure(f"write({trace.quote(path)}, {trace.quote(data)})", e.errno)
        raise OSError(e.errno, f"write: {os.strerror(e.errno)}", path) from None
    if trace.enabled:
        trace.result(f"write({trace.quote(path)}, {trace.quote(data)})", n)


def open_ns(path: str) -> int:
    """Open a namespace file (``/proc/PID/ns/TYPE`` or a bind mount of one)."""
    fd: int = os_call("open", f"open({trace.quote(path)}, O_RDONLY|O_CLOEXEC)", path,
                      os.open, path, os.O_RDONLY | os.O_CLOEXEC)
    return fd


def personality(persona: int) -> int:
    """personality(2): the execution domain (PER_LINUX 0, PER_LINUX32 8)."""
    ret: int = _c().personality(persona)
    if ret == -1 or trace.enabled:
        check(ret, "personality", None, f"personality({persona:#x})")
    return ret


def set_name(name: str) -> None:
    """PR_SET_NAME: the comm that ps and /proc/PID/comm show (15 bytes kept)."""
    import ctypes

    libc = _c()
    buf = ctypes.create_string_buffer(name.encode()[:15])
    ret = libc.prctl(15, ctypes.cast(buf, ctypes.c_void_p).value or 0, 0, 0, 0)
    if ret == -1 or trace.enabled:
        check(ret, "prctl(PR_SET_NAME)", None, f"prctl(PR_SET_NAME, {trace.quote(name)})")


KEYCTL_JOIN_SESSION_KEYRING = 1


def join_session_keyring(name: str | None) -> int:
    """keyctl(KEYCTL_JOIN_SESSION_KEYRING): a new session keyring named *name*
    (anonymous for None) becomes ours; returns its serial."""
    from nsbox._sys.libc import syscall_number

    raw = None if name is None else name.encode()
    ret: int = _c().syscall(syscall_number("keyctl"), KEYCTL_JOIN_SESSION_KEYRING, raw, 0, 0, 0)
    if ret == -1 or trace.enabled:
        check(ret, "keyctl(KEYCTL_JOIN_SESSION_KEYRING)", name,
              f"keyctl(KEYCTL_JOIN_SESSION_KEYRING, {trace.quote(name)})")
    return ret


# --- the exec trampoline's calls (nsbox.process.trampoline) -----------------

MFD_CLOEXEC = 0x1
MFD_ALLOW_SEALING = 0x2
MFD_EXEC = 0x10  # Linux 6.3; older kernels reject it with EINVAL (all their memfds are executable)


def memfd_create(name: str, flags: int) -> int:
    """memfd_create(2): an anonymous file in memory; returns its fd."""
    fd: int = os_call("memfd_create", f"memfd_create({trace.quote(name)}, {flags:#x})", name,
                      os.memfd_create, name, flags)
    return fd


def add_seals(fd: int, seals: int) -> None:
    """fcntl(F_ADD_SEALS): forbid, for good, the changes named by *seals* on a memfd."""
    import fcntl  # here: only the exec path seals anything

    os_call("fcntl(F_ADD_SEALS)", f"fcntl({fd}, F_ADD_SEALS, {seals:#x})", None,
            fcntl.fcntl, fd, fcntl.F_ADD_SEALS, seals)


def execve(path: str | int, args: list[str], env: dict[str, str]) -> None:
    """os.execve, traced; *path* may be an fd (fexecve: glibc makes it
    execveat(fd, "", AT_EMPTY_PATH)).  Only returns by raising."""
    call = "fexecve" if isinstance(path, int) else "execve"
    if trace.enabled:
        trace.emit(f"{call}({trace.quote(path)}, [{', '.join(trace.quote(a) for a in args)}])")
    try:
        os.execve(path, args, env)
    except OSError as e:
        if trace.enabled:
            trace.failure(f"{call}({trace.quote(path)})", e.errno or 0)
        raise OSError(e.errno, f"{call}: {os.strerror(e.errno or 0)}",
                      None if isinstance(path, int) else path) from None


# --- resource limits (the resource module costs ~1 ms to import) -------------

#: RLIMIT_* numbers (asm-generic/resource.h: x86 and arm alike)
RLIMITS = {name: i for i, name in enumerate((
    "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
    "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME"))}


def prlimit(resource: int, new: tuple[int, int] | None = None) -> tuple[int, int]:
    """prlimit(2) on this process: set (soft, hard) when *new* is given; returns the old pair."""
    import ctypes

    libc = _c()
    old = _Rlimit()
    limit = _Rlimit(*new) if new is not None else None
    ret = libc.prlimit(0, resource, ctypes.byref(limit) if limit is not None else None, ctypes.byref(old))
    if ret == -1 or trace.enabled:
        check(ret, "prlimit", None, f"prlimit(0, {resource}, {new})")
    return old.cur, old.max
