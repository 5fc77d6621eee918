"""Pieces shared by ``ns unshare`` and ``ns enter``: the helper that stays
outside, fork-and-wait with signal forwarding, credentials, and exec."""

from __future__ import annotations

import os


TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

from nsbox._sys import mount as _mount
from nsbox._sys import process as _proc
from nsbox._sys import signals as signal
from nsbox._sys.consts import (
    CLONE_NEWPID,
    CLONE_NEWTIME,
    MS_BIND,
    NAMESPACE_TYPES,
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_RAISE,
    PR_SET_PDEATHSIG,
)
from nsbox.errors import ExecError, NamespaceError
from nsbox.process import errpipe
from nsbox.process.status import exit_status

# Signals a terminal sends to the whole foreground process group: the child
# gets them itself, so the waiting parent ignores them and lives to report
# the child's status.  Signals sent to nsbox alone are passed on.
_TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP)
_FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def missing_types(flags: int, proc: str = "/proc") -> list[str]:
    """The namespace types in *flags* that this kernel lacks."""
    return [name for name, flag in NAMESPACE_TYPES
            if flags & flag and not os.path.exists(f"{proc}/self/ns/{name}")]


def check_supported(flags: int, proc: str = "/proc") -> None:
    missing = missing_types(flags, proc)
    if missing:
        raise NamespaceError(
            f"this kernel has no {', '.join(missing)} namespace{'s' if len(missing) > 1 else ''}",
            f"{proc}/self/ns/{missing[0]} does not exist; "
            "the kernel was built without it or is too old (time needs Linux 5.6)",
        )


class OutsideHelper:
    """A child forked *before* unshare, so it stays in the original
    namespaces, to act on the parent from outside once told to go: write id
    maps the parent may not write itself, bind-mount namespace files."""

    def __init__(self, pid: int, go_w: int, result_r: int) -> None:
        self.pid = pid
        self._go_w = go_w
        self._result_r = result_r

    @classmethod
    def start(cls, work: Callable[[], None]) -> OutsideHelper:
        go_r, go_w = os.pipe2(os.O_CLOEXEC)
        result_r, result_w = errpipe.open_pipe()
        pid = _proc.fork()
        if pid == 0:
            code = 1
            try:
                os.close(go_w)
                os.close(result_r)
                if os.read(go_r, 1) == b"g":  # EOF: the parent gave up
                    work()
                    code = 0
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                errpipe.report(result_w, exc)
            finally:
                os._exit(code)
        os.close(go_r)
        os.close(result_w)
        return cls(pid, go_w, result_r)

    def finish(self) -> None:
        """Tell the helper to go, wait for it, and raise what it failed with."""
        os.write(self._go_w, b"g")
        error = self._reap()
        if error is not None:
            raise error

    def abort(self) -> None:
        """Make the helper exit without acting (it reads EOF) and reap it."""
        if self.pid:
            self._reap()

    def _reap(self) -> BaseException | None:
        os.close(self._go_w)
        try:
            error = errpipe.receive(self._result_r)
        finally:
            os.close(self._result_r)
            _, status = os.waitpid(self.pid, 0)
            self.pid = 0
        if error is None and status != 0 and not os.WIFEXITED(status):
            error = NamespaceError(f"the outside helper died ({exit_status(status)})")
        return error


def persist_namespace(pid: int, flag: int, path: str) -> None:
    """Bind-mount the new namespace of *pid* onto *path* so it outlives its
    processes (``--net=/run/netns/x``; undo with ``umount``)."""
    name = next(n for n, f in NAMESPACE_TYPES if f == flag)
    # A new PID or time namespace is the one for the children of *pid*.
    if flag in (CLONE_NEWPID, CLONE_NEWTIME):
        name += "_for_children"
    if not os.path.exists(path):
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o444))
    _mount.mount(f"/proc/{pid}/ns/{name}", path, None, MS_BIND)


def fork_and_wait(become: Callable[[], None], kill_child: int | None = None) -> int:
    """Fork; the child runs *become* (which execs); the parent returns its exit status.

    A failure in the child before exec is raised here, in the parent.
    """
    err_r, err_w = errpipe.open_pipe()
    pid = _proc.fork()
    if pid == 0:
        try:
            os.close(err_r)
            if kill_child is not None:
                _proc.prctl(PR_SET_PDEATHSIG, kill_child)
                if _reader_gone(err_w):  # the parent died before prctl took hold
                    os._exit(1)
            become()
        except BaseException as exc:  # noqa: BLE001 - sent to the parent
            errpipe.report(err_w, exc)
            os._exit(exc.exit_code if isinstance(exc, ExecError) else 1)
        os._exit(1)  # pragma: no cover - become() execs or raises
    os.close(err_w)
    saved = {s: signal.signal(s, signal.SIG_IGN) for s in _TERMINAL_SIGNALS}
    for s in _FORWARDED_SIGNALS:
        saved[s] = signal.signal(s, lambda signum, _frame: _forward(pid, signum))
    try:
        try:
            error = errpipe.receive(err_r)
        finally:
            os.close(err_r)
        _, status = os.waitpid(pid, 0)
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
    if error is not None:
        raise error
    return exit_status(status)


def _reader_gone(fd: int) -> bool:
    """Whether the other end of the pipe *fd* writes to is closed.  How a child
    in a new PID namespace learns its parent died: there getppid() is 0 either way."""
    import select

    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def _forward(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def set_credentials(uid: int | None, gid: int | None, may_setgroups: bool) -> None:
    """``--setgid``/``--setuid``: group first, while we still may change it."""
    if gid is not None:
        if may_setgroups:
            os.setgroups([])
        os.setresgid(gid, gid, gid)
    if uid is not None:
        os.setresuid(uid, uid, uid)


def keep_capabilities() -> None:
    """Carry the capabilities we hold across exec, even as a non-root uid:
    make the permitted set inheritable and raise each one as ambient."""
    _eff, permitted, _inh = _proc.capget()
    _proc.capset(permitted, permitted, permitted)
    for cap in range(64):
        if permitted >> cap & 1:
            _proc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)


def exec_command(argv: Sequence[str], trampoline: int | None = None) -> None:
    """Exec *argv* (default: $SHELL or /bin/sh).  Raises ExecError (126/127).

    With *trampoline* (nsbox.process.trampoline.prepare()), the program is
    exec'd by the sealed trampoline: ``ns enter`` runs programs of another
    mount namespace, which may be a ``#!/proc/self/exe`` script that would
    otherwise run (and hand out) the host's Python."""
    args = list(argv) or [os.environ.get("SHELL") or "/bin/sh"]
    # Python ignores SIGPIPE and SIGXFSZ for itself; the command must start
    # with the default dispositions, as it would from a shell.
    for s in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(s, signal.SIG_DFL)
    try:
        if trampoline is not None:
            # both imported by the caller before it joined another mount namespace
            from nsbox.process.init import find_program
            from nsbox.process.trampoline import exec_through

            try:
                program = find_program(args[0], os.environ.get("PATH"))
            except ExecError:
                program = None  # execvp below says why, in nsenter's words
            if program is not None:
                exec_through(trampoline, program, args, dict(os.environ))
        _proc.execvpe(args[0], args)
    except OSError as e:
        raise ExecError(f"cannot run {args[0]}: {os.strerror(e.errno or 0)}", e.errno or 0) from None
