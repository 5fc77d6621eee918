"""linux.resources -> cgroup v2 control files, one function per controller.

The OCI spec's numbers are v1's; the conversions (convert.py) are runc's and
crun's.  ``check()`` runs before anything is written and refuses what v2
cannot express, naming the field.
"""

from __future__ import annotations

import errno

from nsbox.cgroups import convert, v1
from nsbox.cgroups.errors import CgroupError
from nsbox.cgroups.files import Files, is_missing
from nsbox.cgroups.resources import CPU, ROOT, THROTTLES, BlockIO, Cpuset, Hugepage, Memory, Pids, Rdma

MEM = f"{ROOT}.memory"
CPU_AT = f"{ROOT}.cpu"

#: what the kernel prints for "no limit" in single-number files
MAX = "max"


def check_memory(m: Memory, updating: bool) -> None:
    if m.kernel_tcp is not None:
        raise CgroupError("there is no kernel TCP memory limit in cgroup v2 (it is part of memory.max)",
                          json_path=f"{MEM}.kernelTCP", controller="memory")
    if m.disable_oom_killer:
        # refused rather than ignored: a workload that asked for it expects
        # to be paused at the limit, not killed
        raise CgroupError("cgroup v2 cannot disable the OOM killer (there is no memory.oom_control)",
                          json_path=f"{MEM}.disableOOMKiller", controller="memory")
    if m.use_hierarchy is False:
        raise CgroupError("cgroup v2 is always hierarchical", json_path=f"{MEM}.useHierarchy", controller="memory")
    if m.swap is not None and m.swap != -1 and m.limit is None and not updating:
        raise CgroupError("needs memory.limit as well: cgroup v2 limits swap alone (memory.swap.max = "
                          "swap - limit)", json_path=f"{MEM}.swap", controller="memory")
    if m.swap is not None and m.limit is not None and m.swap > 0 and m.limit > 0 and m.swap < m.limit:
        raise CgroupError(f"memory+swap {m.swap} is less than the memory limit {m.limit}",
                          json_path=f"{MEM}.swap", controller="memory")


def memory(f: Files, m: Memory, updating: bool = False) -> None:
    """memory.max, memory.swap.max, memory.low.

    ``swappiness`` has no v2 file and is ignored, as runc does (crun's
    refusal broke podman users whose images set it; it is a reclaim hint,
    not a limit).
    """
    limit, swap = m.limit, m.swap
    if m.check_before_update:
        _check_usage(f, limit, swap)
    swap_max = _swap_max(f, limit, swap, updating)
    if swap_max is not None:
        try:
            f.write("memory.swap.max", swap_max, f"{MEM}.swap", "memory")
        except CgroupError as e:
            # no swap accounting (or no swap): "none" and "unlimited" both already hold
            if not (is_missing(e) and swap_max in (MAX, "0")):
                raise
    if limit is not None:
        try:
            f.write("memory.max", MAX if limit == -1 else str(limit), f"{MEM}.limit", "memory")
        except CgroupError as e:
            if e.errno == errno.EBUSY:
                e.hint = f"current usage {f.read_int('memory.current', 'memory')} bytes"
            raise
    if m.reservation is not None:
        f.write("memory.low", MAX if m.reservation == -1 else str(m.reservation), f"{MEM}.reservation", "memory")


def _swap_max(f: Files, limit: int | None, swap: int | None, updating: bool) -> str | None:
    """What memory.swap.max gets, or None to leave it."""
    if limit == -1 and swap is None:
        return MAX  # "limit -1" alone: memory and swap unlimited (runc)
    if swap is None:
        if updating and limit is not None:
            # v1 keeps memory+swap when only the limit changes (memsw is its
            # own file); keep that total here too, as runc's merged update does
            cur_limit = f.read_int("memory.max", "memory")
            cur_swap = f.read_int("memory.swap.max", "memory")
            if cur_limit is not None and cur_swap is not None:
                total = cur_limit + cur_swap
                if limit > total:
                    raise CgroupError(f"memory limit {limit} is above the memory+swap limit {total} set before; "
                                      "give linux.resources.memory.swap too", json_path=f"{MEM}.limit",
                                      controller="memory")
                return str(total - limit)
        return None
    if swap == -1:
        return MAX
    if limit == -1:
        return str(swap)  # unlimited memory: the swap alone is what can be limited (runc)
    base = limit if limit is not None else f.read_int("memory.max", "memory")
    if base is None:
        raise CgroupError("needs memory.limit as well: cgroup v2 limits swap alone (memory.swap.max = "
                          "swap - limit), and memory.max is unlimited", json_path=f"{MEM}.swap", controller="memory")
    if swap < base:
        raise CgroupError(f"memory+swap {swap} is less than the memory limit {base}",
                          json_path=f"{MEM}.swap", controller="memory")
    return str(convert.v2_swap(swap, base))


def _check_usage(f: Files, limit: int | None, swap: int | None) -> None:
    """checkBeforeUpdate: refuse limits at or below current usage (memory + swap, as crun counts)."""
    usage = f.read_int("memory.current", "memory")
    if usage is None:
        return
    swapped = f.read_int("memory.swap.current", "memory") or 0
    if limit is not None and 0 < limit <= usage:
        raise CgroupError(f"rejecting memory limit {limit}: at or below the current usage {usage}",
                          json_path=f"{MEM}.limit", controller="memory")
    if swap is not None and 0 < swap <= usage + swapped:
        raise CgroupError(f"rejecting memory+swap limit {swap}: at or below the current usage {usage + swapped}",
                          json_path=f"{MEM}.swap", controller="memory")


def check_cpu(c: CPU) -> None:
    for value, key, v1file in ((c.realtime_runtime, "realtimeRuntime", "cpu.rt_runtime_us"),
                               (c.realtime_period, "realtimePeriod", "cpu.rt_period_us")):
        if value is not None:
            raise CgroupError(f"realtime scheduling limits exist only in cgroup v1 ({v1file}); "
                              "this host's cpu controller is cgroup v2", json_path=f"{CPU_AT}.{key}", controller="cpu")


def cpu(f: Files, c: CPU, updating: bool = False) -> None:
    # idle first: the weight of an idle cgroup is fixed, and runc orders them so
    if c.idle is not None:
        f.write("cpu.idle", str(c.idle), f"{CPU_AT}.idle", "cpu")
    if c.shares is not None:
        f.write("cpu.weight", str(convert.shares_to_weight(c.shares)), f"{CPU_AT}.shares", "cpu")
    # the burst may not exceed the quota: when a quota comes too, retry after it
    retry_burst = False
    if c.burst is not None:
        try:
            f.write("cpu.max.burst", str(c.burst), f"{CPU_AT}.burst", "cpu")
        except CgroupError as e:
            if e.errno != errno.EINVAL or c.quota is None:
                raise
            retry_burst = True
    if c.quota is not None or c.period is not None:
        # cpu.max holds both: the one not given keeps its current value (on a
        # new cgroup: "max 100000"), which is runc's update behaviour too
        current = _read_cpu_max(f)
        quota = (MAX if c.quota < 0 else str(c.quota)) if c.quota is not None else current[0]
        period = str(c.period) if c.period is not None else current[1]
        at = f"{CPU_AT}.quota" if c.quota is not None else f"{CPU_AT}.period"
        f.write("cpu.max", f"{quota} {period}", at, "cpu")
        if retry_burst:
            f.write("cpu.max.burst", str(c.burst), f"{CPU_AT}.burst", "cpu")


def _read_cpu_max(f: Files) -> tuple[str, str]:
    try:
        parts = f.read("cpu.max", "cpu").split()
    except CgroupError:
        parts = []
    return (parts[0], parts[1]) if len(parts) == 2 else (MAX, "100000")


def cpuset(f: Files, c: Cpuset) -> None:
    for key, value in (("cpus", c.cpus), ("mems", c.mems)):
        if value is not None:
            v1.write_cpuset(f, key, value)


def pids(f: Files, p: Pids) -> None:
    v1.write_pids(f, p)


def check_block_io(b: BlockIO) -> None:
    if b.leaf_weight is not None:
        raise CgroupError("leaf weights do not exist in cgroup v2", json_path=f"{b.path}.leafWeight", controller="io")
    for d in b.weight_device:
        if d.leaf_weight is not None:
            raise CgroupError("leaf weights do not exist in cgroup v2", json_path=f"{d.path}.leafWeight",
                              controller="io")


def block_io(f: Files, b: BlockIO) -> None:
    """io.bfq.weight (the BFQ scheduler's, v1's scale) or io.weight (converted); io.max."""
    bfq = f.exists("io.bfq.weight")
    if b.weight is not None:
        if bfq:
            f.write("io.bfq.weight", str(b.weight), f"{b.path}.weight", "io")
        else:
            f.write("io.weight", str(convert.blkio_weight_to_io_weight(b.weight)), f"{b.path}.weight", "io")
    if b.weight_device:
        # BFQ takes per-device weights when its file shows "default N" (Linux 5.4+)
        per_device_bfq = bfq and f.read("io.bfq.weight", "io").startswith("default")
        for d in b.weight_device:
            if d.weight is None:
                continue
            if per_device_bfq:
                f.write("io.bfq.weight", f"{d.major}:{d.minor} {d.weight}", f"{d.path}.weight", "io")
            else:
                f.write("io.weight", f"{d.major}:{d.minor} {convert.blkio_weight_to_io_weight(d.weight)}",
                        f"{d.path}.weight", "io")
    # io.max takes all four limits of a device in one line; a rate of 0 is
    # v1's "no limit", which v2 spells "max"
    lines: dict[tuple[int, int], list[str]] = {}
    paths: dict[tuple[int, int], str] = {}
    for key, (_v1file, v2key) in THROTTLES.items():
        for d in b.throttle[key]:
            lines.setdefault((d.major, d.minor), []).append(f"{v2key}={d.rate if d.rate else MAX}")
            paths.setdefault((d.major, d.minor), f"{d.path}.rate")
    for (major, minor), limits in lines.items():
        f.write("io.max", f"{major}:{minor} {' '.join(limits)}", paths[(major, minor)], "io")


def hugetlb(f: Files, pages: list[Hugepage]) -> None:
    v1.hugetlb(f, pages, suffix="max")


def rdma(f: Files, entries: list[Rdma]) -> None:
    v1.rdma(f, entries)


def unified(f: Files, values: dict[str, str], enabled: set[str] | None) -> None:
    """Raw v2 files, written last so they override the fields above (runc, crun).

    A value of several lines is written line by line: files like io.max
    parse one line per write(2)."""
    for key, value in values.items():
        at = f"{ROOT}.unified.{key}"
        controller = key.split(".", 1)[0]
        for line in value.splitlines() or [value]:
            try:
                f.write(key, line, at, controller)
            except CgroupError as e:
                if is_missing(e) and enabled is not None and controller != "cgroup" and controller not in enabled:
                    e.hint = f"the {controller} controller is not enabled in this cgroup"
                raise
