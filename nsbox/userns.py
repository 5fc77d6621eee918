"""User-namespace id maps: parsing, validating, writing, and explaining failures.

The rules the kernel applies to ``/proc/PID/uid_map`` (user_namespaces(7)):
the map is written once, in one write, by a process in the namespace or its
parent.  A process may map only its own euid (and, after ``setgroups`` is
set to ``deny``, its own egid) unless the writer holds CAP_SETUID/CAP_SETGID
in the *parent* namespace -- which the process that just unshared never does.
So ranges are written by a helper that stayed outside: directly when it is
privileged, else through the setuid ``newuidmap``/``newgidmap`` of the
uidmap package, which check /etc/subuid and /etc/subgid.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing's costs milliseconds at import
if TYPE_CHECKING:
    from collections.abc import Sequence

from nsbox._sys import process as _proc
from nsbox.errors import NamespaceError

#: The kernel's limit on lines in one map (since Linux 4.15).
MAX_MAP_LINES = 340


class IdMap:
    """``count`` ids starting at ``inner`` inside map to ids starting at ``outer`` outside."""

    __slots__ = ("inner", "outer", "count")

    def __init__(self, inner: int, outer: int, count: int = 1) -> None:
        self.inner = inner
        self.outer = outer
        self.count = count

    def line(self) -> str:
        return f"{self.inner} {self.outer} {self.count}\n"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and (self.inner, self.outer, self.count) == (
            other.inner, other.outer, other.count)

    def __hash__(self) -> int:
        return hash((self.inner, self.outer, self.count))

    def __repr__(self) -> str:
        return f"IdMap(inner={self.inner}, outer={self.outer}, count={self.count})"


def parse_id_map(text: str) -> IdMap:
    """Parse ``INNER:OUTER:COUNT`` (util-linux 2.39+), or the older
    comma form ``OUTER,INNER,COUNT`` of util-linux 2.38."""
    if ":" in text:
        parts, order = text.split(":"), ("inner", "outer")
    else:
        parts, order = text.split(","), ("outer", "inner")
    if len(parts) != 3:
        raise ValueError(f"invalid id map {text!r}: expected INNER:OUTER:COUNT")
    try:
        a, b, count = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"invalid id map {text!r}: expected three numbers INNER:OUTER:COUNT") from None
    values = dict(zip(order, (a, b)))
    m = IdMap(values["inner"], values["outer"], count)
    validate_id_maps([m], "id map")
    return m


def validate_id_maps(maps: Sequence[IdMap], what: str = "uid map") -> None:
    """Refuse what the kernel would refuse, with a message that says why."""
    if len(maps) > MAX_MAP_LINES:
        raise ValueError(f"{what}: {len(maps)} ranges, the kernel takes at most {MAX_MAP_LINES}")
    for m in maps:
        if m.count < 1:
            raise ValueError(f"{what}: range {m.inner}:{m.outer}:{m.count} has a count below 1")
        if min(m.inner, m.outer) < 0 or max(m.inner, m.outer) + m.count > 1 << 32:
            raise ValueError(f"{what}: range {m.inner}:{m.outer}:{m.count} is outside 0..4294967295")
    for key in ("inner", "outer"):
        spans = sorted((getattr(m, key), getattr(m, key) + m.count) for m in maps)
        for (_, end), (start, _) in zip(spans, spans[1:]):
            if start < end:
                raise ValueError(f"{what}: {key} ranges overlap")


def format_id_maps(maps: Sequence[IdMap]) -> str:
    return "".join(m.line() for m in maps)


def is_self_map(maps: Sequence[IdMap], own_id: int) -> bool:
    """True when *maps* maps only the writer's own id: the one map an
    unprivileged process may write for itself."""
    return len(maps) == 1 and maps[0].count == 1 and maps[0].outer == own_id


def write_id_maps(
    pid: int | str,
    uid_maps: Sequence[IdMap],
    gid_maps: Sequence[IdMap],
    setgroups: str | None = None,
    proc: str = "/proc",
) -> None:
    """Write the maps of process *pid* directly.  ``setgroups`` (``allow`` or
    ``deny``) is written first, as the kernel requires it before gid_map."""
    base = f"{proc}/{pid}"
    if setgroups is not None:
        _proc.write_file(f"{base}/setgroups", f"{setgroups}\n")
    if gid_maps:
        _proc.write_file(f"{base}/gid_map", format_id_maps(gid_maps))
    if uid_maps:
        _proc.write_file(f"{base}/uid_map", format_id_maps(uid_maps))


def write_id_maps_setuid_helpers(pid: int, uid_maps: Sequence[IdMap], gid_maps: Sequence[IdMap]) -> None:
    """Write the maps through newuidmap/newgidmap (for an unprivileged caller)."""
    import subprocess  # only on this rare path

    for tool, maps in (("newgidmap", gid_maps), ("newuidmap", uid_maps)):
        if not maps:
            continue
        argv = [tool, str(pid)]
        for m in maps:
            argv += [str(m.inner), str(m.outer), str(m.count)]
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        except FileNotFoundError:
            raise NamespaceError(
                f"{tool}: not found",
                "mapping id ranges without root needs the uidmap package (apt-get install uidmap)",
            ) from None
        if done.returncode != 0:
            why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
            raise NamespaceError(f"{tool} {pid}: {why}",
                                 "check that /etc/subuid and /etc/subgid grant these ranges to your user")


def running_in_user_namespace(proc: str = "/proc/self") -> bool:
    """Whether we run in a user namespace other than the initial one (whose
    map is the whole id range onto itself), as under rootless podman."""
    try:
        with open(f"{proc}/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


def write_maps_from_parent(pid: int, uid_maps: Sequence[IdMap], gid_maps: Sequence[IdMap],
                           setgroups: str | None = None) -> None:
    """Write the maps of *pid*, which just unshared its user namespace, from
    the parent namespace.

    Root (CAP_SETUID and CAP_SETGID here) writes any map itself.  An
    unprivileged caller writes a map of its own id itself -- for the gid map
    only once ``setgroups`` is ``deny``, so that is written first -- and
    anything else through the setuid newuidmap/newgidmap.  *pid* must be
    dumpable meanwhile: /proc/PID of a non-dumpable process belongs to root.
    """
    if os.geteuid() == 0:
        write_id_maps(pid, uid_maps, gid_maps, setgroups)
        return
    gid_self = is_self_map(gid_maps, os.getegid())
    if setgroups is None and gid_self:
        setgroups = "deny"  # the kernel's condition for an unprivileged gid_map
    if setgroups is not None:
        _proc.write_file(f"/proc/{pid}/setgroups", f"{setgroups}\n")
    direct_gid = gid_maps if gid_self else []
    direct_uid = uid_maps if is_self_map(uid_maps, os.geteuid()) else []
    write_id_maps(pid, direct_uid, direct_gid)
    write_id_maps_setuid_helpers(pid, [] if direct_uid else uid_maps, [] if direct_gid else gid_maps)


def subordinate_ranges(user: str, uid: int, path: str = "/etc/subuid") -> list[tuple[int, int]]:
    """The (start, count) ranges /etc/subuid (or /etc/subgid) grants *user* (or *uid*)."""
    ranges = []
    try:
        with open(path) as f:
            for line in f:
                fields = line.strip().split(":")
                if len(fields) != 3 or fields[0] not in (user, str(uid)):
                    continue
                try:
                    ranges.append((int(fields[1]), int(fields[2])))
                except ValueError:
                    continue
    except FileNotFoundError:
        pass
    return ranges


def explain_userns_failure(err: int, proc: str = "/proc") -> str:
    """What to do when unshare(CLONE_NEWUSER) fails with *err*, from the sysctls that cause it."""

    def read(name: str) -> str | None:
        try:
            with open(f"{proc}/sys/{name}") as f:
                return f.read().strip()
        except OSError:
            return None

    if err == 28:  # ENOSPC: a count limit, most often the sysctl set to 0
        limit = read("user/max_user_namespaces")
        if limit == "0":
            return ("user namespaces are disabled (user.max_user_namespaces = 0); "
                    "enable them with: sysctl -w user.max_user_namespaces=15000")
        return f"the limit on user namespaces is reached (user.max_user_namespaces = {limit})"
    if err == 1:  # EPERM
        if read("kernel/unprivileged_userns_clone") == "0":
            return ("unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0); "
                    "run as root or enable them with: sysctl -w kernel.unprivileged_userns_clone=1")
        if read("kernel/apparmor_restrict_unprivileged_userns") == "1":
            return ("AppArmor restricts unprivileged user namespaces "
                    "(kernel.apparmor_restrict_unprivileged_userns = 1); run as root, give the program "
                    "an AppArmor profile that allows userns, or set the sysctl to 0")
        return ("the kernel refused a new user namespace; a chroot, a seccomp filter "
                "or a security module in this process may forbid it")
    if err == 22:  # EINVAL
        return "user namespaces need a single-threaded process"
    if err == 12:  # ENOMEM: nesting deeper than 32 levels
        return "user namespaces nest at most 32 levels deep"
    return os.strerror(err)
