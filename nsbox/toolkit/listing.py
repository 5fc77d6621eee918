"""``nsbox ns ls``: the namespaces on this host, what lsns(8) shows, and their hierarchy.

How the table is built::

    1. scan: for every /proc/PID, stat /proc/PID/ns/TYPE for each type asked
       for; the inode names the namespace.  A process that vanishes, or whose
       files we may not read (ptrace access mode), is skipped as a whole: races
       with exiting processes are normal, and lsns skips them the same way.
    2. bind mounts: namespaces kept alive by an nsfs mount (``ip netns add``
       makes /run/netns/NAME) and by no process are read from
       /proc/self/mountinfo, whose root field for nsfs is ``TYPE:[INODE]``.
    3. details: only for the lowest pid of each namespace (the row's PID) are
       stat, status and cmdline read; if that process has gone meanwhile, the
       next pid takes its place and the gone one is not counted.
    4. relations (optional, only on the real kernel): the owning user
       namespace (NS_GET_USERNS) and, for user and PID namespaces, the parent
       (NS_GET_PARENT), through :class:`nsbox.namespaces.Namespace`.  They are
       injected as a callable so that steps 1-3 and :func:`build_tree` can be
       tested on a fake /proc tree.

Everything takes ``proc="/proc"``; nothing here prints or exits.
"""

from __future__ import annotations

import os

from nsbox.mountinfo import unescape
from nsbox.errors import ProcessNotFound
from nsbox.namespaces import Namespace, NamespaceType, namespaces_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    Relations = Callable[["NsInfo"], "tuple[int | None, int | None]"]

#: Every namespace type, in the order of NamespaceType (ties in sorting).
TYPES: tuple[str, ...] = tuple(t.value for t in NamespaceType)
_TYPE_RANK = {name: i for i, name in enumerate(TYPES)}

#: Types whose namespaces have a parent of the same type (NS_GET_PARENT).
HIERARCHICAL = ("user", "pid")

_EPERM, _ENOENT, _ESRCH, _EACCES = 1, 2, 3, 13


class NsInfo:
    """One row: a namespace and the process that represents it.

    *pids* are all the processes seen in it, lowest first; *pid* is the first
    whose details could be read (None for a namespace held only by a bind
    mount).  *owner* and *parent* are inodes, filled in by the relations
    callable; *children* by :func:`build_tree`.
    """

    __slots__ = ("ns", "type", "pids", "pid", "ppid", "uid", "user", "command", "path",
                 "owner", "parent", "children", "proc")

    def __init__(self, ns: int, type: str, path: str, pids: list[int] | None = None,
                 proc: str = "/proc") -> None:
        self.ns = ns
        self.type = type
        self.path = path
        self.pids: list[int] = pids if pids is not None else []
        self.proc = proc
        self.pid: int | None = None
        self.ppid: int | None = None
        self.uid: int | None = None
        self.user: str | None = None
        self.command: str | None = None
        self.owner: int | None = None
        self.parent: int | None = None
        self.children: list[NsInfo] = []

    @property
    def nprocs(self) -> int:
        return len(self.pids)

    def as_dict(self, tree: bool = False) -> dict[str, object]:
        """The stable JSON object (docs/ns-ls-json.md); with *tree*, nested children."""
        d: dict[str, object] = {
            "ns": self.ns,
            "type": self.type,
            "nprocs": self.nprocs,
            "pid": self.pid,
            "ppid": self.ppid,
            "uid": self.uid,
            "user": self.user,
            "command": self.command,
            "path": self.path,
            "owner": self.owner,
            "parent": self.parent,
        }
        if tree:
            d["children"] = [c.as_dict(tree=True) for c in self.children]
        return d

    def __repr__(self) -> str:
        return f"NsInfo({self.type}:[{self.ns}], nprocs={self.nprocs}, pid={self.pid}, path={self.path!r})"


def parse_types(names: Iterable[str]) -> tuple[str, ...]:
    """Type names as the user wrote them (``mount``, ``NET``, ``uts,ipc``) -> ``("mnt", ...)``.

    Raises ValueError naming the valid types for an unknown one.
    """
    out: list[str] = []
    for text in names:
        for name in text.split(","):
            value = NamespaceType.parse(name).value
            if value not in out:
                out.append(value)
    return tuple(out)


def list_namespaces(
    proc: str = "/proc",
    types: Iterable[str] | None = None,
    pid: int | None = None,
    relations: Relations | None = None,
    user_name: Callable[[int], str | None] | None = None,
) -> list[NsInfo]:
    """The namespaces of the processes under *proc* (and of its nsfs bind mounts),
    sorted by inode as lsns sorts them.

    *types*: only these (``"mnt"``, ...; see :func:`parse_types`).  *pid*: only
    the namespaces of that process (ProcessNotFound if there is none), still
    counted over all processes.  *relations*: a callable ``info -> (owner,
    parent)`` (inodes or None), e.g. :func:`kernel_relations`; None leaves them
    None.  *user_name*: uid -> name or None (default: the passwd database).
    """
    wanted = tuple(types) if types is not None else TYPES
    only: set[int] | None = None
    if pid is not None:
        only = {ns.inode for t, ns in namespaces_of(pid, proc).items() if t.value in wanted}

    table, seen = _scan(proc, wanted)
    if pid is not None and pid not in seen:
        # It was there a moment ago (namespaces_of) and is not now.
        raise ProcessNotFound(f"no process with pid {pid}")
    if only is None:
        for ns, type, path in nsfs_mounts(proc):
            if type in wanted and ns not in table:
                table[ns] = NsInfo(ns, type, path, proc=proc)
    rows = [info for ns, info in table.items() if only is None or ns in only]

    rows = _fill_details(rows, proc, user_name or _passwd_name())
    if relations is not None:
        for info in rows:
            info.owner, info.parent = relations(info)
    rows.sort(key=sort_key)
    return rows


def sort_key(info: NsInfo) -> tuple[int, int]:
    return (info.ns, _TYPE_RANK.get(info.type, len(TYPES)))


def _scan(proc: str, types: tuple[str, ...]) -> tuple[dict[int, NsInfo], set[int]]:
    """Pass 1: inode -> NsInfo with its pids (ascending), and the pids read."""
    table: dict[int, NsInfo] = {}
    seen: set[int] = set()
    pids = sorted(int(name) for name in os.listdir(proc) if name.isdigit())
    for pid in pids:
        found = _namespaces_of_process(proc, pid, types)
        if found is None:
            continue
        seen.add(pid)
        for type, ns in found:
            info = table.get(ns)
            if info is None:
                table[ns] = info = NsInfo(ns, type, f"{proc}/{pid}/ns/{type}", proc=proc)
            info.pids.append(pid)
    return table, seen


def _namespaces_of_process(proc: str, pid: int, types: tuple[str, ...]) -> list[tuple[str, int]] | None:
    """[(type, inode)] of one process, or None when it is gone or hidden from us."""
    found = []
    missing = False
    for type in types:
        try:
            found.append((type, os.stat(f"{proc}/{pid}/ns/{type}").st_ino))
        except FileNotFoundError:
            # A type this kernel lacks, a zombie's released namespaces (only
            # user and pid survive exit), or the process has gone.
            missing = True
        except (ProcessLookupError, PermissionError):
            return None
    if missing and not os.path.exists(f"{proc}/{pid}/stat"):
        return None
    return found


def _fill_details(rows: list[NsInfo], proc: str, user_name: Callable[[int], str | None]) -> list[NsInfo]:
    """Pass 3: PID, PPID, UID, USER, COMMAND from each row's lowest live pid.

    Returns the rows that still have a process (or never had one: a bind mount).
    """
    cache: dict[int, tuple[int, int, str] | None] = {}
    gone: set[int] = set()
    for info in rows:
        for pid in info.pids:
            if pid not in cache:
                cache[pid] = _process_details(proc, pid)
            details = cache[pid]
            if details is None:
                gone.add(pid)
                continue
            info.pid = pid
            info.ppid, info.uid, info.command = details
            info.user = user_name(info.uid)
            if info.user is None:
                info.user = str(info.uid)
            info.path = f"{proc}/{pid}/ns/{info.type}"
            break
    if not gone:
        return rows
    kept = []
    for info in rows:
        if info.pids and info.pid is None:
            continue  # every process of it has gone
        info.pids = [p for p in info.pids if p not in gone]
        kept.append(info)
    return kept


def _process_details(proc: str, pid: int) -> tuple[int, int, str] | None:
    """(ppid, real uid, command) of *pid*, or None if it has gone."""
    base = f"{proc}/{pid}"
    try:
        with open(f"{base}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        with open(f"{base}/status", "rb") as f:
            status = f.read().decode(errors="replace")
        with open(f"{base}/cmdline", "rb") as f:
            cmdline = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses, so
    # split at the last ')'.
    head, _, tail = stat.rpartition(")")
    fields = tail.split()
    if not head or len(fields) < 2:
        return None  # empty: the process is exiting
    ppid = int(fields[1])
    comm = head.partition("(")[2]
    uid = None
    for line in status.splitlines():
        if line.startswith("Uid:"):
            uid = int(line.split()[1])
            break
    if uid is None:
        return None
    args = cmdline.split(b"\0")
    while args and not args[-1]:
        args.pop()
    command = " ".join(a.decode(errors="replace") for a in args) if args else f"[{comm}]"
    return ppid, uid, command


def _passwd_name() -> Callable[[int], str | None]:
    import pwd

    names: dict[int, str | None] = {}

    def name(uid: int) -> str | None:
        if uid not in names:
            try:
                names[uid] = pwd.getpwuid(uid).pw_name
            except KeyError:
                names[uid] = None
        return names[uid]

    return name


def nsfs_mounts(proc: str = "/proc") -> list[tuple[int, str, str]]:
    """(inode, type, mount point) of each nsfs mount we can see, first mount of each."""
    try:
        with open(f"{proc}/self/mountinfo", "rb") as f:
            text = f.read().decode(errors="surrogateescape")
    except FileNotFoundError:
        return []
    found: dict[int, tuple[int, str, str]] = {}
    for line in text.splitlines():
        # ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
        fields = line.split()
        try:
            sep = fields.index("-", 6)
        except ValueError:
            continue
        if sep + 1 >= len(fields) or fields[sep + 1] != "nsfs":
            continue
        type, _, rest = fields[3].partition(":[")
        if not rest.endswith("]") or not rest[:-1].isdigit():
            continue
        ns = int(rest[:-1])
        if ns not in found:
            found[ns] = (ns, type, unescape(fields[4]))
    return list(found.values())


def kernel_relations(info: NsInfo) -> tuple[int | None, int | None]:
    """(owner user namespace, parent) inodes of *info*, by the nsfs ioctls.

    At the top of what we can see the kernel says EPERM: no owner / parent.
    The namespace is opened through its path, or another of its processes'
    if that one has gone; a path that now names another namespace (a reused
    pid) is not trusted.
    """
    t = NamespaceType(info.type)
    paths = [info.path] + [f"{info.proc}/{p}/ns/{info.type}" for p in info.pids if p != info.pid]
    for path in paths:
        try:
            ns = Namespace.from_path(path, t)
            if ns.inode != info.ns:
                continue
            try:
                owner: int | None = ns.owner().inode
            except OSError as e:
                if e.errno != _EPERM:
                    raise
                owner = None
            parent = None
            if info.type in HIERARCHICAL:
                up = ns.parent()
                parent = up.inode if up is not None else None
            return owner, parent
        except OSError as e:
            if e.errno in (_ENOENT, _ESRCH, _EACCES):
                continue  # that process went away (or is hidden): try another
            raise
    return None, None


def build_tree(rows: list[NsInfo], by: str = "owner") -> list[NsInfo]:
    """Nest *rows* (their ``children``) and return the roots, each level sorted by inode.

    ``by="owner"``: a user namespace holds its child user namespaces and the
    namespaces it owns.  ``by="parent"``: user namespaces under their parent,
    PID namespaces under their parent; other types stay at the top.  A row
    whose owner or parent is not among *rows* is a root.
    """
    if by not in ("owner", "parent"):
        raise ValueError(f"unknown tree relation {by!r} (owner or parent)")
    index = {info.ns: info for info in rows}
    up: dict[int, int] = {}
    for info in rows:
        info.children = []
        if by == "owner":
            link = info.owner
            if info.type == "user" and info.parent is not None:
                link = info.parent  # a user namespace's owner is its parent
            want = "user"
        else:
            link = info.parent if info.type in HIERARCHICAL else None
            want = info.type
        if link is not None and link != info.ns and link in index and index[link].type == want:
            up[info.ns] = link
    # Wrong data must not loop forever: cut any cycle where it closes.
    for start in list(up):
        path: set[int] = set()
        node = start
        while node in up:
            if node in path:
                del up[node]
                break
            path.add(node)
            node = up[node]
    roots = []
    for info in sorted(rows, key=sort_key):
        if info.ns in up:
            index[up[info.ns]].children.append(info)
        else:
            roots.append(info)
    return roots


def walk_tree(roots: list[NsInfo]) -> list[tuple[str, NsInfo]]:
    """Depth first: (prefix, row) with lsns -T's box-drawing prefix (``├─``, ``└─``, ``│ ``)."""
    out: list[tuple[str, NsInfo]] = []

    def visit(nodes: list[NsInfo], lead: str, top: bool) -> None:
        for i, node in enumerate(nodes):
            last = i == len(nodes) - 1
            if top:
                out.append(("", node))
                visit(node.children, "", False)
            else:
                out.append((lead + ("└─" if last else "├─"), node))
                visit(node.children, lead + ("  " if last else "│ "), False)

    visit(roots, "", True)
    return out


__all__ = [
    "HIERARCHICAL",
    "TYPES",
    "NsInfo",
    "build_tree",
    "kernel_relations",
    "list_namespaces",
    "nsfs_mounts",
    "parse_types",
    "sort_key",
    "walk_tree",
]
