"""The container's filesystem: from the bundle's rootfs to the container's ``/``.

Called by the container's init (nsbox.process.init), which is already in its
new mount namespace (and the others) and still sees the host's filesystem.
Two calls, because the runtime does work between them (sysctls need a
writable /proc/sys):

  setup_rootfs(spec, in_user_namespace=…, no_pivot=…, before_pivot=…, before_cgroup=…)
  │
  │  host paths visible ───────────────────────────────────────────────────
  ├─ 1. / → rslave (or linux.rootfsPropagation)
  │       FIRST: every mount below is then invisible to the host; without
  │       it, a shared / would propagate our mounts out of the container.
  ├─ 2. the mount holding the rootfs → private (or slave)
  │       pivot_root(2) refuses a new root whose parent mount is shared.
  ├─ 3. bind the rootfs onto itself (rbind), THEN open it as an fd
  │       pivot_root needs a mount point; opening after the bind means the
  │       fd, and so every mount below, is on the tree that becomes "/".
  ├─ 4. spec mounts, in the spec's order (mounts.py)
  │       order matters: /dev before /dev/pts, /sys before /sys/fs/cgroup.
  │       Each destination is resolved inside the rootfs (safepath.py).
  │       before_cgroup() before each cgroup mount (cgroupfs.py): they show our cgroup.
  ├─ 5. /dev: device nodes, /dev/ptmx, /dev/fd & co (devices.py)
  │       AFTER the mounts: they go into the /dev tmpfs of step 4.
  ├─ 6. chdir(rootfs); before_pivot(): prestart/createRuntime sync and the
  │       createContainer hooks. Here, because hooks may still need the host's
  │       paths, and the container's mounts must already exist.
  │  ───────────────────────────────────── pivot ─────────────────────────
  ├─ 7. pivot_root(".", ".") + detach the old root (or MS_MOVE + chroot)
  ├─ 8. rootfsPropagation shared/unbindable applied to the new /
  │       only now: applied before, it would have joined the host's peer group.
  ├─ 9. stdio that is /dev/null now means the container's /dev/null
  └─ 10. mkdir -p process.cwd (before step 12 can make / read-only)

  (runtime: sysctls — /proc/sys still writable)

  finish_rootfs(spec)
  ├─ 11. tmpfs mounts and /dev asked "ro" become read-only
  │       (kept writable until now so mountpoints and nodes could be made)
  ├─ 12. root.readonly: remount / read-only
  ├─ 13. linux.readonlyPaths: rbind onto itself, read-only, recursively
  └─ 14. linux.maskedPaths: /dev/null over files, empty ro tmpfs over dirs
          LAST (runc's order): a mask inside a read-only path (/proc/sys/…)
          then sits on top of the read-only rebind instead of under it.
"""

from __future__ import annotations

import os

from nsbox._sys import process as _proc
from nsbox._sys.consts import MS_PRIVATE, MS_SLAVE
from nsbox._sys.mount import mount
from nsbox.oci.spec import SpecError
from nsbox.rootfs.devices import needs_setup_dev, reopen_dev_null, setup_dev
from nsbox.rootfs.mounts import _selinux_enabled, mount_spec_mounts, remount_deferred_readonly
from nsbox.rootfs.options import MountOptions, parse_mount_options, propagation_flag
from nsbox.rootfs.paths import mask_paths, readonly_paths
from nsbox.rootfs.pivot import (
    DEFAULT_ROOT_PROPAGATION,
    bind_rootfs,
    chroot_into,
    make_root_readonly,
    pivot_into,
    rootfs_parent_private,
    set_root_propagation,
)
from nsbox.rootfs.safepath import Root

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from nsbox.oci.spec import Spec

__all__ = [
    "MountOptions", "Root", "finish_rootfs", "mount_spec_mounts", "parse_mount_options", "pivot_into",
    "root_propagation", "setup_rootfs",
]


def root_propagation(spec: Spec, no_pivot: bool = False) -> int:
    """The MS_* propagation for / from linux.rootfsPropagation (default rslave)."""
    name = spec.linux.rootfs_propagation
    if not name:
        return DEFAULT_ROOT_PROPAGATION
    flag = propagation_flag(name)
    if no_pivot and flag & MS_PRIVATE:
        # Without pivot_root the host's mounts stay in our namespace; private
        # would cut them off from the host's unmounts (and the container's
        # mounts pile up under them).  runc refuses this too.
        raise SpecError("linux.rootfsPropagation", f"{name} is not safe without pivot_root")
    return flag


def setup_rootfs(spec: Spec, *, in_user_namespace: bool, no_pivot: bool = False,
                 before_pivot: Callable[[], None] | None = None, before_cgroup: Callable[[], None] | None = None,
                 mountinfo_path: str = "/proc/self/mountinfo", cgroup_path: str = "/proc/self/cgroup") -> None:
    """Steps 1-10 of the diagram above: on return we are inside the new root.
    *before_cgroup()* is called before each cgroup mount (nsbox.process.init
    waits there to be placed in the container's cgroups)."""
    # Without a mount namespace of its own the container shares the host's:
    # its mounts are then host mounts under the rootfs (delete detaches them:
    # pivot.unmount_under), and nothing may touch the propagation of the
    # host's mounts or move its root -- so steps 1, 2, 7 and 8 change.
    host_mounts = spec.linux.namespace("mount") is None
    rootfs = os.path.realpath(spec.root_path)
    if not os.path.isdir(rootfs):
        raise SpecError("root.path", f"{spec.root_path}: not a directory")
    flag = root_propagation(spec, no_pivot or host_mounts)
    if not host_mounts:
        set_root_propagation(flag)
        rootfs_parent_private(rootfs, flag)
    bind_rootfs(rootfs)
    dev = needs_setup_dev(spec)
    with Root(rootfs) as root:
        mount_spec_mounts(spec, root, in_user_namespace=in_user_namespace, mountinfo_path=mountinfo_path,
                          cgroup_path=cgroup_path, before_cgroup=before_cgroup)
        if dev:
            setup_dev(spec, root, in_user_namespace=in_user_namespace)
        # Hooks run with the rootfs as their working directory, as under runc.
        _proc.fchdir(root.fd, rootfs)
        if before_pivot is not None:
            before_pivot()
    if host_mounts:
        chroot_into(rootfs)
    else:
        pivot_into(rootfs, no_pivot=no_pivot)
    if spec.linux.rootfs_propagation and not flag & (MS_PRIVATE | MS_SLAVE) and not host_mounts:
        mount(None, "/", None, flag, None)
    if dev:
        reopen_dev_null()
    if spec.process is not None and spec.process.cwd:
        # Inside the new root: any symlink in the path is the container's.
        try:
            os.makedirs(spec.process.cwd, 0o755, exist_ok=True)
        except OSError as e:
            raise OSError(e.errno, f"process.cwd: mkdir: {e.strerror}", spec.process.cwd) from None


def finish_rootfs(spec: Spec) -> None:
    """Steps 11-14 of the diagram above (inside the new root)."""
    label = spec.linux.mount_label if spec.linux.mount_label and _selinux_enabled() else None
    with Root("/") as root:
        remount_deferred_readonly(spec, root)
        if spec.root_readonly:
            make_root_readonly()
        readonly_paths(spec.linux.readonly_paths, root)
        mask_paths(spec.linux.masked_paths, root, label)
