"""nsbox.process.channel: a send to a side that is gone raises why it went."""

from __future__ import annotations

import os

import pytest

from nsbox.errors import NsboxError
from nsbox.process.channel import ChannelClosed, fork_with_channel


def _gone(body):
    runtime, pid = fork_with_channel(body)
    os.waitpid(pid, 0)
    return runtime


def test_a_send_to_a_side_that_failed_raises_its_error():
    def fail(chan):
        raise NsboxError("mounts[2] (/dev/pts): mount: Operation not permitted")

    runtime = _gone(fail)
    try:
        with pytest.raises(NsboxError, match=r"mounts\[2\] \(/dev/pts\)") as caught:
            runtime.send("placed")
        assert not isinstance(caught.value, ChannelClosed)
    finally:
        runtime.close()


def test_a_send_to_a_side_that_exited_silently_says_so():
    def leave(chan):
        chan.send("pid", b"1")  # messages before the end are passed over
        os._exit(0)

    runtime = _gone(leave)
    try:
        with pytest.raises(ChannelClosed, match="exited during setup"):
            runtime.send("placed")
    finally:
        runtime.close()
