"""``nsbox ns enter``: run a command in the namespaces of a process, as nsenter(1).

The steps, in order::

    1. open every namespace file, and the root and cwd to use, while the
       paths still mean what they meant outside (a joined mount namespace
       changes what /proc/PID/... resolves to)
    2. PR_SET_DUMPABLE 0: until exec, no process inside may ptrace us or open
       /proc/<us>/exe -- the CVE-2019-5736 class, where a container overwrote
       the runtime's binary through that link
    3. join (nsbox.namespaces.join): with a pidfd, every namespace at once,
       else file by file, the user namespace in the right place
    4. credentials: in a joined user namespace become its root (uid/gid 0,
       no supplementary groups) unless --preserve-credentials
    5. chroot to the root fd, chdir to the wd fd (never leaving the cwd outside)
    6. a joined PID namespace applies to children only: fork, and wait
    7. execve, through the sealed exec trampoline (nsbox.process.trampoline):
       the program may be the other namespace's ``#!/proc/self/exe`` script
"""

from __future__ import annotations

import os

from nsbox._sys import process as _proc
from nsbox._sys.consts import CLONE_NEWPID, CLONE_NEWUSER, NAMESPACE_TYPES, PR_SET_DUMPABLE
from nsbox.errors import NamespaceError, ProcessNotFound
from nsbox.nsfiles import flags_of_files, join
from nsbox.toolkit import launch


class EnterSpec:
    """What ``ns enter`` was asked to do.

    *namespaces* maps a type name (``"net"``) to a namespace file, or to None
    for the target's own.  *root* / *wd*: None to leave alone, ``True`` for the
    target's, or a path.
    """

    def __init__(
        self,
        argv: list[str],
        target: int | None = None,
        namespaces: dict[str, str | None] | None = None,
        all: bool = False,
        preserve_credentials: bool = False,
        root: str | bool | None = None,
        wd: str | bool | None = None,
        setuid: int | None = None,
        setgid: int | None = None,
        fork: bool | None = None,
    ) -> None:
        self.argv = argv
        self.target = target
        self.namespaces = dict(namespaces or {})
        self.all = all
        self.preserve_credentials = preserve_credentials
        self.root = root
        self.wd = wd
        self.setuid = setuid
        self.setgid = setgid
        self.fork = fork
        if self.target is None:
            if self.all or None in self.namespaces.values() or root is True or wd is True:
                raise ValueError("no target process: give -t PID (or a namespace file for each type)")
        if not self.namespaces and not self.all:
            raise ValueError("no namespace to enter: give --all or at least one of "
                             "--mount --uts --ipc --net --pid --user --cgroup --time")


def run(spec: EnterSpec) -> int:
    """Join, then exec (or fork, exec and return the exit status for a PID namespace)."""
    if spec.target is not None and not os.path.isdir(f"/proc/{spec.target}"):
        raise ProcessNotFound(f"no process with pid {spec.target}")
    chosen = _choose(spec)
    root_fd = _open_dir(spec.root, "root", spec.target)
    wd_fd = _open_dir(spec.wd, "cwd", spec.target)
    # imported before the join, when the host's Python library may go out of reach
    import nsbox.process.init  # noqa: F401  (find_program, for launch.exec_command)
    from nsbox.process.trampoline import prepare

    trampoline = prepare()
    try:
        _proc.prctl(PR_SET_DUMPABLE, 0)
        joined = _join(spec, chosen)
        if joined & CLONE_NEWUSER and not spec.preserve_credentials:
            _become_namespace_root(spec)
        else:
            launch.set_credentials(spec.setuid, spec.setgid, True)
        if root_fd is not None:
            _proc.fchdir(root_fd, "root")
            _proc.chroot(".")
            if wd_fd is None:
                _proc.chdir("/")
        if wd_fd is not None:
            _proc.fchdir(wd_fd, "wd")
    finally:
        for fd in (root_fd, wd_fd):
            if fd is not None:
                os.close(fd)
    fork = spec.fork if spec.fork is not None else bool(joined & CLONE_NEWPID)
    if not fork:
        launch.exec_command(spec.argv, trampoline)
    return launch.fork_and_wait(lambda: launch.exec_command(spec.argv, trampoline))


def _choose(spec: EnterSpec) -> list[tuple[str, int, str, bool]]:
    """(type, flag, path, from_target) for each namespace to join, in join order.

    With --all: every namespace of the target that is not already ours (the
    kernel refuses to re-enter one's own user namespace).
    """
    chosen = []
    for name, flag in NAMESPACE_TYPES:
        if name in spec.namespaces:
            path = spec.namespaces[name]
        elif spec.all:
            path = None
        else:
            continue
        from_target = path is None
        if path is None:
            path = f"/proc/{spec.target}/ns/{name}"
        try:
            theirs = os.stat(path)
        except FileNotFoundError:
            if from_target and not os.path.isdir(f"/proc/{spec.target}"):
                raise ProcessNotFound(f"no process with pid {spec.target}") from None
            if from_target and not os.path.exists(f"/proc/self/ns/{name}"):
                if spec.all:
                    continue  # a type this kernel lacks
                raise NamespaceError(f"this kernel has no {name} namespaces") from None
            raise NamespaceError(f"{path}: no such namespace file") from None
        except PermissionError:
            raise NamespaceError(f"{path}: permission denied",
                                 "entering another user's process needs root") from None
        ours = os.stat(f"/proc/self/ns/{name}")
        if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino) and (spec.all or name == "user"):
            continue
        chosen.append((name, flag, path, from_target))
    return chosen


def _open_dir(which: str | bool | None, proc_link: str, target: int | None) -> int | None:
    if which is None or which is False:
        return None
    path = f"/proc/{target}/{proc_link}" if which is True else str(which)
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise OSError(e.errno, f"open: {os.strerror(e.errno or 0)}", path) from None


def _join(spec: EnterSpec, chosen: list[tuple[str, int, str, bool]]) -> int:
    """Join the chosen namespaces; returns the flags of those joined."""
    files = [(flag, path) for _, flag, path, _ in chosen]
    try:
        join(files, spec.target)
    except OSError as e:
        raise _explain(e, flags_of_files(files)) from None
    return flags_of_files(files)


def _explain(e: OSError, flags: int) -> NamespaceError:
    from nsbox._sys.consts import CLONE_FLAG_NAMES, flag_names

    what = f"setns({flag_names(flags, CLONE_FLAG_NAMES)}): {os.strerror(e.errno or 0)}"
    if e.filename and not str(e.filename).startswith("pidfd:"):
        what += f": {e.filename}"
    hint = None
    if e.errno == 1:  # EPERM
        hint = "joining these namespaces needs CAP_SYS_ADMIN over them: run as root"
    elif e.errno == 22:
        hint = "the process must be single-threaded, and not already in the namespace"
    return NamespaceError(what, hint, e.errno)


def _become_namespace_root(spec: EnterSpec) -> None:
    uid = 0 if spec.setuid is None else spec.setuid
    gid = 0 if spec.setgid is None else spec.setgid
    try:
        os.setgroups([])
    except PermissionError:
        pass  # setgroups is denied in this user namespace; keep what we have
    try:
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as e:
        raise NamespaceError(
            f"cannot become uid {uid} gid {gid} in the joined user namespace: {e.strerror}",
            "the id is not mapped there; pass --preserve-credentials or -S/-G with a mapped id",
            e.errno,
        ) from None
