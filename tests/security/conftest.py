"""Fixtures for the escape tests: a container rootfs armed with attack tools.

Every test here is an attack from inside a container that must fail, leave
the host untouched, and fail for the reason the defence gives.  Where it is
safe for the host, a test also runs the same attack with that one defence
removed (the "control") and shows it then succeeds: so the test would fail if
the defence went away, rather than passing because the attack was broken.

``box`` is the ``rt`` runtime of tests/test_runtime.py with, in its rootfs,
``/bin/probe`` (tests/security/probe.c, compiled static: the system calls
busybox cannot make) and a few more busybox applets.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))

from test_runtime import rt  # noqa: E402,F401 - the fixture

from security.helpers import Box  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

#: Host mount points whose entries must never change because of a test.
SENSITIVE = ("/", "/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/tmp", "/work", "/sys/fs/cgroup",
             "/run/netns")


@pytest.fixture(scope="session")
def probe_binary(tmp_path_factory) -> str:
    """tests/security/probe.c, compiled once per session (static)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: the probe helper cannot be built")
    out = str(tmp_path_factory.mktemp("probe") / "probe")
    r = subprocess.run([gcc, "-static", "-O1", "-Wall", "-o", out, os.path.join(HERE, "probe.c")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"gcc -static could not build the probe (static libc missing?): {r.stderr.strip()[-300:]}")
    return out


@pytest.fixture
def box(rt, probe_binary):  # noqa: F811
    return Box(rt, probe_binary)


def _mounts() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return set(f.read().splitlines())


@pytest.fixture(autouse=True)
def host_mount_table_unchanged(tmp_path):
    """No attack may leave (or make, while it runs and is undone) a mount in
    the host's namespace: under tmp_path or on a sensitive mount point."""
    before = _mounts()
    yield
    after = _mounts()
    changed = [line for line in after ^ before
               if line.split()[4].startswith(str(tmp_path)) or line.split()[4] in SENSITIVE]
    assert not changed, f"host mount table changed: {changed}"

