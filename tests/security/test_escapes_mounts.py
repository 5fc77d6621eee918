"""Escapes through the filesystem tree: mounting, walking out of the root,
and mounts the runtime itself could be tricked into placing on the host.
"""

from __future__ import annotations

import os
import subprocess
import time

from conftest import requires_root
from security.helpers import caps, lines

from nsbox.oci.default import default_spec

pytestmark = requires_root


def test_mounting_needs_cap_sys_admin(box):
    # Attack: mount something -- a tmpfs to hide a path, a fresh proc to
    # undo the masks, a bind of / to reach files outside a volume, a remount
    # of a read-only mount.  Defence: mount(2) needs CAP_SYS_ADMIN, which is
    # not in the default bounding set (EPERM before any path is looked at).
    status, out, err = box.sh("probe mount tmpfs tmpfs /mnt; probe mount proc proc /mnt; probe mount none / /mnt bind; "
                              "probe mount none none /sys remount-rw; mount -t tmpfs tmpfs /mnt 2>&1; "
                              "grep -c ' /mnt ' /proc/self/mountinfo")
    assert lines(out) == ["mount: EPERM"] * 4 + ["mount: permission denied (are you root?)", "0"], (out, err)

    # Control: with CAP_SYS_ADMIN the same tmpfs mount is made (in the
    # container's own mount namespace: nothing reaches the host).
    status, out, err = box.sh("probe mount tmpfs tmpfs /mnt && grep -c ' /mnt ' /proc/self/mountinfo",
                              process={"capabilities": caps("CAP_SYS_ADMIN")})
    assert lines(out) == ["mount: ok", "1"], (out, err)


def test_open_by_handle_at_cannot_reach_the_hosts_root(box):
    # Attack "Shocker" (docker, 2014): name_to_handle_at on any file of a
    # mounted filesystem, then open_by_handle_at with a forged handle of its
    # root inode (2 on ext4) -- a directory fd at the top of the host's
    # filesystem, past the container's root.  Defence: open_by_handle_at
    # needs CAP_DAC_READ_SEARCH, not in the default set (EPERM).
    status, out, err = box.sh("probe handle /etc")
    assert lines(out) == ["name_to_handle_at: ok", "open_by_handle_at: EPERM"], (out, err)

    # Control, where the forged handle means something (an ext* rootfs):
    # with CAP_DAC_READ_SEARCH the container gets the root of the host
    # filesystem holding its rootfs (only fstat'ed, nothing read).
    st = os.stat(box.rootfs)
    fs_root = _filesystem_root(st.st_dev)
    if fs_root is not None and os.stat(fs_root).st_ino == 2:
        status, out, err = box.sh("probe handle /etc", process={"capabilities": caps("CAP_DAC_READ_SEARCH")})
        root = os.stat(fs_root)
        assert lines(out)[-1] == f"handle: {root.st_dev}:{root.st_ino}", (out, err)


def _filesystem_root(dev: int) -> str | None:
    """Where the whole filesystem of *dev* is mounted on the host, if it is."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            major, minor = fields[2].split(":")
            if os.makedev(int(major), int(minor)) == dev and fields[3] == "/":
                return fields[4]
    return None


def test_chroot_cannot_climb_out_of_the_root(box):
    # Attack: the classic chroot escape -- CAP_SYS_CHROOT is in docker's
    # default set: chroot into a subdirectory while the cwd stays above it,
    # chdir("..") past the new root, chroot(".").  Under a root entered by
    # chroot alone this lands on the host's /.  Defence: pivot_root plus
    # unmounting the old root: above the container's / there is nothing
    # left to climb to.  (--no-pivot must hold too: it moves the rootfs
    # over / rather than chrooting into a subdirectory of the host.)
    (box.tmp / "host-sentinel").write_text("outside the rootfs\n")
    probe = ["probe", "chroot-escape", "/tmp/scratch", str(box.tmp / "host-sentinel")]
    for flags in ((), ("--no-pivot",)):
        status, out, err = box.run(probe, flags=flags)
        assert lines(out) == ["chroot: ok", "chroot-dot: ok", "root: same", "hostpath: absent"], (flags, out, err)


def test_mount_destination_swapped_for_a_symlink_during_create(box, tmp_path):
    # CVE-2021-30465 class, the race: while `create` runs, the rootfs (which
    # the image, a hook, or another container sharing it controls) keeps
    # swapping a directory on a mount's path with a symlink to a host
    # directory.  runc checked the path, then mounted by name: a swap in
    # between put the mount outside the rootfs.  Defence (nsbox.rootfs.safepath):
    # every lookup is openat2(RESOLVE_IN_ROOT) relative to the rootfs fd, each
    # created component is reopened O_NOFOLLOW, and the mount goes onto
    # /proc/self/fd/N of the resolved O_PATH fd -- no name is looked up twice.
    # The static case (a symlink that stays put) is in tests/test_rootfs_kernel.py.
    # Here: a swap at the final component (/final) and at an intermediate one
    # (/middle/sub), each a tmpfs with a size we can recognise; every create
    # either fails or puts both mounts where the container sees them (inside
    # its root), and the host directories stay empty and unmounted.
    rootfs = box.rootfs
    host_final, host_middle = tmp_path / "host-final", tmp_path / "host-middle"
    pairs = []
    for name, target in (("final", host_final), ("middle", host_middle)):
        target.mkdir()
        os.mkdir(os.path.join(rootfs, name))
        os.symlink(str(target), os.path.join(rootfs, f"{name}.swap"))
        pairs += [os.path.join(rootfs, name), os.path.join(rootfs, f"{name}.swap")]
    mounts = default_spec()["mounts"] + [
        {"destination": "/final", "type": "tmpfs", "source": "tmpfs", "options": ["size=1072k"]},
        {"destination": "/middle/sub", "type": "tmpfs", "source": "tmpfs", "options": ["size=1076k"]},
    ]
    b = box.bundle(["grep", "-e", "size=1072k", "-e", "size=1076k", "/proc/self/mountinfo"], mounts=mounts)
    outcomes = []
    # one process swapping both pairs as fast as it can (one core: the
    # runtime needs the other one)
    flipper = subprocess.Popen([box.probe, "flip", *pairs], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert flipper.stdout.readline() == "flipping\n"
        deadline = time.monotonic() + 5
        for i in range(25):
            if time.monotonic() > deadline:
                break
            r = box("run", "--bundle", b, f"race{i}", timeout=30)
            if r.returncode == 0:
                sizes = sorted(line.split(" - ")[1].split()[2].split(",")[1] for line in lines(r.stdout))
                outcomes.append(("ok", sizes))
                assert sizes == ["size=1072k", "size=1076k"], r.stdout  # both visible: inside the root
            else:
                outcomes.append(("failed", r.stderr.strip()))
                assert "nsbox: run:" in r.stderr, r.stderr  # a clean refusal, not a crash
            # The attack's goal, checked after every create: nothing made in
            # (or mounted on) the host directories.
            assert os.listdir(host_final) == [] and os.listdir(host_middle) == [], outcomes
            assert flipper.poll() is None, flipper.stderr.read()  # still swapping
    finally:
        flipper.kill()
        flipper.wait()
        flipper.stdout.close()
        flipper.stderr.close()
    assert sum(1 for kind, _ in outcomes if kind == "ok") >= 3, outcomes
    with open("/proc/self/mountinfo") as f:
        assert str(tmp_path) not in f.read()
