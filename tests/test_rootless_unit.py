"""Rootless policy without the kernel: who writes which id map, the default
state root, when --rootless=auto means rootless, which resources need a cgroup."""

from __future__ import annotations

import pytest

from nsbox import userns
from nsbox.cgroups.resources import Resources
from nsbox.cli import main as cli_main
from nsbox.userns import IdMap


@pytest.fixture
def recorded(monkeypatch):
    """write_maps_from_parent's calls, as a user of uid/gid 1000."""
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(userns.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(userns.os, "getegid", lambda: 1000)
    monkeypatch.setattr(userns._proc, "write_file", lambda path, text: calls.append(("write", path, text)))
    monkeypatch.setattr(userns, "write_id_maps_setuid_helpers",
                        lambda pid, u, g: calls.append(("helpers", *(m.line() for m in [*u, *g]))) if u or g else None)
    return calls


def test_own_ids_are_written_directly_setgroups_denied_first(recorded):
    userns.write_maps_from_parent(42, [IdMap(0, 1000)], [IdMap(0, 1000)])
    assert recorded == [("write", "/proc/42/setgroups", "deny\n"), ("write", "/proc/42/gid_map", "0 1000 1\n"),
                        ("write", "/proc/42/uid_map", "0 1000 1\n")]


def test_ranges_go_through_the_setuid_helpers(recorded):
    ranges = [IdMap(0, 1000), IdMap(1, 100000, 65536)]
    userns.write_maps_from_parent(42, ranges, ranges)
    assert recorded == [("helpers", "0 1000 1\n", "1 100000 65536\n", "0 1000 1\n", "1 100000 65536\n")]


def test_own_uid_direct_gid_range_by_helper(recorded):
    userns.write_maps_from_parent(42, [IdMap(0, 1000)], [IdMap(0, 100000, 10)])
    assert recorded == [("write", "/proc/42/uid_map", "0 1000 1\n"), ("helpers", "0 100000 10\n")]


def test_root_writes_everything_itself(monkeypatch):
    calls = []
    monkeypatch.setattr(userns.os, "geteuid", lambda: 0)
    monkeypatch.setattr(userns._proc, "write_file", lambda path, text: calls.append(path))
    userns.write_maps_from_parent(7, [IdMap(0, 100000, 65536)], [IdMap(0, 100000, 65536)])
    assert calls == ["/proc/7/gid_map", "/proc/7/uid_map"]


def test_default_root(monkeypatch):
    monkeypatch.setattr(cli_main.posix, "geteuid", lambda: 0)
    assert cli_main.default_root() == "/run/nsbox"
    monkeypatch.setattr(cli_main.posix, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert cli_main.default_root() == "/run/user/1000/nsbox"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert cli_main.default_root() == "/run/user/1000/nsbox"
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/tmp/xdg")
    assert cli_main.default_root() == "/tmp/xdg/nsbox"


def test_default_root_for_root_of_a_user_namespace(monkeypatch):
    # rootless podman runs its runtime as root of its user namespace, with
    # XDG_RUNTIME_DIR set: that root's state goes there, as runc's does
    monkeypatch.setattr(cli_main.posix, "geteuid", lambda: 0)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    monkeypatch.delenv("USER", raising=False)
    monkeypatch.setattr(userns, "running_in_user_namespace", lambda proc="/proc/self": True)
    assert cli_main.default_root() == "/run/user/1000/nsbox"
    monkeypatch.setenv("USER", "root")
    assert cli_main.default_root() == "/run/nsbox"
    monkeypatch.delenv("USER")
    monkeypatch.setattr(userns, "running_in_user_namespace", lambda proc="/proc/self": False)
    assert cli_main.default_root() == "/run/nsbox"  # the real root: /run/user/0 is not its state dir


def test_running_in_user_namespace(tmp_path):
    (tmp_path / "uid_map").write_text("         0          0 4294967295\n")
    assert not userns.running_in_user_namespace(str(tmp_path))
    (tmp_path / "uid_map").write_text("         0       1000          1\n")
    assert userns.running_in_user_namespace(str(tmp_path))


def _context(rootless: str | None) -> cli_main.Context:
    opts = {name: None for name in ("root", "log", "log_format", "debug", "systemd_cgroup", "rootless")}
    opts.update(rootless=rootless, root="/tmp/state")
    return cli_main.Context(opts)


def test_rootless_auto_true_false(monkeypatch):
    monkeypatch.setattr(cli_main.posix, "geteuid", lambda: 1000)
    assert _context(None).is_rootless() and _context("auto").is_rootless()
    assert not _context("false").is_rootless()
    monkeypatch.setattr(cli_main.posix, "geteuid", lambda: 0)
    assert _context("true").is_rootless()
    assert not _context("auto").is_rootless()  # pytest runs as root of the initial user namespace
    with pytest.raises(cli_main.UsageError, match="auto, true or false"):
        _context("maybe")


@pytest.mark.parametrize("raw, needs", [
    (None, False),
    ({}, False),
    ({"devices": [{"allow": False, "access": "rwm"}]}, False),
    ({"memory": {}}, False),
    ({"memory": {"limit": 1 << 26}}, True),
    ({"pids": {"limit": 10}}, True),
    ({"unified": {"memory.high": "1000000"}}, True),
])
def test_which_resources_need_a_cgroup(raw, needs):
    assert Resources(raw).limits() is needs
