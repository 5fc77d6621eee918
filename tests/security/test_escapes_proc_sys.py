"""Escapes through /proc and /sys: the kernel's global knobs and the host's
kernel state that a default container must neither change nor read.

The defences: ``linux.readonlyPaths`` (read-only binds over /proc/sys,
/proc/sysrq-trigger, ...), ``linux.maskedPaths`` (/dev/null over files, an
empty read-only tmpfs over directories), and, so that neither can be undone,
no CAP_SYS_ADMIN plus the kernel's mount locking in any user namespace the
container makes for itself.
"""

from __future__ import annotations

import os

from conftest import requires_root
from security.helpers import lines, linux

from nsbox.oci.default import MASKED_PATHS

pytestmark = requires_root

# Global (not namespaced) sysctls: a write would change the host.  The
# attempt is an O_TRUNC open (`true > file`), which writes nothing even where
# it succeeds; only printk_ratelimit is really written, with its own value.
GLOBAL_SYSCTLS = ("kernel/core_pattern", "kernel/modprobe", "kernel/panic", "kernel/printk_ratelimit",
                  "vm/drop_caches", "fs/suid_dumpable")


def _sysctl(name: str) -> str:
    with open(f"/proc/sys/{name}") as f:
        return f.read()


def test_global_sysctls_are_read_only(box):
    # Attack: rewrite the host's kernel.core_pattern (a pipe to a program the
    # kernel runs as host root on the next crash), kernel.modprobe, ...
    # Defence: /proc/sys is a read-only bind (readonlyPaths), so every open
    # for writing fails with EROFS before the sysctl handler is reached.
    present = [name for name in GLOBAL_SYSCTLS if os.path.exists(f"/proc/sys/{name}")]  # modprobe: not here
    before = {name: _sysctl(name) for name in present if name != "vm/drop_caches"}  # write-only
    opens = "".join(f"{{ true > /proc/sys/{name}; }} 2>&1; echo {name} rc=$?; " for name in present)
    script = (opens + "v=$(cat /proc/sys/kernel/printk_ratelimit); { echo $v > /proc/sys/kernel/printk_ratelimit; } 2>&1; "
              "echo write-back rc=$?; echo flags $(grep ' /proc/sys ' /proc/self/mountinfo | cut -d' ' -f6)")
    if os.path.exists("/proc/sysrq-trigger"):  # not on every kernel (not on this one)
        script += "; { true > /proc/sysrq-trigger; } 2>&1; echo sysrq rc=$?"
    status, out, err = box.sh(script)
    assert status == 0, err
    seen = lines(out)
    for name in present:
        assert f"sh: can't create /proc/sys/{name}: Read-only file system" in seen, (name, seen)
        assert f"{name} rc=1" in seen
    assert "sh: can't create /proc/sys/kernel/printk_ratelimit: Read-only file system" in seen
    assert "write-back rc=1" in seen
    flags = next(line.split()[1] for line in seen if line.startswith("flags "))
    assert "ro" in flags.split(","), flags  # the bind's own (per-mount) flags
    if os.path.exists("/proc/sysrq-trigger"):
        assert "sh: can't create /proc/sysrq-trigger: Read-only file system" in seen
    assert {name: _sysctl(name) for name in before} == before

    # Control: without readonlyPaths the same write-back reaches the host's
    # sysctl (harmless: the value it already has), so the bind is what stops it.
    status, out, err = box.sh("v=$(cat /proc/sys/kernel/printk_ratelimit); "
                              "echo $v > /proc/sys/kernel/printk_ratelimit && echo wrote",
                              linux=linux(readonlyPaths=[]))
    assert (status, out) == (0, "wrote\n"), err
    assert {name: _sysctl(name) for name in before} == before


def test_masked_paths_hide_the_hosts_kernel_state(box):
    # Attack: read /proc/kcore (kernel memory), /proc/keys (every key on the
    # host), /proc/timer_list and /proc/sched_debug (host tasks and
    # addresses), /sys/firmware (ACPI tables, EFI variables).
    # Defence: maskedPaths: /dev/null bound over files, an empty read-only
    # tmpfs over directories.  (/proc/kcore and /proc/sched_debug do not
    # exist on this kernel: inside they must be absent or empty too.)
    checks = []
    for path in MASKED_PATHS:
        checks.append(f"if [ -d {path} ]; then echo {path} dir $(ls -A {path} | wc -l); "
                      f"elif [ -e {path} ]; then echo {path} file $(cat {path} | wc -c) $(stat -c %t:%T {path}); "
                      f"else echo {path} absent; fi")
    script = "; ".join(checks) + "; touch /sys/firmware/x 2>&1; touch /proc/acpi/x 2>&1; true"
    status, out, err = box.sh(script)
    assert status == 0, err
    seen = {line.split()[0]: line.split()[1:] for line in lines(out) if line.startswith("/")}
    for path in MASKED_PATHS:
        if os.path.isdir(path):
            assert seen[path] == ["dir", "0"], (path, seen[path])
        elif os.path.exists(path):
            assert seen[path] == ["file", "0", "1:3"], (path, seen[path])  # the null device
        else:
            assert seen[path] in (["absent"], ["file", "0", "1:3"], ["dir", "0"]), (path, seen[path])
    assert "touch: /sys/firmware/x: Read-only file system" in out
    if os.path.isdir("/proc/acpi"):
        assert "touch: /proc/acpi/x: Read-only file system" in out

    # Control: without maskedPaths the same reads show the host's state.
    status, out, err = box.sh("wc -c < /proc/keys; ls -A /sys/firmware | wc -l", linux=linux(maskedPaths=[]))
    assert status == 0, err
    keys, firmware = (int(x) for x in out.split())
    assert keys > 0 and firmware > 0


def test_masks_and_read_only_binds_cannot_be_undone(box):
    # Attack: take the masks off (umount /proc/keys), remount /proc/sys
    # read-write, or mount a fresh proc/sysfs somewhere with nothing over it.
    # Defence: all need CAP_SYS_ADMIN, which the container lacks (EPERM).
    script = ("probe umount /proc/keys; probe umount /sys/firmware; probe umount /proc/sys; "
              "probe mount none none /proc/sys remount-rw; probe mount proc proc /mnt; probe mount sysfs sysfs /mnt; "
              "umount /proc/keys 2>&1; wc -c < /proc/keys")
    status, out, err = box.sh(script)
    assert lines(out) == ["umount: EPERM", "umount: EPERM", "umount: EPERM", "mount: EPERM", "mount: EPERM",
                          "mount: EPERM", "umount: can't unmount /proc/keys: Operation not permitted", "0"], (out, err)


def test_a_user_namespace_of_its_own_does_not_unmask(box):
    # Attack: unshare a user namespace (no capability needed: the kernel
    # allows it to anyone, and this container has no seccomp filter here)
    # and, root there with every capability, mount a fresh proc or sysfs, or
    # take a mask off.  Defence: the kernel itself -- mounts inherited by a
    # less privileged mount namespace are locked together (umount of a mask:
    # EINVAL; remount rw: EPERM), and a new proc/sysfs may only be mounted
    # where one is already fully visible, with nothing mounted over it
    # (EPERM: the masks are over it).
    status, out, err = box.sh("probe userns")
    if lines(out)[:1] != ["unshare: ok"]:
        # refused at the first step (user namespaces off on this host): the
        # attack stops there, and there is nothing to compare with
        assert lines(out)[0].startswith("unshare: E"), (out, err)
        return
    assert lines(out) == ["unshare: ok", "mount-proc: EPERM", "mount-sysfs: EPERM", "umount-mask: EINVAL",
                          "remount-rw: EPERM"], (out, err)

    # Control: with neither masks nor read-only binds, /proc is fully visible
    # and the fresh proc is allowed -- the masks are what stops it.
    status, out, err = box.sh("probe userns", linux=linux(maskedPaths=[], readonlyPaths=[]))
    assert "mount-proc: ok" in lines(out), (out, err)
