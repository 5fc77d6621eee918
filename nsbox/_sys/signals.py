"""Signal numbers and handlers without the ``signal`` module.

``import signal`` builds the Signals/Handlers enums at import time, which
pulls in ``enum``: about 5 ms of a hot verb's start-up.  The C module
``_signal`` underneath has the same functions and plain int constants.
"""

from __future__ import annotations

from _signal import (  # noqa: F401 - re-exported
    NSIG,
    SIG_DFL,
    SIG_IGN,
    SIGHUP,
    SIGINT,
    SIGKILL,
    SIGPIPE,
    SIGQUIT,
    SIGTERM,
    SIGTSTP,
    SIGUSR1,
    SIGUSR2,
    SIGXFSZ,
    signal,
)
import _signal

#: "SIGTERM" -> 15, for every signal this platform defines (SIGRTMIN+N excluded).
NUMBERS: dict[str, int] = {
    name: value for name, value in vars(_signal).items()
    if name.startswith("SIG") and not name.startswith("SIG_") and isinstance(value, int)
}
