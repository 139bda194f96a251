"""When to (re)start a worker: a pure function of the slots and the clock.

A worker that dies soon after it started counts as a crash; each crash in a row
doubles the delay before that slot is refilled (capped), so a crash loop costs
a few wake-ups a minute, not a spinning CPU. A worker that lived long enough
resets its slot's count.
"""

from __future__ import annotations

from dataclasses import dataclass

CRASH_WINDOW = 10.0  # seconds: dying sooner than this after start counts as a crash
BASE_DELAY = 0.1
MAX_DELAY = 30.0


@dataclass
class Slot:
    index: int
    pid: int | None = None
    started: float = 0.0
    ready: bool = False
    crashes: int = 0
    respawn_at: float = 0.0
    retiring: bool = False


def record_exit(slot: Slot, now: float) -> None:
    """Update a slot whose worker just exited; sets when it may be refilled."""
    lived = now - slot.started
    slot.crashes = slot.crashes + 1 if lived < CRASH_WINDOW or not slot.ready else 0
    slot.pid = None
    slot.ready = False
    slot.respawn_at = now + restart_delay(slot.crashes)


def restart_delay(crashes: int) -> float:
    if crashes == 0:
        return 0.0
    # The exponent is capped: after ~1000 crashes in a row (8 hours at the cap) 2**n
    # would overflow a float and take the master down with it.
    return float(min(MAX_DELAY, BASE_DELAY * 2 ** min(crashes - 1, 32)))


def due_for_spawn(slots: list[Slot], now: float) -> list[Slot]:
    return [slot for slot in slots if slot.pid is None and not slot.retiring and slot.respawn_at <= now]


def next_wakeup(slots: list[Slot], now: float, default: float = 1.0) -> float:
    waits = [slot.respawn_at - now for slot in slots if slot.pid is None and not slot.retiring]
    return max(0.0, min([default, *waits]))
