"""Freezing and thawing every process of the container (pause / resume).

v1: ``freezer.state``.  Writing FROZEN starts the freeze; the state reads
FREEZING until every task is stopped, and a task in an uninterruptible
sleep (or a vfork parent) can keep it there.  runc's cure, used here too:
keep asking, and now and then thaw and start over, which unsticks it.

v2: ``cgroup.freeze`` (1/0) and ``frozen 1`` in ``cgroup.events`` once done.

Both are hierarchical: freezing the container's cgroup freezes the
sub-cgroups it made.
"""

from __future__ import annotations

import time

from nsbox.cgroups.errors import CgroupError
from nsbox.cgroups.recorded import V1, frozen_in

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsbox.cgroups.files import Files

TIMEOUT = 10.0


def freeze(f: Files, timeout: float = TIMEOUT) -> None:
    if f.hier.kind == V1:
        _freeze_v1(f, timeout)
    else:
        _freeze_v2(f, timeout)


def _freeze_v1(f: Files, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    restart = time.monotonic() + 0.5
    delay = 0.0005
    while True:
        f.write("freezer.state", "FROZEN", controller="freezer")
        state = f.read("freezer.state", "freezer").strip()
        if state == "FROZEN":
            return
        if state != "FREEZING":
            f.write("freezer.state", "THAWED", controller="freezer")
            raise CgroupError(f"unexpected freezer.state {state!r} while freezing", controller="freezer", path=f.dir)
        now = time.monotonic()
        if now > deadline:
            f.write("freezer.state", "THAWED", controller="freezer")
            raise CgroupError(f"cannot freeze {f.dir}: still FREEZING after {timeout:.0f} s "
                              "(a process in uninterruptible sleep?)", controller="freezer", path=f.dir)
        if now > restart:
            f.write("freezer.state", "THAWED", controller="freezer")
            restart = now + 0.5
        time.sleep(delay)
        delay = min(delay * 2, 0.01)


def _freeze_v2(f: Files, timeout: float) -> None:
    f.write("cgroup.freeze", "1", controller="cgroup2")
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while not _v2_frozen(f):
        if time.monotonic() > deadline:
            f.write("cgroup.freeze", "0", controller="cgroup2")
            raise CgroupError(f"cannot freeze {f.dir}: cgroup.events did not say frozen within {timeout:.0f} s",
                              controller="cgroup2", path=f.dir)
        time.sleep(delay)
        delay = min(delay * 2, 0.01)


def _v2_frozen(f: Files) -> bool:
    for line in f.read("cgroup.events", "cgroup2").splitlines():
        key, _, value = line.partition(" ")
        if key == "frozen":
            return value.strip() == "1"
    return False


def thaw(f: Files) -> None:
    if f.hier.kind == V1:
        f.write("freezer.state", "THAWED", controller="freezer")
    else:
        f.write("cgroup.freeze", "0", controller="cgroup2")


def frozen(f: Files) -> bool:
    return frozen_in(f.hier.kind, f.dir)


def frozen_any_way(kind: str, directory: str) -> bool:
    """Frozen or freezing, by its own request or an ancestor's (which a new
    child of *directory* would be too); False where there is no such file
    (the root of a v2 tree) or the cgroup is gone."""
    try:
        if kind == V1:
            with open(f"{directory}/freezer.state") as f:
                return f.read().strip() in ("FROZEN", "FREEZING")
        with open(f"{directory}/cgroup.freeze") as f:
            if f.read().strip() == "1":
                return True
        with open(f"{directory}/cgroup.events") as f:
            return "frozen 1" in f.read().splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return False
