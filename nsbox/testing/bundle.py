"""OCI bundles for tests: a busybox-static rootfs and a config.json."""

from __future__ import annotations

import copy
import json
import os
import shutil

from nsbox.oci.default import default_spec

BUSYBOX_APPLETS = ("sh", "ls", "cat", "echo", "id", "ps", "sleep", "hostname", "mount", "stat", "touch",
                   "mkdir", "readlink", "grep", "head", "true", "false", "env", "pwd", "wc", "kill",
                   "test", "printf", "uname", "umask", "ulimit", "dd", "rm", "ln", "chmod", "tr", "cut")


def make_rootfs(path: str, busybox: str | None = None) -> str:
    """A minimal root: /bin/busybox with applet links, and the usual empty dirs."""
    busybox = busybox or shutil.which("busybox")
    if busybox is None:
        raise RuntimeError("busybox not found (apt-get install busybox-static)")
    for d in ("bin", "dev", "proc", "sys", "tmp", "etc", "root", "mnt", "run"):
        os.makedirs(os.path.join(path, d), exist_ok=True)
    shutil.copy2(busybox, os.path.join(path, "bin", "busybox"))
    for applet in BUSYBOX_APPLETS:
        link = os.path.join(path, "bin", applet)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    with open(os.path.join(path, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    with open(os.path.join(path, "etc", "group"), "w") as f:
        f.write("root:x:0:\ntty:x:5:\nnogroup:x:65534:\n")
    return path


def make_bundle(path: str, args: list[str] | None = None, rootfs: str | None = None,
                **overrides: object) -> str:
    """A bundle at *path*: rootfs/ (or *rootfs*, shared) and config.json from
    nsbox's default spec, non-terminal, with *overrides* merged at the top
    level and into ``process``/``linux`` when given as dicts."""
    os.makedirs(path, exist_ok=True)
    spec = default_spec(args=args or ["true"], terminal=False)
    spec["root"] = {"path": rootfs or "rootfs", "readonly": False}
    if rootfs is None:
        make_rootfs(os.path.join(path, "rootfs"))
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            merged = copy.deepcopy(spec[key])
            merged.update(value)  # type: ignore[union-attr]
            spec[key] = merged
        else:
            spec[key] = value
    write_config(path, spec)
    return path


def write_config(path: str, spec: dict[str, object]) -> None:
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(spec, f, indent=2)


def read_config(path: str) -> dict[str, object]:
    with open(os.path.join(path, "config.json")) as f:
        return json.load(f)
