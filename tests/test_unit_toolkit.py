"""Policy logic without the kernel: option parsing, id maps, error explanations."""

from __future__ import annotations

import os
import signal

import pytest

from nsbox._sys import trace
from nsbox._sys.consts import CLONE_NEWNS, CLONE_NEWTIME, CLONE_NEWUSER, CLONE_NEWUTS, MOUNT_FLAG_NAMES, flag_names
from nsbox.cli.ns_unshare import spec_from_args
from nsbox.cli.options import NONE, OPTIONAL, REQUIRED, HelpRequested, Opt, Parser
from nsbox.cli.signals import parse_signal
from nsbox.errors import ExecError, NamespaceError, UsageError
from nsbox.process import errpipe
from nsbox.toolkit.launch import exit_status, missing_types
from nsbox.toolkit.unshare import explain_unshare_failure
from nsbox.userns import IdMap, explain_userns_failure, parse_id_map, subordinate_ranges, validate_id_maps


def parser() -> Parser:
    return Parser("t", "", [
        Opt("-f|--fork", "", NONE),
        Opt("-m|--mount", "", OPTIONAL, const=True),
        Opt("-R|--root", "", REQUIRED),
        Opt("--map-users", "", REQUIRED, multi=True),
    ])


class TestOptions:
    def test_stops_at_first_operand(self):
        o, rest = parser().parse(["-f", "ls", "-la", "--root", "x"])
        assert o["fork"] is True and rest == ["ls", "-la", "--root", "x"]

    def test_combined_short_flags_and_optional_short_form(self):
        # util-linux: -m never takes a value, so -fm works and "-mf" is two flags
        o, rest = parser().parse(["-mf", "cmd"])
        assert o["fork"] is True and o["mount"] is True and rest == ["cmd"]

    def test_value_forms(self):
        for argv in (["--root", "/r"], ["--root=/r"], ["-R", "/r"], ["-R/r"], ["--ro=/r"]):
            assert parser().parse(argv)[0]["root"] == "/r", argv

    def test_optional_value_only_attached(self):
        o, rest = parser().parse(["--mount=/run/ns/m", "true"])
        assert o["mount"] == "/run/ns/m" and rest == ["true"]
        o, rest = parser().parse(["--mount", "true"])
        assert o["mount"] is True and rest == ["true"]

    def test_repeatable(self):
        o, _ = parser().parse(["--map-users=0:1:1", "--map-users", "1:2:3"])
        assert o["map_users"] == ["0:1:1", "1:2:3"]

    def test_double_dash(self):
        o, rest = parser().parse(["--", "-f"])
        assert o["fork"] is None and rest == ["-f"]

    @pytest.mark.parametrize("argv,msg", [
        (["--nope"], "unknown option --nope"),
        (["-x"], "unknown option -x"),
        (["--root"], "option --root needs a value"),
        (["--fork=1"], "option --fork takes no value"),
    ])
    def test_errors_name_the_option(self, argv, msg):
        with pytest.raises(UsageError, match=msg):
            parser().parse(argv)

    def test_help(self):
        with pytest.raises(HelpRequested) as h:
            parser().parse(["--help"])
        assert "--root VALUE" in h.value.text and "--mount[=VALUE]" in h.value.text


class TestUnshareSpec:
    def test_implications(self):
        spec = spec_from_args(["--mount-proc", "--monotonic", "5", "--kill-child", "true"])
        assert spec.flags & CLONE_NEWNS and spec.flags & CLONE_NEWTIME
        assert spec.fork and spec.kill_child == signal.SIGKILL and spec.mount_proc == "/proc"
        spec = spec_from_args(["-r", "true"])
        assert spec.flags & CLONE_NEWUSER
        assert spec.uid_maps == [IdMap(0, os.geteuid())] and spec.gid_maps == [IdMap(0, os.getegid())]
        assert spec.maps_written_by_self()

    def test_ranges_need_the_outside_helper(self):
        spec = spec_from_args(["--map-users=0:100000:65536", "true"])
        assert not spec.maps_written_by_self()
        spec = spec_from_args(["-r", "--setgroups=allow", "true"])
        assert not spec.maps_written_by_self()

    def test_persistent_file(self, tmp_path):
        spec = spec_from_args([f"--uts={tmp_path}/u", "true"])
        assert spec.persist == {CLONE_NEWUTS: f"{tmp_path}/u"} and spec.flags & CLONE_NEWUTS

    @pytest.mark.parametrize("argv,msg", [
        (["--propagation=sideways", "x"], "unknown propagation 'sideways'"),
        (["--setgroups=maybe", "x"], "--setgroups takes allow or deny"),
        (["--map-users=0:1", "x"], "--map-users: invalid id map '0:1'"),
        (["--map-users=0:1:1", "--map-users=0:5:1", "x"], "--map-users: uid map: inner ranges overlap"),
        (["--setuid=x", "y"], "--setuid takes a number"),
        (["--kill-child=NOPE", "x"], "unknown signal 'NOPE'"),
        (["--map-user=no-such-user-here", "x"], "no such user: no-such-user-here"),
    ])
    def test_bad_input(self, argv, msg):
        with pytest.raises(UsageError, match=msg):
            spec_from_args(argv)


class TestIdMaps:
    def test_forms(self):
        assert parse_id_map("0:1000:1") == IdMap(0, 1000, 1)
        assert parse_id_map("1000,0,1") == IdMap(0, 1000, 1)  # util-linux 2.38 order

    @pytest.mark.parametrize("text,msg", [
        ("a:b:c", "three numbers"), ("0:1:0", "count below 1"), ("0:4294967295:2", "outside"),
    ])
    def test_invalid(self, text, msg):
        with pytest.raises(ValueError, match=msg):
            parse_id_map(text)

    def test_overlap_and_limit(self):
        with pytest.raises(ValueError, match="outer ranges overlap"):
            validate_id_maps([IdMap(0, 10, 5), IdMap(100, 12, 1)])
        with pytest.raises(ValueError, match="at most 340"):
            validate_id_maps([IdMap(i, i, 1) for i in range(341)])

    def test_subordinate_ranges(self, tmp_path):
        f = tmp_path / "subuid"
        f.write_text("alice:100000:65536\nbob:200000:10\n1001:300000:5\nbroken\n")
        assert subordinate_ranges("alice", 1000, str(f)) == [(100000, 65536)]
        assert subordinate_ranges("carol", 1001, str(f)) == [(300000, 5)]
        assert subordinate_ranges("x", 1, str(tmp_path / "none")) == []


def fake_proc(tmp_path, **sysctls: str) -> str:
    for name, value in sysctls.items():
        path = tmp_path / "sys" / name.replace(".", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    (tmp_path / "self" / "ns").mkdir(parents=True)
    return str(tmp_path)


class TestExplanations:
    def test_userns_disabled_by_count(self, tmp_path):
        proc = fake_proc(tmp_path, **{"user.max_user_namespaces": "0"})
        assert "user.max_user_namespaces = 0" in explain_userns_failure(28, proc)

    def test_userns_disabled_debian_sysctl(self, tmp_path):
        proc = fake_proc(tmp_path, **{"kernel.unprivileged_userns_clone": "0"})
        assert "kernel.unprivileged_userns_clone = 0" in explain_userns_failure(1, proc)

    def test_userns_apparmor(self, tmp_path):
        proc = fake_proc(tmp_path, **{"kernel.apparmor_restrict_unprivileged_userns": "1"})
        assert "AppArmor" in explain_userns_failure(1, proc)

    def test_missing_namespace_type(self, tmp_path):
        proc = fake_proc(tmp_path)
        for name in ("uts", "mnt"):
            (tmp_path / "self" / "ns" / name).touch()
        assert missing_types(CLONE_NEWUTS | CLONE_NEWTIME, proc) == ["time"]
        err = explain_unshare_failure(OSError(22, "x"), CLONE_NEWTIME, proc)
        assert "this kernel has no time namespaces" in str(err)
        assert str(err).startswith("unshare(CLONE_NEWTIME): Invalid argument")

    def test_not_root(self):
        err = explain_unshare_failure(OSError(1, "x"), CLONE_NEWUTS)
        assert "needs CAP_SYS_ADMIN" in str(err) and "--user --map-root-user" in str(err)


class TestPlumbing:
    def test_errpipe_roundtrip(self):
        for exc in (OSError(2, "chroot: No such file or directory", "/nope"),
                    NamespaceError("setns(CLONE_NEWNET): x", "a hint", 1),
                    ExecError("cannot run x: No such file or directory", 2)):
            r, w = errpipe.open_pipe()
            errpipe.report(w, exc)
            os.close(w)
            got = errpipe.receive(r)
            os.close(r)
            assert type(got) is type(exc) and str(got) == str(exc)
        r, w = errpipe.open_pipe()
        os.close(w)
        assert errpipe.receive(r) is None
        os.close(r)

    def test_exec_error_status(self):
        assert ExecError("x", 2).exit_code == 127 and ExecError("x", 13).exit_code == 126

    def test_exit_status(self):
        assert exit_status(7 << 8) == 7
        assert exit_status(signal.SIGTERM) == 128 + signal.SIGTERM

    def test_signals(self):
        assert parse_signal("TERM") == parse_signal("sigterm") == parse_signal("15") == 15
        with pytest.raises(UsageError):
            parse_signal("99")

    def test_flag_names(self):
        assert flag_names(0, MOUNT_FLAG_NAMES) == "0"
        assert flag_names(16384 | 262144 | (1 << 30), MOUNT_FLAG_NAMES) == "MS_REC|MS_PRIVATE|0x40000000"
        assert trace.quote(None) == "NULL" and trace.quote('a"b\n') == '"a\\"b\\n"'
