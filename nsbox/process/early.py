"""Stage 1 forked as the verb starts (``create``, ``run``), rather than at launch.

Between the two the runtime imports its modules, parses the bundle and
makes the state directory (~10 ms); an early stage 1 spends that time, on
the other core, importing what the container's side runs (ctypes,
nsbox.rootfs, ...), which a stage 1 forked at launch does on the critical
path.  The launcher forks it first thing (``fork_for_verb``), before the
command line's imports: the child then has less of the parent's memory to
copy on write, and the more of its ~5 ms of imports are done by the time
the runtime hands over the launch.  It is sent the config.json bytes as
soon as the runtime has read them, and parses them itself while the
runtime does (a Spec does not cross a pipe more cheaply: pickle costs 5 ms
to import).  A launch with a terminal does not use it: the runtime
connects the console socket, and stage 1 must inherit it.

This module imports only the channel: the launcher pays for nothing else.
"""

from __future__ import annotations

import os

from nsbox._sys.process import kill_if_alive
from nsbox.process.channel import fork_with_channel

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsbox.process.channel import Channel


class EarlyStage1:
    """A stage 1 forked before the launch, and the runtime's end of its channel."""

    __slots__ = ("runtime", "pid", "taken", "config_sent", "hold")

    #: the one the launcher forked, until the verb takes it
    _forked: EarlyStage1 | None = None

    def __init__(self) -> None:
        # Stage 1 exits once it has forked init *and* this pipe is closed:
        # ``run`` makes the runtime a child subreaper after the hand-over
        # (prctl needs ctypes, ~2 ms the critical path need not pay), and
        # init must not be orphaned before that.
        hold_r, hold_w = os.pipe2(os.O_CLOEXEC)
        self.runtime, self.pid = fork_with_channel(lambda chan: _body(chan, hold_r, hold_w))
        os.close(hold_r)
        self.hold = hold_w
        self.taken = False
        self.config_sent = False

    @classmethod
    def fork_for_verb(cls) -> None:
        """Fork it now, for the verb to take (the launcher calls this)."""
        if cls._forked is None:
            cls._forked = cls()

    @classmethod
    def take(cls) -> EarlyStage1:
        """The one the launcher forked, else a new one."""
        early, cls._forked = cls._forked, None
        return early if early is not None else cls()

    def send_config(self, config: bytes, bundle: str) -> None:
        """The bundle's config.json bytes, for stage 1 to parse (once; before the launch)."""
        if not self.config_sent:
            self.config_sent = True
            self.runtime.send("config", os.fsencode(bundle) + b"\0" + config)

    def release(self) -> None:
        """Let stage 1 exit once it has forked init."""
        if self.hold >= 0:
            os.close(self.hold)
            self.hold = -1

    def close(self) -> None:
        """Stop it unless a launch took it (the verb failed before launching)."""
        self.release()
        if not self.taken:
            self.taken = True
            self.runtime.close()
            kill_if_alive(self.pid)
            os.waitpid(self.pid, 0)

    def __enter__(self) -> EarlyStage1:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _body(chan: Channel, hold_r: int, hold_w: int) -> None:
    from nsbox.process.create import early_stage1  # in the child: the parent need not have it

    os.close(hold_w)
    early_stage1(chan, hold_r)
