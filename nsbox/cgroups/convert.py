"""The OCI spec's numbers are cgroup v1's; these turn them into v2's.

Each is the formula the runtimes have used (kept in one place so that a
change of convention is one edit here).
"""

from __future__ import annotations


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2..262144] -> cpu.weight [1..10000], linearly:
    ``1 + ((shares - 2) * 9999) / 262142`` (runc before 1.3, crun before 1.23,
    the kernel documentation's mapping).

    Note: runc >= 1.3 and crun >= 1.23 moved to a log-quadratic curve that
    maps the default 1024 shares to the default weight 100 (this one gives 39).
    """
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight [10..1000] -> io.weight [1..10000], linearly (runc, crun)."""
    weight = min(max(weight, 10), 1000)
    return 1 + ((weight - 10) * 9999) // 990


def v2_swap(swap: int, limit: int) -> int:
    """The OCI ``swap`` is memory+swap (v1's memsw); v2's memory.swap.max is the
    swap alone: ``swap - limit``.  Caller checks ``swap >= limit > 0``."""
    return swap - limit
