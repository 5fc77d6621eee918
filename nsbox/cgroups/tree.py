"""Making, walking and removing the container's directories in each hierarchy.

Kernel rules this code follows:

* v1 cpuset: a new cgroup starts with empty ``cpuset.cpus``/``cpuset.mems``
  (unless the parent has ``cgroup.clone_children``), and attaching a task to
  it fails with ENOSPC.  Each level we walk through gets its parent's values
  when it has none (runc's cpusetEnsureParent).
* v2: a controller works in a cgroup only when every ancestor has it in
  ``cgroup.subtree_control``.  We enable what we use on the way down, best
  effort: a parent with processes of its own refuses (EBUSY, "no internal
  processes"), and a controller it cannot get shows up later, as a clear
  error, only when a limit needs it.
* rmdir works on a cgroup with control files in it but not on one with
  children or processes: remove the deepest first, and retry EBUSY for a
  moment, because killed processes leave their cgroup only once they have
  fully exited.
"""

from __future__ import annotations

import errno
import os
import time

from nsbox.cgroups.errors import CgroupError, strerror
from nsbox.cgroups.files import Files, write_file
from nsbox.cgroups.layout import V1, V2, Hierarchy


def levels(h: Hierarchy) -> list[str]:
    """The directories from just below the mount point down to the container's."""
    rel = os.path.relpath(h.dir, h.mountpoint)
    out, cur = [], h.mountpoint
    for part in rel.split("/"):
        cur = os.path.join(cur, part)
        out.append(cur)
    return out


def nearest_existing(h: Hierarchy) -> str:
    """The container's directory in *h* if it exists, else its closest
    ancestor that does (the mount point at the least)."""
    for d in reversed(levels(h)):
        if os.path.isdir(d):
            return d
    return h.mountpoint


def create(hierarchies: list[Hierarchy], journal: list[tuple[str, str]]) -> None:
    """mkdir the container's cgroup (and missing parents) in every hierarchy;
    on failure remove what this call made, so nothing is left."""
    made: list[str] = []
    try:
        for h in hierarchies:
            _create_one(h, journal, made)
    except BaseException:
        for d in reversed(made):
            try:
                _rmdir(d)
            except OSError:
                pass
        raise


def _create_one(h: Hierarchy, journal: list[tuple[str, str]], made: list[str]) -> None:
    """mkdir -p of one hierarchy's path, noting in *made* what it created."""
    parent = h.mountpoint
    for d in levels(h):
        if h.kind == V2:
            _enable_subtree(parent, h.controllers, journal)
        try:
            _mkdir(d)
            made.append(d)
        except FileExistsError:
            pass  # a parent shared with other containers, or a cgroup to join
        except OSError as e:
            raise CgroupError(f"cannot create {d}: {strerror(e)}", json_path="linux.cgroupsPath",
                              controller=h.label, path=d, errno=e.errno) from None
        if h.kind == V1 and "cpuset" in h.controllers:
            _inherit_cpuset(Files(h, journal, parent), Files(h, journal, d))
        parent = d


# the two calls a fake cgroupfs replaces in the unit tests (on cgroupfs,
# mkdir makes the control files and rmdir takes them away)
def _mkdir(d: str) -> None:
    os.mkdir(d, 0o755)


def _rmdir(d: str) -> None:
    os.rmdir(d)


def _inherit_cpuset(parent: Files, child: Files) -> None:
    for name in ("cpuset.cpus", "cpuset.mems"):
        if not child.read(name, "cpuset").strip():
            child.write(name, parent.read(name, "cpuset").strip(), controller="cpuset",
                        hint="copying the parent's value so that processes can be attached")


def _enable_subtree(parent: str, wanted: tuple[str, ...], journal: list[tuple[str, str]]) -> None:
    """Enable *wanted* controllers for *parent*'s children (those it has)."""
    try:
        with open(os.path.join(parent, "cgroup.controllers")) as f:
            available = set(f.read().split())
        with open(os.path.join(parent, "cgroup.subtree_control")) as f:
            enabled = set(f.read().split())
    except OSError:
        return
    missing = [c for c in wanted if c in available and c not in enabled]
    if not missing:
        return
    path = os.path.join(parent, "cgroup.subtree_control")
    try:
        value = " ".join("+" + c for c in missing)
        write_file(path, value)
        journal.append((path, value))
    except OSError:
        # one refusal fails the whole write: get the others one at a time
        for c in missing:
            try:
                write_file(path, "+" + c)
                journal.append((path, "+" + c))
            except OSError:
                pass


def walk(directory: str) -> list[str]:
    """*directory* and every cgroup below it, deepest first; [] when it is gone."""
    if not os.path.isdir(directory):
        return []
    return [top for top, _dirs, _files in os.walk(directory, topdown=False)]


def procs(directory: str) -> list[int]:
    """The processes in the cgroup *directory*, sub-cgroups included."""
    found: set[int] = set()
    for d in walk(directory):
        for name in ("cgroup.procs", "cgroup.threads"):
            try:
                with open(os.path.join(d, name)) as f:
                    found.update(int(line) for line in f.read().split())
                break
            except FileNotFoundError:
                break  # removed meanwhile
            except OSError as e:
                if e.errno != errno.EOPNOTSUPP:  # a threaded v2 cgroup has no cgroup.procs
                    raise CgroupError(f"cannot read {d}/{name}: {strerror(e)}", path=d, errno=e.errno) from None
    return sorted(found)


def destroy(hierarchies: list[Hierarchy], timeout: float = 2.0) -> None:
    """Remove the container's cgroups, sub-cgroups first, in every hierarchy."""
    deadline = time.monotonic() + timeout
    failures: list[tuple[Hierarchy, str, OSError]] = []
    for h in hierarchies:
        try:
            _rmdir(h.dir)  # the common case: no sub-cgroups, so no walk
            continue
        except FileNotFoundError:
            continue
        except OSError:
            pass  # sub-cgroups (EBUSY), or still emptying: the walk and its retries
        for d in walk(h.dir):
            failure = _rmdir_retrying(d, deadline)
            if failure is not None:
                failures.append((h, d, failure))
    if failures:
        h, d, e = failures[0]
        left = procs(d) if os.path.isdir(d) else []
        hint = f"processes still inside: {' '.join(map(str, left))}" if left else None
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise CgroupError(f"cannot remove {d}{more}: {strerror(e)}", hint, controller=h.label, path=d,
                          errno=e.errno)


def _rmdir_retrying(d: str, deadline: float) -> OSError | None:
    delay = 0.001
    while True:
        try:
            _rmdir(d)
            return None
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                return e
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
