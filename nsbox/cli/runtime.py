"""Helpers shared by the OCI runtime verbs: the one container id operand."""

from __future__ import annotations

from nsbox.errors import UsageError


def one_id(verb: str, operands: list[str], extra: int = 0) -> str:
    """The container id (and up to *extra* more operands): a clear error otherwise."""
    if not operands:
        raise UsageError(f"{verb} needs a container id")
    if len(operands) > 1 + extra:
        raise UsageError(f"unexpected arguments after the container id: {' '.join(operands[1 + extra:])}")
    return operands[0]


def count(value: object, option: str) -> int:
    try:
        n = int(str(value or 0))
    except ValueError:
        raise UsageError(f"{option} takes a number, not {value!r}") from None
    if n < 0:
        raise UsageError(f"{option} takes a number of 0 or more")
    return n


def show_warnings(verb: str, warnings: list[str], ctx) -> None:  # type: ignore[no-untyped-def]
    """One stderr line per warning (and a "warning" entry in --log)."""
    import sys

    for text in warnings:
        sys.stderr.write(f"nsbox: {verb}: warning: {text}\n")
        if ctx.log:
            from nsbox.cli.main import log_line

            log_line(str(ctx.log), ctx.log_format, "warning", f"{verb}: {text}")


def owner_name(uid: object) -> str:
    """The user name of a container's owner (uid), as runc shows it; the number when it has no name."""
    import pwd

    try:
        return pwd.getpwuid(int(str(uid))).pw_name
    except (KeyError, ValueError):
        return str(uid)
