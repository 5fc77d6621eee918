"""``linux.resources`` (OCI runtime spec 1.2), read from its raw JSON into
typed objects, every value checked for type and range before anything is
written: a bad field fails with its JSON path and leaves the cgroup as it was.

What a field *means* is decided here once, for v1 and v2 alike:

* ``None`` is "not given".  Like runc (whose Go structs cannot tell 0 from
  absent) a few numbers also treat 0 as "not given", because writing 0 would
  be harmful or meaningless: memory ``limit``/``reservation``/``swap`` (a 0
  byte limit would OOM-kill at once), cpu ``shares``/``quota``/``period``/
  ``realtime*``, blockIO ``weight``/``leafWeight``.  -1 means unlimited.
* ``memory.kernel`` is deprecated (v1's memory.kmem.limit_in_bytes is
  deprecated in the kernel and not enforced by recent ones); it is checked,
  then ignored, as runc does.
* Properties nsbox does not know are ignored: the runtime spec requires
  runtimes to ignore unknown properties (a newer client may send new ones).
"""

from __future__ import annotations

from nsbox.cgroups.errors import CgroupError
from nsbox.jsonread import JsonObject

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

ROOT = "linux.resources"

INT64 = (-(1 << 63), (1 << 63) - 1)
UINT64 = (0, (1 << 64) - 1)
UINT32 = (0, (1 << 32) - 1)
UINT16 = (0, (1 << 16) - 1)


class _Obj(JsonObject):
    """A linux.resources object being read; problems are CgroupErrors."""

    __slots__ = ()

    @staticmethod
    def fail(path: str, problem: str) -> NoReturn:
        raise CgroupError(problem, json_path=path)

    def num(self, key: str, bounds: tuple[int, int] = INT64) -> int | None:
        return self.int(key, minimum=bounds[0], maximum=bounds[1])

    def unset0(self, key: str, bounds: tuple[int, int] = INT64) -> int | None:
        """A number for which 0 means "not given" (see the module's notes)."""
        value = self.num(key, bounds)
        return None if value == 0 else value


class Memory:
    __slots__ = ("limit", "reservation", "swap", "kernel_tcp", "swappiness", "disable_oom_killer",
                 "use_hierarchy", "check_before_update")

    def __init__(self, o: _Obj) -> None:
        self.limit = o.unset0("limit")
        self.reservation = o.unset0("reservation")
        self.swap = o.unset0("swap")
        o.num("kernel")  # checked, then ignored (deprecated, as in runc)
        self.kernel_tcp = o.num("kernelTCP")
        # uint64 in the spec; docker sends -1 for "not set", which runc reads as unset
        swappiness = o.num("swappiness")
        if swappiness is not None and swappiness != -1 and not 0 <= swappiness <= 100:
            raise CgroupError(f"{swappiness} is out of range (0..100)", json_path=o.at("swappiness"))
        self.swappiness = None if swappiness == -1 else swappiness
        self.disable_oom_killer = o.bool("disableOOMKiller", None)
        self.use_hierarchy = o.bool("useHierarchy", None)
        self.check_before_update = bool(o.bool("checkBeforeUpdate"))
        for key in ("limit", "reservation", "swap", "kernelTCP"):
            value = o.data.get(key)
            if isinstance(value, int) and value < -1:
                raise CgroupError(f"{value} is not a size (bytes, or -1 for unlimited)", json_path=o.at(key))

    def active(self) -> bool:
        return any(v is not None for v in (self.limit, self.reservation, self.swap, self.kernel_tcp,
                                           self.swappiness, self.disable_oom_killer, self.use_hierarchy))


class CPU:
    """The cpu controller's half of ``linux.resources.cpu`` (cpus/mems are the cpuset's)."""

    __slots__ = ("shares", "quota", "burst", "period", "realtime_runtime", "realtime_period", "idle")

    def __init__(self, o: _Obj) -> None:
        self.shares = o.unset0("shares", UINT64)
        self.quota = o.unset0("quota")
        self.burst = o.num("burst", UINT64)
        self.period = o.unset0("period", UINT64)
        self.realtime_runtime = o.unset0("realtimeRuntime")
        self.realtime_period = o.unset0("realtimePeriod", UINT64)
        self.idle = o.num("idle")

    def active(self) -> bool:
        return any(v is not None for v in (self.shares, self.quota, self.burst, self.period,
                                           self.realtime_runtime, self.realtime_period, self.idle))


class Cpuset:
    __slots__ = ("cpus", "mems")

    def __init__(self, o: _Obj) -> None:
        self.cpus = o.str("cpus") or None
        self.mems = o.str("mems") or None

    def active(self) -> bool:
        return self.cpus is not None or self.mems is not None


class Pids:
    __slots__ = ("limit",)

    def __init__(self, o: _Obj) -> None:
        self.limit = o.num("limit")

    def active(self) -> bool:
        return self.limit is not None


class WeightDevice:
    __slots__ = ("major", "minor", "weight", "leaf_weight", "path")

    def __init__(self, o: _Obj) -> None:
        self.path = o.path
        self.major, self.minor = _major_minor(o)
        self.weight = o.unset0("weight", UINT16)
        self.leaf_weight = o.unset0("leafWeight", UINT16)


class ThrottleDevice:
    __slots__ = ("major", "minor", "rate", "path")

    def __init__(self, o: _Obj) -> None:
        self.path = o.path
        self.major, self.minor = _major_minor(o)
        rate = o.num("rate", UINT64)
        if rate is None:
            raise CgroupError("is required", json_path=o.at("rate"))
        self.rate = rate


def _major_minor(o: _Obj) -> tuple[int, int]:
    major, minor = o.num("major"), o.num("minor")
    for key, value in (("major", major), ("minor", minor)):
        if value is None:
            raise CgroupError("is required", json_path=o.at(key))
        if value < 0:
            raise CgroupError(f"{value} is not a device number", json_path=o.at(key))
    return major, minor  # type: ignore[return-value]


#: blockIO's throttle arrays: JSON key -> (v1 file, v2 io.max key)
THROTTLES = {
    "throttleReadBpsDevice": ("blkio.throttle.read_bps_device", "rbps"),
    "throttleWriteBpsDevice": ("blkio.throttle.write_bps_device", "wbps"),
    "throttleReadIOPSDevice": ("blkio.throttle.read_iops_device", "riops"),
    "throttleWriteIOPSDevice": ("blkio.throttle.write_iops_device", "wiops"),
}


class BlockIO:
    __slots__ = ("weight", "leaf_weight", "weight_device", "throttle", "path")

    def __init__(self, o: _Obj) -> None:
        self.path = o.path
        self.weight = o.unset0("weight", UINT16)
        self.leaf_weight = o.unset0("leafWeight", UINT16)
        self.weight_device = [WeightDevice(d) for d in o.objs("weightDevice")]
        #: JSON key -> devices, for the keys given
        self.throttle = {key: [ThrottleDevice(d) for d in o.objs(key)] for key in THROTTLES}

    def active(self) -> bool:
        return (self.weight is not None or self.leaf_weight is not None or bool(self.weight_device)
                or any(self.throttle.values()))


class Hugepage:
    __slots__ = ("page_size", "limit", "path")

    def __init__(self, o: _Obj) -> None:
        self.path = o.path
        size = o.str("pageSize")
        if not size:
            raise CgroupError("is required", json_path=o.at("pageSize"))
        # the kernel's own spelling (hugetlb.2MB.*): digits then KB, MB or GB
        if not (size[:-2].isdigit() and size[-2:] in ("KB", "MB", "GB")):
            raise CgroupError(f"{size!r} is not a page size like 2MB or 1GB", json_path=o.at("pageSize"))
        limit = o.num("limit", UINT64)
        if limit is None:
            raise CgroupError("is required", json_path=o.at("limit"))
        self.page_size = size
        self.limit = limit


class Network:
    __slots__ = ("class_id", "priorities", "path")

    def __init__(self, o: _Obj) -> None:
        self.path = o.path
        self.class_id = o.num("classID", UINT32)
        self.priorities: list[tuple[str, int, str]] = []
        for p in o.objs("priorities"):
            name = p.str("name")
            if not name or any(c.isspace() for c in name):
                raise CgroupError("must be an interface name", json_path=p.at("name"))
            priority = p.num("priority", UINT32)
            if priority is None:
                raise CgroupError("is required", json_path=p.at("priority"))
            self.priorities.append((name, priority, p.path))


class Rdma:
    __slots__ = ("device", "hca_handles", "hca_objects", "path")

    def __init__(self, device: str, o: _Obj) -> None:
        if not device or any(c.isspace() for c in device):
            raise CgroupError("must be an RDMA device name", json_path=o.path)
        self.device = device
        self.path = o.path
        self.hca_handles = o.num("hcaHandles", UINT32)
        self.hca_objects = o.num("hcaObjects", UINT32)


class DeviceRule:
    """One ``linux.resources.devices`` entry: type ``a`` (all), ``c`` or ``b``;
    a missing major/minor is the wildcard ``*``; access is a subset of ``rwm``."""

    __slots__ = ("allow", "type", "major", "minor", "access", "path")

    def __init__(self, o: _Obj) -> None:
        self.path = o.path
        allow = o.bool("allow", None)
        if allow is None:
            raise CgroupError("is required", json_path=o.at("allow"))
        self.allow = allow
        self.type = o.str("type") or "a"
        if self.type not in ("a", "c", "b"):
            raise CgroupError(f"{self.type!r} is not a device type (a, c or b)", json_path=o.at("type"))
        self.major = o.num("major")
        self.minor = o.num("minor")
        for key, value in (("major", self.major), ("minor", self.minor)):
            if value is not None and value < -1:
                raise CgroupError(f"{value} is not a device number", json_path=o.at(key))
        # runc refuses an empty access (it would otherwise mean "rwm" in one
        # place and nothing in another); default only when the key is absent
        access = o.str("access")
        access = "rwm" if access is None else access
        if not access or set(access) - set("rwm") or len(set(access)) != len(access):
            raise CgroupError(f"{access!r} is not a combination of r, w and m", json_path=o.at("access"))
        self.access = access

    @property
    def wildcard(self) -> bool:
        """Type ``a``: the kernel reads any rule of type a as "every device,
        every access" and resets the whole list to allow- or deny-all."""
        return self.type == "a"

    def cgroup_string(self) -> str:
        """The line devices.allow / devices.deny take: ``c 1:3 rwm``, ``a *:* rwm``."""
        def num(n: int | None) -> str:
            return "*" if n is None or n == -1 else str(n)

        return f"{self.type} {num(self.major)}:{num(self.minor)} {self.access}"


class Resources:
    """A parsed ``linux.resources``; a section is None when it asks for nothing."""

    __slots__ = ("memory", "cpu", "cpuset", "pids", "block_io", "hugepages", "network", "rdma",
                 "unified", "devices", "raw")

    def __init__(self, raw: object, path: str = ROOT) -> None:
        o = _Obj({} if raw is None else raw, path)
        self.raw = o.data
        memory = o.obj("memory")
        cpu = o.obj("cpu")
        pids = o.obj("pids")
        block_io = o.obj("blockIO")
        network = o.obj("network")
        self.memory = Memory(memory) if memory else None
        self.cpu = CPU(cpu) if cpu else None
        self.cpuset = Cpuset(cpu) if cpu else None
        self.pids = Pids(pids) if pids else None
        self.block_io = BlockIO(block_io) if block_io else None
        self.hugepages = [Hugepage(h) for h in o.objs("hugepageLimits")]
        self.network = Network(network) if network else None
        rdma = o.obj("rdma")
        self.rdma = [Rdma(k, _Obj(v, rdma.at(k))) for k, v in rdma.data.items()] if rdma else []
        self.unified = _unified(o)
        #: None when not given: "devices": [] is a request too (allow nothing extra)
        self.devices = [DeviceRule(d) for d in o.objs("devices")] if o.data.get("devices") is not None else None
        for name in ("memory", "cpu", "cpuset", "pids", "block_io"):
            section = getattr(self, name)
            if section is not None and not section.active():
                setattr(self, name, None)
        if self.network is not None and self.network.class_id is None and not self.network.priorities:
            self.network = None

    def limits(self) -> bool:
        """Whether anything but device rules is asked for: what a container
        without a cgroup (rootless, where none can be made) cannot honour.
        Device rules it can: in a user namespace no device node can be made,
        and the container sees only the devices bind-mounted into it."""
        return any(getattr(self, name) for name in self.__slots__ if name not in ("devices", "raw"))


def _unified(o: _Obj) -> dict[str, str]:
    u = o.obj("unified")
    if u is None:
        return {}
    out = {}
    for key, value in u.data.items():
        at = u.at(key)
        if not isinstance(value, str):
            raise CgroupError("must be a string", json_path=at)
        # a key is a file of the container's own cgroup, never a path: "../x"
        # would write another cgroup's limits
        if not key or "/" in key or key in (".", ".."):
            raise CgroupError("must be a file name (no slashes)", json_path=at)
        if "." not in key.strip("."):
            raise CgroupError("must be a cgroup v2 file name like memory.high (CONTROLLER.PARAMETER)",
                              json_path=at)
        out[key] = value
    return out
