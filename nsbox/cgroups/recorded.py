"""A container's cgroups as its state record keeps them (``Cgroup.to_record``),
for the verbs that need no more than that, nor the rest of the cgroups
package (~1 ms of imports): every status (``frozen``: is it paused), and
``delete`` of a stopped container (``remove_if_empty``: remove every
directory, if all are empty).  Also the record's vocabulary, the kinds of
host and hierarchy (V1, V2, HYBRID), which the whole package uses.

Anything unusual (a malformed record, processes left inside, sub-cgroups,
an error other than "busy") is left to ``Cgroup``, which can say what is
wrong and kill and walk as needed.

Uses ``posix``, not ``os``, as nsbox.state explains.
"""

from __future__ import annotations

import posix

V1, V2, HYBRID = "v1", "v2", "hybrid"

RECORD_VERSION = 1


def procs_source(mode: str, hierarchies: list[tuple[str, tuple[str, ...] | list[str]]]) -> int | None:
    """Which of *hierarchies* ((kind, controllers) each) lists every process of
    the container (``Cgroup.pids`` reads it): any hierarchy sees them all, so
    take the cheapest to walk: cgroup v2 on a v2 host, else v1's pids or
    memory, else v2, else the first."""
    def first(kind: str, controller: str | None = None) -> int | None:
        return next((i for i, (k, controllers) in enumerate(hierarchies)
                     if k == kind and (controller is None or controller in controllers)), None)

    for i in (first(V2) if mode == V2 else None, first(V1, "pids"), first(V1, "memory"), first(V2)):
        if i is not None:
            return i
    return 0 if hierarchies else None


def remove_if_empty(record: object) -> bool:
    """rmdir the container's cgroup in every hierarchy, the one that lists its
    processes last; True when all are gone.  False, having stopped, at the
    first one that is busy (processes or sub-cgroups inside) or otherwise
    refused, and for a record this module does not know: the caller goes on
    with ``Cgroup``, which still finds the processes where it looks."""
    dirs = _dirs(record)
    if dirs is None:
        return False
    for d in dirs:
        try:
            posix.rmdir(d)
        except FileNotFoundError:
            continue
        except OSError:
            return False
    return True


def hierarchy_fields(h: object) -> tuple[str, list[str], str, str] | None:
    """(kind, controllers, mountpoint, dir) of one recorded hierarchy, or None
    when it is malformed (its directory must lie under its mount)."""
    if not isinstance(h, dict):
        return None
    kind, controllers, mountpoint, directory = (h.get(k) for k in ("kind", "controllers", "mountpoint", "dir"))
    if (kind not in (V1, V2) or not isinstance(controllers, list)
            or not all(isinstance(c, str) for c in controllers)
            or not isinstance(mountpoint, str) or not isinstance(directory, str)
            or not directory.startswith(mountpoint.rstrip("/") + "/")):
        return None
    return kind, controllers, mountpoint, directory


def _dirs(record: object) -> list[str] | None:
    """The record's directories, the processes' hierarchy last (None: not a
    record of RECORD_VERSION, or a malformed hierarchy)."""
    if not isinstance(record, dict) or record.get("version") != RECORD_VERSION:
        return None
    hierarchies = record.get("hierarchies")
    if not isinstance(hierarchies, list):
        return None
    found = [hierarchy_fields(h) for h in hierarchies]
    if None in found:
        return None
    kinds = [(f[0], f[1]) for f in found]  # type: ignore[index]
    last = procs_source(str(record.get("mode")), kinds)
    dirs = [f[3] for i, f in enumerate(found) if i != last]  # type: ignore[index]
    if last is not None:
        dirs.append(found[last][3])  # type: ignore[index]
    return dirs


def frozen(record: dict[str, object]) -> bool:
    """frozen_in for a state record's cgroup: state, start and kill ask on
    every call.  The hierarchy is the one Cgroup.frozen picks: v1's
    freezer, else v2.  A malformed hierarchy (hierarchy_fields) is passed
    over."""
    hierarchies = record.get("hierarchies")
    found = [f for f in map(hierarchy_fields, hierarchies if isinstance(hierarchies, list) else ()) if f]
    for kind, controllers, _, directory in found:
        if kind == V1 and "freezer" in controllers:
            return frozen_in(V1, directory)
    for kind, _, _, directory in found:
        if kind == V2:
            return frozen_in(V2, directory)
    return False


def frozen_in(kind: str, directory: str) -> bool:
    """Frozen (or being frozen) by request of the container's own cgroup.

    False when the cgroup is gone.  On v1 a cgroup whose *parent* is frozen
    also reads FROZEN; ``freezer.self_freezing`` tells them apart (runc
    reports such a container as not paused, and so do we)."""
    def read(name: str) -> str:
        with open(f"{directory}/{name}") as f:
            return f.read().strip()

    try:
        if kind == V1:
            if read("freezer.state") not in ("FROZEN", "FREEZING"):
                return False
            try:
                return read("freezer.self_freezing") == "1"
            except FileNotFoundError:
                return True  # an old kernel: no way to tell, so it is ours
        return read("cgroup.freeze") == "1"
    except OSError:
        return False
