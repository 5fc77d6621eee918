"""linux.resources -> cgroup v1 control files, one function per controller.

Each takes the Files of the hierarchy holding the controller and the parsed
section; the caller has already checked the combination is supported.  The
OCI spec's numbers are v1's, so values go through as given, except where
noted.  The orderings below are the ones runc and crun use, for the reasons
given with each.
"""

from __future__ import annotations

import errno

from nsbox.cgroups import devices as _devices
from nsbox.cgroups.errors import CgroupError
from nsbox.cgroups.files import Files
from nsbox.cgroups.resources import (
    CPU,
    ROOT,
    THROTTLES,
    BlockIO,
    Cpuset,
    DeviceRule,
    Hugepage,
    Memory,
    Network,
    Pids,
    Rdma,
)

MEM = f"{ROOT}.memory"
CPU_AT = f"{ROOT}.cpu"


def memory(f: Files, m: Memory, updating: bool = False) -> None:
    limit, swap = m.limit, m.swap
    has_memsw = f.exists("memory.memsw.limit_in_bytes")
    # "limit -1" alone means unlimited memory *and* swap (runc): otherwise the
    # old memsw limit would still cap the memory that was meant to be free
    if limit == -1 and swap is None and has_memsw:
        swap = -1
    if swap is not None and not has_memsw:
        if swap == -1:
            swap = None  # no swap accounting: unlimited is what we have
        else:
            raise CgroupError("swap limits need swap accounting, which this kernel has off "
                              "(no memory.memsw.limit_in_bytes; boot with swapaccount=1)",
                              json_path=f"{MEM}.swap", controller="memory")
    if m.check_before_update:
        _check_usage(f, limit, swap)

    def set_limit() -> None:
        if limit is not None:
            _write_limit(f, limit)

    def set_swap() -> None:
        if swap is not None:
            f.write("memory.memsw.limit_in_bytes", str(swap), f"{MEM}.swap", "memory",
                    hint=None if swap == -1 or limit is None or swap >= limit else
                    "memory+swap (swap) must be at least the memory limit")

    # The kernel keeps limit <= memsw at every step: raising both needs memsw
    # first, lowering both needs the limit first.
    if limit is not None and swap is not None:
        current = f.read_int("memory.limit_in_bytes", "memory")
        if swap == -1 or (current is not None and current < swap):
            set_swap()
            set_limit()
        else:
            set_limit()
            set_swap()
    else:
        set_limit()
        set_swap()
    if m.reservation is not None:
        f.write("memory.soft_limit_in_bytes", str(m.reservation), f"{MEM}.reservation", "memory")
    if m.kernel_tcp is not None:
        f.write("memory.kmem.tcp.limit_in_bytes", str(m.kernel_tcp), f"{MEM}.kernelTCP", "memory")
    if m.swappiness is not None:
        f.write("memory.swappiness", str(m.swappiness), f"{MEM}.swappiness", "memory")
    if m.disable_oom_killer is not None:
        f.write("memory.oom_control", "1" if m.disable_oom_killer else "0", f"{MEM}.disableOOMKiller", "memory")
    if m.use_hierarchy is not None:
        f.write("memory.use_hierarchy", "1" if m.use_hierarchy else "0", f"{MEM}.useHierarchy", "memory",
                hint="memory.use_hierarchy is always 1 on kernels >= 5.x, and fixed once a cgroup has children")


def _write_limit(f: Files, limit: int) -> None:
    try:
        f.write("memory.limit_in_bytes", str(limit), f"{MEM}.limit", "memory")
    except CgroupError as e:
        if e.errno == errno.EBUSY:
            # the kernel could not reclaim down to the new limit
            usage = f.read_int("memory.usage_in_bytes", "memory")
            peak = f.read_int("memory.max_usage_in_bytes", "memory")
            e.hint = f"current usage {usage} bytes, peak {peak}: the limit cannot go below what is in use"
        elif e.errno == errno.EINVAL:
            memsw = f.read_int("memory.memsw.limit_in_bytes", "memory")
            if memsw is not None and 0 < memsw < limit:
                e.hint = f"memory+swap is limited to {memsw} bytes; raise linux.resources.memory.swap too"
        raise


def _check_usage(f: Files, limit: int | None, swap: int | None) -> None:
    """checkBeforeUpdate: refuse a limit at or below what the cgroup uses now."""
    usage = f.read_int("memory.usage_in_bytes", "memory")
    if usage is not None and limit is not None and 0 < limit <= usage:
        raise CgroupError(f"rejecting memory limit {limit}: at or below the current usage {usage}",
                          json_path=f"{MEM}.limit", controller="memory")
    both = f.read_int("memory.memsw.usage_in_bytes", "memory")
    if both is not None and swap is not None and 0 < swap <= both:
        raise CgroupError(f"rejecting memory+swap limit {swap}: at or below the current usage {both}",
                          json_path=f"{MEM}.swap", controller="memory")


def cpu(f: Files, c: CPU, updating: bool = False) -> None:
    if c.shares is not None:
        f.write("cpu.shares", str(c.shares), f"{CPU_AT}.shares", "cpu")
        # the kernel clamps to [2, 262144] without an error: say so, as runc does
        got = f.read_int("cpu.shares", "cpu")
        if got is not None and got != c.shares:
            bound = "maximum" if c.shares > got else "minimum"
            raise CgroupError(f"cpu.shares {c.shares} is out of range: the {bound} is {got}",
                              json_path=f"{CPU_AT}.shares", controller="cpu")
    # A new period below the current one can exceed the quota/period ratio the
    # parent allows (EINVAL); when a quota is coming too, write the period
    # again after it.  The same holds for the burst, which may not exceed the quota.
    retry_period = retry_burst = False
    if c.period is not None:
        retry_period = _write_or_defer(f, "cpu.cfs_period_us", str(c.period), f"{CPU_AT}.period", c.quota)
    if c.burst is not None:
        retry_burst = _write_or_defer(f, "cpu.cfs_burst_us", str(c.burst), f"{CPU_AT}.burst", c.quota)
    if c.quota is not None:
        f.write("cpu.cfs_quota_us", str(c.quota), f"{CPU_AT}.quota", "cpu")
        if retry_period:
            f.write("cpu.cfs_period_us", str(c.period), f"{CPU_AT}.period", "cpu")
        if retry_burst:
            f.write("cpu.cfs_burst_us", str(c.burst), f"{CPU_AT}.burst", "cpu")
    if c.idle is not None:
        f.write("cpu.idle", str(c.idle), f"{CPU_AT}.idle", "cpu")
    _realtime(f, c)


def _write_or_defer(f: Files, name: str, value: str, at: str, quota: int | None) -> bool:
    """Write; True when the kernel said EINVAL and a quota write may fix it."""
    try:
        f.write(name, value, at, "cpu")
    except CgroupError as e:
        if e.errno == errno.EINVAL and quota is not None:
            return True
        raise
    return False


def _realtime(f: Files, c: CPU) -> None:
    # As with the CFS pair: a smaller period may be refused until the runtime is written.
    retry = False
    if c.realtime_period is not None:
        try:
            f.write("cpu.rt_period_us", str(c.realtime_period), f"{CPU_AT}.realtimePeriod", "cpu")
        except CgroupError as e:
            if e.errno != errno.EINVAL or c.realtime_runtime is None:
                raise
            retry = True
    if c.realtime_runtime is not None:
        try:
            f.write("cpu.rt_runtime_us", str(c.realtime_runtime), f"{CPU_AT}.realtimeRuntime", "cpu")
        except CgroupError as e:
            if e.errno == errno.EINVAL:
                # RT time is handed down: a child may only use what its parent has
                parent = Files(f.hier, f.journal, f.dir.rsplit("/", 1)[0]).read_int("cpu.rt_runtime_us", "cpu")
                e.hint = (f"the parent cgroup's cpu.rt_runtime_us is {parent}; the sum of its children's "
                          f"runtimes may not exceed it (set it on the parent first)")
            raise
        if retry:
            f.write("cpu.rt_period_us", str(c.realtime_period), f"{CPU_AT}.realtimePeriod", "cpu")


def cpuset(f: Files, c: Cpuset) -> None:
    for key, value in (("cpus", c.cpus), ("mems", c.mems)):
        if value is not None:
            write_cpuset(f, key, value)


def write_cpuset(f: Files, key: str, value: str) -> None:
    """cpuset.cpus / cpuset.mems (both versions); a refusal names what the parent allows."""
    try:
        f.write(f"cpuset.{key}", value, f"{CPU_AT}.{key}", "cpuset")
    except CgroupError as e:
        # EINVAL: not a subset of the parent's; ERANGE: no such CPU or node at all
        if e.errno in (errno.EINVAL, errno.ERANGE):
            parent = Files(f.hier, f.journal, f.dir.rsplit("/", 1)[0])
            for name in (f"cpuset.effective_{key}", f"cpuset.{key}.effective", f"cpuset.{key}"):
                if parent.exists(name):
                    allowed = parent.read(name, "cpuset").strip()
                    e.hint = f"the parent cgroup allows {allowed or 'none'}"
                    break
        raise


def pids(f: Files, p: Pids) -> None:
    write_pids(f, p)


def write_pids(f: Files, p: Pids) -> None:
    # the spec: 0 or a negative limit is "no limit"
    assert p.limit is not None
    value = str(p.limit) if p.limit > 0 else "max"
    f.write("pids.max", value, f"{ROOT}.pids.limit", "pids")


def block_io(f: Files, b: BlockIO) -> None:
    at = b.path
    # CFQ's files, or BFQ's (CFQ is gone since 5.0; BFQ names them blkio.bfq.*)
    weight_file, device_file = _weight_files(f)
    if b.weight is not None:
        if weight_file is None:
            raise CgroupError(f"cannot set weight {b.weight}: no blkio.weight or blkio.bfq.weight here "
                              "(proportional weights need the BFQ I/O scheduler)", json_path=f"{at}.weight",
                              controller="blkio")
        f.write(weight_file, str(b.weight), f"{at}.weight", "blkio")
    if b.leaf_weight is not None:
        f.write("blkio.leaf_weight", str(b.leaf_weight), f"{at}.leafWeight", "blkio",
                hint="leaf weights existed only with the CFQ scheduler (removed in Linux 5.0)")
    for d in b.weight_device:
        if d.weight is not None:
            if device_file is None:
                raise CgroupError("no blkio.weight_device or blkio.bfq.weight_device here (proportional "
                                  "weights need the BFQ I/O scheduler)", json_path=f"{d.path}.weight",
                                  controller="blkio")
            f.write(device_file, f"{d.major}:{d.minor} {d.weight}", f"{d.path}.weight", "blkio")
        if d.leaf_weight is not None:
            f.write("blkio.leaf_weight_device", f"{d.major}:{d.minor} {d.leaf_weight}", f"{d.path}.leafWeight",
                    "blkio", hint="leaf weights existed only with the CFQ scheduler (removed in Linux 5.0)")
    for key, (name, _v2key) in THROTTLES.items():
        for d in b.throttle[key]:
            f.write(name, f"{d.major}:{d.minor} {d.rate}", f"{d.path}.rate", "blkio")


def _weight_files(f: Files) -> tuple[str | None, str | None]:
    for weight, device in (("blkio.weight", "blkio.weight_device"), ("blkio.bfq.weight", "blkio.bfq.weight_device")):
        if f.exists(weight):
            return weight, device
    return None, None


def hugetlb(f: Files, pages: list[Hugepage], suffix: str = "limit_in_bytes") -> None:
    """hugetlb.<size>.limit_in_bytes (v1) or .max (v2, suffix "max").

    The reservation limit (``.rsvd.``, Linux 5.7+) gets the same value, as
    runc does: without it a task can reserve pages (mmap MAP_HUGETLB) past the
    limit and be SIGBUSed on fault instead of failing the mmap.
    """
    for page in pages:
        name = f"hugetlb.{page.page_size}.{suffix}"
        if not f.exists(name):
            raise CgroupError(f"hugepage size {page.page_size} is not supported here (no {name})",
                              json_path=f"{page.path}.pageSize", controller="hugetlb")
        f.write(name, str(page.limit), f"{page.path}.limit", "hugetlb")
        rsvd = f"hugetlb.{page.page_size}.rsvd.{suffix}"
        if f.exists(rsvd):
            f.write(rsvd, str(page.limit), f"{page.path}.limit", "hugetlb")


def net_cls(f: Files, n: Network) -> None:
    if n.class_id is not None:
        f.write("net_cls.classid", str(n.class_id), f"{n.path}.classID", "net_cls")


def net_prio(f: Files, n: Network) -> None:
    for name, priority, at in n.priorities:
        f.write("net_prio.ifpriomap", f"{name} {priority}", at, "net_prio")


def rdma(f: Files, entries: list[Rdma]) -> None:
    """rdma.max (v1 and v2 alike): ``mlx5_1 hca_handle=3 hca_object=10000``."""
    for r in entries:
        line = r.device
        if r.hca_handles is not None:
            line += f" hca_handle={r.hca_handles}"
        if r.hca_objects is not None:
            line += f" hca_object={r.hca_objects}"
        if line != r.device:
            f.write("rdma.max", line, r.path, "rdma")


def devices(f: Files, rules: list[DeviceRule]) -> None:
    for name, line, rule in _devices.v1_writes(rules):
        at = rule.path if rule is not None else f"{ROOT}.devices"
        f.write(name, line, at, "devices",
                hint="a cgroup cannot allow a device its parent denies" if name == "devices.allow" else None)
