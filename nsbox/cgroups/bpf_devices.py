"""The cgroup v2 device filter: ``linux.resources.devices`` compiled into a
BPF_PROG_TYPE_CGROUP_DEVICE program and attached to the container's cgroup.

On cgroup v2 the kernel asks the device programs attached to a process's
cgroup (and to its ancestors: every one must say yes) before each open(2)
and mknod(2) of a device node.  Where a v1 devices hierarchy is mounted too
(a hybrid host), the kernel asks both the programs and the v1 controller.

Semantics.  The program grants exactly what the v1 controller would grant
for the same rule list (devices.py): the rules are first reduced to the v1
kernel's state, a default verdict plus exceptions keyed by
type:major:minor (devices.effective), and the program tests the
exceptions.  All exceptions carry the verdict opposite to the default, so
their order does not matter and the first one that matches decides:

* deny by default, an exception allows when it covers EVERY access asked
  for (an O_RDWR open asks for r and w at once);
* allow by default, an exception denies when it shares ANY access with
  the request;
* no exception matches: the default.

Evaluating the raw rules from last to first instead would differ from v1:
``allow c 1:3 r`` then ``allow c 1:3 w`` merge in v1 into one ``rw``
exception that lets an O_RDWR open through, which neither rule alone does.

The kernel's context (struct bpf_cgroup_dev_ctx, <linux/bpf.h>)::

    offset 0  u32 access_type   low 16 bits: type   BPF_DEVCG_DEV_BLOCK 1, _CHAR 2
                                high 16 bits: access BPF_DEVCG_ACC_MKNOD 1, _READ 2, _WRITE 4
    offset 4  u32 major
    offset 8  u32 minor

The program (registers: r1 the context on entry, r0 the verdict: 1 allow,
0 deny, r2 scratch).  For each exception, when the default is deny::

        ldxw  r2, [r1+0]                  ; access_type
        and32 r2, 0xffff | ~ACCESS << 16  ; keep the type and the accesses the exception lacks:
        jne   r2, TYPE, next              ; left is the type alone, or it is not this exception
        ldxw  r2, [r1+4]                  ; major (these two left out for a * major)
        jne   r2, MAJOR, next
        ldxw  r2, [r1+8]                  ; minor (these two left out for a * minor)
        jne   r2, MINOR, next
        mov32 r0, 1
        exit
    next:

and when the default is allow::

        ldxw  r2, [r1+0]
        jset  r2, ACCESS << 16, +1        ; an access in common: on to the device
        ja    next
        and32 r2, 0xffff                  ; the type
        jne   r2, TYPE, next
        (major and minor as above)
        mov32 r0, 0
        exit
    next:

and after the last exception (no exception matched)::

        mov32 r0, DEFAULT
        exit

Why each exception loads the context again instead of keeping the fields in
registers: a register the verifier has compared with a constant carries the
constant on the paths that continue, so the states meeting at the next
exception would all differ and the verifier would walk the rest of the
program once for each (superlinear: 3,000 rules exceeded its budget of a
million steps).  With every register dead at each ``next`` the states are
equal there, and verification is linear (about 1.5 steps per instruction).

Every jump is forward and short (at most 8 instructions), so the 16-bit
offsets never overflow however many rules there are, and the program has no
loop and no unreachable instruction.  An exception costs at most 11
instructions: 300 rules fit in 3,302, below the 4,096 an unprivileged
loader may use (root may load 1,000,000).
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys

from nsbox.cgroups.devices import DeviceException, effective
from nsbox.cgroups.errors import CgroupError, strerror

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsbox.cgroups.resources import DeviceRule

# <linux/bpf.h>: the context's values
BPF_DEVCG_DEV_BLOCK = 1
BPF_DEVCG_DEV_CHAR = 2
BPF_DEVCG_ACC_MKNOD = 1
BPF_DEVCG_ACC_READ = 2
BPF_DEVCG_ACC_WRITE = 4

DEV_TYPES = {"b": BPF_DEVCG_DEV_BLOCK, "c": BPF_DEVCG_DEV_CHAR}
ACCESS_BITS = {"m": BPF_DEVCG_ACC_MKNOD, "r": BPF_DEVCG_ACC_READ, "w": BPF_DEVCG_ACC_WRITE}
ALL_ACCESS = 7

#: the kernel's limit for a privileged loader (BPF_COMPLEXITY_LIMIT_INSNS)
MAX_INSNS = 1_000_000

#: what bpftool shows for our programs
PROGRAM_NAME = "nsbox_devices"
#: the kernel asks for a GPL-compatible license only from programs calling
#: GPL-only helpers; a device filter calls none.  nsbox's own license.
LICENSE = "Apache-2.0"

#: a kernel dev_t has 12 bits of major and 20 of minor: an exception for a
#: larger number can match no device node and is left out of the program
MAX_MAJOR = (1 << 12) - 1
MAX_MINOR = (1 << 20) - 1

# -- instruction encoding ------------------------------------------------------
# struct bpf_insn { u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm; },
# in the machine's byte order; the bitfield puts dst_reg in the low nibble on
# little-endian machines and in the high nibble on big-endian ones.

# instruction classes, sizes, modes, sources and operations (<linux/bpf_common.h>, <linux/bpf.h>)
_LDX, _ALU, _JMP = 0x01, 0x04, 0x05
_W, _MEM = 0x00, 0x60
_K = 0x00
_AND, _MOV = 0x50, 0xB0
_JA, _JSET, _JNE, _EXIT = 0x00, 0x40, 0x50, 0x90

LDXW = _LDX | _MEM | _W        # 0x61  dst = *(u32 *)(src + off)
MOV32_K = _ALU | _MOV | _K     # 0xb4  dst = imm (32-bit, upper half zeroed)
AND32_K = _ALU | _AND | _K     # 0x54  dst &= imm
JA = _JMP | _JA                # 0x05  pc += off
JNE_K = _JMP | _JNE | _K       # 0x55  if dst != imm: pc += off
JSET_K = _JMP | _JSET | _K     # 0x45  if dst & imm: pc += off
EXIT = _JMP | _EXIT            # 0x95  return r0

_FORMAT = "<BBhi" if sys.byteorder == "little" else ">BBhi"


def encode(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    regs = dst | (src << 4) if sys.byteorder == "little" else (dst << 4) | src
    return struct.pack(_FORMAT, code, regs, off, imm)


def decode(insns: bytes) -> list[tuple[int, int, int, int, int]]:
    """(code, dst, src, off, imm) for each 8-byte instruction."""
    out = []
    for i in range(0, len(insns), 8):
        code, regs, off, imm = struct.unpack_from(_FORMAT, insns, i)
        dst, src = (regs & 0xF, regs >> 4) if sys.byteorder == "little" else (regs >> 4, regs & 0xF)
        out.append((code, dst, src, off, imm))
    return out


class _Asm:
    """A list of instructions whose jump offsets may name a label, resolved
    by :meth:`assemble` (a BPF offset counts from the next instruction)."""

    def __init__(self) -> None:
        self.insns: list[tuple[int, int, int, int | str, int]] = []
        self.labels: dict[str, int] = {}

    def op(self, code: int, dst: int = 0, src: int = 0, off: int | str = 0, imm: int = 0) -> None:
        self.insns.append((code, dst, src, off, imm))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.insns)

    def assemble(self) -> bytes:
        out = bytearray()
        for i, (code, dst, src, off, imm) in enumerate(self.insns):
            if isinstance(off, str):
                off = self.labels[off] - (i + 1)
            out += encode(code, dst, src, off, imm)
        return bytes(out)


# -- the program ---------------------------------------------------------------

def program(rules: list[DeviceRule]) -> bytes:
    """The device filter for *rules* (in order, on top of deny-all: the list
    devices.runc_rules makes), as BPF instructions."""
    return compile_state(*effective(rules))


def compile_state(default_allow: bool, exceptions: list[DeviceException]) -> bytes:
    """The program for a v1 state: the default verdict and its exceptions."""
    a = _Asm()
    for n, (dev_type, major, minor, access) in enumerate(exceptions):
        if major > MAX_MAJOR or minor > MAX_MINOR:
            continue  # no device has such a number
        bits = sum(ACCESS_BITS[c] for c in access) << 16
        nxt = f"next{n}"
        a.op(LDXW, 2, 1, 0)                               # r2 = access_type
        if default_allow:
            a.op(JSET_K, 2, off=1, imm=bits)              # an access in common: go on
            a.op(JA, off=nxt)
            a.op(AND32_K, 2, imm=0xFFFF)
        else:
            a.op(AND32_K, 2, imm=0xFFFF | (ALL_ACCESS << 16) & ~bits)  # keep the type and what it lacks
        a.op(JNE_K, 2, off=nxt, imm=DEV_TYPES[dev_type])
        for offset, number in ((4, major), (8, minor)):
            if number != -1:
                a.op(LDXW, 2, 1, offset)                  # r2 = major, minor
                a.op(JNE_K, 2, off=nxt, imm=number)
        a.op(MOV32_K, 0, imm=0 if default_allow else 1)
        a.op(EXIT)
        a.label(nxt)
    a.op(MOV32_K, 0, imm=int(default_allow))
    a.op(EXIT)
    code = a.assemble()
    if len(code) // 8 > MAX_INSNS:
        raise CgroupError(f"the device rules make a BPF program of {len(code) // 8} instructions, more than the "
                          f"kernel's limit of {MAX_INSNS}", json_path="linux.resources.devices")
    return code


def disassemble(insns: bytes) -> list[str]:
    """The program as text, one instruction a line (the forms in the module's listing)."""
    out = []
    for code, dst, src, off, imm in decode(insns):
        if code == LDXW:
            out.append(f"ldxw r{dst}, [r{src}{off:+d}]")
        elif code == MOV32_K:
            out.append(f"mov32 r{dst}, {imm}")
        elif code == AND32_K:
            out.append(f"and32 r{dst}, {imm:#x}")
        elif code == JNE_K:
            out.append(f"jne r{dst}, {imm}, {off:+d}")
        elif code == JSET_K:
            out.append(f"jset r{dst}, {imm:#x}, {off:+d}")
        elif code == JA:
            out.append(f"ja {off:+d}")
        elif code == EXIT:
            out.append("exit")
        else:
            out.append(f".insn {code:#04x} r{dst} r{src} {off:+d} {imm}")
    return out


# -- the kernel ----------------------------------------------------------------

def load(insns: bytes) -> int:
    """Load the program; its fd (O_CLOEXEC).  A refusal names the verifier's reason."""
    from nsbox._sys import bpf

    try:
        return bpf.prog_load(bpf.BPF_PROG_TYPE_CGROUP_DEVICE, insns, LICENSE, PROGRAM_NAME)
    except OSError as e:
        first = e
    why = strerror(first)
    if first.errno in (errno.EACCES, errno.EINVAL, errno.E2BIG):
        # load again to hear the verifier (only now: a log costs it time)
        log = ctypes.create_string_buffer(1 << 16)
        try:
            fd = bpf.prog_load(bpf.BPF_PROG_TYPE_CGROUP_DEVICE, insns, LICENSE, PROGRAM_NAME, log)
        except OSError:
            lines = log.value.decode(errors="replace").strip().splitlines()
            if lines:
                why += f" (verifier: {' / '.join(lines[-3:])})"
        else:
            return fd  # it loaded this time: a transient failure
    hint = "loading cgroup BPF programs needs CAP_SYS_ADMIN (or CAP_BPF)" if first.errno == errno.EPERM else None
    raise CgroupError(f"cannot load the device filter ({len(insns) // 8} BPF instructions): {why}",
                      hint, json_path="linux.resources.devices", controller="cgroup2", errno=first.errno) from None


def attached(directory: str) -> list[int]:
    """The ids of the device programs attached to the cgroup *directory* itself."""
    from nsbox._sys import bpf

    dfd = _open(directory)
    try:
        return bpf.prog_query(dfd, bpf.BPF_CGROUP_DEVICE, path=directory)[1]
    except OSError as e:
        raise _error(directory, "list the device programs of", e) from None
    finally:
        os.close(dfd)


def install(directory: str, insns: bytes | None) -> int | None:
    """Make *insns* the only device program attached to the cgroup
    *directory* (None: remove every one); the new program's id.

    The new program is attached before the old ones are detached, so the
    cgroup is never without a filter: in between both run, and a device
    must pass both (the stricter of the two).  The program stays loaded
    while it is attached (our fd is closed here): removing the cgroup
    directory detaches and frees it.
    """
    from nsbox._sys import bpf

    dfd = _open(directory)
    old: list[int] = []
    try:
        try:
            flags, ids = bpf.prog_query(dfd, bpf.BPF_CGROUP_DEVICE, path=directory)
        except OSError as e:
            raise _error(directory, "list the device programs of", e) from None
        for prog_id in ids:
            try:
                old.append(bpf.prog_get_fd_by_id(prog_id))
            except OSError as e:
                if e.errno != errno.ENOENT:  # ENOENT: detached and freed meanwhile
                    raise _error(directory, "open an attached device program of", e) from None
        new_id = None
        detach = old
        if insns is not None:
            fd = load(insns)
            try:
                try:
                    new_id = bpf.prog_info(fd)[1]
                except OSError as e:
                    raise _error(directory, "read the id of the device filter for", e) from None
                if old and not flags & bpf.BPF_F_ALLOW_MULTI:
                    # attached by someone without ALLOW_MULTI (one program
                    # at most): the kernel refuses a MULTI attach next to
                    # it, but an attach with the same flags replaces it
                    attach_flags, detach = flags, []
                else:
                    attach_flags = bpf.BPF_F_ALLOW_MULTI
                try:
                    bpf.prog_attach(dfd, fd, bpf.BPF_CGROUP_DEVICE, attach_flags, path=directory)
                except OSError as e:
                    raise _error(directory, "attach the device filter to", e) from None
            finally:
                os.close(fd)
        for prog_fd in detach:
            try:
                bpf.prog_detach(dfd, prog_fd, bpf.BPF_CGROUP_DEVICE, path=directory)
            except OSError as e:
                if e.errno != errno.ENOENT:  # detached meanwhile
                    raise _error(directory, "detach the old device filter from", e) from None
        return new_id
    finally:
        for prog_fd in old:
            os.close(prog_fd)
        os.close(dfd)


def _open(directory: str) -> int:
    try:
        return os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise CgroupError(f"cannot open {directory}: {strerror(e)}", json_path="linux.resources.devices",
                          controller="cgroup2", path=directory, errno=e.errno) from None


def _error(directory: str, what: str, e: OSError) -> CgroupError:
    hint = "cgroup BPF programs need CAP_SYS_ADMIN (or CAP_BPF and CAP_NET_ADMIN)" if e.errno == errno.EPERM else None
    return CgroupError(f"cannot {what} {directory}: {e.strerror or strerror(e)}", hint,
                       json_path="linux.resources.devices", controller="cgroup2", path=directory, errno=e.errno)
