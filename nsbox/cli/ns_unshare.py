"""``nsbox ns unshare [options] [--] [CMD [ARGS...]]``"""

from __future__ import annotations

import os

from nsbox._sys.consts import NAMESPACE_TYPES
from nsbox.cli.options import NONE, OPTIONAL, REQUIRED, Opt, Parser
from nsbox.errors import UsageError
from nsbox.toolkit.unshare import UnshareSpec, run as run_unshare
from nsbox.userns import IdMap, parse_id_map, subordinate_ranges, validate_id_maps

_NS_OPTS = [
    ("-m|--mount", "mnt", "mount"),
    ("-u|--uts", "uts", "UTS (hostname, domain name)"),
    ("-i|--ipc", "ipc", "System V IPC and POSIX message queue"),
    ("-n|--net", "net", "network"),
    ("-p|--pid", "pid", "PID"),
    ("-U|--user", "user", "user"),
    ("-C|--cgroup", "cgroup", "cgroup"),
    ("-T|--time", "time", "time"),
]

PARSER = Parser(
    "nsbox ns unshare",
    "[options] [--] [CMD [ARGS...]]",
    [Opt(names, f"new {what} namespace (=FILE: keep it, bind-mounted on FILE)", OPTIONAL,
         dest=f"ns_{name}", const=True, metavar="FILE") for names, name, what in _NS_OPTS]
    + [
        Opt("-a|--all", "new namespaces of every type the kernel has", NONE),
        Opt("-f|--fork", "fork and run CMD as a child (PID 1 of a new PID namespace)", NONE),
        Opt("--kill-child", "kill CMD with SIGNAL when nsbox dies (implies --fork)", OPTIONAL,
            const="KILL", metavar="SIGNAL"),
        Opt("--mount-proc", "mount a new /proc (or DIR) for the PID namespace (implies --mount)",
            OPTIONAL, const="/proc", metavar="DIR"),
        Opt("--propagation", "propagation of / in the new mount namespace (default private)", REQUIRED,
            metavar="private|slave|shared|unchanged"),
        Opt("-r|--map-root-user", "map the current user and group to root (implies --user)", NONE),
        Opt("-c|--map-current-user", "map the current user and group to themselves (implies --user)", NONE),
        Opt("--map-user", "map the current user to UID (implies --user)", REQUIRED, metavar="UID|NAME"),
        Opt("--map-group", "map the current group to GID (implies --user)", REQUIRED, metavar="GID|NAME"),
        Opt("--map-users", "map COUNT uids from OUTER to INNER; repeatable; auto: /etc/subuid",
            REQUIRED, multi=True, metavar="INNER:OUTER:COUNT|auto"),
        Opt("--map-groups", "map COUNT gids from OUTER to INNER; repeatable; auto: /etc/subgid",
            REQUIRED, multi=True, metavar="INNER:OUTER:COUNT|auto"),
        Opt("--map-auto", "map the first /etc/subuid and /etc/subgid ranges (implies --user)", NONE),
        Opt("--setgroups", "allow or deny setgroups(2) in the user namespace", REQUIRED,
            metavar="allow|deny"),
        Opt("--keep-caps", "keep the user namespace's capabilities across exec", NONE),
        Opt("--hostname", "set the hostname in the new UTS namespace", REQUIRED, metavar="NAME"),
        Opt("--domainname", "set the NIS domain name in the new UTS namespace", REQUIRED, metavar="NAME"),
        Opt("-R|--root", "chroot to DIR before running CMD", REQUIRED, metavar="DIR"),
        Opt("-w|--wd", "change to DIR (inside the new root) before running CMD", REQUIRED, metavar="DIR"),
        Opt("-S|--setuid", "run CMD as UID in the new namespaces", REQUIRED, metavar="UID"),
        Opt("-G|--setgid", "run CMD as GID in the new namespaces", REQUIRED, metavar="GID"),
        Opt("--monotonic", "CLOCK_MONOTONIC offset in the new time namespace (implies --time)",
            REQUIRED, metavar="SECONDS"),
        Opt("--boottime", "CLOCK_BOOTTIME offset in the new time namespace (implies --time)",
            REQUIRED, metavar="SECONDS"),
    ],
    about="Run CMD (default: $SHELL) in new namespaces.  Exits with CMD's status (128+N for signal N).",
)


def run(argv: list[str], ctx: object = None) -> int:
    return run_unshare(spec_from_args(argv))


def spec_from_args(argv: list[str]) -> UnshareSpec:
    o, cmd = PARSER.parse(argv)
    flags = 0
    persist: dict[int, str] = {}
    for name, flag in NAMESPACE_TYPES:
        value = o[f"ns_{name}"]
        if o["all"] and name in os.listdir("/proc/self/ns"):
            flags |= flag
        if value:
            flags |= flag
            if isinstance(value, str):
                persist[flag] = os.path.abspath(value)
    uid_maps, gid_maps = _maps(o)
    try:
        return UnshareSpec(
            cmd,
            flags=flags,
            fork=bool(o["fork"]),
            mount_proc=o["mount_proc"],  # type: ignore[arg-type]
            kill_child=_signal(o["kill_child"]),
            propagation=o["propagation"] or "private",  # type: ignore[arg-type]
            uid_maps=uid_maps,
            gid_maps=gid_maps,
            setgroups=o["setgroups"],  # type: ignore[arg-type]
            hostname=o["hostname"],  # type: ignore[arg-type]
            domainname=o["domainname"],  # type: ignore[arg-type]
            root=o["root"],  # type: ignore[arg-type]
            wd=o["wd"],  # type: ignore[arg-type]
            setuid=number(o["setuid"], "--setuid"),
            setgid=number(o["setgid"], "--setgid"),
            keep_caps=bool(o["keep_caps"]),
            monotonic=number(o["monotonic"], "--monotonic", signed=True),
            boottime=number(o["boottime"], "--boottime", signed=True),
            persist=persist,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None


def _signal(value: object) -> int | None:
    if not value:
        return None
    from nsbox.cli.signals import parse_signal  # only for --kill-child

    return parse_signal(str(value))


def number(value: object, option: str, signed: bool = False) -> int | None:
    if value is None:
        return None
    try:
        n = int(str(value))
    except ValueError:
        raise UsageError(f"{option} takes a number, not {value!r}") from None
    if n < 0 and not signed:
        raise UsageError(f"{option} takes a number of 0 or more, not {value!r}")
    return n


def _maps(o: dict[str, object]) -> tuple[list[IdMap], list[IdMap]]:
    """The uid and gid maps the options ask for."""
    euid, egid = os.geteuid(), os.getegid()
    uid_maps: list[IdMap] = []
    gid_maps: list[IdMap] = []
    if o["map_root_user"]:
        uid_maps.append(IdMap(0, euid))
        gid_maps.append(IdMap(0, egid))
    if o["map_current_user"]:
        uid_maps.append(IdMap(euid, euid))
        gid_maps.append(IdMap(egid, egid))
    if o["map_user"] is not None:
        uid_maps.append(IdMap(_lookup_id(str(o["map_user"]), "user"), euid))
    if o["map_group"] is not None:
        gid_maps.append(IdMap(_lookup_id(str(o["map_group"]), "group"), egid))
    users: list[str] = list(o["map_users"])  # type: ignore[call-overload]
    groups: list[str] = list(o["map_groups"])  # type: ignore[call-overload]
    if o["map_auto"]:
        users.append("auto")
        groups.append("auto")
    for specs, maps, path, option, kind in ((users, uid_maps, "/etc/subuid", "--map-users", "uid"),
                                            (groups, gid_maps, "/etc/subgid", "--map-groups", "gid")):
        for text in specs:
            try:
                maps.append(_auto_range(path, euid) if text == "auto" else parse_id_map(text))
            except ValueError as e:
                raise UsageError(f"{option}: {e}") from None
        try:
            validate_id_maps(maps, f"{kind} map")
        except ValueError as e:
            raise UsageError(f"{option}: {e}") from None
    return uid_maps, gid_maps


def _auto_range(path: str, euid: int) -> IdMap:
    """``auto``: the first range /etc/subuid (or /etc/subgid) grants us, from inner id 0."""
    import pwd

    try:
        user = pwd.getpwuid(euid).pw_name
    except KeyError:
        user = str(euid)
    ranges = subordinate_ranges(user, euid, path)
    if not ranges:
        raise UsageError(f"{path} grants no ids to {user}; add a line like {user}:100000:65536")
    start, count = ranges[0]
    return IdMap(0, start, count)


def _lookup_id(value: str, kind: str) -> int:
    if value.isdigit():
        return int(value)
    try:
        if kind == "user":
            import pwd

            return pwd.getpwnam(value).pw_uid
        import grp

        return grp.getgrnam(value).gr_gid
    except KeyError:
        raise UsageError(f"no such {kind}: {value}") from None
