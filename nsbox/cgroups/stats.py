"""The container's usage, in the shape of runc's ``events --stats`` "data".

Units as runc reports them: CPU in nanoseconds, memory in bytes.  A
controller this host does not have leaves its section at zeros.  Unlimited
(``max``, or v1's 9223372036854771712) is reported as the kernel shows it
in v1 and as 2^64-1 in v2, as runc does.
"""

from __future__ import annotations

import os

from nsbox.cgroups.errors import CgroupError
from nsbox.cgroups.files import Files
from nsbox.cgroups.layout import V1

U64_MAX = (1 << 64) - 1

#: USER_HZ: the unit of v1's cpuacct.stat
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def empty() -> dict[str, object]:
    def entry() -> dict[str, int]:
        return {"limit": 0, "usage": 0, "max": 0, "failcnt": 0}

    return {
        "cpu": {"usage": {"total": 0, "percpu": [], "percpu_kernel": [], "percpu_user": [], "kernel": 0, "user": 0},
                "throttling": {"periods": 0, "throttledPeriods": 0, "throttledTime": 0}},
        "memory": {"cache": 0, "usage": entry(), "swap": entry(), "kernel": entry(), "kernelTCP": entry(), "raw": {}},
        "pids": {"current": 0, "limit": 0},
        "blkio": {"ioServiceBytesRecursive": [], "ioServicedRecursive": [], "ioQueueRecursive": [],
                  "ioServiceTimeRecursive": [], "ioWaitTimeRecursive": [], "ioMergedRecursive": [],
                  "ioTimeRecursive": [], "sectorsRecursive": []},
        "hugetlb": {},
    }


def _text(f: Files, name: str) -> str | None:
    try:
        return f.read(name)
    except CgroupError:
        return None


def _num(f: Files, name: str, unlimited: int = U64_MAX) -> int:
    text = _text(f, name)
    if text is None:
        return 0
    text = text.strip()
    if text == "max":
        return unlimited
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return 0


def _flat(f: Files, name: str) -> dict[str, int]:
    """A "key value" per line file (memory.stat, cpu.stat, memory.events)."""
    out: dict[str, int] = {}
    for line in (_text(f, name) or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def _ints(f: Files, name: str) -> list[int]:
    try:
        return [int(x) for x in (_text(f, name) or "").split()]
    except ValueError:
        return []


# -- cpu -----------------------------------------------------------------------

def cpu_v1(cpu: Files | None, cpuacct: Files | None, out: dict) -> None:
    usage = out["cpu"]["usage"]
    if cpuacct is not None:
        usage["total"] = _num(cpuacct, "cpuacct.usage")
        usage["percpu"] = _ints(cpuacct, "cpuacct.usage_percpu")
        usage["percpu_kernel"] = _ints(cpuacct, "cpuacct.usage_percpu_sys")
        usage["percpu_user"] = _ints(cpuacct, "cpuacct.usage_percpu_user")
        if cpuacct.exists("cpuacct.usage_user"):
            # nanoseconds, where the kernel has them (4.7+)
            usage["user"] = _num(cpuacct, "cpuacct.usage_user")
            usage["kernel"] = _num(cpuacct, "cpuacct.usage_sys")
        else:
            stat = _flat(cpuacct, "cpuacct.stat")
            usage["user"] = stat.get("user", 0) * 1_000_000_000 // _TICKS
            usage["kernel"] = stat.get("system", 0) * 1_000_000_000 // _TICKS
    if cpu is not None:
        stat = _flat(cpu, "cpu.stat")
        out["cpu"]["throttling"] = {"periods": stat.get("nr_periods", 0),
                                    "throttledPeriods": stat.get("nr_throttled", 0),
                                    "throttledTime": stat.get("throttled_time", 0)}


def cpu_v2(f: Files, out: dict) -> None:
    # cpu.stat exists in every v2 cgroup (usage even without the cpu controller)
    stat = _flat(f, "cpu.stat")
    usage = out["cpu"]["usage"]
    usage["total"] = stat.get("usage_usec", 0) * 1000
    usage["user"] = stat.get("user_usec", 0) * 1000
    usage["kernel"] = stat.get("system_usec", 0) * 1000
    out["cpu"]["throttling"] = {"periods": stat.get("nr_periods", 0),
                                "throttledPeriods": stat.get("nr_throttled", 0),
                                "throttledTime": stat.get("throttled_usec", 0) * 1000}


# -- memory --------------------------------------------------------------------

def memory_v1(f: Files, out: dict) -> None:
    mem = out["memory"]
    mem["raw"] = _flat(f, "memory.stat")
    mem["cache"] = mem["raw"].get("cache", 0)
    for key, prefix in (("usage", "memory"), ("swap", "memory.memsw"), ("kernel", "memory.kmem"),
                        ("kernelTCP", "memory.kmem.tcp")):
        mem[key] = {"limit": _num(f, f"{prefix}.limit_in_bytes"), "usage": _num(f, f"{prefix}.usage_in_bytes"),
                    "max": _num(f, f"{prefix}.max_usage_in_bytes"), "failcnt": _num(f, f"{prefix}.failcnt")}


def memory_v2(f: Files, out: dict) -> None:
    mem = out["memory"]
    mem["raw"] = _flat(f, "memory.stat")
    mem["cache"] = mem["raw"].get("file", 0)
    events = _flat(f, "memory.events")
    usage = {"limit": _num(f, "memory.max"), "usage": _num(f, "memory.current"),
             "max": _num(f, "memory.peak"), "failcnt": events.get("max", 0)}
    mem["usage"] = usage
    # runc reports v2 swap as v1's memsw: memory + swap
    swap_limit = _num(f, "memory.swap.max")
    mem["swap"] = {"limit": U64_MAX if U64_MAX in (swap_limit, usage["limit"]) else swap_limit + usage["limit"],
                   "usage": _num(f, "memory.swap.current") + usage["usage"], "max": 0,
                   "failcnt": _flat(f, "memory.swap.events").get("max", 0)}


def oom_count(f: Files) -> int:
    """OOM kills so far: v1 memory.oom_control's oom_kill (4.13+), v2 memory.events'."""
    name = "memory.oom_control" if f.hier.kind == V1 else "memory.events"
    return _flat(f, name).get("oom_kill", 0)


# -- pids, blkio, hugetlb ------------------------------------------------------

def pids(f: Files, out: dict) -> None:
    limit = _num(f, "pids.max", unlimited=0)  # runc: 0 is "no limit"
    out["pids"] = {"current": _num(f, "pids.current"), "limit": limit}


def blkio_v1(f: Files, out: dict) -> None:
    blkio = out["blkio"]
    # BFQ's recursive files where it runs, else the throttling layer's (always there)
    for key, names in (("ioServiceBytesRecursive", ("blkio.bfq.io_service_bytes_recursive",
                                                    "blkio.throttle.io_service_bytes_recursive",
                                                    "blkio.throttle.io_service_bytes")),
                       ("ioServicedRecursive", ("blkio.bfq.io_serviced_recursive",
                                                "blkio.throttle.io_serviced_recursive",
                                                "blkio.throttle.io_serviced"))):
        for name in names:
            if f.exists(name):
                blkio[key] = _blkio_entries(_text(f, name) or "")
                break


def _blkio_entries(text: str) -> list[dict[str, object]]:
    """``8:0 Read 1282048`` lines; the ``Total N`` line is dropped."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2 or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        try:
            entry = {"major": int(major), "minor": int(minor), "op": parts[1] if len(parts) == 3 else "",
                     "value": int(parts[-1])}
        except ValueError:
            continue
        out.append(entry)
    return out


def io_v2(f: Files, out: dict) -> None:
    """io.stat: ``8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0``."""
    blkio = out["blkio"]
    names = {"rbytes": ("ioServiceBytesRecursive", "Read"), "wbytes": ("ioServiceBytesRecursive", "Write"),
             "rios": ("ioServicedRecursive", "Read"), "wios": ("ioServicedRecursive", "Write")}
    for line in (_text(f, "io.stat") or "").splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        for item in parts[1:]:
            key, _, value = item.partition("=")
            if key in names:
                table, op = names[key]
                try:
                    blkio[table].append({"major": int(major), "minor": int(minor), "op": op, "value": int(value)})
                except ValueError:
                    pass


def hugetlb(f: Files, out: dict) -> None:
    v1 = f.hier.kind == V1
    sizes = sorted({name.split(".")[1] for name in _listdir(f.dir)
                    if name.startswith("hugetlb.") and name.endswith(".limit_in_bytes" if v1 else ".max")})
    for size in sizes:
        if v1:
            out["hugetlb"][size] = {"usage": _num(f, f"hugetlb.{size}.usage_in_bytes"),
                                    "max": _num(f, f"hugetlb.{size}.max_usage_in_bytes"),
                                    "failcnt": _num(f, f"hugetlb.{size}.failcnt")}
        else:
            out["hugetlb"][size] = {"usage": _num(f, f"hugetlb.{size}.current"), "max": 0,
                                    "failcnt": _flat(f, f"hugetlb.{size}.events").get("max", 0)}


def _listdir(d: str) -> list[str]:
    try:
        return os.listdir(d)
    except OSError:
        return []
