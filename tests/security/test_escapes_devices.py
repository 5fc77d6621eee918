"""Escapes through device nodes: a container that keeps CAP_MKNOD (docker's
default set does) can make a node for any device number; the devices cgroup
is what keeps it from opening one outside its allow-list.

Nothing here writes to a device: every attempt is an open for reading.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import requires_root
from security.helpers import lines, linux

pytestmark = requires_root

SENTINEL = b"NSBOX-LOOP-SENTINEL"
ALLOW_ALL = {"devices": [{"allow": True, "access": "rwm"}]}


@pytest.fixture
def loop_device(tmp_path):
    """A read-only loop device over an image under tmp_path that starts with
    SENTINEL: a host block device whose contents we know, and may read."""
    losetup = shutil.which("losetup")
    if losetup is None:
        pytest.skip("losetup is not installed")
    image = tmp_path / "disk.img"
    image.write_bytes(SENTINEL + b"\0" * (1 << 20))
    r = subprocess.run([losetup, "--find", "--show", "--read-only", str(image)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"no loop device: {r.stderr.strip()}")
    dev = r.stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run([losetup, "--detach", dev], check=False)


def _majmin(rdev: int) -> str:
    return f"{os.major(rdev)} {os.minor(rdev)}"


def test_block_device_nodes_cannot_be_opened(box, loop_device):
    # Attack: mknod a node for a host disk and read it (and, next, write
    # it): the whole host filesystem, past every mount.
    # Defence: the devices cgroup (linux.resources.devices: deny all but
    # runc's default character devices): mknod succeeds (CAP_MKNOD, and the
    # cgroup's "b *:* m" rule), the open fails with EPERM.
    # Two disks: the loop device (whose contents we know), and the host's
    # root disk (which this host refuses to open even to root outside any
    # container, so only the loop device gives a control).
    loop = _majmin(os.stat(loop_device).st_rdev)
    root_disk = _majmin(os.stat("/").st_dev)
    script = (f"mknod /tmp/loop b {loop} && echo mknod ok; dd if=/tmp/loop bs=512 count=1 2>&1 | head -c 64; echo; "
              f"mknod /tmp/disk b {root_disk} && echo mknod ok; dd if=/tmp/disk bs=512 count=1 2>&1 | head -c 64; echo")
    status, out, err = box.sh(script)
    assert status == 0, err
    assert lines(out) == ["mknod ok", "dd: can't open '/tmp/loop': Operation not permitted",
                          "mknod ok", "dd: can't open '/tmp/disk': Operation not permitted"], out

    # Control: with the devices cgroup opened up, the same node reads the
    # host's loop device: the cgroup is what stops it.
    status, out, err = box.sh(f"mknod /tmp/loop-c b {loop} && dd if=/tmp/loop-c bs=512 count=1 2>/dev/null | head -c 19",
                              linux=linux(resources=ALLOW_ALL))
    assert (status, out) == (0, SENTINEL.decode()), err


def test_character_device_nodes_outside_the_allow_list(box):
    # Attack: nodes for /dev/kmsg (the host's kernel log), /dev/mem and
    # /dev/port (physical memory and I/O ports), /dev/fuse (a FUSE
    # connection: a filesystem the host kernel would call into).
    # Defence: the same devices cgroup; runc's defaults (null, zero, ...)
    # stay usable, which shows the nodes themselves are fine.
    nodes = {"kmsg": "1 11", "mem": "1 1", "port": "1 4", "fuse": "10 229", "null": "1 3", "zero": "1 5"}
    script = "; ".join(f"mknod /tmp/{name} c {mm}; {{ true < /tmp/{name}; }} 2>&1 && echo {name} opened"
                       for name, mm in nodes.items())
    status, out, err = box.sh(script)
    assert status == 0, err
    assert lines(out) == [f"sh: can't open /tmp/{name}: Operation not permitted"
                          for name in ("kmsg", "mem", "port", "fuse")] + ["null opened", "zero opened"], out

    # Control: /dev/fuse opens once the cgroup allows it (opening and closing
    # a FUSE connection that was never mounted does nothing).
    if os.path.exists("/dev/fuse"):
        status, out, err = box.sh("mknod /tmp/fuse-c c 10 229; true < /tmp/fuse-c && echo fuse opened",
                                  linux=linux(resources=ALLOW_ALL))
        assert (status, out) == (0, "fuse opened\n"), err
