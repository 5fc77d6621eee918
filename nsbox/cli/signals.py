"""Signal names as people type them: ``TERM``, ``SIGTERM``, ``sigterm`` or ``15``."""

from __future__ import annotations

from nsbox._sys.signals import NSIG, NUMBERS

from nsbox.errors import UsageError


def parse_signal(text: str) -> int:
    value = text.strip()
    if value.isdigit():
        number = int(value)
        if not 0 < number < NSIG:
            raise UsageError(f"signal {value} is out of range (1..{NSIG - 1})")
        return number
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return NUMBERS[name]
    except KeyError:
        raise UsageError(f"unknown signal {text!r}") from None
