"""Kernel constants, with name tables so ``--trace`` can print flags by name.

Values come from the Linux UAPI headers (<linux/sched.h>, <linux/mount.h>,
<linux/prctl.h>, <linux/nsfs.h>); they are the same on every architecture we
run on (x86_64, aarch64).
"""

from __future__ import annotations

# <linux/sched.h>: namespace clone flags
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# The namespace types in the order the kernel must be asked to join them by
# file: user first (it grants the capabilities needed for the others), mount
# last among the ones that change what paths mean.  Each entry is the
# /proc/<pid>/ns/<name> file name and its clone flag.
NAMESPACE_TYPES: tuple[tuple[str, int], ...] = (
    ("user", CLONE_NEWUSER),
    ("cgroup", CLONE_NEWCGROUP),
    ("ipc", CLONE_NEWIPC),
    ("uts", CLONE_NEWUTS),
    ("net", CLONE_NEWNET),
    ("pid", CLONE_NEWPID),
    ("time", CLONE_NEWTIME),
    ("mnt", CLONE_NEWNS),
)

CLONE_FLAG_NAMES: dict[int, str] = {
    CLONE_NEWNS: "CLONE_NEWNS",
    CLONE_NEWCGROUP: "CLONE_NEWCGROUP",
    CLONE_NEWUTS: "CLONE_NEWUTS",
    CLONE_NEWIPC: "CLONE_NEWIPC",
    CLONE_NEWUSER: "CLONE_NEWUSER",
    CLONE_NEWPID: "CLONE_NEWPID",
    CLONE_NEWNET: "CLONE_NEWNET",
    CLONE_NEWTIME: "CLONE_NEWTIME",
}

# <linux/mount.h>: mount(2) flags
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MOUNT_FLAG_NAMES: dict[int, str] = {
    MS_RDONLY: "MS_RDONLY",
    MS_NOSUID: "MS_NOSUID",
    MS_NODEV: "MS_NODEV",
    MS_NOEXEC: "MS_NOEXEC",
    MS_SYNCHRONOUS: "MS_SYNCHRONOUS",
    MS_REMOUNT: "MS_REMOUNT",
    MS_MANDLOCK: "MS_MANDLOCK",
    MS_DIRSYNC: "MS_DIRSYNC",
    MS_NOSYMFOLLOW: "MS_NOSYMFOLLOW",
    MS_NOATIME: "MS_NOATIME",
    MS_NODIRATIME: "MS_NODIRATIME",
    MS_BIND: "MS_BIND",
    MS_MOVE: "MS_MOVE",
    MS_REC: "MS_REC",
    MS_SILENT: "MS_SILENT",
    MS_UNBINDABLE: "MS_UNBINDABLE",
    MS_PRIVATE: "MS_PRIVATE",
    MS_SLAVE: "MS_SLAVE",
    MS_SHARED: "MS_SHARED",
    MS_RELATIME: "MS_RELATIME",
    MS_STRICTATIME: "MS_STRICTATIME",
    MS_LAZYTIME: "MS_LAZYTIME",
}

# umount2(2) flags
MNT_FORCE = 1
MNT_DETACH = 2
MNT_EXPIRE = 4
UMOUNT_NOFOLLOW = 8

UMOUNT_FLAG_NAMES: dict[int, str] = {
    MNT_FORCE: "MNT_FORCE",
    MNT_DETACH: "MNT_DETACH",
    MNT_EXPIRE: "MNT_EXPIRE",
    UMOUNT_NOFOLLOW: "UMOUNT_NOFOLLOW",
}

# <linux/prctl.h>: the options nsbox uses
PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_GET_KEEPCAPS = 7
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_IS_SET = 1
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_LOWER = 3
PR_CAP_AMBIENT_CLEAR_ALL = 4

PRCTL_OPTION_NAMES: dict[int, str] = {
    PR_SET_PDEATHSIG: "PR_SET_PDEATHSIG",
    PR_GET_DUMPABLE: "PR_GET_DUMPABLE",
    PR_SET_DUMPABLE: "PR_SET_DUMPABLE",
    PR_GET_KEEPCAPS: "PR_GET_KEEPCAPS",
    PR_SET_KEEPCAPS: "PR_SET_KEEPCAPS",
    PR_SET_NAME: "PR_SET_NAME",
    PR_CAPBSET_READ: "PR_CAPBSET_READ",
    PR_CAPBSET_DROP: "PR_CAPBSET_DROP",
    PR_SET_SECUREBITS: "PR_SET_SECUREBITS",
    PR_SET_CHILD_SUBREAPER: "PR_SET_CHILD_SUBREAPER",
    PR_SET_NO_NEW_PRIVS: "PR_SET_NO_NEW_PRIVS",
    PR_GET_NO_NEW_PRIVS: "PR_GET_NO_NEW_PRIVS",
    PR_CAP_AMBIENT: "PR_CAP_AMBIENT",
}

# <linux/nsfs.h>: _IO(0xb7, n)
NS_GET_USERNS = 0xB701
NS_GET_PARENT = 0xB702
NS_GET_NSTYPE = 0xB703
NS_GET_OWNER_UID = 0xB704

IOCTL_NAMES: dict[int, str] = {
    NS_GET_USERNS: "NS_GET_USERNS",
    NS_GET_PARENT: "NS_GET_PARENT",
    NS_GET_NSTYPE: "NS_GET_NSTYPE",
    NS_GET_OWNER_UID: "NS_GET_OWNER_UID",
}

# <linux/time.h> clock ids that a time namespace can offset
CLOCK_MONOTONIC = 1
CLOCK_BOOTTIME = 7

# <linux/capability.h>
LINUX_CAPABILITY_VERSION_3 = 0x20080522


def flag_names(value: int, names: dict[int, str]) -> str:
    """Render a bit mask as ``A|B|0x40`` using *names*; ``0`` for no bits."""
    if value == 0:
        return "0"
    parts = []
    rest = value
    for bit, name in names.items():
        if value & bit == bit:
            parts.append(name)
            rest &= ~bit
    if rest:
        parts.append(hex(rest))
    return "|".join(parts)
