"""A container on disk and in the kernel: create, start, state, kill, delete.

The status machine (OCI runtime spec, "Lifecycle")::

    create --> created --start--> running --(init exits)--> stopped --delete--> (gone)
                  |                  |                          ^
                  +------kill--------+--------------------------+

``created``: init is alive and parked on the exec fifo.  ``running``: init is
alive and the fifo is gone (start consumed it).  ``stopped``: init is gone,
or its pid now belongs to another process (we compare start times).

Like nsbox.state, this module uses ``posix``, not ``os`` (~1.3 ms to import),
for the status verbs; ``create`` imports ``os`` itself.
"""

from __future__ import annotations

import posix
import time

from nsbox.errors import ExecError, NsboxError
from nsbox.oci.state import CREATED, CREATING, PAUSED, RUNNING, STOPPED, oci_state, to_json
from nsbox.state import (SECCOMP_CACHE, ContainerNotFound, InvalidState, StateDir, exists, is_alive,
                         process_start_time, write_atomic)

SIGKILL = 9

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsbox.cgroups import Cgroup
    from nsbox.oci.spec import Spec
    from nsbox.process.create import LaunchOptions
    from nsbox.process.early import EarlyStage1
    from nsbox.security.filter import Program


class Container:
    """One container, by id, under a state root (``--root``, default /run/nsbox)."""

    def __init__(self, state_dir: StateDir, record: dict[str, object]) -> None:
        self.dir = state_dir
        self.record = record
        #: what create accepted but could not apply (for the CLI to show)
        self.warnings: list[str] = []

    @property
    def id(self) -> str:
        return self.dir.id

    @property
    def pid(self) -> int:
        return int(self.record.get("pid") or 0)

    @property
    def bundle(self) -> str:
        return str(self.record["bundle"])

    @classmethod
    def load(cls, root: str, container_id: str, lock: bool = True) -> Container:
        d = StateDir.open(root, container_id, lock=lock)
        return cls(d, d.read())

    # -- create ------------------------------------------------------------

    @classmethod
    def create(cls, root: str, container_id: str, bundle: str, opts: LaunchOptions,
               pid_file: str | None = None, parsed: tuple[bytes, Spec] | None = None,
               early: EarlyStage1 | None = None) -> Container:
        """Parse the bundle (unless *parsed* gives its config.json's bytes and
        their Spec), launch init (through *early*, a stage 1 forked when the
        verb started, if given) and leave it parked; nothing is left behind
        when any step fails."""
        import os

        from nsbox.oci import spec as oci_spec
        from nsbox.oci.features import unsupported
        from nsbox.process.create import launch

        bundle = os.path.abspath(bundle)
        # everything is checked before anything is made: a bad bundle leaves nothing
        if parsed is not None:
            raw, spec = parsed
        else:
            raw = oci_spec.read_config(bundle)
            if early is not None:
                early.send_config(raw, bundle)  # stage 1 parses it too, meanwhile
            spec = oci_spec.parse(raw, bundle, os.path.join(bundle, "config.json"))
        if spec.process is None:
            raise oci_spec.SpecError("process", "is required to create a container")
        refused = unsupported(spec)
        if refused is not None:
            raise oci_spec.SpecError(*refused)
        # not root at all (root of a user namespace, as under rootless podman,
        # is in one already): the container needs a user namespace of its own
        if opts.rootless and os.geteuid() != 0 and spec.linux.namespace("user") is None:
            raise oci_spec.SpecError("linux.namespaces", "a rootless container needs a user namespace (add "
                                     "{\"type\": \"user\"} and uidMappings/gidMappings; see nsbox spec --rootless)")
        d = StateDir.create(root, container_id)  # and the state root, with its mode, before the cache makes it
        owned: Cgroup | None = None  # the cgroup, once known: to remove if what follows fails
        try:
            d.make_fifo()

            def find_cgroup() -> Cgroup | None:
                # after the hand-over: the cgroups package and the mountinfo
                # it reads are none of the container's side's business
                nonlocal owned
                from nsbox.cgroups import Cgroup

                found = Cgroup.for_container(spec.linux.cgroups_path, container_id)
                found.refuse_unfit()  # before it is ours to clean up: it may hold others' processes
                cgroup = _cgroup_if_permitted(found, spec.linux.resources) if opts.rootless else found
                owned = cgroup
                return cgroup

            def meanwhile() -> None:
                # The config as it was at create: the spec says later edits of
                # the bundle's config.json must not affect the container.
                write_atomic(d.config, raw)
                if spec.linux.seccomp is not None:
                    from nsbox.security.seccomp import compile_profile

                    opts.seccomp = compile_profile(spec.linux.seccomp, cache_dir=os.path.join(root, SECCOMP_CACHE))
                    write_atomic(d.seccomp, opts.seccomp.bpf)  # for exec
            annotations = spec.annotations

            def hook_state(pid: int) -> bytes:
                return to_json(oci_state(container_id, CREATING, pid, bundle, annotations))

            opts.keyring_name = f"_ses.{container_id}"

            def apply_limits(cgroup: Cgroup) -> None:
                cgroup.apply(spec.linux.resources, devices=not opts.rootless)

            try:
                pid = launch(spec, d.fifo, hook_state, opts, find_cgroup, apply_limits, early, raw, meanwhile)
            except ExecError as e:
                # the program is missing: for the runtime that is a failed create (exit 1), as in runc
                raise NsboxError(str(e)) from None
            record: dict[str, object] = {
                **oci_state(container_id, CREATED, pid, bundle, annotations),
                "rootfs": spec.root_path,
                "start_time": process_start_time(pid),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "owner": os.getuid(),
                # so start and delete parse the config only when they have hooks to run
                "hooks": [phase for phase, hooks in spec.hooks.items() if hooks],
                "cgroup": owned.to_record() if owned is not None else None,
            }
            if opts.seccomp is not None:
                record["seccomp"] = opts.seccomp.to_record()
            if spec.linux.namespace("mount") is None:
                record["host_mounts_under"] = os.path.realpath(spec.root_path)
            d.write(record)
            if pid_file:
                write_atomic(os.path.abspath(pid_file), str(pid).encode())
        except BaseException:
            if owned is not None:
                _kill_all_in(owned)
                owned.destroy()
            if spec.linux.namespace("mount") is None:
                from nsbox.rootfs.pivot import unmount_under

                unmount_under(os.path.realpath(spec.root_path))
            d.remove()
            raise
        container = cls(d, record)
        if owned is not None:
            container.warnings = list(owned.warnings)  # what the limits could not enforce
        return container

    # -- queries -----------------------------------------------------------

    def alive(self) -> bool:
        start = self.record.get("start_time")
        return isinstance(start, int) and is_alive(self.pid, start)

    def cgroup(self) -> Cgroup | None:
        record = self.record.get("cgroup")
        if not isinstance(record, dict):
            return None
        from nsbox.cgroups import Cgroup

        return Cgroup.from_record(record)

    def seccomp(self) -> Program | None:
        """The container's compiled seccomp filter (exec'd processes get it too)."""
        record = self.record.get("seccomp")
        if not isinstance(record, dict):
            return None
        from nsbox.security.filter import Program

        with open(self.dir.seccomp, "rb") as f:
            return Program.from_record(record, f.read())

    def status(self) -> str:
        if not self.alive():
            return STOPPED
        cgroup = self.record.get("cgroup")
        if isinstance(cgroup, dict):
            from nsbox.cgroups.recorded import frozen

            if frozen(cgroup):
                return PAUSED
        if exists(self.dir.fifo):
            return CREATED
        return RUNNING

    def state(self) -> dict[str, object]:
        status = self.status()
        annotations = self.record.get("annotations")
        return oci_state(self.id, status, self.pid, self.bundle,
                         annotations if isinstance(annotations, dict) else {})

    def spec(self):  # type: ignore[no-untyped-def]
        """The config.json saved at create (relative paths still against the bundle)."""
        from nsbox.oci import spec as oci_spec

        return oci_spec.load(self.bundle, self.dir.config)

    # -- verbs -------------------------------------------------------------

    def start(self) -> list[str]:
        """Let init exec the process; returns the warnings of failed poststart hooks."""
        status = self.status()
        if status != CREATED:
            raise InvalidState(f"cannot start a container that is {status}")
        # the hooks' spec is read before the fifo: a failure must leave the container created
        spec = self.spec() if self._has_hooks("poststart") else None
        try:
            fd = posix.open(self.dir.fifo, posix.O_WRONLY | posix.O_NONBLOCK | posix.O_CLOEXEC)
        except OSError as e:  # ENXIO: no reader, init died after we looked
            raise InvalidState(f"cannot start: the container's init is gone ({e.strerror})") from None
        try:
            posix.write(fd, b"0")
        finally:
            posix.close(fd)
        posix.unlink(self.dir.fifo)
        if spec is None:
            return []
        from nsbox.process.hooks import run_hooks_warning

        return run_hooks_warning(spec.hooks["poststart"], "poststart", to_json(self.state()))

    def signal(self, signum: int, all_processes: bool = False) -> None:
        """Send *signum* to init (or every process of the container).

        ``--all`` works on a stopped container too, as in runc: when init
        shares another container's PID namespace (or the host's), its
        children outlive it, and containerd's shim sends ``kill --all KILL``
        after init's exit to clear them.

        A paused container: SIGKILL thaws it afterwards, since a task frozen
        by the v1 freezer acts on no signal, SIGKILL included, until it is
        thawed (runc does the same; the container is dead either way).
        Other signals stay pending until ``resume``.
        """
        status = self.status()
        if all_processes:
            self._signal_all(signum, status)
            return
        if status == STOPPED:
            raise InvalidState("container not running")
        self._send(self.pid, signum)
        if status == PAUSED and signum == SIGKILL:
            cgroup = self.cgroup()
            if cgroup is not None:
                cgroup.thaw()

    def _signal_all(self, signum: int, status: str) -> None:
        from nsbox.cgroups.errors import CgroupError

        cgroup = self.cgroup()
        if cgroup is None or not cgroup.exists():
            if status == STOPPED:
                return  # nothing of it is left to signal (runc: no error either)
            for pid in self.processes():
                self._send(pid, signum)
            return
        # Frozen while we signal, so that no process forks a new one we would
        # miss; a container that was paused stays paused (unless SIGKILL).
        was_frozen = cgroup.frozen()
        froze = False
        if not was_frozen:
            try:
                cgroup.freeze()
                froze = True
            except CgroupError:
                pass  # no freezer, or a task stuck in D state: signal them anyway
        try:
            for pid in cgroup.pids():
                self._send(pid, signum)
        finally:
            if froze or (was_frozen and signum == SIGKILL):
                cgroup.thaw()

    def _send(self, pid: int, signum: int) -> None:
        from nsbox._sys.pidfd import pidfd_open, pidfd_send_signal

        try:
            pidfd = pidfd_open(pid)
        except OSError:
            return  # exited meanwhile
        try:
            # the pidfd pins the process: if it is still the one we
            # recorded now, the signal cannot hit a recycled pid
            if pid == self.pid and not self.alive():
                return
            pidfd_send_signal(pidfd, signum)
        except OSError as e:
            if e.errno != 3:  # ESRCH: it exited meanwhile
                raise
        finally:
            posix.close(pidfd)

    def processes(self) -> list[int]:
        """Host pids of the container's processes: those in its cgroup (sub-cgroups
        included), or for an old record without one, those in init's PID namespace."""
        cgroup = self.cgroup()
        if cgroup is not None:
            return sorted(cgroup.pids())
        if not self.alive():
            return []
        try:
            target = posix.stat(f"/proc/{self.pid}/ns/pid")
        except FileNotFoundError:
            return []
        except PermissionError:
            return [self.pid]  # not ours to inspect (a non-dumpable init): init at least is
        host = posix.stat("/proc/self/ns/pid")
        if (target.st_dev, target.st_ino) == (host.st_dev, host.st_ino):
            return [self.pid]  # shares the host's PID namespace: only init is surely ours
        pids = []
        for name in posix.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                st = posix.stat(f"/proc/{name}/ns/pid")
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
                pids.append(int(name))
        return sorted(pids)

    def pause(self) -> None:
        status = self.status()
        if status not in (RUNNING, CREATED):
            raise InvalidState(f"cannot pause a container that is {status}")
        self._require_cgroup("pause").freeze()

    def resume(self) -> None:
        status = self.status()
        if status != PAUSED:
            raise InvalidState(f"cannot resume a container that is {status}")
        self._require_cgroup("resume").thaw()

    def update(self, resources: dict[str, object]) -> None:
        if self.status() == STOPPED:
            raise InvalidState("cannot update a stopped container")
        self._require_cgroup("update").update(resources)

    def _require_cgroup(self, verb: str) -> Cgroup:
        cgroup = self.cgroup()
        if cgroup is None:
            raise InvalidState(f"cannot {verb}: this container has no cgroup")
        return cgroup

    def delete(self, force: bool = False) -> list[str]:
        """Kill what is left, remove the cgroup, mounts and state; returns the
        warnings of failed poststop hooks."""
        status = self.status()
        if status in (RUNNING, PAUSED) and not force:
            raise InvalidState(f"cannot delete a {status} container (stop it, or use delete --force)")
        cgroup = None
        if status != STOPPED or not self._remove_empty_cgroup():
            cgroup = self.cgroup()
        if cgroup is not None:
            _kill_all_in(cgroup)  # also what a stopped init left behind, when it had no PID namespace
            self._wait_stopped()
        elif status != STOPPED:
            # created (never started) or forced: the spec says delete kills it
            self.signal(9, all_processes=True)
            self._wait_stopped()
        spec = None
        if self._has_hooks("poststop"):
            try:
                spec = self.spec()
            except NsboxError:
                pass  # the bundle may be gone already; delete must still clean up
        if cgroup is not None:
            cgroup.destroy()
        host_mounts = self.record.get("host_mounts_under")
        if isinstance(host_mounts, str):
            # no mount namespace: its mounts are the host's, under its rootfs
            from nsbox.rootfs.pivot import unmount_under

            unmount_under(host_mounts)
        self.dir.remove()
        if spec is None or not spec.hooks["poststop"]:
            return []
        from nsbox.process.hooks import run_hooks_warning

        return run_hooks_warning(spec.hooks["poststop"], "poststop", to_json(oci_state(
            self.id, STOPPED, 0, self.bundle, spec.annotations)))

    def _remove_empty_cgroup(self) -> bool:
        """The common end of a stopped container: its cgroups are empty, and
        removing them needs no more than rmdir (nor the cgroups package).
        False when there are none, or they are not empty: Cgroup's turn."""
        record = self.record.get("cgroup")
        if not isinstance(record, dict):
            return False
        from nsbox.cgroups.recorded import remove_if_empty

        return remove_if_empty(record)

    def _has_hooks(self, phase: str) -> bool:
        hooks = self.record.get("hooks")
        return not isinstance(hooks, list) or phase in hooks  # an old record: look

    def _wait_stopped(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                raise NsboxError(f"container {self.id}: init {self.pid} did not die within {timeout:.0f} s")
            time.sleep(0.005)


def _cgroup_if_permitted(cgroup: Cgroup, resources: dict | None) -> Cgroup | None:  # type: ignore[type-arg]
    """Rootless: the container's cgroup if the user may make it (cgroup v2
    delegated to them, or root with --rootless=true), else none -- as runc
    does -- unless limits are asked for, which then cannot hold."""
    import errno

    from nsbox.cgroups import CgroupError
    from nsbox.cgroups.resources import Resources

    try:
        cgroup.create()
        return cgroup
    except CgroupError as e:
        if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        if Resources(resources).limits():
            raise CgroupError(f"rootless, and no cgroup to hold the limits ({e})",
                              "delegate a cgroup v2 subtree to the user, or drop the limits",
                              json_path="linux.resources") from None
    return None


def remove_abandoned(root: str, container_id: str) -> None:
    """A state directory without state.json is a create that was killed
    before it finished (a client's timeout, SIGKILL).  ``delete --force``
    clears it: the processes and cgroups its config names, then the
    directory.  One that a running create still holds locked is left alone."""
    import fcntl

    from nsbox.cgroups import Cgroup

    d = StateDir(root, container_id)
    path = d.path
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC | posix.O_NOFOLLOW)
    except OSError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # being created right now
        if exists(f"{path}/state.json"):
            return  # it finished meanwhile: a container, not debris
        cgroups_path = None
        try:
            from nsbox import jsonio
            from nsbox.oci.spec import read_config

            config = jsonio.loads(read_config(path))
            linux = config.get("linux") if isinstance(config, dict) else None
            cgroups_path = linux.get("cgroupsPath") if isinstance(linux, dict) else None
        except (NsboxError, OSError, ValueError):
            pass
        cgroup = Cgroup.for_container(cgroups_path if isinstance(cgroups_path, str) else None, container_id)
        if cgroup.exists():
            _kill_all_in(cgroup)
            cgroup.destroy()
        d.remove()
    finally:
        posix.close(fd)


def _kill_all_in(cgroup: Cgroup, timeout: float = 10.0) -> None:
    """SIGKILL every process of *cgroup*, frozen first so none can fork a new
    one meanwhile; returns once it is empty."""
    deadline = time.monotonic() + timeout
    while True:
        pids = cgroup.pids()
        if not pids:
            return
        cgroup.freeze()
        for pid in cgroup.pids():
            try:
                posix.kill(pid, 9)
            except ProcessLookupError:
                pass
        cgroup.thaw()  # SIGKILL is delivered as the tasks thaw
        if time.monotonic() > deadline:
            raise NsboxError(f"processes {pids} survived SIGKILL for {timeout:.0f} s")
        time.sleep(0.002)


def list_containers(root: str) -> list[Container]:
    from nsbox.state import list_ids

    found = []
    for container_id in list_ids(root):
        try:
            found.append(Container.load(root, container_id, lock=False))
        except (ContainerNotFound, NsboxError):
            continue
    return found
