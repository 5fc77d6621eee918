"""The exec trampoline (nsbox.process.trampoline): its ELF, its memfd, and
what it does when exec'd.  No container: every exec happens in a child
Python started by subprocess, never in the pytest process."""

from __future__ import annotations

import fcntl
import os
import shutil
import struct
import subprocess
import sys
import time

import pytest

from nsbox.process import trampoline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
x86_64 = pytest.mark.skipif(os.uname().machine != "x86_64", reason="the trampoline exists for x86_64 only")

# the child: prepare(), then exec_through(fd, program, args, env) taken from its argv:
# argv[1] = program, argv[2] = the env as K=V items separated by \x1f, argv[3:] = args
CHILD = """
import os, sys
from nsbox.process import trampoline
env = dict(item.split("=", 1) for item in sys.argv[2].split("\\x1f") if item)
trampoline.exec_through(trampoline.prepare(), sys.argv[1], sys.argv[3:], env)
"""


def through(program: str, args: list[str], env: dict[str, str] | None = None,
            **kw) -> subprocess.CompletedProcess[bytes]:
    """Run *program* with argv *args* through the trampoline, in a child Python."""
    env = {"PATH": "/usr/bin:/bin"} if env is None else env
    packed = "\x1f".join(f"{k}={v}" for k, v in env.items())
    kw.setdefault("capture_output", True)
    return subprocess.run([sys.executable, "-c", CHILD, program, packed, *args], cwd=ROOT,
                          timeout=30, check=False, **kw)


def python_child(code: str, **kw) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, timeout=30,
                          check=False, **kw)


class TestImage:
    def test_elf_headers(self):
        image = trampoline.elf("x86_64")
        assert image is not None and len(image) < 1024
        ident, e_type, machine, _version, entry, phoff, shoff, _flags, ehsize, phentsize, phnum = \
            struct.unpack_from("<16sHHIQQQIHHH", image)
        assert ident[:7] == b"\x7fELF\x02\x01\x01"      # 64-bit, little endian, version 1
        assert (e_type, machine, phoff, shoff, ehsize, phentsize, phnum) == (2, 62, 64, 0, 64, 56, 1)
        p_type, p_flags, p_offset, vaddr, _paddr, filesz, memsz, align = struct.unpack_from("<IIQQQQQQ", image, 64)
        assert (p_type, p_flags, p_offset, filesz, memsz, align) == (1, 5, 0, len(image), len(image), 0x1000)
        assert vaddr + 120 <= entry < vaddr + len(image)  # the entry is in the code, past the headers

    def test_no_architecture_but_x86_64(self, monkeypatch):
        assert trampoline.elf("aarch64") is None
        assert trampoline.prepare("aarch64") is None
        monkeypatch.setattr(os, "uname", lambda: os.uname_result(("Linux", "h", "6.18", "#1", "riscv64")))
        assert trampoline.prepare() is None

    @pytest.mark.skipif(shutil.which("objdump") is None, reason="needs binutils' objdump")
    def test_rows_decode_as_the_instructions_they_say(self, tmp_path):
        """objdump (a development-time check: the module never needs it) must
        decode every row as exactly one instruction of that mnemonic."""
        data = trampoline._x86_64_data()
        image, _entry = trampoline._assemble(trampoline._x86_64_program(), data)
        (tmp_path / "code").write_bytes(image)
        code_size = len(image) - sum(len(blob) for _name, blob in data)
        out = subprocess.run(["objdump", "-D", "-b", "binary", "-m", "i386:x86-64", "-M", "intel",
                              "--insn-width=16", f"--stop-address={code_size}", str(tmp_path / "code")],
                             capture_output=True, text=True, check=True).stdout
        decoded = []  # (offset, length, mnemonic)
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[0].strip().endswith(":"):
                decoded.append((int(parts[0].strip()[:-1], 16), len(parts[1].split()), parts[2].split()[0]))
        aliases = {"jz": "je", "jnz": "jne", "repe": "repz", "repne": "repnz"}  # objdump's names
        offset = 0
        rows = [row for row in trampoline._x86_64_program() if not isinstance(row, str)]
        assert len(decoded) == len(rows)
        for (at, length, mnemonic), (hexes, asm, _why) in zip(decoded, rows, strict=True):
            size = sum(4 if t.startswith("rel32:") else 1 for t in hexes.split())
            assert (at, length) == (offset, size), asm
            assert mnemonic == aliases.get(asm.split()[0], asm.split()[0]), (asm, mnemonic)
            offset += size


@x86_64
class TestExec:
    def test_argv0_is_the_users(self):
        done = through("/bin/sh", ["mysh", "-c", 'echo "$0"'])
        assert (done.returncode, done.stdout) == (0, b"mysh\n"), done.stderr
        args = ["mysh", "-c", "cat /proc/$$/cmdline", "", "two words"]
        done = through("/bin/sh", args)
        assert done.stdout == b"".join(a.encode() + b"\0" for a in args), done.stderr

    def test_env_passed_exactly_in_order(self):
        env = {"Z": "last-first", "A": "1", "B": "x=y", "EMPTY": "", "UTF": "\u00e9t\u00e9", "PATH": "/bin"}
        done = through("/usr/bin/env", ["env", "-0"], env)
        assert done.returncode == 0, done.stderr
        assert done.stdout == "".join(f"{k}={v}\0" for k, v in env.items()).encode()
        assert through("/usr/bin/env", ["env"], {}).stdout == b""  # no marker left behind

    def test_exe_is_the_program_and_no_fd_leaks(self):
        done = through("/bin/sh", ["sh", "-c", "readlink /proc/$$/exe; ls /proc/$$/fd"],
                       stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        exe, *fds = done.stdout.decode().split()
        assert exe == os.path.realpath("/bin/sh")
        assert fds == ["0", "1", "2"]  # the memfd closed on exec

    def test_an_ordinary_script_runs(self, tmp_path):
        script = tmp_path / "hello"
        script.write_text('#!/bin/sh\necho "$0 $1 $HELLO"\n')
        script.chmod(0o755)
        done = through(str(script), ["ignored", "arg"], {"HELLO": "world"})
        assert (done.returncode, done.stdout) == (0, f"{script} arg world\n".encode()), done.stderr

    def test_missing_program_is_127_with_errno(self):
        done = through("/nonexistent/prog", ["prog"])
        assert done.returncode == 127
        assert done.stderr == b"nsbox: exec /nonexistent/prog: errno 2\n"

    def test_unexecutable_program_is_126_with_errno(self, tmp_path):
        (tmp_path / "data").write_text("not a program\n")
        done = through(str(tmp_path / "data"), ["data"])
        assert done.returncode == 126
        assert done.stderr == f"nsbox: exec {tmp_path / 'data'}: errno 13\n".encode()

    def test_report_record_is_a_channel_message(self):
        code = """
import os, sys
from nsbox.process import trampoline
from nsbox.process.channel import Channel
def run(program):
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(r)
        trampoline.exec_through(trampoline.prepare(), program, ["x"], {}, report_fd=w)
    os.close(w)
    chan = Channel(r, -1, "process")
    message = chan._next()
    _, status = os.waitpid(pid, 0)
    print(program, message, os.waitstatus_to_exitcode(status))
run("/nonexistent")
run("/bin/true")
"""
        done = python_child(code)
        assert done.stdout.decode().splitlines() == [
            "/nonexistent ('exec-failed', b'0002') 127",
            "/bin/true None 0",  # EOF: exec'd, and the fd did not stay open in /bin/true
        ], done.stderr

    def test_report_fd_is_not_inherited_by_the_program(self):
        code = """
import os
from nsbox.process import trampoline
r, w = os.pipe2(os.O_CLOEXEC)
trampoline.exec_through(trampoline.prepare(), "/bin/sh", ["sh", "-c", "ls /proc/$$/fd"], {}, report_fd=w)
"""
        done = python_child(code, stdin=subprocess.DEVNULL)
        assert done.stdout.split() == [b"0", b"1", b"2"], done.stderr

    def test_env_key_like_the_marker_is_refused(self):
        done = python_child("from nsbox.process import trampoline\n"
                            "trampoline.exec_through(trampoline.prepare(), '/bin/true', ['true'], "
                            "{'=nsbox.trampoline': ''})")
        assert done.returncode == 1 and b"ValueError: exec /bin/true: illegal environment variable name" in done.stderr

    def test_failure_to_exec_the_trampoline_names_the_program(self, tmp_path):
        (tmp_path / "data").write_text("data\n")
        (tmp_path / "data").chmod(0o644)
        code = f"""
import os
from nsbox.process import trampoline
fd = os.open({str(tmp_path / "data")!r}, os.O_RDONLY | os.O_CLOEXEC)  # not executable: both ways fail
try:
    trampoline.exec_through(fd, "/bin/true", ["true"], {{}})
except OSError as e:
    print(e.errno, e.filename, e.strerror)
"""
        done = python_child(code)
        assert done.stdout == b"13 /bin/true exec /bin/true through the trampoline: Permission denied\n", done.stderr

    @pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare(1)")
    def test_without_proc_it_falls_back_to_execveat(self):
        # a mount namespace of a child's own, where /proc is gone: /proc/self/fd/N cannot be exec'd
        packed = "A=1"
        done = subprocess.run(["unshare", "--mount", "sh", "-c",
                               'umount -l /proc && test ! -e /proc/self/fd && exec "$@"', "sh",
                               sys.executable, "-c", CHILD, "/usr/bin/env", packed, "env"],
                              cwd=ROOT, capture_output=True, timeout=30, check=False)
        assert (done.returncode, done.stdout) == (0, b"A=1\n"), done.stderr


@x86_64
class TestSealedMemfd:
    def test_sealed_and_close_on_exec(self):
        fd = trampoline.prepare()
        assert fd is not None
        try:
            assert not os.get_inheritable(fd)
            assert fcntl.fcntl(fd, fcntl.F_GET_SEALS) & trampoline.SEALS == trampoline.SEALS
            assert os.pread(fd, 4096, 0) == trampoline.elf()
            # a second open of the same file, as /proc/<pid>/exe would give
            other = os.open(f"/proc/self/fd/{fd}", os.O_RDWR | os.O_CLOEXEC)
            try:
                for attempt in (lambda: os.pwrite(other, b"\x7fELF", 0), lambda: os.ftruncate(other, 0),
                                lambda: os.pwrite(other, b"x", 4096),
                                lambda: fcntl.fcntl(other, fcntl.F_ADD_SEALS, 0)):
                    with pytest.raises(PermissionError):
                        attempt()
            finally:
                os.close(other)
            assert os.pread(fd, 4096, 0) == trampoline.elf()
        finally:
            os.close(fd)

    def test_run_without_the_marker_it_refuses(self, tmp_path):
        path = tmp_path / "trampoline"
        path.write_bytes(trampoline.elf() or b"")
        path.chmod(0o755)
        done = subprocess.run([path, "/bin/true", "true"], capture_output=True, env={"A": "1"}, timeout=10)
        assert done.returncode == 126 and b"refused" in done.stderr
        # the marker but no program: refused too (never execve(NULL))
        done = python_child(f"import os; os.execve({str(path)!r}, ['-'], {{'=nsbox.trampoline': ''}})")
        assert done.returncode == 126 and b"refused" in done.stderr


SCRIPT = "#!/proc/self/exe\nprint('the host python ran the script')\n"


@x86_64
class TestProcSelfExeScript:
    """CVE-2019-5736's shebang variant: a program that is ``#!/proc/self/exe``."""

    def test_direct_exec_from_python_runs_the_host_python(self, tmp_path):
        # the attack, for contrast: why the trampoline exists
        script = tmp_path / "evil"
        script.write_text(SCRIPT)
        script.chmod(0o755)
        done = python_child(f"import os; os.execve({str(script)!r}, ['evil'], {{}})")
        assert done.stdout == b"the host python ran the script\n"

    def test_through_the_trampoline_it_is_refused(self, tmp_path):
        script = tmp_path / "evil"
        script.write_text(SCRIPT)
        script.chmod(0o755)
        for args in (["evil"], ["evil", "a", "b", "c"]):
            done = through(str(script), args, {"PATH": "/bin"})
            assert done.returncode == 126, done
            assert done.stdout == b""
            assert done.stderr == (b"nsbox: exec trampoline run again "
                                   b"(is the program a #!/proc/self/exe script?): refused\n")
        # with an interpreter argument, and with an empty environment
        script.write_text("#!/proc/self/exe -c\nprint('ran')\n")
        for env in ({"PATH": "/bin"}, {}):
            done = through(str(script), ["evil"], env)
            assert (done.returncode, done.stdout) == (126, b""), done

    def test_what_proc_pid_exe_shows_is_the_sealed_memfd(self, tmp_path):
        """Catch the trampoline's second run (from the script's shebang) while
        it blocks writing its refusal to a full pipe, and look at it the way
        another process in the container would."""
        script = tmp_path / "evil"
        script.write_text(SCRIPT)
        script.chmod(0o755)
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4096)
            os.set_blocking(w, False)
            try:
                while True:
                    os.write(w, b"." * 4096)
            except BlockingIOError:
                pass
            os.set_blocking(w, True)  # the child's write(2) must block, not fail
            child = subprocess.Popen([sys.executable, "-c", CHILD, str(script), "PATH=/bin", "evil"],
                                     cwd=ROOT, stdout=subprocess.DEVNULL, stderr=w)
            os.close(w)
            w = -1
            try:
                exe = f"/proc/{child.pid}/exe"
                deadline = time.monotonic() + 20
                while True:
                    with open(f"/proc/{child.pid}/cmdline", "rb") as f:
                        if f.read().startswith(b"/proc/self/exe\0"):  # binfmt_script's argv: the second run
                            break
                    assert time.monotonic() < deadline, "the trampoline never ran from the shebang"
                    time.sleep(0.002)
                assert os.readlink(exe) == f"/memfd:{trampoline.MEMFD_NAME} (deleted)"
                assert not os.path.samefile(exe, os.path.realpath(sys.executable))
                for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_TRUNC):
                    try:
                        fd = os.open(exe, flags)
                    except OSError as e:  # ETXTBSY while it runs; EPERM from the seals (O_TRUNC)
                        assert e.errno in (26, 1), e
                        continue
                    try:
                        with pytest.raises(PermissionError):
                            os.write(fd, b"\x7fELF overwritten")
                    finally:
                        os.close(fd)
                fd = os.open(exe, os.O_RDONLY)
                try:
                    assert os.read(fd, 4096) == trampoline.elf()
                    assert fcntl.fcntl(fd, fcntl.F_GET_SEALS) & trampoline.SEALS == trampoline.SEALS
                finally:
                    os.close(fd)
            finally:
                stderr = b""
                while chunk := os.read(r, 65536):
                    stderr += chunk
                assert child.wait(timeout=20) == 126
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
        assert stderr.endswith(b"(is the program a #!/proc/self/exe script?): refused\n")
