"""Linux capabilities by name, and the five sets of a container process.

The order of the switch to the container's user matters (capabilities(7)):
the bounding set is dropped first (that needs CAP_SETPCAP, which we still
have); PR_SET_KEEPCAPS keeps the permitted set across setuid to a non-zero
uid; then the sets are set exactly, and ambient capabilities raised last
(each must be permitted and inheritable by then).
"""

from __future__ import annotations

from nsbox._sys import process as _proc
from nsbox._sys.consts import (
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_CLEAR_ALL,
    PR_CAP_AMBIENT_RAISE,
    PR_CAPBSET_DROP,
    PR_SET_KEEPCAPS,
)
from nsbox.errors import NsboxError

#: <linux/capability.h>, in number order
NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
NUMBERS = {name: i for i, name in enumerate(NAMES)}


class CapabilityError(NsboxError):
    pass


def last_cap(proc: str = "/proc") -> int:
    """The highest capability number this kernel knows."""
    try:
        with open(f"{proc}/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return len(NAMES) - 1


def mask(names: list[str], where: str, top: int) -> int:
    """The bit mask of *names*; unknown names are an error naming *where*.
    Names the running kernel is too old for are left out, as runc does."""
    bits = 0
    for name in names:
        number = NUMBERS.get(name.upper() if name.upper().startswith("CAP_") else f"CAP_{name.upper()}")
        if number is None:
            raise CapabilityError(f"{where}: unknown capability {name!r}")
        if number <= top:
            bits |= 1 << number
    return bits


class CapabilitySets:
    __slots__ = ("bounding", "effective", "permitted", "inheritable", "ambient")

    def __init__(self, bounding: int, effective: int, permitted: int, inheritable: int, ambient: int) -> None:
        self.bounding = bounding
        self.effective = effective
        self.permitted = permitted
        self.inheritable = inheritable
        self.ambient = ambient

    @classmethod
    def from_spec(cls, caps: object, where: str = "process.capabilities", proc: str = "/proc") -> CapabilitySets:
        top = last_cap(proc)
        return cls(*(mask(getattr(caps, name), f"{where}.{name}", top)
                     for name in ("bounding", "effective", "permitted", "inheritable", "ambient")))


def drop_bounding(keep: int, top: int) -> None:
    for cap in range(top + 1):
        if not keep >> cap & 1:
            _proc.prctl(PR_CAPBSET_DROP, cap)


def keep_caps_across_setuid(on: bool) -> None:
    _proc.prctl(PR_SET_KEEPCAPS, 1 if on else 0)


def apply(sets: CapabilitySets) -> None:
    """Set effective/permitted/inheritable exactly, then the ambient set."""
    try:
        _proc.capset(sets.effective, sets.permitted, sets.inheritable)
    except PermissionError:
        # a capability the runtime itself lacks cannot be given (this host
        # withholds CAP_SYS_RESOURCE even from root): name it
        _, held, _ = _proc.capget()
        missing = names_of((sets.effective | sets.permitted | sets.inheritable) & ~held)
        if not missing:
            raise
        raise CapabilityError(f"process.capabilities: {', '.join(missing)} cannot be granted: "
                              "the runtime does not hold it on this host") from None
    _proc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    for cap in range(64):
        if sets.ambient >> cap & 1:
            try:
                _proc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)
            except OSError as e:
                raise CapabilityError(f"process.capabilities.ambient: cannot raise {NAMES[cap]} "
                                      "(ambient capabilities must be permitted and inheritable too)") from e


def names_of(bits: int) -> list[str]:
    return [name for i, name in enumerate(NAMES) if bits >> i & 1]
