"""Wait statuses as a shell reports them."""

from __future__ import annotations

import os


def exit_status(status: int) -> int:
    """The exit code, or 128+N for a process that signal N ended."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)
