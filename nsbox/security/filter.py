"""A compiled seccomp filter (``Program``) and its loading (``install``): what
the container's side needs of linux.seccomp.  The profile compiler
(nsbox.security.seccomp) is the runtime's alone; stage 1 imports this
module instead, before the launch, on create's critical path.
"""

from __future__ import annotations

import os

from nsbox._sys import seccomp_abi as abi


class Program:
    """A compiled profile: what init needs to install it, and what the
    runtime needs to hand a listener its fd."""

    __slots__ = ("bpf", "flags", "notify", "listener_path", "listener_metadata")

    def __init__(self, bpf: bytes, flags: int, notify: bool, listener_path: str | None,
                 listener_metadata: str) -> None:
        self.bpf = bpf
        self.flags = flags
        self.notify = notify
        self.listener_path = listener_path
        self.listener_metadata = listener_metadata

    def to_record(self) -> dict[str, object]:
        """What state.json keeps (the program itself goes to seccomp.bpf)."""
        return {"flags": self.flags, "notify": self.notify, "listenerPath": self.listener_path,
                "listenerMetadata": self.listener_metadata}

    @classmethod
    def from_record(cls, record: dict[str, object], bpf: bytes) -> Program:
        return cls(bpf, int(record["flags"]), bool(record["notify"]),  # type: ignore[call-overload]
                   record.get("listenerPath"), str(record.get("listenerMetadata") or ""))  # type: ignore[arg-type]


def install(program: Program) -> int:
    """Load *program* on this process (and what it execs).  The listener fd
    when the profile notifies, else -1."""
    from nsbox._sys.seccomp_load import load_bpf

    try:
        fd = load_bpf(program.bpf, program.flags)
    except OSError as e:
        from nsbox.errors import NsboxError

        hint = ""
        if e.errno == 22 and program.flags & ~abi.FILTER_FLAG_NEW_LISTENER:
            hint = ": this kernel may not know one of linux.seccomp.flags"
        raise NsboxError(f"linux.seccomp: the kernel refused the filter: {os.strerror(e.errno or 0)}{hint}") from None
    return fd if program.notify else -1
