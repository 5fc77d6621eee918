"""The Python API and the syscall layer, on the real kernel, always in a forked child."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest

from conftest import in_child, requires_root

import nsbox
from nsbox._sys import mount as sys_mount
from nsbox._sys import ns as sys_ns
from nsbox._sys import pidfd as sys_pidfd
from nsbox._sys import process as sys_proc
from nsbox._sys.consts import CLONE_NEWNS, CLONE_NEWUTS, MNT_DETACH, MS_PRIVATE, MS_REC
from nsbox.errors import NamespaceError, ProcessNotFound
from nsbox.namespaces import Namespace, NamespaceType, join, namespaces_of, setns, supported_types, unshare
from nsbox.userns import IdMap, write_id_maps


def test_lazy_top_level_exports():
    assert nsbox.NamespaceType is NamespaceType and nsbox.IdMap is IdMap
    with pytest.raises(AttributeError):
        nsbox.no_such_name  # noqa: B018


def test_namespace_type_names_and_flags():
    assert NamespaceType.parse("mount") is NamespaceType.MNT
    assert NamespaceType.parse("Network") is NamespaceType.NET
    assert NamespaceType.UTS.clone_flag == CLONE_NEWUTS
    assert NamespaceType.from_clone_flag(CLONE_NEWNS) is NamespaceType.MNT
    with pytest.raises(ValueError, match="unknown namespace type 'bogus'"):
        NamespaceType.parse("bogus")


def test_namespaces_of_self_matches_proc():
    mine = namespaces_of("self")
    assert set(mine) == set(NamespaceType) == supported_types()
    for t, ns in mine.items():
        assert ns.inode == os.stat(f"/proc/self/ns/{t.value}").st_ino
        assert os.readlink(f"/proc/self/ns/{t.value}") == f"{t.value}:[{ns.inode}]"
    with pytest.raises(ProcessNotFound, match="no process with pid 999999"):
        namespaces_of(999999)


@requires_root
def test_relations_through_ioctls():
    mine = namespaces_of("self")
    user = mine[NamespaceType.USER]
    assert mine[NamespaceType.UTS].owner() == user  # the initial namespaces are owned by the initial user ns
    assert user.parent() is None and mine[NamespaceType.PID].parent() is None
    assert user.owner_uid() == 0
    assert Namespace.from_path("/proc/self/ns/net").type is NamespaceType.NET


@requires_root
def test_unshare_and_relations_in_a_child():
    def child():
        before = namespaces_of("self")
        unshare(NamespaceType.USER)
        write_id_maps("self", [IdMap(0, 0)], [IdMap(0, 0)], "deny")
        unshare(NamespaceType.UTS, NamespaceType.PID)
        socket.sethostname("nsbox-api")
        after = namespaces_of("self")
        grandchild = os.fork()  # the first process of the new PID namespace
        if grandchild == 0:
            mine = namespaces_of("self")[NamespaceType.PID]
            # its parent is out of scope from in here (EPERM): None
            os._exit(0 if mine.parent() is None and os.getpid() == 1 else 1)
        _, status = os.waitpid(grandchild, 0)
        return (
            after[NamespaceType.USER] != before[NamespaceType.USER],
            # from inside, the parent user namespace is out of scope (EPERM): None
            after[NamespaceType.USER].parent() is None,
            after[NamespaceType.UTS].owner() == after[NamespaceType.USER],
            status == 0,
            after[NamespaceType.PID] == before[NamespaceType.PID],  # PID ns: only for children
            socket.gethostname(),
        )

    host = socket.gethostname()
    assert in_child(child) == (True, True, True, True, True, "nsbox-api")
    assert socket.gethostname() == host


@requires_root
def test_parent_and_owner_seen_from_outside():
    r, w = os.pipe()
    holder = os.fork()
    if holder == 0:
        os.close(r)
        unshare(NamespaceType.USER, NamespaceType.UTS, NamespaceType.PID)
        if os.fork() == 0:  # PID 1 of the new PID namespace
            os.write(w, b"x")
        time.sleep(30)
        os._exit(0)
    os.close(w)
    init = None
    try:
        assert os.read(r, 1) == b"x"
        with open(f"/proc/{holder}/task/{holder}/children") as f:
            [init] = [int(p) for p in f.read().split()]
        assert namespaces_of(init)[NamespaceType.PID].parent() == namespaces_of("self")[NamespaceType.PID]
        theirs = namespaces_of(holder)
        ours = namespaces_of("self")
        assert theirs[NamespaceType.USER].parent() == ours[NamespaceType.USER]
        assert theirs[NamespaceType.UTS].owner() == theirs[NamespaceType.USER]
        assert theirs[NamespaceType.NET].owner() == ours[NamespaceType.USER]
        assert theirs[NamespaceType.USER].owner_uid() == os.geteuid()
    finally:
        if init:
            os.kill(init, signal.SIGKILL)
        os.kill(holder, signal.SIGKILL)
        os.waitpid(holder, 0)
        os.close(r)


@requires_root
def test_setns_joins_another_process():
    r, w = os.pipe()
    holder = os.fork()
    if holder == 0:
        os.close(r)
        unshare(NamespaceType.UTS)
        socket.sethostname("nsbox-holder")
        os.write(w, b"x")
        time.sleep(30)
        os._exit(0)
    os.close(w)
    try:
        assert os.read(r, 1) == b"x"

        def join_by_path():
            setns(f"/proc/{holder}/ns/uts", NamespaceType.UTS)
            return socket.gethostname()

        def join_all_by_pidfd():
            nsbox.enter(holder, [NamespaceType.UTS])
            return socket.gethostname()

        assert in_child(join_by_path) == "nsbox-holder"
        assert in_child(join_all_by_pidfd) == "nsbox-holder"
        assert in_child(lambda: (join([(CLONE_NEWUTS, f"/proc/{holder}/ns/uts")]), socket.gethostname())[1]) \
            == "nsbox-holder"
    finally:
        os.kill(holder, signal.SIGKILL)
        os.waitpid(holder, 0)
        os.close(r)


@requires_root
def test_user_namespace_refused_in_a_threaded_process():
    def child():
        stop = threading.Event()
        t = threading.Thread(target=stop.wait)
        t.start()
        try:
            unshare(NamespaceType.USER)
        finally:
            stop.set()
            t.join()

    with pytest.raises(NamespaceError, match="this process has 2 threads"):
        in_child(child)


@requires_root
def test_mount_pivot_root_umount_in_a_child(tmp_path):
    def child():
        sys_ns.unshare(CLONE_NEWNS)
        sys_mount.mount("none", "/", None, MS_REC | MS_PRIVATE)
        new_root = str(tmp_path / "root")
        os.mkdir(new_root)
        sys_mount.mount("nsbox-root", new_root, "tmpfs")
        os.mkdir(f"{new_root}/old")
        os.mkdir(f"{new_root}/marker")
        sys_mount.pivot_root(new_root, f"{new_root}/old")
        os.chdir("/")
        listing = sorted(os.listdir("/"))
        sys_mount.umount2("/old", MNT_DETACH)
        return listing, sorted(os.listdir("/old"))

    assert in_child(child) == (["marker", "old"], [])
    assert not os.listdir(tmp_path / "root")


def test_errors_name_the_call_and_the_path():
    with pytest.raises(OSError) as e:
        sys_mount.mount("none", "/nonexistent/nsbox", "tmpfs")
    assert e.value.errno in (2, 1) and e.value.strerror.startswith("mount: ")
    assert e.value.filename == "/nonexistent/nsbox"
    with pytest.raises(OSError) as e:
        sys_proc.open_ns("/proc/self/ns/nope")
    assert e.value.strerror == "open: No such file or directory" and e.value.filename == "/proc/self/ns/nope"
    with pytest.raises(OSError) as e:
        sys_mount.pivot_root("/nonexistent/a", "/nonexistent/b")
    assert e.value.strerror.startswith("pivot_root: ") and e.value.filename == "/nonexistent/a"


def test_capget_and_pidfd_send_signal():
    eff, prm, inh = sys_proc.capget()
    with open("/proc/self/status") as f:
        status = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
    assert eff == int(status["CapEff"], 16) and prm == int(status["CapPrm"], 16)
    pid = os.fork()
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    fd = sys_pidfd.pidfd_open(pid)
    try:
        sys_pidfd.pidfd_send_signal(fd, signal.SIGTERM)
        _, status_code = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status_code) and os.WTERMSIG(status_code) == signal.SIGTERM
        with pytest.raises(OSError) as e:  # the process is gone: ESRCH, named
            sys_pidfd.pidfd_send_signal(fd, signal.SIGTERM)
        assert e.value.errno == 3 and e.value.strerror.startswith("pidfd_send_signal: ")
    finally:
        os.close(fd)


@requires_root
def test_capset_drops_in_a_child():
    def child():
        eff, prm, inh = sys_proc.capget()
        sys_proc.capset(0, prm, 0)
        return sys_proc.capget()[0]

    assert in_child(child) == 0
