"""The default ``linux.seccomp`` profile that ``nsbox spec`` writes.

Its strength is meant to match docker's default profile (the one every
``docker run`` gets): allow what ordinary programs use, refuse with EPERM
what reaches kernel state a container must not touch, and open a few
groups only when the process keeps the capability that the kernel would
check anyway.  The lists are ours, grouped by purpose so that each group
can say why it is here.

How the profile is read (by nsbox.security.seccomp, runc and crun alike):

* the filter covers every ABI the machine can run (x86_64 runs i386 and
  x32 binaries too): a syscall from an ABI left out is answered with
  libseccomp's bad-arch action, a kill, so listing them keeps 32-bit
  programs in a 64-bit container working, and filtered;
* a name that an ABI lacks is skipped for that ABI, and a name the host's
  libseccomp does not know yet is skipped altogether (``NEWER_NAMES``
  lists the ones libseccomp 2.5.4 lacks), so the lists can name
  syscalls of every architecture and of kernels newer than the host;
* several conditions on the same argument in one rule would OR, several
  arguments AND; to leave no room for a reader that differs, each
  condition here gets a rule of its own.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

EPERM = 1
ENOSYS = 38

# --- the ordinary syscalls, allowed to every container ---------------------
# Most of them only act on the caller, its own files or its children; where
# one can change shared state the kernel checks a capability or a permission
# itself (setrlimit above the hard limit, sched_setscheduler to real time,
# mknod, chown...), and the container's bounding set has already decided that.

_PROCESSES = (
    # starting, ending and waiting for processes (clone is filtered below)
    "execve", "execveat", "exit", "exit_group", "fork", "vfork",
    "wait4", "waitid", "waitpid", "restart_syscall", "set_tid_address",
    "getpid", "getppid", "gettid", "getpgid", "getpgrp", "setpgid", "getsid", "setsid",
    # pidfds: race-free handles on the container's own processes;
    # process_mrelease only frees the memory of a process already killed
    "pidfd_open", "pidfd_send_signal", "process_mrelease",
    "kill", "tkill", "tgkill",
)

_SIGNALS = (
    "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
    "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
    "sigaltstack", "signalfd", "signalfd4", "pause", "alarm",
    # the pre-rt calls that 32-bit ABIs still offer
    "signal", "sigaction", "sigpending", "sigprocmask", "sigreturn", "sigsuspend",
)

_CREDENTIALS = (
    # reading and changing the caller's own ids and capabilities; changing
    # them needs CAP_SETUID/CAP_SETGID/CAP_SETPCAP, which the kernel checks.
    # An init drops to the spec's user with these after the filter is on.
    "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
    "setfsuid", "setfsgid",
    "getuid32", "geteuid32", "getgid32", "getegid32", "getresuid32", "getresgid32", "getgroups32",
    "setuid32", "setgid32", "setreuid32", "setregid32", "setresuid32", "setresgid32", "setgroups32",
    "setfsuid32", "setfsgid32",
    "capget", "capset",
)

_MEMORY = (
    "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync",
    "remap_file_pages", "membarrier",
    # locking is bounded by RLIMIT_MEMLOCK unless CAP_IPC_LOCK is kept
    "mlock", "mlock2", "mlockall", "munlock", "munlockall",
    "pkey_alloc", "pkey_free", "pkey_mprotect",
    # anonymous files; memfd_secret memory is even hidden from the kernel's
    # own mappings, and is charged to RLIMIT_MEMLOCK like mlock
    "memfd_create", "memfd_secret",
    # CET shadow stacks (glibc 2.39 on x86) and sealing one's own mappings
    "map_shadow_stack", "mseal",
)

_THREADS = (
    "futex", "futex_time64", "futex_waitv", "futex_wait", "futex_wake", "futex_requeue",
    "set_robust_list", "get_robust_list", "rseq", "sched_yield",
)

_SCHEDULING = (
    # raising a priority or choosing a real-time policy needs CAP_SYS_NICE,
    # checked by the kernel; the rest is a process tuning itself
    "getpriority", "setpriority", "ioprio_get", "ioprio_set", "getcpu",
    "sched_getaffinity", "sched_setaffinity", "sched_getattr", "sched_setattr",
    "sched_getparam", "sched_setparam", "sched_getscheduler", "sched_setscheduler",
    "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "sched_rr_get_interval_time64",
)

_LIMITS = (
    # a hard limit can only be raised with CAP_SYS_RESOURCE, which the
    # kernel checks: no seccomp group is needed for that capability
    "getrlimit", "ugetrlimit", "setrlimit", "prlimit64", "getrusage", "times",
    "sysinfo", "uname", "umask",
)

_TIME = (
    "time", "gettimeofday", "clock_gettime", "clock_gettime64", "clock_getres", "clock_getres_time64",
    "nanosleep", "clock_nanosleep", "clock_nanosleep_time64",
    "getitimer", "setitimer",
    "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64",
    "timer_settime", "timer_settime64",
    "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime", "timerfd_settime64",
    # adjtimex with modes 0 is how ntp_gettime and chronyc read the clock's
    # state; a filter cannot see into the struct, but the kernel refuses
    # any change without CAP_SYS_TIME (setting the clock: see CAP_SYS_TIME)
    "adjtimex", "clock_adjtime", "clock_adjtime64",
)

_FILE_IO = (
    "open", "openat", "openat2", "creat", "close", "close_range",
    "read", "write", "readv", "writev", "pread64", "pwrite64",
    "preadv", "preadv2", "pwritev", "pwritev2", "lseek", "_llseek",
    "dup", "dup2", "dup3", "fcntl", "fcntl64", "ioctl", "flock",
    "fsync", "fdatasync", "sync", "syncfs", "sync_file_range",
    "fallocate", "fadvise64", "fadvise64_64", "readahead", "cachestat",
    "truncate", "truncate64", "ftruncate", "ftruncate64",
    "pipe", "pipe2", "splice", "tee", "vmsplice", "sendfile", "sendfile64", "copy_file_range",
)

_FILE_METADATA = (
    "stat", "stat64", "lstat", "lstat64", "fstat", "fstat64", "fstatat64", "newfstatat", "statx",
    "statfs", "statfs64", "fstatfs", "fstatfs64",
    "access", "faccessat", "faccessat2", "readlink", "readlinkat",
    "chmod", "fchmod", "fchmodat", "fchmodat2",
    "chown", "fchown", "fchownat", "lchown", "chown32", "fchown32", "lchown32",
    "utime", "utimes", "futimesat", "utimensat", "utimensat_time64",
    "getxattr", "lgetxattr", "fgetxattr", "getxattrat",
    "setxattr", "lsetxattr", "fsetxattr", "setxattrat",
    "listxattr", "llistxattr", "flistxattr", "listxattrat",
    "removexattr", "lremovexattr", "fremovexattr", "removexattrat",
    "file_getattr", "file_setattr",
    # makes a handle; opening one (open_by_handle_at) is the dangerous half
    "name_to_handle_at",
)

_DIRECTORIES = (
    "getcwd", "chdir", "fchdir", "mkdir", "mkdirat", "rmdir",
    "rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat",
    "unlink", "unlinkat", "getdents", "getdents64",
    # device nodes need CAP_MKNOD and the device cgroup's consent
    "mknod", "mknodat",
)

_EVENTS = (
    "poll", "ppoll", "ppoll_time64", "select", "_newselect", "pselect6", "pselect6_time64",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old",
    "epoll_wait", "epoll_wait_old", "epoll_pwait", "epoll_pwait2",
    "eventfd", "eventfd2",
    "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
    # marks on files one can read; creating the group is CAP_SYS_ADMIN's
    "fanotify_mark",
)

_ASYNC_IO = (
    # the old kernel AIO; io_uring is refused, see ALWAYS_DENIED
    "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents",
    "io_pgetevents", "io_pgetevents_time64",
)

_NETWORK = (
    # the network namespace confines these; socket() itself is filtered
    # below.  socketcall is the 32-bit multiplexer: its arguments sit behind
    # a pointer no filter can follow, so a 32-bit x86, ppc, s390 or mips o32
    # program can still open the families socket() refuses.  It stays
    # allowed because i386 libcs still use it (docker tried refusing it in
    # 2026 and went back, closing the gap with an LSM rule instead)
    "socketpair", "socketcall", "bind", "connect", "listen", "accept", "accept4",
    "getsockname", "getpeername", "getsockopt", "setsockopt", "shutdown",
    "send", "sendto", "sendmsg", "sendmmsg", "recv", "recvfrom", "recvmsg", "recvmmsg",
    "recvmmsg_time64",
)

_IPC = (
    # System V IPC and POSIX message queues live in the IPC namespace
    "ipc", "msgget", "msgctl", "msgsnd", "msgrcv", "semget", "semctl", "semop",
    "semtimedop", "semtimedop_time64", "shmget", "shmctl", "shmat", "shmdt",
    "mq_open", "mq_unlink", "mq_timedsend", "mq_timedsend_time64",
    "mq_timedreceive", "mq_timedreceive_time64", "mq_notify", "mq_getsetattr",
)

_SELF_CONFINEMENT = (
    # a process may always restrict itself further: prctl (no_new_privs,
    # PR_SET_NAME, dumpable...), nested seccomp filters, Landlock, and the
    # LSM attributes that /proc/self/attr already exposes
    "prctl", "seccomp", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
    "lsm_get_self_attr", "lsm_set_self_attr", "lsm_list_modules",
)

_MOUNT_INFO = (
    # (Linux 6.8) read the mount table by mount id, within the caller's own
    # mount namespace: what /proc/self/mountinfo shows anyway.  libmount
    # (util-linux 2.40+) uses them and falls back only on ENOSYS, so EPERM
    # would break findmnt and df in the container.
    "statmount", "listmount",
)

_RANDOM = ("getrandom",)

ALLOWED: tuple[str, ...] = tuple(sorted(set(
    _PROCESSES + _SIGNALS + _CREDENTIALS + _MEMORY + _THREADS + _SCHEDULING + _LIMITS + _TIME
    + _FILE_IO + _FILE_METADATA + _DIRECTORIES + _EVENTS + _ASYNC_IO + _NETWORK + _IPC
    + _SELF_CONFINEMENT + _MOUNT_INFO + _RANDOM)))

# --- ptrace ---------------------------------------------------------------
# Before Linux 4.8 a tracer could rewrite a tracee's syscall after the
# seccomp check had passed it, so ptrace undid the filter; from 4.8 the
# kernel checks again after the tracer, and ptrace of one's own processes
# (gdb, strace inside the container) is safe to allow.
PTRACE_SAFE_KERNEL = (4, 8)

# --- arch-specific ----------------------------------------------------------
# Each family's calls are only emitted for machines of that family.
_ARCH_FAMILY_SYSCALLS: dict[str, tuple[str, ...]] = {
    # the thread pointer (TLS) and a process's own LDT (wine, old 32-bit
    # code); uretprobe only acts when called from a uprobe trampoline
    "x86": ("arch_prctl", "modify_ldt", "get_thread_area", "set_thread_area", "uretprobe"),
    # 32-bit ARM's own calls: argument orders that fit its registers, the
    # debugger's breakpoint, the i-cache flush a JIT needs, and the TLS word
    "arm": ("arm_fadvise64_64", "arm_sync_file_range", "breakpoint", "cacheflush", "set_tls"),
    # sync_file_range with ARM-like argument order; user context switching
    "ppc": ("sync_file_range2", "swapcontext"),
    # runtime instrumentation and guarded storage are per-thread CPU
    # facilities (Java uses them); PCI MMIO only reaches regions the process
    # could already map (s390 has no other way to reach them)
    "s390": ("s390_runtime_instr", "s390_guarded_storage", "s390_pci_mmio_read", "s390_pci_mmio_write"),
    # the i-cache flush a JIT needs; hwprobe is how glibc picks its ifuncs
    "riscv": ("riscv_flush_icache", "riscv_hwprobe"),
    "mips": ("cacheflush", "cachectl", "set_thread_area"),
    "parisc": ("cacheflush",),
}

#: uname's machine -> (family, the OCI architectures its kernel runs)
_MACHINES: dict[str, tuple[str, tuple[str, ...]]] = {
    "x86_64": ("x86", ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")),
    **{m: ("x86", ("SCMP_ARCH_X86",)) for m in ("i386", "i486", "i586", "i686")},
    "aarch64": ("arm", ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM")),
    "arm64": ("arm", ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM")),
    **{m: ("arm", ("SCMP_ARCH_ARM",)) for m in ("armv6l", "armv7l", "armv8l", "arm")},
    # little-endian ppc64 kernels run no 32-bit big-endian programs
    "ppc64le": ("ppc", ("SCMP_ARCH_PPC64LE",)),
    "ppc64": ("ppc", ("SCMP_ARCH_PPC64", "SCMP_ARCH_PPC")),
    "ppc": ("ppc", ("SCMP_ARCH_PPC",)),
    "s390x": ("s390", ("SCMP_ARCH_S390X", "SCMP_ARCH_S390")),
    "s390": ("s390", ("SCMP_ARCH_S390",)),
    "riscv64": ("riscv", ("SCMP_ARCH_RISCV64",)),
    # uname says "mips"/"mips64" whatever the byte order: see _machine()
    "mips64": ("mips", ("SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPS")),
    "mips64el": ("mips", ("SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_MIPSEL")),
    "mips": ("mips", ("SCMP_ARCH_MIPS",)),
    "mipsel": ("mips", ("SCMP_ARCH_MIPSEL",)),
    "parisc64": ("parisc", ("SCMP_ARCH_PARISC64", "SCMP_ARCH_PARISC")),
    "parisc": ("parisc", ("SCMP_ARCH_PARISC",)),
}

# --- opened by a capability ---------------------------------------------------
# Each group is refused unless its capability is in the bounding set.  The
# kernel would check the capability too; refusing in the filter as well means
# a bug in that check (or a capability held in a user namespace the
# container made) reaches nothing.  A name may appear under several
# capabilities: any one of them opens it.
CAPABILITY_SYSCALLS: dict[str, tuple[str, ...]] = {
    "CAP_SYS_ADMIN": (
        # mounts, old and new API, and leaving or making namespaces
        "mount", "umount", "umount2", "fsopen", "fsconfig", "fsmount", "fspick",
        "move_mount", "open_tree", "open_tree_attr", "mount_setattr", "pivot_root",
        "unshare", "setns",
        # clone and clone3 unfiltered: see the clone rules below
        "clone", "clone3",
        # the host's quotas, profiling, BPF, and watching every file
        "quotactl", "quotactl_fd", "lookup_dcookie", "perf_event_open", "bpf", "fanotify_init",
        # the UTS namespace's names; the kernel log
        "sethostname", "setdomainname", "syslog",
    ),
    # CVE-2014-3519 ("shocker"): a file handle opens any inode of the
    # filesystem, outside the container's root
    "CAP_DAC_READ_SEARCH": ("open_by_handle_at",),
    "CAP_SYS_CHROOT": ("chroot",),
    "CAP_SYS_BOOT": ("reboot",),
    "CAP_SYS_MODULE": ("init_module", "finit_module", "delete_module"),
    "CAP_SYS_PACCT": ("acct",),
    # another process's memory and files; ptrace itself is here only for old
    # kernels, see PTRACE_SAFE_KERNEL
    "CAP_SYS_PTRACE": ("ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
                       "pidfd_getfd", "process_madvise"),
    # raw port I/O on x86
    "CAP_SYS_RAWIO": ("iopl", "ioperm"),
    # the clock is the host's: there is no time namespace for CLOCK_REALTIME
    "CAP_SYS_TIME": ("settimeofday", "stime", "clock_settime", "clock_settime64"),
    "CAP_SYS_TTY_CONFIG": ("vhangup",),
    # NUMA placement of memory, which the host schedules
    "CAP_SYS_NICE": ("get_mempolicy", "set_mempolicy", "set_mempolicy_home_node", "mbind",
                     "migrate_pages", "move_pages"),
    "CAP_SYSLOG": ("syslog",),
    "CAP_BPF": ("bpf",),
    "CAP_PERFMON": ("perf_event_open",),
}

# --- refused whatever the capabilities ---------------------------------------
ALWAYS_DENIED: tuple[str, ...] = (
    # replacing the running kernel
    "kexec_load", "kexec_file_load",
    # the kernel keyring is not namespaced: one container would see and
    # fill another's keys (and it has been a steady source of bugs)
    "keyctl", "add_key", "request_key",
    # io_uring runs its operations in kernel workers the filter never sees
    # (an IORING_OP_SOCKET passes every socket rule), and it has been the
    # target of most kernel exploits found since 2021; docker refuses it
    # since 2023, and we follow
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    # userfaultfd stalls kernel page faults at will: the tool of choice for
    # widening race windows in exploits
    "userfaultfd",
    # the host's swap; obsolete or unimplemented calls no program needs
    "swapon", "swapoff", "uselib", "nfsservctl", "_sysctl", "sysfs", "ustat",
    "vm86", "vm86old", "create_module", "get_kernel_syms", "query_module",
)

#: dangerous names a container with the default capabilities cannot call
#: (ptrace is not among them on Linux 4.8 and later; chroot is allowed
#: because CAP_SYS_CHROOT is a default capability)
DEFAULT_DENIED: tuple[str, ...] = ALWAYS_DENIED + (
    "init_module", "finit_module", "delete_module",
    "mount", "umount2", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
    "mount_setattr", "pivot_root", "unshare", "setns",
    "bpf", "perf_event_open", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "reboot", "quotactl", "acct", "iopl", "ioperm", "settimeofday", "clock_settime",
    "syslog", "vhangup", "open_by_handle_at", "lookup_dcookie",
    "sethostname", "setdomainname", "fanotify_init", "get_mempolicy", "set_mempolicy", "mbind",
)

# --- argument filters ---------------------------------------------------------
#: personality() values that only ask or change harmless traits: query
#: (0xffffffff), PER_LINUX, UNAME26, ADDR_NO_RANDOMIZE (setarch -R, gdb), and
#: the last two together.  Others, like READ_IMPLIES_EXEC, weaken the
#: caller's own protections or exist to fool older kernels' checks.
PERSONALITY_ALLOWED = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

#: CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET.
#: CLONE_NEWTIME (0x80) is not here: clone() reads those bits as the exit
#: signal, so only unshare and clone3 make time namespaces.
CLONE_NAMESPACE_FLAGS = 0x7E020000

#: the architecture families whose clone() takes the flags second
#: (clone(stack, flags, ...)), not first
_CLONE_FLAGS_SECOND = ("s390",)

#: socket() families refused.  AF_VSOCK reaches the hypervisor and the host
#: past the network namespace, which does not confine it; AF_ALG is the
#: kernel's crypto API, no container's need and the door of CVE-2026-31431
#: (a page-cache write from any user).  docker refuses both.
AF_ALG = 38
AF_VSOCK = 40
SOCKET_DENIED_FAMILIES = (AF_ALG, AF_VSOCK)
#: families from here up do not exist (AF_MAX is 46 in Linux 6.x), so the
#: allowed ranges end here, leaving room for the next few
SOCKET_FAMILY_LIMIT = 64

#: names libseccomp 2.5.4 does not know (as Debian 12 builds it: its table
#: reaches Linux 6.7), all from newer kernels; a runtime skips them, as runc
#: does, until the host's libseccomp learns them.  An older libseccomp may
#: lack more of the recent names; they are skipped the same way.
NEWER_NAMES = frozenset((
    "mseal", "statmount", "listmount",
    "lsm_get_self_attr", "lsm_set_self_attr", "lsm_list_modules",
    "getxattrat", "setxattrat", "listxattrat", "removexattrat", "file_getattr", "file_setattr",
    "open_tree_attr", "uretprobe", "riscv_hwprobe",
))


def default_seccomp(capabilities: Iterable[str], machine: str | None = None,
                    kernel: tuple[int, int] | None = None) -> dict[str, object]:
    """The profile for a process with *capabilities* (its bounding set, by
    name), on *machine* (uname's; this host's by default), under *kernel*
    (major, minor; the running one's by default)."""
    caps = set(capabilities)
    family, arches = _machine(machine)
    if kernel is None:
        kernel = running_kernel()

    allowed = set(ALLOWED) | set(_ARCH_FAMILY_SYSCALLS.get(family or "", ()))
    for cap, names in CAPABILITY_SYSCALLS.items():
        if cap in caps:
            allowed.update(names)
    if kernel >= PTRACE_SAFE_KERNEL:
        allowed.add("ptrace")
    admin = "CAP_SYS_ADMIN" in caps

    rules: list[dict[str, object]] = [{"names": sorted(allowed), "action": "SCMP_ACT_ALLOW"}]
    rules += [{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]} for v in PERSONALITY_ALLOWED]
    rules += [{"names": ["socket"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": mask, "valueTwo": value, "op": "SCMP_CMP_MASKED_EQ"}]}
              for mask, value in socket_family_blocks()]
    if not admin:
        # clone() without namespace flags: forks and threads.  clone3 passes
        # its flags in memory, which a filter cannot read, so it gets ENOSYS:
        # glibc then falls back to clone(), which this rule can inspect.
        flags_arg = 1 if family in _CLONE_FLAGS_SECOND else 0
        rules.append({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": flags_arg, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0,
                                "op": "SCMP_CMP_MASKED_EQ"}]})
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "architectures": list(arches),
        "syscalls": rules,
    }


def socket_family_blocks() -> list[tuple[int, int]]:
    """(mask, value) pairs whose MASKED_EQ rules together allow exactly the
    families below SOCKET_FAMILY_LIMIT that are not refused.

    Why not ``family != 40`` (SCMP_CMP_NE) or ``< 38``, ``> 40``: the
    filter compares all 64 bits of the register, while the kernel reads the
    int the low 32 hold, so socket(0x100000028, ...) would pass ``!= 40``
    and open a vsock.  A mask of the low 32 bits (the high half of each mask
    is 0) judges what the kernel will use; each aligned power-of-two block of
    allowed families is one mask."""
    blocks: list[tuple[int, int]] = []
    edges = [-1, *sorted(SOCKET_DENIED_FAMILIES), SOCKET_FAMILY_LIMIT]
    for lo, hi in zip(edges, edges[1:]):
        start = lo + 1
        while start < hi:
            size = start & -start if start else 1 << 31  # the largest block aligned at start...
            while start + size > hi:  # ...that stays below hi
                size //= 2
            blocks.append((0xFFFFFFFF & ~(size - 1), start))
            start += size
    return blocks


def _machine(machine: str | None) -> tuple[str | None, tuple[str, ...]]:
    """(family, architectures) for uname's *machine*; an unknown machine
    gets an empty list, which means the native ABI only."""
    if machine is None:
        machine = os.uname().machine
        if machine in ("mips", "mips64") and sys.byteorder == "little":
            machine += "el"
    return _MACHINES.get(machine, (None, ()))


def running_kernel() -> tuple[int, int]:
    """(major, minor) of the running kernel, from a release like 6.1.0-18-amd64."""
    parts = os.uname().release.split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1].split("-")[0] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)
