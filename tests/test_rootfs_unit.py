"""nsbox.rootfs policy without root: option parsing, mount checks, cgroup and
device plans, and the in-root resolver on temp trees (openat2 and mkdirat
need no privileges)."""

from __future__ import annotations

import errno
import os
import stat
import threading

import pytest

from nsbox._sys import fs, trace
from nsbox._sys.consts import (
    MS_BIND,
    MS_DIRSYNC,
    MS_LAZYTIME,
    MS_MANDLOCK,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_NOSYMFOLLOW,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SILENT,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_SYNCHRONOUS,
    MS_UNBINDABLE,
)
from nsbox.cgroups.own import parse_proc_cgroup
from nsbox.oci.spec import Spec, SpecError
from nsbox.rootfs import root_propagation
from nsbox.rootfs import safepath
from nsbox.rootfs.devices import DEFAULT_DEVICES, DeviceNode, dev_symlinks, needs_setup_dev, plan_devices
from nsbox.mountinfo import parse_mountinfo
from nsbox.rootfs.cgroupfs import is_cgroup2_unified, plan_cgroup_v1
from nsbox.rootfs.mounts import (
    LOCK_FLAGS,
    check_proc_mount,
    copy_tree,
    format_mount_label,
    locked_remount_flags,
    prepare_mount,
    statfs_to_mount_flags,
    wrap_error,
)
from nsbox.rootfs.options import KNOWN_OPTIONS, parse_mount_options, propagation_flag
from nsbox.rootfs.safepath import Root, clean, components


def spec(mounts=(), devices=(), **linux) -> Spec:
    return Spec({"ociVersion": "1.2.0", "root": {"path": "rootfs"}, "mounts": list(mounts),
                 "linux": {"devices": list(devices), **linux}}, "/bundle")


# -- options ------------------------------------------------------------------------

FLAG_WORDS = [
    ("ro", MS_RDONLY), ("nosuid", MS_NOSUID), ("nodev", MS_NODEV), ("noexec", MS_NOEXEC),
    ("sync", MS_SYNCHRONOUS), ("dirsync", MS_DIRSYNC), ("remount", MS_REMOUNT), ("mand", MS_MANDLOCK),
    ("noatime", MS_NOATIME), ("nodiratime", MS_NODIRATIME), ("relatime", MS_RELATIME),
    ("strictatime", MS_STRICTATIME), ("nosymfollow", MS_NOSYMFOLLOW), ("lazytime", MS_LAZYTIME),
    ("silent", MS_SILENT), ("bind", MS_BIND), ("rbind", MS_BIND | MS_REC), ("iversion", fs.MS_I_VERSION),
]
CLEAR_WORDS = [
    ("rw", MS_RDONLY), ("suid", MS_NOSUID), ("dev", MS_NODEV), ("exec", MS_NOEXEC), ("async", MS_SYNCHRONOUS),
    ("nomand", MS_MANDLOCK), ("atime", MS_NOATIME), ("diratime", MS_NODIRATIME), ("norelatime", MS_RELATIME),
    ("nostrictatime", MS_STRICTATIME), ("symfollow", MS_NOSYMFOLLOW), ("nolazytime", MS_LAZYTIME),
    ("loud", MS_SILENT), ("noiversion", fs.MS_I_VERSION),
]
PROPAGATION_WORDS = [
    ("private", MS_PRIVATE), ("rprivate", MS_PRIVATE | MS_REC), ("shared", MS_SHARED),
    ("rshared", MS_SHARED | MS_REC), ("slave", MS_SLAVE), ("rslave", MS_SLAVE | MS_REC),
    ("unbindable", MS_UNBINDABLE), ("runbindable", MS_UNBINDABLE | MS_REC),
]
REC_SET = [("rro", fs.MOUNT_ATTR_RDONLY), ("rnosuid", fs.MOUNT_ATTR_NOSUID), ("rnodev", fs.MOUNT_ATTR_NODEV),
           ("rnoexec", fs.MOUNT_ATTR_NOEXEC), ("rnodiratime", fs.MOUNT_ATTR_NODIRATIME),
           ("rnosymfollow", fs.MOUNT_ATTR_NOSYMFOLLOW)]
REC_CLEAR = [("rrw", fs.MOUNT_ATTR_RDONLY), ("rsuid", fs.MOUNT_ATTR_NOSUID), ("rdev", fs.MOUNT_ATTR_NODEV),
             ("rexec", fs.MOUNT_ATTR_NOEXEC), ("rdiratime", fs.MOUNT_ATTR_NODIRATIME),
             ("rsymfollow", fs.MOUNT_ATTR_NOSYMFOLLOW)]


class TestOptions:
    @pytest.mark.parametrize("word,flag", FLAG_WORDS)
    def test_flag_words_set(self, word, flag):
        o = parse_mount_options([word])
        assert o.flags == flag and o.cleared == 0 and o.data == "" and o.propagation == []

    @pytest.mark.parametrize("word,flag", CLEAR_WORDS)
    def test_negative_words_clear_and_remember(self, word, flag):
        o = parse_mount_options([word])
        assert o.flags == 0 and o.cleared == flag

    @pytest.mark.parametrize("word,flag", CLEAR_WORDS)
    def test_later_words_win(self, word, flag):
        positive = next(w for w, f in FLAG_WORDS if f == flag)
        assert parse_mount_options([positive, word]).flags == 0
        o = parse_mount_options([word, positive])
        assert o.flags == flag and o.cleared == 0

    @pytest.mark.parametrize("word,flag", PROPAGATION_WORDS)
    def test_propagation(self, word, flag):
        o = parse_mount_options([word])
        assert o.propagation == [flag] and o.flags == 0

    def test_propagation_keeps_order(self):
        assert parse_mount_options(["rprivate", "shared", "bind"]).propagation == [MS_PRIVATE | MS_REC, MS_SHARED]

    @pytest.mark.parametrize("word,attr", REC_SET)
    def test_recursive_attrs_set(self, word, attr):
        o = parse_mount_options([word])
        assert o.rec_attr_set == attr and o.rec_attr_clr == 0 and o.has_rec_attrs and o.flags == 0

    @pytest.mark.parametrize("word,attr", REC_CLEAR)
    def test_recursive_attrs_clear(self, word, attr):
        o = parse_mount_options([word])
        assert o.rec_attr_set == 0 and o.rec_attr_clr == attr

    def test_rro_then_rrw(self):
        o = parse_mount_options(["rro", "rrw"])
        assert not o.read_only_recursive and o.rec_attr_clr == fs.MOUNT_ATTR_RDONLY
        assert parse_mount_options(["rrw", "rro"]).read_only_recursive

    @pytest.mark.parametrize("words,value", [
        (["rnoatime"], fs.MOUNT_ATTR_NOATIME),
        (["rstrictatime"], fs.MOUNT_ATTR_STRICTATIME),
        (["rrelatime"], fs.MOUNT_ATTR_RELATIME),
        (["rnoatime", "rstrictatime"], fs.MOUNT_ATTR_STRICTATIME),  # one value: the last wins
        (["rstrictatime", "rrelatime"], fs.MOUNT_ATTR_RELATIME),
    ])
    def test_recursive_atime_is_one_value(self, words, value):
        o = parse_mount_options(words)
        # mount_setattr(2) wants the whole MOUNT_ATTR__ATIME field cleared with any atime change.
        assert o.rec_attr_set & fs.MOUNT_ATTR__ATIME == value
        assert o.rec_attr_clr & fs.MOUNT_ATTR__ATIME == fs.MOUNT_ATTR__ATIME

    def test_ratime_clears_the_atime_field(self):
        o = parse_mount_options(["ratime"])
        assert o.rec_attr_set == 0 and o.rec_attr_clr == fs.MOUNT_ATTR__ATIME

    def test_data_is_everything_else_in_order(self):
        o = parse_mount_options(["nosuid", "mode=755", "size=65536k", "noexec", "newinstance", "ptmxmode=0666",
                                 "gid=5"])
        assert o.data == "mode=755,size=65536k,newinstance,ptmxmode=0666,gid=5"
        assert o.flags == MS_NOSUID | MS_NOEXEC

    def test_overlay_data(self):
        o = parse_mount_options(["lowerdir=/a:/b", "upperdir=/u", "workdir=/w", "index=off"])
        assert o.data == "lowerdir=/a:/b,upperdir=/u,workdir=/w,index=off"

    def test_defaults_userspace_and_empty_are_not_data(self):
        o = parse_mount_options(["defaults", "x-systemd.automount", "", "mode=1777"])
        assert o.data == "mode=1777" and o.flags == 0 and o.userspace == ["x-systemd.automount"]

    def test_acl_is_data_as_in_runc(self):
        # runc does not map "acl" to MS_POSIXACL (runc#3738): it is for the filesystem.
        assert parse_mount_options(["acl"]).data == "acl"

    def test_bind_properties(self):
        assert parse_mount_options(["bind"]).bind and not parse_mount_options(["bind"]).recursive
        o = parse_mount_options(["rbind", "ro"])
        assert o.bind and o.recursive and o.read_only
        assert parse_mount_options(["remount", "ro"]).remount

    def test_tmpcopyup(self):
        o = parse_mount_options(["tmpcopyup", "mode=755"])
        assert o.tmpcopyup and o.data == "mode=755"

    @pytest.mark.parametrize("word", ["idmap", "ridmap"])
    def test_idmap_not_supported(self, word):
        with pytest.raises(SpecError) as e:
            parse_mount_options(["bind", word], "mounts[2].options")
        assert e.value.path == "mounts[2].options[1]" and "not supported yet" in str(e.value)

    def test_known_options(self):
        every = {w for w, _ in FLAG_WORDS + CLEAR_WORDS + PROPAGATION_WORDS + REC_SET + REC_CLEAR}
        every |= {"defaults", "tmpcopyup", "rnoatime", "ratime", "rrelatime", "rnorelatime", "rstrictatime",
                  "rnostrictatime"}
        assert every == set(KNOWN_OPTIONS)
        assert "idmap" not in KNOWN_OPTIONS

    def test_propagation_flag(self):
        assert propagation_flag("rslave") == MS_SLAVE | MS_REC
        with pytest.raises(SpecError, match="linux.rootfsPropagation"):
            propagation_flag("sideways")


# -- one mount, checked -------------------------------------------------------------------


class TestPrepareMount:
    def m(self, **kw):
        return spec([{"destination": "/x", **kw}]).mounts[0]

    def test_bind_by_option_or_type(self):
        for kw in ({"source": "/src", "options": ["bind"]}, {"source": "/src", "type": "bind"},
                   {"source": "/src", "type": "none", "options": ["rbind"]}):
            e = prepare_mount(0, self.m(**kw), "/bundle")
            assert e.kind == "bind" and e.opts.flags & MS_BIND and e.source == "/src", kw

    def test_relative_bind_source_is_in_the_bundle(self):
        e = prepare_mount(0, self.m(source="data/x", options=["bind"]), "/bundle")
        assert e.source == "/bundle/data/x"

    def test_destination_is_cleaned(self):
        e = prepare_mount(0, spec([{"destination": "/../a//b/./c/..", "type": "tmpfs"}]).mounts[0], "/b")
        assert e.destination == "/a/b"

    def test_errors_name_the_field(self):
        cases = [
            ({"options": ["bind"]}, "mounts[0].source"),
            ({"options": ["ro"]}, "mounts[0].type"),
            ({"type": "tmpfs", "options": ["ridmap"]}, "mounts[0].options[0]"),
            ({"type": "tmpfs", "source": "a\0b"}, "mounts[0].source"),
            ({"source": "/s", "options": ["bind"], "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]},
             "mounts[0].uidMappings"),
        ]
        for kw, path in cases:
            with pytest.raises(SpecError) as e:
                prepare_mount(0, self.m(**kw), "/bundle")
            assert e.value.path == path, kw

    @pytest.mark.parametrize("dest", ["/", "/..", "//", "/a/.."])
    def test_no_mount_over_root(self, dest):
        with pytest.raises(SpecError, match="mounts\\[0\\].destination"):
            prepare_mount(0, spec([{"destination": dest, "type": "tmpfs"}]).mounts[0], "/b")

    def test_remount_needs_no_type(self):
        e = prepare_mount(0, self.m(options=["remount", "ro"]), "/bundle")
        assert e.kind == "remount" and e.fstype is None

    def test_source_defaults_to_type(self):
        e = prepare_mount(0, self.m(type="mqueue"), "/bundle")
        assert e.source == "mqueue" and e.fstype == "mqueue"

    def test_real_client_mounts_parse(self):
        fixtures = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures", "clients")
        import json

        found = False
        for name in ("podman-config.json", "containerd-ctr-config.json", "podman-config-bridge-tty.json"):
            path = os.path.join(fixtures, name)
            if not os.path.exists(path):
                continue
            found = True
            with open(path) as f:
                s = Spec(json.load(f), "/bundle")
            for i, m in enumerate(s.mounts):
                prepare_mount(i, m, "/bundle")
        if not found:
            pytest.skip("client fixtures are not beside the checkout")


# -- flags and checks ---------------------------------------------------------------------


class TestFlagPolicy:
    def test_statfs_flags(self):
        f = fs.ST_RDONLY | fs.ST_NOSUID | fs.ST_NODEV | fs.ST_NOEXEC | fs.ST_RELATIME
        assert statfs_to_mount_flags(f) == MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME
        # ST_RELATIME (0x1000) is not MS_BIND (0x1000)'s meaning; no atime value means strictatime.
        assert statfs_to_mount_flags(0) == MS_STRICTATIME
        assert statfs_to_mount_flags(fs.ST_NOATIME | fs.ST_NODIRATIME) == MS_NOATIME | MS_NODIRATIME

    def test_locked_flags_are_kept(self):
        src = MS_NOSUID | MS_NODEV | MS_RELATIME
        want = MS_BIND | MS_REMOUNT | MS_RDONLY
        assert locked_remount_flags(want, MS_BIND | MS_RDONLY, 0, src) == want | src

    def test_asking_to_clear_a_locked_flag_fails(self):
        with pytest.raises(ValueError, match="MS_NOSUID"):
            locked_remount_flags(MS_BIND | MS_REMOUNT, MS_BIND, MS_NOSUID, MS_NOSUID | MS_RELATIME)

    def test_clearing_an_unset_flag_is_fine(self):
        assert locked_remount_flags(MS_BIND | MS_REMOUNT, MS_BIND, MS_NOEXEC, MS_NOSUID | MS_RELATIME) \
            == MS_BIND | MS_REMOUNT | MS_NOSUID | MS_RELATIME

    def test_atime_must_match_a_locked_one(self):
        with pytest.raises(ValueError, match="atime"):
            locked_remount_flags(MS_BIND | MS_REMOUNT | MS_NOATIME, MS_BIND | MS_NOATIME, 0, MS_RELATIME)
        assert locked_remount_flags(MS_BIND | MS_REMOUNT | MS_RELATIME, MS_BIND | MS_RELATIME, 0, MS_RELATIME) \
            == MS_BIND | MS_REMOUNT | MS_RELATIME

    def test_lock_flags(self):
        assert LOCK_FLAGS & MS_RDONLY and LOCK_FLAGS & MS_NODIRATIME and not LOCK_FLAGS & MS_SYNCHRONOUS

    @pytest.mark.parametrize("dest,kind,ok", [
        ("/proc", "proc", True),
        ("/proc", "tmpfs", False),
        ("/proc", "bind", False),
        ("/proc/self/attr", "tmpfs", False),
        ("/proc/sys/kernel/core_pattern", "bind", False),
        ("/proc/uptime", "bind", True),
        ("/proc/sys/kernel/ns_last_pid", "bind", True),
        ("/procfoo", "tmpfs", True),
        ("/other/proc", "proc", True),
        ("/", "tmpfs", True),
    ])
    def test_check_proc_mount(self, dest, kind, ok):
        if ok:
            check_proc_mount(dest, kind)
        else:
            with pytest.raises(SpecError):
                check_proc_mount(dest, kind)

    def test_bind_of_a_procfs_onto_proc(self):
        check_proc_mount("/proc", "bind", lambda: True)

    def test_mount_label(self):
        assert format_mount_label("mode=755", None) == "mode=755"
        assert format_mount_label("mode=755", "system_u:object_r:c") == 'mode=755,context="system_u:object_r:c"'
        assert format_mount_label("", "l") == 'context="l"'

    def test_wrap_error(self):
        e = wrap_error(OSError(errno.EPERM, "mount: Operation not permitted", "/proc/self/fd/7"), "mounts[3]",
                       "/dev/pts")
        assert e.errno == errno.EPERM and e.strerror == "mounts[3] (/dev/pts): mount: Operation not permitted"
        assert e.filename == "/dev/pts"
        e = wrap_error(OSError(errno.ENOENT, "bind source: No such file or directory", "/src"), "mounts[0]", "/x")
        assert e.filename == "/src" and isinstance(e, FileNotFoundError)

    def test_root_propagation(self):
        assert root_propagation(spec()) == MS_SLAVE | MS_REC
        assert root_propagation(spec(rootfsPropagation="rshared")) == MS_SHARED | MS_REC
        assert root_propagation(spec(rootfsPropagation="slave"), no_pivot=True) == MS_SLAVE
        with pytest.raises(SpecError, match="not safe without pivot_root"):
            root_propagation(spec(rootfsPropagation="rprivate"), no_pivot=True)


# -- cgroup layout -----------------------------------------------------------------------

HYBRID_MOUNTINFO = """\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 27 0:40 / /mnt/with\\040space rw - tmpfs tmpfs rw
"""
PROC_CGROUP = """\
12:name=systemd:/user.slice
4:memory:/process_api/abc
2:cpu,cpuacct:/
0::/unified/path
"""


class TestCgroupPlan:
    def test_mountinfo(self):
        mounts = parse_mountinfo(HYBRID_MOUNTINFO)
        assert mounts[-1].mountpoint == "/mnt/with space" and mounts[1].fstype == "tmpfs"
        assert mounts[2].super_options == "rw,cpu,cpuacct"

    def test_proc_cgroup(self):
        own = parse_proc_cgroup(PROC_CGROUP)
        assert own == {"name=systemd": "/user.slice", "memory": "/process_api/abc", "cpu,cpuacct": "/",
                       "": "/unified/path"}

    def test_plan(self):
        plan = plan_cgroup_v1(parse_mountinfo(HYBRID_MOUNTINFO), parse_proc_cgroup(PROC_CGROUP))
        got = {b.name: (b.source, b.fstype, b.data) for b in plan}
        assert got == {
            "cpu,cpuacct": ("/sys/fs/cgroup/cpu,cpuacct", "cgroup", "cpu,cpuacct"),
            "memory": ("/sys/fs/cgroup/memory/process_api/abc", "cgroup", "memory"),
            "systemd": ("/sys/fs/cgroup/systemd/user.slice", "cgroup", "none,name=systemd"),
            "unified": ("/sys/fs/cgroup/unified/unified/path", "cgroup2", ""),
        }

    def test_mount_root_is_respected(self):
        # Seen from inside a cgroup namespace, a hierarchy's root is not "/".
        mi = parse_mountinfo("35 31 0:32 /process_api /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n")
        plan = plan_cgroup_v1(mi, {"memory": "/process_api/abc"})
        assert plan[0].source == "/sys/fs/cgroup/memory/abc"

    def test_unified_detection(self):
        assert not is_cgroup2_unified(parse_mountinfo(HYBRID_MOUNTINFO))
        v2 = parse_mountinfo("31 23 0:28 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n")
        assert is_cgroup2_unified(v2)

    def test_this_host(self):
        with open("/proc/self/mountinfo") as f:
            mounts = parse_mountinfo(f.read())
        with open("/proc/self/cgroup") as f:
            own = parse_proc_cgroup(f.read())
        for b in plan_cgroup_v1(mounts, own):
            assert os.path.isdir(b.source), b


# -- devices ------------------------------------------------------------------------------


class TestDevices:
    def test_defaults(self):
        nodes = plan_devices(spec())
        assert [n.path for n in nodes] == ["/dev/null", "/dev/random", "/dev/full", "/dev/tty", "/dev/zero",
                                          "/dev/urandom"]
        assert all(n.type == "c" and n.mode == 0o666 and n.uid == 0 and n.gid == 0 for n in nodes)
        assert {(n.path, n.major, n.minor) for n in nodes} == {
            ("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7), ("/dev/random", 1, 8),
            ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0)}

    def test_spec_devices_override_and_append(self):
        devices = [{"type": "c", "path": "/dev//null", "major": 1, "minor": 3, "fileMode": 0o600, "uid": 5},
                   {"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229},
                   {"type": "b", "path": "/dev/sda", "major": 8, "minor": 0, "fileMode": 0o660, "gid": 6},
                   {"type": "p", "path": "/run/fifo"},
                   {"type": "u", "path": "/dev/unbuf", "major": 4, "minor": 1}]
        nodes = plan_devices(spec(devices=devices))
        paths = [n.path for n in nodes]
        assert paths.count("/dev/null") == 1 and paths[-5:] == ["/dev/null", "/dev/fuse", "/dev/sda", "/run/fifo",
                                                                "/dev/unbuf"]
        by = {n.path: n for n in nodes}
        assert by["/dev/null"] == DeviceNode("/dev/null", "c", 1, 3, 0o600, 5, 0)
        assert by["/dev/fuse"] == DeviceNode("/dev/fuse", "c", 10, 229, 0o666, 0, 0)
        assert by["/dev/sda"].file_type == stat.S_IFBLK and by["/dev/sda"].mode == 0o660 and by["/dev/sda"].gid == 6
        assert by["/run/fifo"].file_type == stat.S_IFIFO and by["/run/fifo"].rdev == 0
        assert by["/dev/unbuf"].file_type == stat.S_IFCHR and by["/dev/unbuf"].rdev == os.makedev(4, 1)

    def test_ptmx_is_never_a_node(self):
        nodes = plan_devices(spec(devices=[{"type": "c", "path": "/dev/ptmx", "major": 5, "minor": 2}]))
        assert "/dev/ptmx" not in [n.path for n in nodes]

    def test_needs_setup_dev(self):
        assert needs_setup_dev(spec())
        assert needs_setup_dev(spec([{"destination": "/dev", "type": "tmpfs"}]))
        assert not needs_setup_dev(spec([{"destination": "/dev/", "source": "/dev", "options": ["rbind"]}]))
        assert not needs_setup_dev(spec([{"destination": "/dev", "source": "/d", "type": "bind"}]))

    def test_symlinks_and_kcore(self, tmp_path):
        links = dict((link, target) for target, link in dev_symlinks(str(tmp_path)))
        assert links == {"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0",
                         "/dev/stdout": "/proc/self/fd/1", "/dev/stderr": "/proc/self/fd/2"}
        (tmp_path / "kcore").write_text("")
        assert ("/proc/kcore", "/dev/core") in dev_symlinks(str(tmp_path))

    def test_default_devices_are_immutable_defaults(self):
        assert isinstance(DEFAULT_DEVICES, tuple)


# -- resolving inside the root ------------------------------------------------------------


@pytest.fixture(params=["openat2", "walk"])
def resolver(request, monkeypatch):
    """Every resolver test runs both ways: the openat2 fast path and the
    component walk (what is used for creation, and without openat2)."""
    if request.param == "walk":
        monkeypatch.setattr(safepath, "_have_openat2", False)
    return request.param


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "a" / "b").mkdir(parents=True)
    outside.mkdir()
    (root / "file").write_text("f")
    os.symlink(str(outside), root / "abs")  # absolute: means <root><outside>
    os.symlink("../../../../../..", root / "up")  # climbs: clamped at the root
    os.symlink("a/b", root / "rel")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    return root, outside


def where(r: Root, fd: int) -> str:
    try:
        return r.container_path(fd)
    finally:
        os.close(fd)


class TestSafePath:
    def test_clean(self):
        assert clean("") == "/" and clean("/") == "/" and clean("//a//b/") == "/a/b"
        assert clean("../../x") == "/x" and clean("/a/../../b/./c") == "/b/c" and clean("rel/p") == "/rel/p"
        assert components("/a/../b//c/") == ["b", "c"] and components("/..") == []

    def test_existing(self, tree, resolver):
        root, _ = tree
        with Root(str(root)) as r:
            assert where(r, r.resolve("/a/b")) == "/a/b"
            assert where(r, r.resolve("/rel")) == "/a/b"
            assert where(r, r.resolve("/")) == "/"
            assert where(r, r.resolve("/up/a")) == "/a"

    def test_absolute_symlink_means_inside(self, tree, resolver):
        root, outside = tree
        with Root(str(root)) as r:
            with pytest.raises(FileNotFoundError):
                r.resolve("/abs/x")
            assert where(r, r.resolve("/abs/x/y", create="dir")) == f"{outside}/x/y"
            assert where(r, r.resolve("/abs/f", create="file")) == f"{outside}/f"
        assert os.listdir(outside) == []
        assert (root / str(outside).lstrip("/") / "x" / "y").is_dir()
        assert (root / str(outside).lstrip("/") / "f").is_file()

    def test_dotdot_is_clamped(self, tree, resolver):
        root, _ = tree
        with Root(str(root)) as r:
            assert where(r, r.resolve("/up/up/escape", create="dir")) == "/escape"
            assert where(r, r.resolve("../../../escape2", create="dir")) == "/escape2"
        assert (root / "escape").is_dir() and (root / "escape2").is_dir()
        assert not (root.parent / "escape").exists() and not (root.parent / "escape2").exists()

    def test_errors(self, tree, resolver):
        root, _ = tree
        with Root(str(root)) as r:
            with pytest.raises(OSError) as e:
                r.resolve("/loop1", create="dir")
            assert e.value.errno == errno.ELOOP
            with pytest.raises(OSError) as e:
                r.resolve("/file/x", create="dir")
            assert e.value.errno == errno.ENOTDIR
            assert e.value.filename == "/file/x"

    def test_magic_links(self, resolver):
        # /proc/self/root is a magic link (the kernel jumps, it has no target
        # to check): openat2 refuses it; the walk reads it ("/") and resolves
        # that as a container path again, which stays inside.
        with Root("/") as r:
            if resolver == "openat2":
                with pytest.raises(OSError) as e:
                    r.resolve("/proc/self/root/etc")
                assert e.value.errno == errno.ELOOP
            else:
                assert where(r, r.resolve("/proc/self/root/etc")) == "/etc"

    def test_resolve_parent(self, tree, resolver):
        root, outside = tree
        with Root(str(root)) as r:
            fd, name = r.resolve_parent("/abs/dev/null")
            assert name == "null" and where(r, fd) == f"{outside}/dev"
            fd, name = r.resolve_parent("/top")
            assert name == "top" and where(r, fd) == "/"
            with pytest.raises(OSError):
                r.resolve_parent("/")

    def test_a_component_swapped_after_mkdir_is_not_followed(self, tree, monkeypatch):
        """The attacker wins every race: each directory we make becomes a
        symlink out before we open it.  We must fail, and make nothing outside."""
        root, outside = tree
        monkeypatch.setattr(safepath, "_have_openat2", False)
        real_mkdirat = fs.mkdirat

        def hostile_mkdirat(dirfd, name, mode=0o755, shown=None):
            real_mkdirat(dirfd, name, mode, shown)
            os.rmdir(name, dir_fd=dirfd)
            os.symlink(str(outside), name, dir_fd=dirfd)  # absolute, so "inside" again

        monkeypatch.setattr(fs, "mkdirat", hostile_mkdirat)
        with Root(str(root)) as r:
            with pytest.raises(OSError) as e:
                r.resolve("/new/deeper", create="dir")
        assert e.value.errno in (errno.ELOOP, errno.EAGAIN)
        assert os.listdir(outside) == []

    def test_racing_symlink_swaps_never_escape(self, tmp_path):
        """A thread flips /a between a directory and symlinks out (absolute
        and relative) while we resolve and create beneath it."""
        root = tmp_path / "root"
        outside = tmp_path / "outside"
        root.mkdir()
        outside.mkdir()
        stop = threading.Event()

        def flipper():
            targets = [str(outside), "../outside", "../../outside"]
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    os.symlink(targets[i % 3], root / "a.new")
                    os.replace(root / "a.new", root / "a")  # fails with EISDIR when a is a dir
                except OSError:
                    try:
                        os.rename(root / "a", root / f"old{i}")
                    except OSError:
                        pass
                try:
                    os.unlink(root / "a.new")
                except OSError:
                    pass

        t = threading.Thread(target=flipper, daemon=True)
        t.start()
        escaped = []
        try:
            with Root(str(root)) as r:
                for i in range(300):
                    for mode in ("openat2", "walk"):
                        safepath._have_openat2 = mode == "openat2"
                        try:
                            fd = r.resolve(f"/a/b{i}/c", create="dir")
                        except OSError:
                            continue
                        full = os.readlink(f"/proc/self/fd/{fd}")
                        os.close(fd)
                        if not full.startswith(str(root) + "/"):
                            escaped.append(full)
        finally:
            safepath._have_openat2 = True
            stop.set()
            t.join()
        assert escaped == []
        assert os.listdir(outside) == []

    def test_root_of_tmp_is_checked(self, tmp_path):
        with Root(str(tmp_path)) as r:
            assert r.real == os.path.realpath(tmp_path)
            fd = os.open("/", os.O_PATH)
            with pytest.raises(OSError) as e:
                r.check_inside(fd, "/x")
            assert e.value.errno == errno.EXDEV


# -- tmpcopyup --------------------------------------------------------------------------


def test_copy_tree(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d" / "e").mkdir(parents=True)
    dst.mkdir()
    (src / "f").write_bytes(b"x" * 100000)
    os.chmod(src / "f", 0o751)
    (src / "d" / "e" / "g").write_text("deep")
    os.chmod(src / "d", 0o700)
    os.symlink("/etc/passwd", src / "link")  # copied as a link, never followed
    os.mkfifo(src / "fifo")
    os.utime(src / "f", ns=(1_000_000_000, 2_000_000_000))
    s = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    d = os.open(dst, os.O_RDONLY | os.O_DIRECTORY)
    try:
        copy_tree(s, d)
    finally:
        os.close(s)
        os.close(d)
    assert (dst / "f").read_bytes() == b"x" * 100000
    assert stat.S_IMODE(os.stat(dst / "f").st_mode) == 0o751
    assert os.stat(dst / "f").st_mtime_ns == 2_000_000_000
    assert stat.S_IMODE(os.stat(dst / "d").st_mode) == 0o700
    assert (dst / "d" / "e" / "g").read_text() == "deep"
    assert os.readlink(dst / "link") == "/etc/passwd"
    assert stat.S_ISFIFO(os.lstat(dst / "fifo").st_mode)


# -- the syscall layer ---------------------------------------------------------------------


class TestSysFs:
    def test_openat2_error_names_call_and_path(self, tmp_path):
        dirfd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
        try:
            with pytest.raises(OSError) as e:
                fs.openat2(dirfd, "missing", fs.O_PATH, 0, fs.RESOLVE_IN_ROOT)
        finally:
            os.close(dirfd)
        assert e.value.errno == errno.ENOENT and e.value.strerror == "openat2: No such file or directory"
        assert e.value.filename == "missing"

    def test_openat2_resolve_beneath_refuses_dotdot(self, tmp_path):
        dirfd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
        try:
            with pytest.raises(OSError) as e:
                fs.openat2(dirfd, "..", fs.O_PATH, 0, fs.RESOLVE_BENEATH)
            assert e.value.errno == errno.EXDEV
            fd = fs.openat2(dirfd, "../../..", fs.O_PATH, 0, fs.RESOLVE_IN_ROOT)
            assert os.readlink(f"/proc/self/fd/{fd}") == str(tmp_path)
            os.close(fd)
        finally:
            os.close(dirfd)

    def test_trace_lines(self, tmp_path, capfd):
        dirfd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
        trace.enable()
        try:
            fs.mkdirat(dirfd, "d", 0o700)
            fd = fs.openat2(dirfd, "d", fs.O_PATH | os.O_CLOEXEC, 0, fs.RESOLVE_IN_ROOT | fs.RESOLVE_NO_MAGICLINKS)
            os.close(fd)
            with pytest.raises(OSError):
                fs.mkdirat(dirfd, "d", 0o700)
        finally:
            trace.enable(False)
            os.close(dirfd)
        err = capfd.readouterr().err
        assert f'mkdirat({dirfd}, "d", 0o700) = 0' in err
        assert 'openat2(' in err and "resolve=RESOLVE_NO_MAGICLINKS|RESOLVE_IN_ROOT" in err
        assert "= -1 EEXIST (File exists)" in err

    def test_statfs_type(self):
        assert fs.statfs_type("/proc") == fs.PROC_SUPER_MAGIC
        assert fs.statfs_type("/sys") == fs.SYSFS_MAGIC
        with pytest.raises(FileNotFoundError) as e:
            fs.statfs_type("/no/such/path")
        assert e.value.strerror.startswith("statfs:")

    def test_statvfs_on_an_o_path_fd(self, tmp_path):
        fd = os.open(tmp_path, os.O_PATH)
        try:
            assert fs.statvfs(fd).f_bsize > 0
        finally:
            os.close(fd)
