"""``--trace``: print every kernel call as it happens, strace-style.

The syscall wrappers test ``trace.enabled`` (a module attribute read, the
only cost when tracing is off) and build their line only when it is set.
Lines go straight to fd 2 with one ``write`` so that lines from a parent and
its forked children never interleave mid-line.
"""

from __future__ import annotations

import posix  # not os: kill, through nsbox._sys.pidfd, does without it (nsbox.state says why)

enabled = False


def enable(on: bool = True) -> None:
    """Turn tracing on (or off) for this process and the children it forks."""
    global enabled
    enabled = on


def emit(text: str) -> None:
    """Write one trace line, tagged with the calling pid."""
    line = f"nsbox[{posix.getpid()}]: {text}\n"
    try:
        posix.write(2, line.encode(errors="backslashreplace"))
    except OSError:
        pass  # a closed stderr must never break the call being traced


def result(call: str, ret: object) -> None:
    emit(f"{call} = {ret}")


def failure(call: str, err: int) -> None:
    import errno

    name = errno.errorcode.get(err, str(err))
    emit(f"{call} = -1 {name} ({posix.strerror(err)})")


def quote(value: object) -> str:
    """Render an argument the way strace does: strings quoted, None as NULL."""
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        value = value.decode(errors="backslashreplace")
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    return str(value)
