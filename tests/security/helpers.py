"""Helpers of the escape tests: bundles on top of ``rt`` and spec pieces."""

from __future__ import annotations

import os
import shutil

from conftest import NSBOX
from test_runtime import Runtime

from nsbox.oci.default import default_spec
from nsbox.security.capabilities import NAMES
from nsbox.testing.bundle import read_config, write_config

#: applets beyond nsbox.testing.bundle.BUSYBOX_APPLETS that the attacks use
EXTRA_APPLETS = ("mknod", "umount", "chroot", "sed", "tail", "od", "sort")


class Box:
    """Bundles and runs on top of ``rt``, with seccomp left out by default.

    The default spec carries a seccomp profile; most tests here prove a
    defence that must hold on its own (capabilities, masks, the devices
    cgroup, the runtime's own code), so they run without the profile unless
    they say otherwise (``seccomp=True``)."""

    def __init__(self, rt: Runtime, probe: str) -> None:
        self.rt = rt
        self.rootfs = rt.rootfs
        self.tmp = rt.tmp
        self.probe = probe
        install(self.rootfs, probe)

    def bundle(self, args, *, seccomp: bool = False, edit=None, **overrides) -> str:
        b = self.rt.bundle(args, **overrides)
        spec = read_config(b)
        if not seccomp:
            spec["linux"].pop("seccomp", None)
        if edit is not None:
            edit(spec)
        write_config(b, spec)
        return b

    def run(self, args, *, flags=(), **kw) -> tuple[int, str, str]:
        """``nsbox run`` (foreground): (status, stdout, stderr)."""
        b = self.bundle(args, **kw)
        r = self.rt("run", *flags, "--bundle", b, f"c{self.rt.count}", timeout=60)
        return r.returncode, r.stdout, r.stderr

    def sh(self, script: str, **kw) -> tuple[int, str, str]:
        return self.run(["sh", "-c", script], **kw)

    def create(self, cid, args, **kw) -> str:
        """``nsbox create`` with the container's stdio in files (see Runtime.create)."""
        b = self.bundle(args, **kw)
        with open(self.tmp / f"{cid}.out", "w") as out, open(self.tmp / f"{cid}.err", "w+") as err:
            r = self.rt("create", "--bundle", b, cid, stdout=out, stderr=err)
            err.seek(0)
            assert r.returncode == 0, err.read()
        return b

    def __call__(self, *args, **kw):
        return self.rt(*args, **kw)

    def command(self, *args: str) -> list[str]:
        """The argv of ``nsbox --root <ours> ARGS`` (for a caller other than pytest)."""
        return [*NSBOX, "--root", self.rt.root, *args]


def install(rootfs: str, probe: str) -> None:
    shutil.copy2(probe, os.path.join(rootfs, "bin", "probe"))
    for applet in EXTRA_APPLETS:
        link = os.path.join(rootfs, "bin", applet)
        if not os.path.lexists(link):
            os.symlink("busybox", link)


def host_capabilities() -> list[str]:
    """The capabilities this (root) test process holds: what a "privileged"
    control container can be given here (root lacks CAP_SYS_RESOURCE here)."""
    with open("/proc/self/status") as f:
        eff = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    return [name for i, name in enumerate(NAMES) if eff >> i & 1]


def caps(*extra: str) -> dict[str, list[str]]:
    """process.capabilities: docker's default set plus *extra*."""
    names = list(default_spec()["process"]["capabilities"]["bounding"]) + list(extra)
    return {k: names for k in ("bounding", "effective", "permitted")}


def linux(**changes) -> dict[str, object]:
    """The default spec's ``linux`` object with *changes* (seccomp is dropped by Box)."""
    out = dict(default_spec()["linux"])
    out.update(changes)
    return out


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


