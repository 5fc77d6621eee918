"""``nsbox ns ls``: the table logic on fake /proc trees, then the real kernel (as root)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess

import pytest

from conftest import NSBOX, children_of, mountpoints, nsbox, ns_inode, requires_root, wait_for_line
from nsbox.cli import ns_ls
from nsbox.errors import ProcessNotFound, UsageError
from nsbox.toolkit import listing
from nsbox.toolkit.listing import NsInfo, build_tree, list_namespaces, parse_types, walk_tree

JSON_KEYS = ["ns", "type", "nprocs", "pid", "ppid", "uid", "user", "command", "path", "owner", "parent"]
NAMES = {0: "root", 1000: "alice"}


class FakeProc:
    """A /proc lookalike: /proc/PID/ns/TYPE are regular files, and processes in
    the same namespace share one file through hard links, so the inode is the
    namespace's identity just as on nsfs."""

    def __init__(self, root) -> None:
        self.root = str(root)
        self.files: dict[str, str] = {}
        os.makedirs(f"{self.root}/self")

    def process(self, pid: int, ns: dict[str, str], uid: int = 0, ppid: int = 1, comm: str = "sh",
                cmdline: list[str] | None = None) -> None:
        base = f"{self.root}/{pid}"
        os.makedirs(f"{base}/ns")
        for type, name in ns.items():
            path = f"{base}/ns/{type}"
            if name in self.files:
                os.link(self.files[name], path)
            else:
                open(path, "w").close()
                self.files[name] = path
        with open(f"{base}/stat", "w") as f:
            f.write(f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 0 0 0 0\n")
        with open(f"{base}/status", "w") as f:
            f.write(f"Name:\t{comm}\nUmask:\t0022\nState:\tS (sleeping)\nPPid:\t{ppid}\n"
                    f"Uid:\t{uid}\t{uid + 1}\t{uid + 2}\t{uid + 3}\nGid:\t0\t0\t0\t0\n")
        with open(f"{base}/cmdline", "wb") as f:
            f.write(b"".join(a.encode() + b"\0" for a in (cmdline if cmdline is not None else [comm])))

    def mountinfo(self, *lines: str) -> None:
        with open(f"{self.root}/self/mountinfo", "w") as f:
            f.write("".join(line + "\n" for line in lines))

    def inode(self, name: str) -> int:
        return os.stat(self.files[name]).st_ino

    def ls(self, **kw) -> list[NsInfo]:
        kw.setdefault("user_name", NAMES.get)
        return list_namespaces(proc=self.root, **kw)


@pytest.fixture
def fake(tmp_path) -> FakeProc:
    return FakeProc(tmp_path / "proc")


@pytest.fixture
def three(fake) -> FakeProc:
    """Three processes in two uts namespaces (pids 30 and 10 in A, 20 in B) and one ipc."""
    fake.process(30, {"uts": "utsA", "ipc": "ipc0"}, uid=0, ppid=10, comm="sleep", cmdline=["sleep", "60"])
    fake.process(10, {"uts": "utsA", "ipc": "ipc0"}, uid=0, ppid=0, comm="init", cmdline=["/sbin/init", "--x"])
    fake.process(20, {"uts": "utsB", "ipc": "ipc0"}, uid=1000, ppid=10, comm="bash", cmdline=["-bash"])
    return fake


def by_ns(rows: list[NsInfo]) -> dict[int, NsInfo]:
    return {r.ns: r for r in rows}


# --- the table, on fake /proc trees ----------------------------------------------------------


def test_counts_lowest_pid_user_and_command(three):
    rows = by_ns(three.ls())
    a, b, ipc = rows[three.inode("utsA")], rows[three.inode("utsB")], rows[three.inode("ipc0")]
    assert len(rows) == 3
    assert (a.type, a.nprocs, a.pid, a.ppid, a.uid, a.user, a.command) == \
        ("uts", 2, 10, 0, 0, "root", "/sbin/init --x")
    assert a.pids == [10, 30] and a.path == f"{three.root}/10/ns/uts"
    assert (b.type, b.nprocs, b.pid, b.ppid, b.uid, b.user, b.command) == ("uts", 1, 20, 10, 1000, "alice", "-bash")
    assert (ipc.nprocs, ipc.pid) == (3, 10)
    assert a.owner is None and a.parent is None  # no relations asked for


def test_sorted_by_inode(three):
    rows = three.ls()
    assert [r.ns for r in rows] == sorted(three.inode(n) for n in ("utsA", "utsB", "ipc0"))


def test_user_falls_back_to_the_uid_and_the_passwd_default(fake):
    fake.process(5, {"uts": "u"}, uid=4242)
    fake.process(6, {"uts": "v"}, uid=0)
    rows = by_ns(fake.ls(user_name=lambda uid: None))
    assert (rows[fake.inode("u")].uid, rows[fake.inode("u")].user) == (4242, "4242")
    rows = by_ns(list_namespaces(proc=fake.root))  # the real passwd database
    assert rows[fake.inode("v")].user == "root"


def test_kernel_thread_and_odd_comm(fake):
    fake.process(2, {"uts": "u"}, comm="kthreadd", cmdline=[])
    fake.process(7, {"uts": "w"}, comm="a) (b", cmdline=[])
    rows = by_ns(fake.ls())
    assert rows[fake.inode("u")].command == "[kthreadd]"
    assert rows[fake.inode("w")].command == "[a) (b]"


def test_vanished_processes_are_skipped(three, monkeypatch):
    # Gone between listdir and the stat of its ns files: a bare directory entry.
    os.makedirs(f"{three.root}/5")
    # Gone after its namespaces were read, before its details: it is the lowest pid of
    # uts A, so pid 10 takes its place and it is not counted.
    three.process(7, {"uts": "utsA", "ipc": "ipc0"})
    # The only process of a namespace, gone the same way: the namespace is not listed.
    three.process(8, {"uts": "utsC"})
    real_open = open

    def vanishing_open(path, *a, **kw):
        if path.startswith((f"{three.root}/7/", f"{three.root}/8/")):
            raise FileNotFoundError(2, "No such file or directory", path)
        return real_open(path, *a, **kw)

    monkeypatch.setattr("builtins.open", vanishing_open)
    rows = by_ns(three.ls())
    monkeypatch.undo()
    a = rows[three.inode("utsA")]
    assert (a.nprocs, a.pid, a.pids) == (2, 10, [10, 30])
    assert rows[three.inode("ipc0")].nprocs == 3
    assert three.inode("utsC") not in rows
    assert len(rows) == 3


def test_hidden_and_racing_processes_are_skipped(three, monkeypatch):
    three.process(3, {"uts": "utsA"})
    three.process(4, {"uts": "utsB"})
    real_stat = os.stat

    def stat(path, *a, **kw):
        if str(path).startswith(f"{three.root}/3/ns/"):
            raise PermissionError(13, "Permission denied", path)  # as /proc/1 for root here
        if str(path).startswith(f"{three.root}/4/ns/"):
            raise ProcessLookupError(3, "No such process", path)
        return real_stat(path, *a, **kw)

    monkeypatch.setattr(listing.os, "stat", stat)
    rows = by_ns(three.ls())
    monkeypatch.undo()
    assert (rows[three.inode("utsA")].nprocs, rows[three.inode("utsA")].pid) == (2, 10)
    assert (rows[three.inode("utsB")].nprocs, rows[three.inode("utsB")].pid) == (1, 20)


def test_zombie_keeps_the_namespaces_it_still_has(fake):
    # A zombie's /proc/PID stays, but only its user and pid ns files still resolve.
    fake.process(40, {"user": "u0", "pid": "p0", "uts": "t0"})
    fake.process(41, {"user": "u0", "pid": "p0"})
    rows = by_ns(fake.ls())
    assert rows[fake.inode("u0")].nprocs == 2 and rows[fake.inode("t0")].nprocs == 1


def test_type_filter(three):
    rows = three.ls(types=("uts",))
    assert {r.type for r in rows} == {"uts"} and len(rows) == 2
    assert three.ls(types=("net",)) == []


def test_parse_types_accepts_aliases_and_lists():
    assert parse_types(["mount", "NET", "uts,ipc", "mnt"]) == ("mnt", "net", "uts", "ipc")
    with pytest.raises(ValueError, match=r"unknown namespace type 'bogus' \(known: mnt, uts, ipc, pid, net, "
                                         r"user, cgroup, time\)"):
        parse_types(["bogus"])


def test_task_lists_only_its_namespaces_counted_over_all(three):
    rows = by_ns(three.ls(pid=20))
    assert set(rows) == {three.inode("utsB"), three.inode("ipc0")}
    assert rows[three.inode("ipc0")].nprocs == 3 and rows[three.inode("ipc0")].pid == 10
    assert [r.type for r in three.ls(pid=20, types=("uts",))] == ["uts"]


def test_task_missing(three):
    with pytest.raises(ProcessNotFound, match="^no process with pid 99$"):
        three.ls(pid=99)


NSFS = "{id} 45 0:4 {root} {mnt} rw,nosuid shared:2 - nsfs nsfs rw"


def test_bind_mounted_namespace_without_processes(three):
    os.makedirs(f"{three.root}/netns")
    held = f"{three.root}/netns/held"
    open(held, "w").close()
    held_ino = os.stat(held).st_ino
    three.mountinfo(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw",
        NSFS.format(id=46, root=f"net:[{held_ino}]", mnt=r"/run/netns/my\040net"),
        NSFS.format(id=47, root=f"net:[{held_ino}]", mnt="/run/netns/again"),  # propagated twice
        NSFS.format(id=48, root=f"uts:[{three.inode('utsB')}]", mnt="/run/uts/b"),  # has a process
        "49 1 0:5 uts:[1] /x rw - tmpfs tmpfs rw",  # not nsfs
    )
    rows = by_ns(three.ls())
    assert len(rows) == 4
    held_row = rows[held_ino]
    assert held_row.as_dict() == {
        "ns": held_ino, "type": "net", "nprocs": 0, "pid": None, "ppid": None, "uid": None, "user": None,
        "command": None, "path": "/run/netns/my net", "owner": None, "parent": None}
    assert rows[three.inode("utsB")].path == f"{three.root}/20/ns/uts"  # a process is the better path
    assert held_ino not in by_ns(three.ls(types=("uts",)))
    assert held_ino not in by_ns(three.ls(pid=20))
    text = ns_ls.format_table(three.ls(types=("net",)))
    w = len(str(held_ino))
    assert text == (f"{'NS':>{w}} TYPE NPROCS PID USER COMMAND\n"
                    f"{held_ino} net       0          /run/netns/my net\n")


def test_json_shape(three):
    doc = json.loads(ns_ls.to_json(three.ls()))
    assert list(doc) == ["namespaces"] and len(doc["namespaces"]) == 3
    for obj in doc["namespaces"]:
        assert list(obj) == JSON_KEYS
    a = next(o for o in doc["namespaces"] if o["ns"] == three.inode("utsA"))
    assert a == {"ns": three.inode("utsA"), "type": "uts", "nprocs": 2, "pid": 10, "ppid": 0, "uid": 0,
                 "user": "root", "command": "/sbin/init --x", "path": f"{three.root}/10/ns/uts",
                 "owner": None, "parent": None}


@pytest.fixture
def family(fake):
    """The initial user ns U0 with its uts T0 and pid P0; a child user ns U1 owning uts T1 and
    pid P1 (child of P0); a grandchild user ns U2 owning nothing but itself."""
    fake.process(1, {"user": "U0", "uts": "T0", "pid": "P0"}, comm="init")
    fake.process(50, {"user": "U1", "uts": "T1", "pid": "P1"}, comm="sleep")
    fake.process(60, {"user": "U2", "uts": "T1", "pid": "P1"}, comm="sh")
    i = fake.inode
    rel = {
        i("U0"): (None, None), i("T0"): (i("U0"), None), i("P0"): (i("U0"), None),
        i("U1"): (i("U0"), i("U0")), i("T1"): (i("U1"), None), i("P1"): (i("U1"), i("P0")),
        i("U2"): (i("U1"), i("U1")),
    }
    asked: list[NsInfo] = []

    def relations(info: NsInfo):
        asked.append(info)
        return rel[info.ns]

    fake.asked = asked
    fake.rows = fake.ls(relations=relations)
    return fake


def tree_of(nodes: list[NsInfo]) -> list:
    return [(n.ns, tree_of(n.children)) for n in nodes]


def test_relations_are_injected(family):
    i = family.inode
    assert sorted(info.ns for info in family.asked) == sorted(r.ns for r in family.rows)
    rows = by_ns(family.rows)
    assert (rows[i("P1")].owner, rows[i("P1")].parent) == (i("U1"), i("P0"))
    assert (rows[i("U0")].owner, rows[i("U0")].parent) == (None, None)


def test_tree_by_owner(family):
    i = family.inode

    def kids(*names):
        return sorted(names, key=i)

    below = {"U1": [(i(n), []) for n in kids("T1", "P1", "U2")]}
    expected = [(i("U0"), [(i(n), below.get(n, [])) for n in kids("T0", "P0", "U1")])]
    assert tree_of(build_tree(family.rows, "owner")) == expected


def test_tree_by_parent(family):
    i = family.inode
    roots = build_tree(family.rows, "parent")
    tree = dict(tree_of(roots))
    # user by parent, pid by parent; uts namespaces stay at the top
    assert set(tree) == {i("U0"), i("P0"), i("T0"), i("T1")}
    assert tree[i("U0")] == [(i("U1"), [(i("U2"), [])])]
    assert tree[i("P0")] == [(i("P1"), [])]
    assert tree[i("T0")] == [] and tree[i("T1")] == []
    assert [r.ns for r in roots] == sorted(tree)


def test_tree_text_and_json(family):
    i = family.inode
    roots = build_tree(family.rows, "owner")
    text = ns_ls.format_table(family.rows, roots).splitlines()
    assert text[0].split() == ["NS", "TYPE", "NPROCS", "PID", "USER", "COMMAND"]
    assert text[0].startswith("NS ")  # left-aligned over a tree
    got = [re.match(r"^([│├└─ ]*?)(\d+) +(\w+) +(\d+) +(\d+) +(\w+) +(.*)$", line).groups() for line in text[1:]]
    prefixes = {int(ns): prefix for prefix, ns, *_ in got}
    assert prefixes[i("U0")] == ""
    kids_u0 = sorted(("T0", "P0", "U1"), key=i)
    for n in kids_u0:
        assert prefixes[i(n)] == ("└─" if n == kids_u0[-1] else "├─")
    lead = "  " if kids_u0[-1] == "U1" else "│ "
    kids_u1 = sorted(("T1", "P1", "U2"), key=i)
    for n in kids_u1:
        assert prefixes[i(n)] == lead + ("└─" if n == kids_u1[-1] else "├─")
    # every row once, depth first: each child right after its parent's earlier subtrees
    assert [int(ns) for _, ns, *_ in got] == [n.ns for _, n in walk_tree(roots)]
    assert len(got) == len(family.rows) == 7
    u1 = next(g for g in got if int(g[1]) == i("U1"))
    assert u1[2:] == ("user", "1", "50", "root", "sleep")

    doc = json.loads(ns_ls.to_json(roots, tree=True))
    [top] = doc["namespaces"]
    assert list(top) == JSON_KEYS + ["children"]
    assert top["ns"] == i("U0") and top["parent"] is None
    u1 = next(c for c in top["children"] if c["ns"] == i("U1"))
    assert u1["owner"] == u1["parent"] == i("U0")
    assert sorted(c["ns"] for c in u1["children"]) == sorted(map(i, ("T1", "P1", "U2")))


def test_walk_tree_draws_continuation_bars():
    def node(ns, *children):
        n = NsInfo(ns, "user", f"/x/{ns}")
        n.children = list(children)
        return n

    roots = [node(1, node(2, node(3), node(4)), node(5, node(6)))]
    assert [(p, n.ns) for p, n in walk_tree(roots)] == [
        ("", 1), ("├─", 2), ("│ ├─", 3), ("│ └─", 4), ("└─", 5), ("  └─", 6)]


def test_tree_survives_a_cycle_and_strangers(fake):
    fake.process(1, {"user": "A"})
    fake.process(2, {"user": "B"})
    fake.process(3, {"uts": "C"})
    i = fake.inode
    rel = {i("A"): (i("B"), i("B")), i("B"): (i("A"), i("A")), i("C"): (12345, None)}
    rows = fake.ls(relations=lambda info: rel[info.ns])
    roots = build_tree(rows, "owner")
    seen = [n.ns for _, n in walk_tree(roots)]
    assert sorted(seen) == sorted(map(i, "ABC"))  # each once, nothing lost
    assert i("C") in [r.ns for r in roots]  # its owner is not listed: a root


def test_flat_table_format():
    a = NsInfo(4026531838, "uts", "/proc/1/ns/uts", pids=[1, 2, 3])
    a.pid, a.user, a.command = 1, "root", "init\nsplash"
    b = NsInfo(4026532200, "net", "/run/netns/x")
    assert ns_ls.format_table([a, b]) == (
        "        NS TYPE NPROCS PID USER COMMAND\n"
        "4026531838 uts       3   1 root init\\x0asplash\n"
        "4026532200 net       0          /run/netns/x\n")


@pytest.mark.parametrize("argv, message", [
    (["--type", "bogus"], "unknown namespace type 'bogus' (known: mnt, uts, ipc, pid, net, user, cgroup, time)"),
    (["--tree=sideways"], "--tree takes owner or parent, not 'sideways'"),
    (["-p", "abc"], "--task takes a number, not 'abc'"),
    (["extra"], "unexpected argument 'extra'"),
])
def test_usage_errors(argv, message):
    with pytest.raises(UsageError) as e:
        ns_ls.run(argv)
    assert str(e.value) == message


def test_cli_usage_error_is_one_line_exit_2():
    r = nsbox("ns", "ls", "-t", "bogus")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == ("nsbox: ns ls: unknown namespace type 'bogus' "
                        "(known: mnt, uts, ipc, pid, net, user, cgroup, time)\n")


# --- the real kernel ---------------------------------------------------------------------------


def ls_json(*args: str) -> list[dict]:
    r = nsbox("ns", "ls", "--json", *args, check=True)
    return json.loads(r.stdout)["namespaces"]


def flatten(nodes: list[dict]) -> list[dict]:
    out = []
    for n in nodes:
        out.append(n)
        out.extend(flatten(n.get("children", [])))
    return out


def find(nodes: list[dict], ns: int) -> dict:
    [hit] = [n for n in flatten(nodes) if n["ns"] == ns]
    return hit


def tree_lines(text: str) -> list[tuple[int, int, str]]:
    """(depth, inode, type) of each row of a text tree."""
    out = []
    for line in text.splitlines()[1:]:
        m = re.match(r"^([│├└─ ]*?)(\d+) +(\w+)", line)
        assert m, line
        out.append((len(m.group(1)) // 2, int(m.group(2)), m.group(3)))
    return out


def parent_row(rows: list[tuple[int, int, str]], ns: int) -> tuple[int, int, str] | None:
    """The row a text-tree row hangs from: the nearest earlier row one level up."""
    k = next(k for k, r in enumerate(rows) if r[1] == ns)
    depth = rows[k][0]
    return next((r for r in reversed(rows[:k]) if r[0] == depth - 1), None)


@pytest.fixture
def pid_uts(background):
    """nsbox in a new uts namespace, and its child, PID 1 of a new pid namespace."""
    p = background("ns", "unshare", "-fpu", "--", "sh", "-c", "echo ready; exec sleep 60")
    wait_for_line(p)
    [child] = children_of(p.pid)
    return p.pid, child


@requires_root
def test_kernel_json_counts_a_new_pid_and_uts_namespace(pid_uts):
    parent, child = pid_uts
    new_uts = ns_inode(child, "uts")
    assert new_uts != ns_inode("self", "uts")
    # Like util-linux unshare, nsbox unshares in itself, then forks: today both the nsbox
    # process and its child are in the new uts ns, while only the child is in the pid ns.
    inside = [p for p in (parent, child) if ns_inode(p, "uts") == new_uts]
    rows = {r["ns"]: r for r in ls_json()}
    uts = rows[new_uts]
    assert (uts["type"], uts["nprocs"], uts["pid"]) == ("uts", len(inside), min(inside))
    assert uts["owner"] == ns_inode("self", "user") and uts["parent"] is None
    pid = rows[ns_inode(child, "pid")]
    assert (pid["type"], pid["nprocs"], pid["pid"], pid["ppid"]) == ("pid", 1, child, parent)
    assert (pid["uid"], pid["user"], pid["command"]) == (0, "root", "sleep 60")
    assert pid["path"] == f"/proc/{child}/ns/pid"
    assert pid["parent"] == ns_inode("self", "pid")
    host_pid = rows[ns_inode("self", "pid")]
    assert host_pid["parent"] is None and host_pid["nprocs"] > 3
    for r in rows.values():
        assert list(r) == JSON_KEYS


@requires_root
def test_kernel_text_table(pid_uts):
    parent, child = pid_uts
    r = nsbox("ns", "ls", check=True)
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NS", "TYPE", "NPROCS", "PID", "USER", "COMMAND"]
    row = next(line for line in lines if line.split()[0] == str(ns_inode(child, "pid")))
    assert row.split() == [str(ns_inode(child, "pid")), "pid", "1", str(child), "root", "sleep", "60"]
    inodes = [int(line.split()[0]) for line in lines[1:]]
    assert inodes == sorted(inodes)


@requires_root
def test_kernel_type_filter(pid_uts):
    parent, child = pid_uts
    rows = ls_json("--type", "uts")
    assert {r["type"] for r in rows} == {"uts"}
    assert {ns_inode(child, "uts"), ns_inode("self", "uts")} <= {r["ns"] for r in rows}
    text = nsbox("ns", "ls", "-t", "uts", check=True).stdout.splitlines()
    assert {line.split()[1] for line in text[1:]} == {"uts"} and len(text) == len(rows) + 1


@requires_root
def test_kernel_task_lists_its_namespaces(pid_uts):
    parent, child = pid_uts
    rows = ls_json("-p", str(child))
    expected = {(t, ns_inode(child, t)) for t in listing.TYPES if os.path.exists(f"/proc/self/ns/{t}")}
    assert {(r["type"], r["ns"]) for r in rows} == expected
    text = nsbox("ns", "ls", "--task", str(child), "--type", "pid", check=True).stdout.splitlines()
    assert len(text) == 2 and text[1].split()[:4] == [str(ns_inode(child, "pid")), "pid", "1", str(child)]


@requires_root
def test_kernel_tree_by_owner(background):
    p = background("ns", "unshare", "-fUru", "--", "sh", "-c", "echo ready; exec sleep 60")
    wait_for_line(p)
    [child] = children_of(p.pid)
    host_user, new_user = ns_inode("self", "user"), ns_inode(child, "user")
    new_uts = ns_inode(child, "uts")
    assert new_user != host_user and new_uts != ns_inode("self", "uts")

    roots = json.loads(nsbox("ns", "ls", "--tree", "--json", check=True).stdout)["namespaces"]
    [top] = [r for r in roots if r["ns"] == host_user]
    assert top["type"] == "user" and top["owner"] is None and top["parent"] is None
    under_host = {c["ns"]: c for c in top["children"]}
    assert new_user in under_host and ns_inode("self", "uts") in under_host
    user = under_host[new_user]
    assert user["parent"] == user["owner"] == host_user and user["nprocs"] == 2
    assert new_uts in {c["ns"] for c in user["children"]}
    assert new_uts not in under_host
    # the child's other namespaces are the host's, owned by the host's user namespace
    assert ns_inode(child, "net") in under_host and ns_inode(child, "mnt") in under_host

    rows = tree_lines(nsbox("ns", "ls", "--tree", check=True).stdout)
    assert (0, host_user, "user") in rows
    assert parent_row(rows, new_user) == (0, host_user, "user")
    assert parent_row(rows, new_uts) == (1, new_user, "user")
    assert len({ns for _, ns, _ in rows}) == len(rows)


@requires_root
def test_kernel_tree_by_parent_nests_pid_namespaces(background):
    p = background("ns", "unshare", "-fp", "--", *NSBOX, "ns", "unshare", "-fp", "--",
                   "sh", "-c", "echo ready; exec sleep 60")
    wait_for_line(p)
    [middle] = children_of(p.pid)
    [inner] = children_of(middle)
    host, mid_ns, inner_ns = ns_inode("self", "pid"), ns_inode(middle, "pid"), ns_inode(inner, "pid")
    assert len({host, mid_ns, inner_ns}) == 3

    roots = json.loads(nsbox("ns", "ls", "--tree=parent", "--json", check=True).stdout)["namespaces"]
    [top] = [r for r in roots if r["ns"] == host]
    [mid] = [c for c in top["children"] if c["ns"] == mid_ns]
    [low] = [c for c in mid["children"] if c["ns"] == inner_ns]
    assert (top["parent"], mid["parent"], low["parent"]) == (None, host, mid_ns)
    assert (mid["pid"], low["pid"], low["command"]) == (middle, inner, "sleep 60")
    assert any(r["ns"] == ns_inode("self", "user") and r["type"] == "user" for r in roots)
    assert any(r["ns"] == ns_inode("self", "uts") for r in roots)  # no parent relation: top level

    rows = tree_lines(nsbox("ns", "ls", "--tree=parent", check=True).stdout)
    assert parent_row(rows, mid_ns) == (0, host, "pid")
    assert parent_row(rows, inner_ns) == (1, mid_ns, "pid")


NETNS = "nsbox-test-ls"


@pytest.fixture
def netns():
    subprocess.run(["ip", "netns", "delete", NETNS], capture_output=True)  # a leftover of a killed run
    # `ip netns add` makes /run/netns a shared bind mount of itself, which
    # `ip netns delete` leaves: undo it if the test made it
    had_mount = "/run/netns" in mountpoints()
    had_dir = os.path.isdir("/run/netns")
    subprocess.run(["ip", "netns", "add", NETNS], check=True, capture_output=True)
    try:
        yield f"/run/netns/{NETNS}"
    finally:
        subprocess.run(["ip", "netns", "delete", NETNS], check=False, capture_output=True)
        if not had_mount and "/run/netns" in mountpoints():
            subprocess.run(["umount", "/run/netns"], check=False)
        if not had_dir:
            with contextlib.suppress(OSError):
                os.rmdir("/run/netns")


@requires_root
def test_kernel_bind_mounted_netns(netns):
    ino = os.stat(netns).st_ino
    row = find(ls_json("--type", "net"), ino)
    assert row == {"ns": ino, "type": "net", "nprocs": 0, "pid": None, "ppid": None, "uid": None,
                   "user": None, "command": None, "path": netns, "owner": ns_inode("self", "user"),
                   "parent": None}
    text = nsbox("ns", "ls", "-t", "net", check=True).stdout.splitlines()
    [line] = [t for t in text if t.split()[0] == str(ino)]
    assert line.split() == [str(ino), "net", "0", netns]
    assert ino not in {r["ns"] for r in ls_json("-p", str(os.getpid()))}
    tree = json.loads(nsbox("ns", "ls", "--tree", "--json", check=True).stdout)["namespaces"]
    top = find(tree, ns_inode("self", "user"))
    assert ino in {c["ns"] for c in top["children"]}


@requires_root
def test_kernel_missing_task_is_one_line_exit_1():
    if os.path.exists("/proc/999999"):
        pytest.skip("pid 999999 exists")
    r = nsbox("ns", "ls", "-p", "999999")
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "nsbox: ns ls: no process with pid 999999\n")
