"""The numbers of seccomp's ABI: libseccomp's actions and operators, and the
seccomp(2) flags.  No ctypes here: the runtime reads a cached program with
these alone, and loads libseccomp (nsbox._sys.seccomp) only to compile."""

from __future__ import annotations

# libseccomp's action values (seccomp.h)
ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_NOTIFY = 0x7FC00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000


def act_errno(errno: int) -> int:
    return 0x00050000 | (errno & 0xFFFF)


def act_trace(msg: int) -> int:
    return 0x7FF00000 | (msg & 0xFFFF)


# comparison operators (enum scmp_compare)
CMP_NE, CMP_LT, CMP_LE, CMP_EQ, CMP_GE, CMP_GT, CMP_MASKED_EQ = range(1, 8)

# filter attributes (enum scmp_filter_attr); OPTIMIZE since libseccomp 2.5
ATTR_CTL_NNP = 3
ATTR_CTL_OPTIMIZE = 8
OPTIMIZE_BINARY_TREE = 2

# seccomp(2)
SECCOMP_SET_MODE_FILTER = 1
FILTER_FLAG_TSYNC = 1
FILTER_FLAG_LOG = 2
FILTER_FLAG_SPEC_ALLOW = 4
FILTER_FLAG_NEW_LISTENER = 8
FILTER_FLAG_TSYNC_ESRCH = 16
FILTER_FLAG_WAIT_KILLABLE_RECV = 32
