"""What a worker's silence means: a pure function of its handle and the clock.

A ready worker sends a heartbeat every second from its event loop; one that
has been silent for longer than --timeout (plus a grace) has a loop that an
inline app is blocking, and is replaced. A draining worker sends none while
such an app blocks it either, so it gets --graceful-timeout (plus a margin)
to exit by itself. Either way its stack is dumped first (SIGUSR1: faulthandler
in the worker), and it is killed a moment later.
"""

from __future__ import annotations

import enum

from .workers import WorkerHandle

HEARTBEAT_GRACE = 2.0  # seconds past --timeout before a silent worker counts as hung
DUMP_GRACE = 1.0  # seconds a hung worker gets to print its stack before SIGKILL
# Seconds past the graceful timeout before stragglers get SIGKILL. Workers enforce the
# timeout themselves; this only covers one whose loop an inline app is blocking.
KILL_MARGIN = 1.0


class Verdict(enum.Enum):
    KILL = "kill"  # its stack was dumped: SIGKILL now
    STUCK_DRAINING = "stuck-draining"  # still draining past its deadline: dump its stack
    HUNG = "hung"  # no heartbeat past --timeout: dump its stack, replace it


def judge(handle: WorkerHandle, now: float) -> Verdict | None:
    """The verdict on one worker now (None: nothing to do); sets a draining worker's deadline."""
    if handle.kill_at:
        return Verdict.KILL if now >= handle.kill_at else None
    config = handle.group.config
    if handle.told_to_stop:
        if not handle.drain_deadline:
            handle.drain_deadline = now + config.graceful_timeout + KILL_MARGIN
            return None
        return Verdict.STUCK_DRAINING if now >= handle.drain_deadline else None
    if not handle.slot.ready or now - handle.last_heartbeat <= config.timeout + HEARTBEAT_GRACE:
        return None
    return Verdict.HUNG
