"""``nsbox update [--resources FILE|-] [--memory N --cpu-shares N ...] ID``:
change a running container's limits, without a restart."""

from __future__ import annotations

import sys

from nsbox.cli.options import REQUIRED, Opt, Parser
from nsbox.cli.runtime import one_id
from nsbox.errors import UsageError

#: flag -> (path in linux.resources, kind)
FLAGS = {
    "memory": (("memory", "limit"), "bytes"),
    "memory_swap": (("memory", "swap"), "bytes"),
    "memory_reservation": (("memory", "reservation"), "bytes"),
    "kernel_memory": (("memory", "kernel"), "bytes"),
    "kernel_memory_tcp": (("memory", "kernelTCP"), "bytes"),
    "cpu_shares": (("cpu", "shares"), "int"),
    "cpu_quota": (("cpu", "quota"), "int"),
    "cpu_period": (("cpu", "period"), "int"),
    "cpu_rt_period": (("cpu", "realtimePeriod"), "int"),
    "cpu_rt_runtime": (("cpu", "realtimeRuntime"), "int"),
    "cpuset_cpus": (("cpu", "cpus"), "str"),
    "cpuset_mems": (("cpu", "mems"), "str"),
    "pids_limit": (("pids", "limit"), "int"),
    "blkio_weight": (("blockIO", "weight"), "int"),
}

PARSER = Parser("nsbox update", "[options] ID", [
    Opt("-r|--resources", "a JSON file (or - for stdin) with a linux.resources object", REQUIRED, metavar="FILE"),
    *(Opt(f"--{name.replace('_', '-')}", f"set linux.resources.{'.'.join(path)}", REQUIRED,
          metavar="BYTES" if kind == "bytes" else "N" if kind == "int" else "LIST")
      for name, (path, kind) in FLAGS.items()),
], operands="mixed", about="Update the cgroup limits of a running container.")


def run(argv: list[str], ctx) -> int:  # type: ignore[no-untyped-def]
    from nsbox.container import Container

    o, operands = PARSER.parse(argv)
    container_id = one_id("update", operands)
    resources = read_resources(o["resources"]) if o["resources"] else {}
    for name, (path, kind) in FLAGS.items():
        value = o[name]
        if value is None:
            continue
        section = resources.setdefault(path[0], {})
        if not isinstance(section, dict):
            raise UsageError(f"linux.resources.{path[0]} must be an object")
        section[path[1]] = convert(str(value), kind, f"--{name.replace('_', '-')}")
    if not resources:
        raise UsageError("nothing to update: give --resources or a limit flag")
    Container.load(ctx.root, container_id).update(resources)
    return 0


def read_resources(source: object) -> dict:  # type: ignore[type-arg]
    from nsbox import jsonio

    name = str(source)
    try:
        raw = sys.stdin.buffer.read() if name == "-" else open(name, "rb").read()
    except OSError as e:
        raise UsageError(f"--resources {name}: {e.strerror}") from None
    try:
        data = jsonio.loads(raw)
    except ValueError as e:
        raise UsageError(f"--resources {name}: not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise UsageError(f"--resources {name}: must be a JSON object (linux.resources)")
    return data


def convert(value: str, kind: str, flag: str) -> object:
    if kind == "str":
        return value
    if kind == "bytes":
        return parse_bytes(value, flag)
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{flag} takes a number, not {value!r}") from None


def parse_bytes(value: str, flag: str) -> int:
    """``512``, ``64k``, ``100m``, ``2g`` (powers of 1024, as docker and runc read them); -1 is unlimited."""
    text = value.strip().lower().removesuffix("b")
    scale = 1
    if text and text[-1] in "kmgt":
        scale = 1024 ** ("kmgt".index(text[-1]) + 1)
        text = text[:-1]
    try:
        number = float(text) if "." in text else int(text)
    except ValueError:
        raise UsageError(f"{flag} takes a size like 512, 64k, 100m or 2g, not {value!r}") from None
    return -1 if number == -1 else int(number * scale)
