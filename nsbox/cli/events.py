"""``nsbox events [--stats] [--interval D] ID``: the container's stats and
OOM notices as JSON lines, as runc prints them."""

from __future__ import annotations

import sys
import time

from nsbox.cli.options import NONE, REQUIRED, Opt, Parser
from nsbox.cli.runtime import one_id
from nsbox.errors import UsageError

PARSER = Parser("nsbox events", "[--stats] [--interval DURATION] ID", [
    Opt("--stats", "print the stats once and exit", NONE),
    Opt("--interval", "how often to print stats (e.g. 5s, 500ms; default 5s)", REQUIRED, metavar="DURATION"),
], operands="mixed", about="Print stats and OOM events of a container until it stops.")


def run(argv: list[str], ctx) -> int:  # type: ignore[no-untyped-def]
    from nsbox import jsonio
    from nsbox.container import Container
    from nsbox.oci.state import STOPPED

    o, operands = PARSER.parse(argv)
    container_id = one_id("events", operands)
    interval = parse_duration(str(o["interval"] or "5s"))
    container = Container.load(ctx.root, container_id, lock=False)
    cgroup = container._require_cgroup("report events")

    def emit(kind: str, data: object = None) -> None:
        event: dict[str, object] = {"type": kind, "id": container_id}
        if data is not None:
            event["data"] = data
        sys.stdout.write(jsonio.dumps(event) + "\n")
        sys.stdout.flush()

    if o["stats"]:
        emit("stats", cgroup.stats())
        return 0
    ooms = cgroup.oom_count()
    next_stats = time.monotonic()
    while container.status() != STOPPED:
        now = time.monotonic()
        if now >= next_stats:
            emit("stats", cgroup.stats())
            next_stats = now + interval
        count = cgroup.oom_count()
        if count > ooms:
            emit("oom")
            ooms = count
        time.sleep(min(0.1, interval))
    return 0


def parse_duration(text: str) -> float:
    """Go-style durations as runc takes them: ``5s``, ``500ms``, ``1m``, ``1h``."""
    units = (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0))
    for suffix, scale in units:
        if text.endswith(suffix):
            try:
                value = float(text[: -len(suffix)]) * scale
            except ValueError:
                break
            if value <= 0:
                break
            return value
    raise UsageError(f"--interval takes a duration like 5s or 500ms, not {text!r}")
