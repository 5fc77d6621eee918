"""The exec trampoline: the user's program is exec'd by a sealed in-memory
ELF, not by the host's Python (CVE-2019-5736, the ``#!/proc/self/exe`` variant).

The container's init and ``nsbox exec``'s process are forks of the host's
Python.  If they exec'd the user's program themselves and the program were a
script starting with ``#!/proc/self/exe``, the kernel would resolve that magic
link in the exec'ing process -- the host's interpreter -- and run *it*, now
dumpable again, inside the container: another process in there could open
``/proc/<pid>/exe`` and get a writable handle on the host's Python.

So the last exec goes through a trampoline.  :func:`prepare` writes a tiny
static ELF (generated below as bytes; no compiler, no binary file) into a
memfd and seals it.  :func:`exec_through` execs that memfd, and the
trampoline execs the user's program.  The process that execs the program is
then the trampoline, so ``#!/proc/self/exe`` names the sealed memfd, never a
host file: what ``/proc/<pid>/exe`` can show is the user's program or the
memfd, which nobody can write, shrink or grow.

What the trampoline is handed (built by :func:`exec_through`)::

    argv = [REPORT, program, args[0], args[1], ...]    # args[0] is kept as the program's argv[0]
    envp = [MARKER, "K=V", ...]                          # the user's env, in order, after the marker

and it does::

    if envp[0] != MARKER or argc < 2:   write a refusal to fd 2; exit 126   (the loop guard)
    if REPORT is a decimal fd:          fcntl(REPORT, F_SETFD, FD_CLOEXEC)  (failing: as an exec error)
    execve(argv[1], &argv[2], &envp[1])
    # it returned: errno
    if REPORT is a decimal fd:          write(REPORT, the report record)
    writev(2, "nsbox: exec <program>: errno <N>\\n")
    exit(127 if errno == ENOENT else 126)

**The loop guard.**  A ``#!/proc/self/exe`` program makes the kernel run the
trampoline again, with argv rewritten by binfmt_script to ``["/proc/self/exe",
script, args[1:]...]`` -- without a guard it would exec the script again,
forever.  The guard is the environment: every binfmt handler (script or misc)
passes envp through untouched, and a run of the trampoline passes on envp
minus its first entry.  A run requires that first entry to be exactly
:data:`MARKER`, ``=nsbox.trampoline=``: an entry whose name (what comes
before the first ``=``) is empty.  No OCI ``K=V`` entry has one, and
:func:`exec_through` refuses an *env* key that starts with ``=``, so only
exec_through itself puts it there; whatever runs
the trampoline a second time (a ``#!/proc/self/exe`` script, or
``/proc/<pid>/exe`` of a trampoline) finds the user's first variable (or
nothing) there and is refused at once: exit 126, a message on stderr.  Even
a chain of handlers could not loop: each run consumes one entry.  (os.execve
can pass this entry -- it only rejects ``=`` after a name's first character
-- so no ctypes is needed on the exec path.)

**Exit statuses** follow the shells (and :class:`nsbox.errors.ExecError`):
127 when the program does not exist (ENOENT), 126 when it cannot be executed
(any other errno, and the loop guard's refusal).  The errno itself is in the
stderr message and, for a caller that needs it, in the report record.

**The report record** (optional): when *report_fd* is given, the trampoline
makes it close-on-exec (so it never reaches the program) and, if the exec
fails, writes one 20-byte record on it in the framing of
:class:`nsbox.process.channel.Channel`: a 4-byte little-endian length (16),
then ``exec-failed NNNN`` -- :data:`REPORT_TAG`, a space, the errno as four
decimal digits.  A channel write end passed as *report_fd* therefore reads as
the message ``("exec-failed", b"0002")`` before EOF, or as EOF alone when the
program was exec'd.

**The trampoline's own syscalls**: execve always; fcntl(F_SETFD) with a
report fd; write, writev and exit_group when the exec fails.  A seccomp
filter loaded before :func:`exec_through` must allow them (docker's default
profile does); note that it sees two execves, the first of the memfd.

Only x86_64 has a trampoline; elsewhere :func:`prepare` returns None and the
caller falls back to exec'ing the program directly (and the process stays
exposed to the ``#!/proc/self/exe`` trick).
"""

from __future__ import annotations

import errno as _errno
import fcntl  # noqa: F401  for add_seals: lib-dynload may be out of reach when prepare() runs (after pivot_root)
import os
import struct

from nsbox._sys import process as _proc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

#: envp[0] of a trampoline run that exec_through started: os.execve writes
#: the key "=nsbox.trampoline" with the value "" as this entry, which begins
#: with "=" -- no user's variable does (see the loop guard).
_MARKER_KEY = "=nsbox.trampoline"
MARKER = _MARKER_KEY.encode() + b"="
#: the tag of the report record (a Channel message) on a failed exec
REPORT_TAG = "exec-failed"
#: the memfd's name, as /proc/<pid>/exe shows it: "/memfd:nsbox-exec (deleted)"
MEMFD_NAME = "nsbox-exec"

_F_SEAL_SEAL, _F_SEAL_SHRINK, _F_SEAL_GROW, _F_SEAL_WRITE, _F_SEAL_EXEC = 0x1, 0x2, 0x4, 0x8, 0x20
#: what prepare() seals: no size change, no write (also no shared writable
#: mapping), and no further seal changes; F_SEAL_EXEC (Linux 6.3, where
#: MFD_EXEC exists) also freezes the mode's exec bits
SEALS = _F_SEAL_SEAL | _F_SEAL_SHRINK | _F_SEAL_GROW | _F_SEAL_WRITE

# ---------------------------------------------------------------------------
# x86_64 code.  Each row: the bytes (hex; "rel8:L" / "rel32:L" is a
# displacement to label L, counted from the end of the instruction, as both
# x86 branches and RIP-relative operands are), the instruction, and why.
# A bare string is a label.  The encoding was checked against GNU as and
# objdump (see tests/test_trampoline.py for the disassembly check).

# a Channel message: length, "exec-failed ", then 4 digits that the code fills in
_REPORT_RECORD = struct.pack("<I", len(REPORT_TAG) + 1 + 4) + REPORT_TAG.encode() + b" "
_PREFIX = b"nsbox: exec "
_MIDDLE = b": errno "
_REFUSAL = b"nsbox: exec trampoline run again (is the program a #!/proc/self/exe script?): refused\n"

# scratch on the stack, from rsp after "sub rsp, 128":
#   [rsp+0, rsp+64)    iovec[4] for the stderr message
#   [rsp+64, rsp+84)   the report record: length, "exec-failed ", 4 digits at rsp+80
#   [rsp+84]           "\n" (ends the digits of the stderr message)


def _imm32(value: int) -> str:
    return struct.pack("<i", value).hex(" ")


def _x86_64_program() -> list[tuple[str, str, str] | str]:
    return [
        "start",
        # at entry: [rsp] = argc, then argv[0..argc-1], NULL, envp..., NULL
        ("48 8b 1c 24",             "mov rbx, [rsp]",               "rbx = argc"),
        ("4c 8d 64 24 08",          "lea r12, [rsp+8]",             "r12 = argv"),
        ("4d 8d 6c dc 08",          "lea r13, [r12+rbx*8+8]",       "r13 = envp (past argv's NULL)"),
        ("48 81 ec 80 00 00 00",    "sub rsp, 128",                 "scratch space (see above)"),
        # the loop guard: envp[0] must be MARKER, NUL included
        ("49 8b 75 00",             "mov rsi, [r13]",               "rsi = envp[0]"),
        ("48 85 f6",                "test rsi, rsi",                "no environment at all:"),
        ("0f 84 rel32:refuse",      "jz refuse",                    "  not ours"),
        ("48 8d 3d rel32:marker",   "lea rdi, [rip+marker]",        ""),
        ("b9 " + _imm32(len(MARKER) + 1), "mov ecx, len(MARKER)+1", "compare the NUL too: exact match"),
        ("f3 a6",                   "repe cmpsb",                   "DF is clear at process start"),
        ("0f 85 rel32:refuse",      "jne refuse",                   ""),
        ("48 83 fb 02",             "cmp rbx, 2",                   "argv[1], the program, is needed"),
        ("0f 82 rel32:refuse",      "jb refuse",                    ""),
        # argv[0]: the report fd in decimal, or anything else for none
        ("49 83 ce ff",             "or r14, -1",                   "r14 = report fd; -1: none"),
        ("49 8b 34 24",             "mov rsi, [r12]",               "rsi = argv[0]"),
        ("31 c0",                   "xor eax, eax",                 "eax = the number so far"),
        "parse",
        ("0f b6 0e",                "movzx ecx, byte [rsi]",        ""),
        ("83 e9 30",                "sub ecx, '0'",                 ""),
        ("83 f9 09",                "cmp ecx, 9",                   "unsigned: not a digit (or NUL)"),
        ("77 rel8:parsed",          "ja parsed",                    "  ends the number"),
        ("6b c0 0a",                "imul eax, eax, 10",            ""),
        ("01 c8",                   "add eax, ecx",                 ""),
        ("48 ff c6",                "inc rsi",                      ""),
        ("eb rel8:parse",           "jmp parse",                    ""),
        "parsed",
        ("49 3b 34 24",             "cmp rsi, [r12]",               "no digit at all:"),
        ("74 rel8:exec",            "je exec",                      "  no report fd"),
        ("41 89 c6",                "mov r14d, eax",                "r14 = report fd"),
        ("89 c7",                   "mov edi, eax",                 ""),
        ("be 02 00 00 00",          "mov esi, 2",                   "F_SETFD"),
        ("ba 01 00 00 00",          "mov edx, 1",                   "FD_CLOEXEC: the program must not inherit it"),
        ("b8 48 00 00 00",          "mov eax, 72",                  "SYS_fcntl"),
        ("0f 05",                   "syscall",                      ""),
        ("48 85 c0",                "test rax, rax",                "failed (seccomp?): exec'ing would"),
        ("78 rel8:failed",          "js failed",                    "  leak it; report instead"),
        "exec",
        ("49 8b 7c 24 08",          "mov rdi, [r12+8]",             "argv[1]: the program"),
        ("49 8d 74 24 10",          "lea rsi, [r12+16]",            "&argv[2]: its argv"),
        ("49 8d 55 08",             "lea rdx, [r13+8]",             "&envp[1]: its env, without MARKER"),
        ("b8 3b 00 00 00",          "mov eax, 59",                  "SYS_execve"),
        ("0f 05",                   "syscall",                      "returns only on failure"),
        "failed",
        ("f7 d8",                   "neg eax",                      "eax = errno"),
        ("89 c5",                   "mov ebp, eax",                 "kept for the exit status"),
        ("48 8b 05 rel32:report",   "mov rax, [rip+report]",        "the record's first 16 bytes"),
        ("48 89 44 24 40",          "mov [rsp+64], rax",            ""),
        ("48 8b 05 rel32:report_8", "mov rax, [rip+report+8]",      ""),
        ("48 89 44 24 48",          "mov [rsp+72], rax",            ""),
        ("48 8d 7c 24 54",          "lea rdi, [rsp+84]",            "one past the last digit"),
        ("c6 07 0a",                "mov byte [rdi], 10",           "'\\n' after the digits"),
        ("89 e8",                   "mov eax, ebp",                 ""),
        ("b9 0a 00 00 00",          "mov ecx, 10",                  ""),
        ("be 04 00 00 00",          "mov esi, 4",                   "four digits: errno < 4096"),
        "digit",
        ("31 d2",                   "xor edx, edx",                 ""),
        ("f7 f1",                   "div ecx",                      "eax = eax / 10, edx = eax % 10"),
        ("80 c2 30",                "add dl, '0'",                  ""),
        ("48 ff cf",                "dec rdi",                      ""),
        ("88 17",                   "mov [rdi], dl",                "digits right to left"),
        ("ff ce",                   "dec esi",                      ""),
        ("75 rel8:digit",           "jnz digit",                    ""),
        ("4d 85 f6",                "test r14, r14",                "no report fd:"),
        ("78 rel8:tell",            "js tell",                      "  skip the record"),
        ("44 89 f7",                "mov edi, r14d",                ""),
        ("48 8d 74 24 40",          "lea rsi, [rsp+64]",            "the record"),
        ("ba " + _imm32(len(_REPORT_RECORD) + 4), "mov edx, 20", ""),
        ("b8 01 00 00 00",          "mov eax, 1",                   "SYS_write (result ignored: nothing else to do)"),
        ("0f 05",                   "syscall",                      ""),
        "tell",
        # writev(2, iov, 4): "nsbox: exec ", program, ": errno ", digits "\n"
        ("48 8d 35 rel32:prefix",   "lea rsi, [rip+prefix]",        ""),
        ("48 89 34 24",             "mov [rsp], rsi",               "iov[0].base"),
        ("48 c7 44 24 08 " + _imm32(len(_PREFIX)), "mov qword [rsp+8], len(prefix)", "iov[0].len"),
        ("49 8b 7c 24 08",          "mov rdi, [r12+8]",             "the program"),
        ("48 89 7c 24 10",          "mov [rsp+16], rdi",            "iov[1].base"),
        ("31 c0",                   "xor eax, eax",                 "strlen: scan for NUL"),
        ("48 83 c9 ff",             "or rcx, -1",                   ""),
        ("f2 ae",                   "repne scasb",                  ""),
        ("48 f7 d1",                "not rcx",                      ""),
        ("48 ff c9",                "dec rcx",                      "rcx = length"),
        ("48 89 4c 24 18",          "mov [rsp+24], rcx",            "iov[1].len"),
        ("48 8d 35 rel32:middle",   "lea rsi, [rip+middle]",        ""),
        ("48 89 74 24 20",          "mov [rsp+32], rsi",            "iov[2].base"),
        ("48 c7 44 24 28 " + _imm32(len(_MIDDLE)), "mov qword [rsp+40], len(middle)", "iov[2].len"),
        ("48 8d 74 24 50",          "lea rsi, [rsp+80]",            "the first digit"),
        ("48 8d 54 24 53",          "lea rdx, [rsp+83]",            "the last digit is always kept"),
        "skip",
        ("48 39 d6",                "cmp rsi, rdx",                 ""),
        ("74 rel8:skipped",         "je skipped",                   ""),
        ("80 3e 30",                "cmp byte [rsi], '0'",          "leading zeros are not shown"),
        ("75 rel8:skipped",         "jne skipped",                  ""),
        ("48 ff c6",                "inc rsi",                      ""),
        ("eb rel8:skip",            "jmp skip",                     ""),
        "skipped",
        ("48 89 74 24 30",          "mov [rsp+48], rsi",            "iov[3].base"),
        ("48 8d 44 24 55",          "lea rax, [rsp+85]",            "past the '\\n'"),
        ("48 29 f0",                "sub rax, rsi",                 ""),
        ("48 89 44 24 38",          "mov [rsp+56], rax",            "iov[3].len"),
        ("bf 02 00 00 00",          "mov edi, 2",                   "stderr"),
        ("48 89 e6",                "mov rsi, rsp",                 "iov"),
        ("ba 04 00 00 00",          "mov edx, 4",                   "one writev: one line, never torn"),
        ("b8 14 00 00 00",          "mov eax, 20",                  "SYS_writev"),
        ("0f 05",                   "syscall",                      ""),
        ("bf 7e 00 00 00",          "mov edi, 126",                 "cannot execute..."),
        ("83 fd 02",                "cmp ebp, 2",                   ""),
        ("75 rel8:leave",           "jne leave",                    ""),
        ("ff c7",                   "inc edi",                      "...127: ENOENT, not found"),
        "leave",
        ("b8 e7 00 00 00",          "mov eax, 231",                 "SYS_exit_group"),
        ("0f 05",                   "syscall",                      ""),
        "refuse",
        ("bf 02 00 00 00",          "mov edi, 2",                   "stderr"),
        ("48 8d 35 rel32:refusal",  "lea rsi, [rip+refusal]",       ""),
        ("ba " + _imm32(len(_REFUSAL)), "mov edx, len(refusal)",    ""),
        ("b8 01 00 00 00",          "mov eax, 1",                   "SYS_write"),
        ("0f 05",                   "syscall",                      ""),
        ("bf 7e 00 00 00",          "mov edi, 126",                 ""),
        ("eb rel8:leave",           "jmp leave",                    ""),
    ]


def _x86_64_data() -> list[tuple[str, bytes]]:
    # read-only data after the code, in the same segment
    return [
        ("marker", MARKER + b"\0"),
        ("report", _REPORT_RECORD[:8]),
        ("report_8", _REPORT_RECORD[8:]),
        ("prefix", _PREFIX),
        ("middle", _MIDDLE),
        ("refusal", _REFUSAL),
    ]


def _assemble(program: list[tuple[str, str, str] | str], data: list[tuple[str, bytes]]) -> tuple[bytes, int]:
    """Lay out *program* then *data*; resolve the label displacements.
    Returns (image, offset of the "start" label).  A displacement is always
    an instruction's last field; the rest goes through bytes.fromhex (this
    runs on every launch: a Python loop over each byte would cost more)."""
    labels: dict[str, int] = {}
    parsed: list[tuple[bytes, str, str, int]] = []  # (bytes before, rel kind, label, end offset)
    offset = 0
    for row in program:
        if isinstance(row, str):
            labels[row] = offset
            continue
        head, _, ref = row[0].rpartition(" ")
        if ":" in ref:
            kind, label = ref.split(":")
            fixed = bytes.fromhex(head)
            offset += len(fixed) + (1 if kind == "rel8" else 4)
        else:
            kind = label = ""
            fixed = bytes.fromhex(row[0])
            offset += len(fixed)
        parsed.append((fixed, kind, label, offset))
    for name, blob in data:
        labels[name] = offset
        offset += len(blob)
    out = bytearray()
    for fixed, kind, label, end in parsed:
        out += fixed
        if kind:
            disp = labels[label] - end
            if kind == "rel8" and not -128 <= disp <= 127:
                raise ValueError(f"{label} is out of a rel8's reach ({disp})")
            out += struct.pack("<b" if kind == "rel8" else "<i", disp)
    for _name, blob in data:
        out += blob
    return bytes(out), labels["start"]


# ---------------------------------------------------------------------------
# The ELF: a 64-bit header and one PT_LOAD program header mapping the whole
# file read+execute at a fixed address.  No PT_GNU_STACK: without it an
# x86_64 process still gets a non-executable stack (only 32-bit processes
# get READ_IMPLIES_EXEC).  No sections: the kernel reads program headers only.

_BASE = 0x400000  # the traditional ET_EXEC address; above any vm.mmap_min_addr
_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")  # Elf64_Ehdr, 64 bytes
_PHDR = struct.Struct("<IIQQQQQQ")          # Elf64_Phdr, 56 bytes
_EM_X86_64 = 62


def _elf(machine: int, code: bytes, entry_offset: int) -> bytes:
    headers = _EHDR.size + _PHDR.size
    size = headers + len(code)
    ident = b"\x7fELF" + bytes([
        2,  # EI_CLASS: ELFCLASS64
        1,  # EI_DATA: ELFDATA2LSB, little endian
        1,  # EI_VERSION: EV_CURRENT
        0,  # EI_OSABI: System V
    ])
    ehdr = _EHDR.pack(
        ident,                      # e_ident (padded with zeros to 16)
        2,                          # e_type: ET_EXEC
        machine,                    # e_machine
        1,                          # e_version: EV_CURRENT
        _BASE + headers + entry_offset,  # e_entry
        _EHDR.size,                 # e_phoff: right after this header
        0,                          # e_shoff: no section headers
        0,                          # e_flags
        _EHDR.size,                 # e_ehsize
        _PHDR.size,                 # e_phentsize
        1,                          # e_phnum
        0,                          # e_shentsize
        0,                          # e_shnum
        0,                          # e_shstrndx: SHN_UNDEF
    )
    phdr = _PHDR.pack(
        1,                          # p_type: PT_LOAD
        5,                          # p_flags: PF_R | PF_X (the stack is the only writable memory)
        0,                          # p_offset: the whole file, headers included
        _BASE,                      # p_vaddr
        _BASE,                      # p_paddr
        size,                       # p_filesz
        size,                       # p_memsz: no bss
        0x1000,                     # p_align: a page
    )
    return ehdr + phdr + code


_cache: dict[str, bytes | None] = {}


def elf(machine: str | None = None) -> bytes | None:
    """The trampoline executable for *machine* (default: ``os.uname().machine``),
    or None where there is none (every architecture but x86_64)."""
    machine = machine or os.uname().machine
    if machine not in _cache:
        if machine == "x86_64":
            code, entry = _assemble(_x86_64_program(), _x86_64_data())
            _cache[machine] = _elf(_EM_X86_64, code, entry)
        else:
            _cache[machine] = None
    return _cache[machine]


def prepare(machine: str | None = None) -> int | None:
    """A sealed memfd holding the trampoline: an O_CLOEXEC fd for
    :func:`exec_through`, or None where there is no trampoline for this
    architecture -- the caller then execs the program directly.

    Call it while memfd_create is still allowed (before a seccomp filter is
    loaded) and keep the fd open through every close-the-fds step.  Raises
    OSError if no executable memfd can be had (e.g. ``vm.memfd_noexec = 2``
    refuses MFD_EXEC with EACCES)."""
    image = elf(machine)
    if image is None:
        return None
    flags = _proc.MFD_CLOEXEC | _proc.MFD_ALLOW_SEALING
    seals = SEALS
    try:
        # MFD_EXEC: executable even where vm.memfd_noexec = 1 makes
        # memfds noexec by default; F_SEAL_EXEC then freezes the mode too
        fd = _proc.memfd_create(MEMFD_NAME, flags | _proc.MFD_EXEC)
        seals |= _F_SEAL_EXEC
    except OSError as e:
        if e.errno != _errno.EINVAL:
            raise
        fd = _proc.memfd_create(MEMFD_NAME, flags)  # before Linux 6.3: executable anyway
    try:
        view = memoryview(image)
        while view:
            view = view[os.write(fd, view):]
        _proc.add_seals(fd, seals)
    except BaseException:
        os.close(fd)
        raise
    return fd


def exec_through(fd: int, program: str, args: list[str], env: dict[str, str],
                 report_fd: int | None = None) -> NoReturn:
    """Exec the trampoline in *fd* (from :func:`prepare`), which execs
    *program* with argv *args* (``args[0]`` is the program's argv[0]) and
    exactly *env*.  Only returns by raising: OSError naming *program* when
    the trampoline cannot be exec'd, ValueError for an *env* key that starts
    with ``=`` (the marker's form).  A failure of the program's own exec
    shows as exit status 127/126, a message on stderr and, with *report_fd*,
    the report record (see the module's docstring).

    The trampoline is exec'd by ``/proc/self/fd/<fd>`` (the kernel reopens the
    memfd, so it works with an O_CLOEXEC fd), and where that fails (no /proc
    in the container) by execveat(fd, "", AT_EMPTY_PATH)."""
    argv = ["-" if report_fd is None else str(report_fd), program, *args]
    for key in env:
        if key.startswith("="):  # the marker's form: it must come from here only
            raise ValueError(f"exec {program}: illegal environment variable name {key!r}")
    envp = {_MARKER_KEY: ""}  # first: os.execve keeps a dict's order
    envp.update(env)
    if report_fd is not None:
        os.set_inheritable(report_fd, True)  # across this exec; the trampoline closes it on the next
    try:
        try:
            _proc.execve(f"/proc/self/fd/{fd}", argv, envp)
        except OSError:
            _proc.execve(fd, argv, envp)
    except OSError as e:
        if report_fd is not None:
            os.set_inheritable(report_fd, False)
        err = e.errno or 0
        raise OSError(err, f"exec {program} through the trampoline: {os.strerror(err)}", program) from None
    raise AssertionError("unreachable: execve returned without an error")
