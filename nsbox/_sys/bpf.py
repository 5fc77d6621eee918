"""bpf(2): loading, attaching, detaching and listing cgroup BPF programs.

glibc has no wrapper, so each call goes through syscall(2) with a zeroed
``union bpf_attr`` buffer into which only the command's fields are packed.
The kernel accepts a buffer larger than the union it knows as long as the
extra bytes are zero, and requires every field after the command's last one
to be zero: a zeroed buffer of fixed size satisfies both on old and new
kernels alike.

Memory: since Linux 5.11 BPF programs are charged to the loader's memory
cgroup, not to RLIMIT_MEMLOCK, so loading needs no rlimit change (on this
kind of host root cannot raise RLIMIT_MEMLOCK anyway).  Older kernels charge
RLIMIT_MEMLOCK; a device filter is a few KiB, far below the usual 64 KiB-8 MiB.

The fds the kernel returns for programs are always O_CLOEXEC.
"""

from __future__ import annotations

import ctypes
import os
import struct

from nsbox._sys import trace
from nsbox._sys.libc import check, libc

# <linux/bpf.h>: enum bpf_cmd
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_QUERY = 16

# enum bpf_prog_type / enum bpf_attach_type
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6

# attach flags
BPF_F_ALLOW_OVERRIDE = 1
BPF_F_ALLOW_MULTI = 2

#: bytes of ``union bpf_attr`` we pass: more than any field we set needs
_ATTR_SIZE = 128
#: bytes of ``struct bpf_prog_info`` we read: type, id, tag ... name (offset 64, 16 bytes)
_INFO_SIZE = 80
BPF_OBJ_NAME_LEN = 16

_SYS_BPF = {"x86_64": 321, "aarch64": 280}


def _nr() -> int:
    machine = os.uname().machine
    try:
        return _SYS_BPF[machine]
    except KeyError:
        raise OSError(38, f"bpf: no syscall number known for {machine}") from None


def _call(cmd: int, attr: ctypes.Array, op: str, path: str | None,  # type: ignore[type-arg]
          describe: str | None) -> int:
    """One bpf(2) call; *describe* is the trace line's text (None when not tracing)."""
    ret = libc.syscall(ctypes.c_long(_nr()), ctypes.c_int(cmd), attr, ctypes.c_uint(len(attr)))
    return check(ret, op, path, describe)


def _attr(fmt: str, *values: object) -> ctypes.Array:  # type: ignore[type-arg]
    buf = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into(fmt, buf, 0, *values)
    return buf


def prog_load(prog_type: int, insns: bytes, license: str, name: str = "",
              log: ctypes.Array | None = None, log_level: int = 1) -> int:  # type: ignore[type-arg]
    """BPF_PROG_LOAD: the new program's fd.

    *insns* is the program (8 bytes per instruction).  *license* matters only
    to programs calling GPL-only helpers.  *name* (at most 15 characters of
    [A-Za-z0-9_.]) shows in bpftool.  With *log* (a ctypes buffer of at
    least 128 bytes) the verifier writes its account there: *log_level* 1
    every step, 4 only the statistics.
    """
    if len(insns) % 8:
        raise ValueError("a BPF program is a whole number of 8-byte instructions")
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    raw_name = name.encode()[:BPF_OBJ_NAME_LEN - 1]
    log_size, log_ptr = (len(log), ctypes.addressof(log)) if log is not None else (0, 0)
    log_level = log_level if log is not None else 0
    # prog_type, insn_cnt, insns, license, log_level, log_size, log_buf,
    # kern_version, prog_flags, prog_name[16]
    attr = _attr("=IIQQIIQII16s", prog_type, len(insns) // 8, ctypes.addressof(code), ctypes.addressof(lic),
                 log_level, log_size, log_ptr, 0, 0, raw_name)
    describe = (f"bpf(BPF_PROG_LOAD, type={prog_type}, insn_cnt={len(insns) // 8}, name={name!r})"
                if trace.enabled else None)
    return _call(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD)", None, describe)


def prog_attach(target_fd: int, prog_fd: int, attach_type: int, flags: int = 0, *, path: str | None = None) -> None:
    """BPF_PROG_ATTACH *prog_fd* to the cgroup open as *target_fd* (*path* names it in errors)."""
    attr = _attr("=IIII", target_fd, prog_fd, attach_type, flags)
    describe = (f"bpf(BPF_PROG_ATTACH, target_fd={target_fd}, attach_bpf_fd={prog_fd}, type={attach_type}, "
                f"flags={flags})" if trace.enabled else None)
    _call(BPF_PROG_ATTACH, attr, "bpf(BPF_PROG_ATTACH)", path, describe)


def prog_detach(target_fd: int, prog_fd: int, attach_type: int, *, path: str | None = None) -> None:
    """BPF_PROG_DETACH the program *prog_fd* from the cgroup open as *target_fd*."""
    attr = _attr("=III", target_fd, prog_fd, attach_type)
    describe = (f"bpf(BPF_PROG_DETACH, target_fd={target_fd}, attach_bpf_fd={prog_fd}, type={attach_type})"
                if trace.enabled else None)
    _call(BPF_PROG_DETACH, attr, "bpf(BPF_PROG_DETACH)", path, describe)


#: a cgroup holds at most 64 programs per attach type (BPF_CGROUP_MAX_PROGS)
_MAX_PROGS = 64


def prog_query(target_fd: int, attach_type: int, *, path: str | None = None) -> tuple[int, list[int]]:
    """BPF_PROG_QUERY: (attach flags, program ids) of the programs attached to
    this cgroup itself (not those it inherits from its parents)."""
    ids = (ctypes.c_uint32 * _MAX_PROGS)()
    # target_fd, attach_type, query_flags, attach_flags, prog_ids, prog_cnt
    attr = _attr("=IIIIQI", target_fd, attach_type, 0, 0, ctypes.addressof(ids), _MAX_PROGS)
    describe = f"bpf(BPF_PROG_QUERY, target_fd={target_fd}, type={attach_type})" if trace.enabled else None
    _call(BPF_PROG_QUERY, attr, "bpf(BPF_PROG_QUERY)", path, describe)
    flags, = struct.unpack_from("=I", attr, 12)
    count, = struct.unpack_from("=I", attr, 24)
    return flags, list(ids[:min(count, _MAX_PROGS)])


def prog_get_fd_by_id(prog_id: int) -> int:
    """BPF_PROG_GET_FD_BY_ID: an fd for a loaded program (ENOENT once it is freed)."""
    attr = _attr("=I", prog_id)
    describe = f"bpf(BPF_PROG_GET_FD_BY_ID, prog_id={prog_id})" if trace.enabled else None
    return _call(BPF_PROG_GET_FD_BY_ID, attr, "bpf(BPF_PROG_GET_FD_BY_ID)", None, describe)


def prog_info(prog_fd: int) -> tuple[int, int, str]:
    """BPF_OBJ_GET_INFO_BY_FD: (program type, program id, name)."""
    info = ctypes.create_string_buffer(_INFO_SIZE)
    attr = _attr("=IIQ", prog_fd, _INFO_SIZE, ctypes.addressof(info))
    describe = f"bpf(BPF_OBJ_GET_INFO_BY_FD, bpf_fd={prog_fd})" if trace.enabled else None
    _call(BPF_OBJ_GET_INFO_BY_FD, attr, "bpf(BPF_OBJ_GET_INFO_BY_FD)", None, describe)
    prog_type, prog_id = struct.unpack_from("=II", info, 0)
    name = info.raw[64:64 + BPF_OBJ_NAME_LEN].split(b"\0", 1)[0].decode(errors="replace")
    return prog_type, prog_id, name
