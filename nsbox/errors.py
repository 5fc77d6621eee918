"""Domain errors.  Low layers raise OSError; facades raise these.

Every error renders as one line (``str(err)``); ``hint`` says what to do
about it and is appended by the CLI.
"""

from __future__ import annotations


class NsboxError(Exception):
    """Base of nsbox's errors: a message and an optional hint."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}: {self.hint}" if self.hint else self.message


class UsageError(NsboxError):
    """A wrong flag or argument on the command line."""


class NamespaceError(NsboxError):
    """Creating or joining a namespace failed; carries the errno when there is one."""

    def __init__(self, message: str, hint: str | None = None, errno: int | None = None) -> None:
        super().__init__(message, hint)
        self.errno = errno


class ProcessNotFound(NsboxError):
    """A pid that names no process."""


class ExecError(NsboxError):
    """The command could not be executed (the 126/127 exit statuses)."""

    def __init__(self, message: str, errno: int) -> None:
        super().__init__(message)
        self.errno = errno

    @property
    def exit_code(self) -> int:
        """127 when the command does not exist, 126 when it cannot be run (as shells do)."""
        return 127 if self.errno == 2 else 126
