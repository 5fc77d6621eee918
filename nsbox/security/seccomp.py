"""linux.seccomp: from the OCI profile to a loaded filter.

Three steps, in three places:

1. ``compile_profile`` (the runtime, while init sets up the rootfs; init is
   sent the program with "placed"): check the profile, resolve the names,
   let libseccomp build the program and export its BPF.  A bad profile
   fails the create here, and the runtime removes what it made.
2. ``install`` (nsbox.security.filter; init, or the process ``exec``
   starts, which import only that module): one seccomp(2) call,
   as late as the profile allows — right before "ready" when
   ``noNewPrivileges`` is set, else just before the capabilities are dropped
   (loading a filter without no_new_privs needs CAP_SYS_ADMIN), the order
   runc and crun use.  The runtime's own setup is never filtered.
3. With SCMP_ACT_NOTIFY rules the kernel gives init a listener fd; the
   runtime takes a copy with pidfd_getfd and ``send_to_listener`` hands it,
   with the container's state, to the process at ``listenerPath``.

Semantics follow runc's where the spec is silent: names this host's
libseccomp does not know are skipped; a rule whose action equals the
default is dropped (libseccomp refuses it); conditions on distinct
arguments are ANDed in one rule, several conditions on the same argument
become one rule each (so they OR); errnoRet defaults to EPERM.
"""

from __future__ import annotations

import os

from nsbox._sys import seccomp_abi as abi
from nsbox.oci.spec import SpecError, _Obj
from nsbox.security.filter import Program

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsbox.process.channel import Channel

_ACTIONS = {
    "SCMP_ACT_KILL": abi.ACT_KILL_THREAD, "SCMP_ACT_KILL_THREAD": abi.ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": abi.ACT_KILL_PROCESS, "SCMP_ACT_TRAP": abi.ACT_TRAP,
    "SCMP_ACT_ERRNO": None, "SCMP_ACT_TRACE": None,  # these two carry errnoRet
    "SCMP_ACT_ALLOW": abi.ACT_ALLOW, "SCMP_ACT_LOG": abi.ACT_LOG, "SCMP_ACT_NOTIFY": abi.ACT_NOTIFY,
}
_OPERATORS = {
    "SCMP_CMP_NE": abi.CMP_NE, "SCMP_CMP_LT": abi.CMP_LT, "SCMP_CMP_LE": abi.CMP_LE,
    "SCMP_CMP_EQ": abi.CMP_EQ, "SCMP_CMP_GE": abi.CMP_GE, "SCMP_CMP_GT": abi.CMP_GT,
    "SCMP_CMP_MASKED_EQ": abi.CMP_MASKED_EQ,
}
_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": abi.FILTER_FLAG_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": abi.FILTER_FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": abi.FILTER_FLAG_SPEC_ALLOW,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": abi.FILTER_FLAG_WAIT_KILLABLE_RECV,
}
#: the kernel release each flag needs
FLAG_KERNELS = {"SECCOMP_FILTER_FLAG_TSYNC": (3, 17), "SECCOMP_FILTER_FLAG_LOG": (4, 14),
                "SECCOMP_FILTER_FLAG_SPEC_ALLOW": (4, 17), "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": (5, 19)}
#: OCI architecture -> libseccomp's name for it
ARCHITECTURES = {f"SCMP_ARCH_{name.upper()}": name for name in (
    "x86", "x86_64", "x32", "arm", "aarch64", "mips", "mips64", "mips64n32", "mipsel", "mipsel64",
    "mipsel64n32", "ppc", "ppc64", "ppc64le", "s390", "s390x", "parisc", "parisc64", "riscv64")}
ACTION_NAMES = tuple(_ACTIONS)
OPERATOR_NAMES = tuple(_OPERATORS)
FLAG_NAMES = tuple(_FLAGS)
_EPERM = 1


class _Rule:
    __slots__ = ("path", "names", "action", "conditions")

    def __init__(self, path: str, names: list[str], action: int, conditions: list[tuple[int, int, int, int]]):
        self.path = path
        self.names = names
        self.action = action
        self.conditions = conditions


def _action(o: _Obj, key: str, errno_key: str) -> tuple[str, int]:
    name = o.str(key, required=True)
    if name not in _ACTIONS:
        raise SpecError(o.at(key), f"unknown action {name!r} (known: {', '.join(_ACTIONS)})")
    errno = o.int(errno_key, None, minimum=0, maximum=0xFFFF)
    value = _ACTIONS[name]
    if value is None:
        ret = _EPERM if errno is None else errno
        value = abi.act_errno(ret) if name == "SCMP_ACT_ERRNO" else abi.act_trace(ret)
    elif errno is not None:
        raise SpecError(o.at(errno_key), f"{name} returns no errno; only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take one")
    return name, value  # type: ignore[return-value]


def _conditions(rule: _Obj) -> list[list[tuple[int, int, int, int]]]:
    """The rule's args as libseccomp conditions, grouped into the rules to add."""
    conds, indexes = [], []
    for a in rule.objs("args"):
        index = a.int("index", required=True, minimum=0, maximum=5)
        op = a.str("op", required=True)
        if op not in _OPERATORS:
            raise SpecError(a.at("op"), f"unknown operator {op!r} (known: {', '.join(_OPERATORS)})")
        value = a.int("value", required=True, minimum=0, maximum=2**64 - 1)
        two = a.int("valueTwo", 0, minimum=0, maximum=2**64 - 1)
        conds.append((index, _OPERATORS[op], value, two))
        indexes.append(index)
    if not conds:
        return [[]]
    if len(set(indexes)) < len(indexes):
        return [[c] for c in conds]
    return [conds]


def parse_profile(data: object, path: str = "linux.seccomp") -> tuple[int, list[str], int, list[_Rule], _Obj]:
    """Check a profile: (default action, libseccomp arch names, flags, rules, the object)."""
    o = _Obj(data, path)
    default_name, default = _action(o, "defaultAction", "defaultErrnoRet")
    if default_name == "SCMP_ACT_NOTIFY":
        raise SpecError(o.at("defaultAction"), "SCMP_ACT_NOTIFY cannot be the default action")
    arches = []
    for i, arch in enumerate(o.strs("architectures")):
        if arch not in ARCHITECTURES:
            raise SpecError(f"{o.at('architectures')}[{i}]", f"unknown architecture {arch!r}")
        arches.append(ARCHITECTURES[arch])
    flags = 0
    for i, flag in enumerate(o.strs("flags")):
        if flag not in _FLAGS:
            raise SpecError(f"{o.at('flags')}[{i}]", f"unknown flag {flag!r} (known: {', '.join(_FLAGS)})")
        flags |= _FLAGS[flag]
    rules = []
    notify = False
    for r in o.objs("syscalls"):
        names = r.strs("names")
        if not names:
            raise SpecError(r.at("names"), "must name at least one syscall")
        name, action = _action(r, "action", "errnoRet")
        if name == "SCMP_ACT_NOTIFY":
            notify = True
            if "write" in names:
                # init reports the listener fd to the runtime with write(2):
                # notifying on it would wait on a listener that has no fd yet
                raise SpecError(r.at("names"), "SCMP_ACT_NOTIFY cannot be used for the write syscall")
        for conds in _conditions(r):
            rules.append(_Rule(r.path, names, action, conds))
    if notify and not o.str("listenerPath"):
        raise SpecError(o.at("listenerPath"), "is required when a rule uses SCMP_ACT_NOTIFY")
    return default, arches, flags, rules, o


#: the file in a cache directory that names the libseccomp its programs were built with
LIBRARY_NOTE = "libseccomp"


def compile_profile(data: object, path: str = "linux.seccomp", cache_dir: str | None = None,
                    lib=None) -> Program:  # type: ignore[no-untyped-def]
    """Build the filter for profile *data* and export it (see the module's
    docstring).  libseccomp takes ~20 ms over a docker-sized profile, so the
    program is kept in *cache_dir* under a hash of the profile, the machine
    and the identity of the library file that built it (_library_identity:
    a hit loads no library at all).  *lib* is nsbox._sys.seccomp; tests
    pass a recording one."""
    default, arches, flags, rules, o = parse_profile(data, path)
    notify = any(r.action == abi.ACT_NOTIFY for r in rules)
    if not notify:
        # it only changes how a listener's targets wait, and the kernel
        # refuses it (EINVAL) without one
        flags &= ~abi.FILTER_FLAG_WAIT_KILLABLE_RECV
    else:
        flags |= abi.FILTER_FLAG_NEW_LISTENER
        if flags & abi.FILTER_FLAG_TSYNC:
            flags |= abi.FILTER_FLAG_TSYNC_ESRCH  # TSYNC and a listener are exclusive without it
    listener = (o.str("listenerPath"), o.str("listenerMetadata", "") or "")
    identity = None
    if cache_dir is not None:
        from nsbox import jsonio

        profile = f"{os.uname().machine} {jsonio.dumps(data)}"
        identity = _library_identity(cache_dir)
        if identity is not None:
            try:
                with open(_entry(cache_dir, identity, profile), "rb") as f:
                    bpf = f.read()
                if bpf and len(bpf) % 8 == 0:
                    return Program(bpf, flags, notify, *listener)
            except FileNotFoundError:
                pass
    if lib is None:
        from nsbox._sys import seccomp as lib
    bpf = _build(lib, default, arches, rules, o)
    if cache_dir is not None:
        library = lib.library_path()
        if library is not None:
            if identity is None or not identity.startswith(f"{library} "):
                _store(os.path.join(cache_dir, LIBRARY_NOTE), library.encode())
            identity = _library_identity(cache_dir)
            if identity is not None:
                _store(_entry(cache_dir, identity, profile), bpf)
                _prune(cache_dir)
    return Program(bpf, flags, notify, *listener)


#: programs a cache keeps; a build beyond that drops the oldest builds
CACHE_ENTRIES = 64


def _prune(cache_dir: str) -> None:
    """Bound the cache: every profile and libseccomp version adds an entry
    (clients generate a handful of profiles; an upgrade orphans them all)."""
    try:
        entries = [e for e in os.scandir(cache_dir) if e.name.endswith(".bpf")]
        entries.sort(key=lambda e: e.stat().st_mtime_ns)
        for e in entries[:max(0, len(entries) - CACHE_ENTRIES)]:
            os.unlink(e.path)
    except OSError:
        pass  # never fatal: the cache only saves time


def _library_identity(cache_dir: str) -> str | None:
    """Which libseccomp the cached programs are valid for, found without
    loading it: the file the cache's note names (the one the last build was
    made with), as it is now.  An upgrade replaces that file, so its inode
    and mtime change and every entry misses."""
    try:
        with open(os.path.join(cache_dir, LIBRARY_NOTE)) as f:
            library = f.read()
        st = os.stat(library)
    except OSError:
        return None
    return f"{library} {st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns}"


#: how _build's programs are laid out (nsbox._sys.seccomp.Filter); a change
#: here must not find the programs built the old way
LAYOUT = "binary-tree"


def _entry(cache_dir: str, identity: str, profile: str) -> str:
    return os.path.join(cache_dir, _digest(f"{identity} {LAYOUT} {profile}".encode()) + ".bpf")


def _build(lib, default: int, arches: list[str], rules: list[_Rule], o: _Obj) -> bytes:  # type: ignore[no-untyped-def]
    try:
        filt = lib.Filter(default)
    except OSError as e:
        raise SpecError(o.at("defaultAction"), f"libseccomp refused it: {e.strerror}") from None
    with filt:
        for name in arches:
            token = lib.arch_token(name)
            if not token:
                raise SpecError(o.at("architectures"), f"{name} is unknown to this host's libseccomp")
            filt.add_arch(token)
        for rule in rules:
            if rule.action == default:
                continue  # libseccomp refuses a rule that changes nothing
            for name in rule.names:
                nr = lib.syscall_number(name)
                if nr is None:
                    continue  # unknown to this host's libseccomp: skipped, as runc does
                try:
                    filt.add_rule(rule.action, nr, rule.conditions)
                except OSError as e:
                    raise SpecError(f"{rule.path}.names", f"{name}: libseccomp refused the rule: "
                                    f"{e.strerror}") from None
        return filt.export_bpf()


def _digest(data: bytes) -> str:
    import _sha256  # hashlib would load OpenSSL: 5 ms

    return _sha256.sha256(data).hexdigest()


def _store(path: str, data: bytes) -> None:
    """Atomically, and never fatally: the cache only saves time."""
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        pass


def send_to_listener(program: Program, seccomp_fd: int, pid: int, state: bytes, oci_version: str) -> None:
    """Hand the listener fd and the container's state to ``listenerPath``
    (the runtime spec's ContainerProcessState, with the fd in SCM_RIGHTS)."""
    import socket

    from nsbox import jsonio
    from nsbox.errors import NsboxError

    message = jsonio.dumps({
        "ociVersion": oci_version, "fds": ["seccompFd"], "pid": pid,
        "metadata": program.listener_metadata, "state": jsonio.loads(state),
    }).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(program.listener_path or "")
            socket.send_fds(sock, [message], [seccomp_fd])
    except OSError as e:
        raise NsboxError(f"linux.seccomp.listenerPath: {program.listener_path}: {e.strerror}") from None


def serve_listener(chan: Channel, program: Program | None, pid: int, listener_fd: int, state: bytes) -> None:
    """(S) init loaded a filter with SCMP_ACT_NOTIFY rules and says which fd
    is its listener: take a copy, hand it to listenerPath, let init go on."""
    from nsbox.oci.state import OCI_VERSION

    assert program is not None
    fd = take_listener_fd(pid, listener_fd)
    try:
        send_to_listener(program, fd, pid, state, OCI_VERSION)
    finally:
        os.close(fd)
    chan.send("seccomp-done")


def take_listener_fd(pid: int, fd: int) -> int:
    """A copy of *fd* of process *pid* in this process."""
    from nsbox._sys.pidfd import pidfd_open

    pidfd = pidfd_open(pid)
    try:
        from nsbox._sys.seccomp import pidfd_getfd

        return pidfd_getfd(pidfd, fd)
    finally:
        os.close(pidfd)


def supported_flags(kernel: tuple[int, int] | None = None) -> list[str]:
    if kernel is None:
        release = os.uname().release.split(".")
        kernel = (int(release[0]), int(release[1].split("-")[0]))
    return [name for name, needs in FLAG_KERNELS.items() if kernel >= needs]
