"""Cgroup: a container's cgroups in every hierarchy, as one object.

Which controller serves a linux.resources section::

    section            v1 controller        v2 controller
    memory             memory               memory
    cpu (shares...)    cpu                  cpu
    cpu.cpus/mems      cpuset               cpuset
    pids               pids                 pids
    blockIO            blkio                io
    hugepageLimits     hugetlb              hugetlb
    network            net_cls, net_prio    (none: v1 only)
    rdma               rdma                 rdma
    devices            devices              a BPF program attached to the cgroup
    unified            (none: v2 only)      any

A v1 hierarchy holding the controller wins; otherwise the v2 tree, when it
has the controller (on a hybrid host that is how hugetlb can be v2's).  The
device filter is no controller: a program of type CGROUP_DEVICE attaches to
any v2 cgroup (bpf_devices.py), and is used wherever no v1 devices
hierarchy is mounted.
Sections are applied in runc's order: cpuset first, unified last (so that
raw v2 values override the translated ones, as runc and crun do).
"""

from __future__ import annotations

import os

from nsbox.cgroups import freezer as _freezer
from nsbox.cgroups import tree
from nsbox.cgroups.errors import CgroupError
from nsbox.cgroups.files import Files
from nsbox.cgroups.layout import HYBRID, V1, V2, Hierarchy, clean_path, detect
from nsbox.cgroups.recorded import RECORD_VERSION, procs_source

# The limit and stats machinery (resources, devices, v1, v2, stats) is
# imported where it is used: state, kill, ps, pause and delete need none of
# it, and they are the verbs whose latency matters.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsbox.cgroups.resources import DeviceRule, Resources

ROOT = "linux.resources"

#: section -> (v1 controller, v2 controller or None)
CONTROLLERS = {
    "memory": ("memory", "memory"), "cpu": ("cpu", "cpu"), "cpuset": ("cpuset", "cpuset"),
    "pids": ("pids", "pids"), "block_io": ("blkio", "io"), "hugepages": ("hugetlb", "hugetlb"),
    "rdma": ("rdma", "rdma"),
}
_JSON = {"memory": "memory", "cpu": "cpu", "cpuset": "cpu", "pids": "pids", "block_io": "blockIO",
         "hugepages": "hugepageLimits", "rdma": "rdma"}


class Cgroup:
    """The cgroups of one container: where they are, and what can be done to them.

    Made by :meth:`for_container` (at create) or :meth:`from_record` (later
    verbs, from state.json).  Nothing touches the kernel until a method is
    called.
    """

    def __init__(self, mode: str, path: str, hierarchies: list[Hierarchy]) -> None:
        self.mode = mode
        #: the cleaned cgroupsPath: absolute, or relative to our own cgroups
        self.path = path
        self.hierarchies = hierarchies
        #: every (file, value) this object wrote, in order (for tests and debug logs)
        self.journal: list[tuple[str, str]] = []
        #: what apply/update accepted but could not enforce, one line each (for the CLI to show)
        self.warnings: list[str] = []

    # -- where -----------------------------------------------------------------

    @classmethod
    def for_container(cls, cgroups_path: str | None, container_id: str, *,
                      mountinfo: str = "/proc/self/mountinfo", proc_cgroup: str = "/proc/self/cgroup") -> Cgroup:
        """The container's cgroups: ``cgroupsPath`` (absolute: from each
        hierarchy's root; relative: from our own cgroup), default ``/nsbox/<id>``."""
        path = clean_path(cgroups_path, container_id)
        texts = []
        for name in (mountinfo, proc_cgroup):
            try:
                with open(name) as f:
                    texts.append(f.read())
            except OSError as e:
                raise CgroupError(f"cannot read {name}: {e.strerror}") from None
        mode, hierarchies = detect(texts[0], texts[1], path)
        return cls(mode, path, hierarchies)

    def to_record(self) -> dict[str, object]:
        return {"version": RECORD_VERSION, "mode": self.mode, "path": self.path,
                "hierarchies": [h.to_record() for h in self.hierarchies]}

    @classmethod
    def from_record(cls, d: dict) -> Cgroup:  # type: ignore[type-arg]
        if not isinstance(d, dict) or d.get("version") != RECORD_VERSION:
            raise CgroupError(f"cgroup record: unknown version {d.get('version') if isinstance(d, dict) else d!r}")
        mode, path, hierarchies = d.get("mode"), d.get("path"), d.get("hierarchies")
        if mode not in (V1, V2, HYBRID) or not isinstance(path, str) or not isinstance(hierarchies, list):
            raise CgroupError("cgroup record: needs mode, path and hierarchies")
        return cls(mode, path, [Hierarchy.from_record(h) for h in hierarchies])

    def paths(self) -> dict[str, str]:
        """{hierarchy: directory}, keyed as /proc/PID/cgroup names them (``""`` for v2)."""
        return {h.key: h.dir for h in self.hierarchies}

    def hierarchy(self, v1_name: str, v2_name: str | None = None) -> Hierarchy | None:
        """The hierarchy serving a controller (see the module's table)."""
        for h in self.hierarchies:
            if h.kind == V1 and v1_name in h.controllers:
                return h
        if v2_name is not None:
            for h in self.hierarchies:
                if h.kind == V2 and v2_name in h.controllers:
                    return h
        return None

    def _v2(self) -> Hierarchy | None:
        return next((h for h in self.hierarchies if h.kind == V2), None)

    def _files(self, h: Hierarchy) -> Files:
        return Files(h, self.journal)

    # -- lifecycle -------------------------------------------------------------

    def refuse_unfit(self) -> None:
        """Refuse, before ``create``, a cgroup with processes in it or a frozen
        one, as runc does (the runtime spec allows it).  The processes would
        be another container's or the host's, and this container's limits,
        pause and delete would reach them too; in a frozen cgroup init would
        hang.  Only reads: they do not wait for the cgroup mutex, which the
        warm-up thread may hold for a grace period (nsbox.cgroups.warmup)."""
        i = procs_source(self.mode, [(h.kind, h.controllers) for h in self.hierarchies])
        if i is not None:
            where = self.hierarchies[i].dir
            pids = tree.procs(where)  # [] when it does not exist
            if pids:
                raise CgroupError(f"the container's cgroup {where} is not empty: {len(pids)} process(es) in it",
                                  "containers must not share a cgroup: give this one a path of its own",
                                  json_path="linux.cgroupsPath", path=where)
        for h in self.hierarchies:
            if h.kind == V1 and "freezer" not in h.controllers:
                continue
            where = tree.nearest_existing(h)  # a new cgroup is frozen when its parent is
            if _freezer.frozen_any_way(h.kind, where):
                what = f"the container's cgroup {where}" if where == h.dir else \
                    f"{where}, where the container's cgroup would go,"
                raise CgroupError(f"{what} is frozen", "thaw it, or give the container a path elsewhere",
                                  json_path="linux.cgroupsPath", controller=h.label, path=where)

    def create(self) -> None:
        """mkdir the cgroup in every hierarchy (missing parents too); nothing is
        left when it fails part-way."""
        tree.create(self.hierarchies, self.journal)

    def add(self, pid: int) -> None:
        """Move *pid* (all its threads) into the cgroup of every hierarchy."""
        for h in self.hierarchies:
            hint = None
            if h.kind == V1 and "cpuset" in h.controllers:
                hint = "ENOSPC here means cpuset.cpus or cpuset.mems is empty"
            self._files(h).write("cgroup.procs", str(pid), controller=h.label, hint=hint)

    def pids(self) -> list[int]:
        """Every process in the cgroup, sub-cgroups included (any one hierarchy
        sees them all; pids, memory or the v2 tree by preference)."""
        i = procs_source(self.mode, [(h.kind, h.controllers) for h in self.hierarchies])
        return tree.procs(self.hierarchies[i].dir) if i is not None else []

    def destroy(self) -> None:
        """Remove the cgroup in every hierarchy, sub-cgroups first; fine when already gone.
        The processes must be gone (killed and exited) first."""
        tree.destroy(self.hierarchies)

    def exists(self) -> bool:
        return any(os.path.isdir(h.dir) for h in self.hierarchies)

    # -- limits ----------------------------------------------------------------

    def preload(self) -> None:
        """Import what apply() needs (~1 ms), for a caller that has the time
        now and will not when it applies (create, while the kernel makes the
        cgroup).  v1 and v2 both, whatever the host: _plan imports both."""
        import nsbox.cgroups.devices  # noqa: F401
        import nsbox.cgroups.resources  # noqa: F401
        import nsbox.cgroups.v1  # noqa: F401
        import nsbox.cgroups.v2  # noqa: F401

    def apply(self, resources: dict | None, devices: bool = True) -> None:  # type: ignore[type-arg]
        """Apply ``linux.resources``; refuses (naming the field) what this host
        cannot do before writing anything.

        The device rules are enforced, as runc does: the spec's, then runc's
        defaults (devices.py) -- unless *devices* is False (rootless, as runc:
        such a container can make no device node and sees only the ones
        bind-mounted for it, and a v2 device program needs CAP_SYS_ADMIN)."""
        from nsbox.cgroups.devices import runc_rules
        from nsbox.cgroups.resources import Resources

        r = Resources(resources)
        self._run(self._plan(r, False, runc_rules(r.devices) if devices else None))

    def update(self, resources: dict | None) -> None:  # type: ignore[type-arg]
        """``nsbox update``: only the fields given change.  Differences from
        apply, as in runc: devices are left alone unless given; on v2, a new
        memory limit alone keeps the memory+swap total (v1 keeps it by
        itself); a quota or period alone keeps the other half of cpu.max
        (apply does that too)."""
        from nsbox.cgroups.devices import runc_rules
        from nsbox.cgroups.resources import Resources

        r = Resources(resources)
        rules = runc_rules(r.devices) if r.devices is not None else None
        self._run(self._plan(r, True, rules))

    @staticmethod
    def _run(steps: list) -> None:  # type: ignore[type-arg]
        for step in steps:
            step()

    def _plan(self, r: Resources, updating: bool, device_rules: list[DeviceRule] | None) -> list:  # type: ignore[type-arg]
        """Check every section against this host, then return the writes as
        closures, in runc's order.  Checking reads files but writes none."""
        from nsbox.cgroups import v1, v2

        steps = []

        def where(section: str) -> tuple[Hierarchy, Files]:
            v1_name, v2_name = CONTROLLERS[section]
            h = self.hierarchy(v1_name, v2_name)
            at = f"{ROOT}.{_JSON[section]}"
            if h is None:
                raise CgroupError(f"the {v1_name if self.mode != V2 else v2_name} controller is not available on "
                                  "this host (no cgroup v1 hierarchy has it and cgroup v2 does not offer it)",
                                  json_path=at)
            f = self._files(h)
            if h.kind == V2:
                self._require_v2(f, v2_name, at)  # type: ignore[arg-type]
            return h, f

        if r.cpuset is not None:
            h, f = where("cpuset")
            steps.append(lambda f=f, h=h: (v1 if h.kind == V1 else v2).cpuset(f, r.cpuset))
        if device_rules is not None:
            steps.extend(self._plan_devices(device_rules))
        if r.memory is not None:
            h, f = where("memory")
            if h.kind == V2:
                v2.check_memory(r.memory, updating)
            steps.append(lambda f=f, h=h: (v1 if h.kind == V1 else v2).memory(f, r.memory, updating))
        if r.cpu is not None:
            h, f = where("cpu")
            if h.kind == V2:
                v2.check_cpu(r.cpu)
            steps.append(lambda f=f, h=h: (v1 if h.kind == V1 else v2).cpu(f, r.cpu, updating))
        if r.pids is not None:
            h, f = where("pids")
            steps.append(lambda f=f: v1.pids(f, r.pids))
        if r.block_io is not None:
            h, f = where("block_io")
            if h.kind == V2:
                v2.check_block_io(r.block_io)
            steps.append(lambda f=f, h=h: (v1 if h.kind == V1 else v2).block_io(f, r.block_io))
        if r.hugepages:
            h, f = where("hugepages")
            steps.append(lambda f=f, h=h: (v1 if h.kind == V1 else v2).hugetlb(f, r.hugepages))
        if r.network is not None:
            steps.extend(self._plan_network(r))
        if r.rdma:
            h, f = where("rdma")
            steps.append(lambda f=f: v1.rdma(f, r.rdma))
        if r.unified:
            steps.append(self._plan_unified(r))
        return steps

    def _require_v2(self, f: Files, controller: str, at: str) -> None:
        """A v2 controller works only when the parents enabled it for us."""
        try:
            enabled = f.read("cgroup.controllers").split()
        except CgroupError:
            return  # the cgroup is not there: the write will say so
        if controller not in enabled:
            raise CgroupError(f"the {controller} controller is not enabled for {f.dir} "
                              "(it is missing from the parent's cgroup.subtree_control)", json_path=at,
                              controller=controller)

    def _plan_devices(self, rules: list[DeviceRule]) -> list:  # type: ignore[type-arg]
        """The v1 devices files, or else the v2 BPF device filter.  The
        program is built here, so a rule list it cannot express fails before
        anything is written.  It replaces the cgroup's device programs
        (an update never stacks a second one); rules that allow everything
        need none and remove the one there was."""
        from nsbox.cgroups import v1
        from nsbox.cgroups.devices import allows_everything, is_standard

        h = self.hierarchy("devices")
        if h is not None:
            f = self._files(h)
            return [lambda: v1.devices(f, rules)]
        v2 = self._v2()
        if v2 is None:
            # a v1 host whose devices controller is not mounted
            if allows_everything(rules):
                return []
            if is_standard(rules):
                # every client sends this list; refusing it would refuse
                # every container on such a host
                warning = (f"{ROOT}.devices: not enforced: this host mounts neither the cgroup v1 devices "
                           "controller nor cgroup v2, so the container can open any device node it can reach")
                return [lambda: self.warnings.append(warning)]
            raise CgroupError("cannot be enforced: this host mounts neither the cgroup v1 devices controller nor "
                              "cgroup v2", json_path=f"{ROOT}.devices", controller="devices")
        from nsbox.cgroups import bpf_devices

        insns = None if allows_everything(rules) else bpf_devices.program(rules)
        return [lambda: bpf_devices.install(v2.dir, insns)]

    def _plan_network(self, r: Resources) -> list:  # type: ignore[type-arg]
        from nsbox.cgroups import v1

        n = r.network
        assert n is not None
        steps = []
        for controller, wanted, fn in (("net_cls", n.class_id is not None, v1.net_cls),
                                       ("net_prio", bool(n.priorities), v1.net_prio)):
            if not wanted:
                continue
            h = self.hierarchy(controller)
            if h is None:
                key = "classID" if controller == "net_cls" else "priorities"
                why = ("cgroup v2 has no equivalent (use a BPF or nftables cgroup match)" if self.mode == V2
                       else "it is not mounted on this host")
                raise CgroupError(f"needs the cgroup v1 {controller} controller, and {why}",
                                  json_path=f"{ROOT}.network.{key}", controller=controller)
            f = self._files(h)
            steps.append(lambda f=f, fn=fn: fn(f, n))
        return steps

    def _plan_unified(self, r: Resources):  # type: ignore[no-untyped-def]
        from nsbox.cgroups import v2

        h = self._v2()
        at = f"{ROOT}.unified"
        if h is None:
            raise CgroupError("needs cgroup v2, and this host has cgroup v1 only", json_path=at)
        f = self._files(h)
        try:
            enabled: set[str] | None = set(f.read("cgroup.controllers").split())
        except CgroupError:
            enabled = None
        if self.mode == HYBRID:
            # on a hybrid host the v2 tree has only the controllers no v1
            # hierarchy took; a key of a v1 controller would limit nothing
            for key in r.unified:
                controller = key.split(".", 1)[0]
                if controller != "cgroup" and controller not in h.controllers:
                    raise CgroupError(f"the {controller} controller is cgroup v1's on this hybrid host (the "
                                      f"cgroup v2 tree has only: {' '.join(h.controllers) or 'no controllers'})",
                                      json_path=f"{at}.{key}", controller=controller)
        return lambda: v2.unified(f, r.unified, enabled)

    # -- pause -----------------------------------------------------------------

    def _freezer(self) -> Files:
        # v1's freezer if mounted; else the v2 tree's cgroup.freeze, which
        # freezes the same processes (every one of them is in both)
        h = self.hierarchy("freezer") or self._v2()
        if h is None:
            raise CgroupError("no freezer: the v1 freezer controller is not mounted and there is no cgroup v2",
                              controller="freezer")
        return self._files(h)

    def freeze(self) -> None:
        _freezer.freeze(self._freezer())

    def thaw(self) -> None:
        _freezer.thaw(self._freezer())

    def frozen(self) -> bool:
        h = self.hierarchy("freezer") or self._v2()
        return h is not None and _freezer.frozen(self._files(h))

    # -- usage -----------------------------------------------------------------

    def stats(self) -> dict[str, object]:
        from nsbox.cgroups import stats as _stats

        out = _stats.empty()
        cpu = self.hierarchy("cpu", "cpu")
        if cpu is not None and cpu.kind == V2:
            _stats.cpu_v2(self._files(cpu), out)
        else:
            acct = self.hierarchy("cpuacct")
            if cpu is not None or acct is not None:
                _stats.cpu_v1(self._files(cpu) if cpu else None, self._files(acct) if acct else None, out)
            elif self._v2() is not None:
                _stats.cpu_v2(self._files(self._v2()), out)  # type: ignore[arg-type]
        mem = self.hierarchy("memory", "memory")
        if mem is not None:
            (_stats.memory_v1 if mem.kind == V1 else _stats.memory_v2)(self._files(mem), out)
        pids = self.hierarchy("pids", "pids")
        if pids is not None:
            _stats.pids(self._files(pids), out)
        else:
            out["pids"]["current"] = len(self.pids())  # type: ignore[index]
        blk = self.hierarchy("blkio", "io")
        if blk is not None:
            (_stats.blkio_v1 if blk.kind == V1 else _stats.io_v2)(self._files(blk), out)
        huge = self.hierarchy("hugetlb", "hugetlb")
        if huge is not None:
            _stats.hugetlb(self._files(huge), out)
        return out

    def oom_count(self) -> int:
        from nsbox.cgroups import stats as _stats

        mem = self.hierarchy("memory", "memory")
        return _stats.oom_count(self._files(mem)) if mem is not None else 0

    def __repr__(self) -> str:
        return f"Cgroup({self.mode}, {self.path!r})"
