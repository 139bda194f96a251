"""process/policy.py: the restart decisions, as pure functions of slots and a clock."""

from __future__ import annotations

import pytest

from corral.process import policy
from corral.process.policy import Slot


def test_restart_delay_doubles_and_is_capped() -> None:
    assert policy.restart_delay(0) == 0.0
    delays = [policy.restart_delay(n) for n in range(1, 12)]
    assert delays[0] == policy.BASE_DELAY
    assert all(b == min(policy.MAX_DELAY, 2 * a) for a, b in zip(delays, delays[1:], strict=False))
    assert delays[-1] == policy.MAX_DELAY
    assert policy.restart_delay(10_000) == policy.MAX_DELAY  # no overflow for a long crash loop


def test_a_quick_death_is_a_crash_and_delays_the_restart() -> None:
    slot = Slot(0, pid=10, started=100.0, ready=True)
    policy.record_exit(slot, now=101.0)
    assert slot.crashes == 1 and slot.pid is None and not slot.ready
    assert slot.respawn_at == pytest.approx(101.0 + policy.BASE_DELAY)
    slot.pid, slot.started = 11, 102.0
    policy.record_exit(slot, now=102.5)
    assert slot.crashes == 2
    assert slot.respawn_at == pytest.approx(102.5 + 2 * policy.BASE_DELAY)


def test_a_long_lived_worker_resets_the_count() -> None:
    slot = Slot(0, pid=10, started=0.0, ready=True, crashes=5)
    policy.record_exit(slot, now=policy.CRASH_WINDOW + 1)
    assert slot.crashes == 0
    assert slot.respawn_at == policy.CRASH_WINDOW + 1  # replaced at once


def test_a_worker_that_never_became_ready_is_a_crash_however_long_it_lived() -> None:
    slot = Slot(0, pid=10, started=0.0, ready=False)
    policy.record_exit(slot, now=policy.CRASH_WINDOW * 3)
    assert slot.crashes == 1


def test_due_for_spawn() -> None:
    empty_due = Slot(0, respawn_at=5.0)
    empty_later = Slot(1, respawn_at=7.0)
    running = Slot(2, pid=42)
    retiring = Slot(3, retiring=True)
    slots = [empty_due, empty_later, running, retiring]
    assert policy.due_for_spawn(slots, now=6.0) == [empty_due]
    assert policy.due_for_spawn(slots, now=7.0) == [empty_due, empty_later]


def test_next_wakeup() -> None:
    assert policy.next_wakeup([Slot(0, pid=1)], now=0.0) == 1.0  # nothing to do: the default tick
    assert policy.next_wakeup([Slot(0, respawn_at=10.25)], now=10.0) == pytest.approx(0.25)
    assert policy.next_wakeup([Slot(0, respawn_at=3.0)], now=10.0) == 0.0  # overdue: never negative
    assert policy.next_wakeup([Slot(0, respawn_at=50.0, retiring=True)], now=10.0) == 1.0


def simulate_crash_loop(seconds: float, lifetime: float) -> int:
    """A master loop in simulated time whose workers all die `lifetime` after they start."""
    slot = Slot(0)
    now, starts = 0.0, 0
    while now < seconds:
        if policy.due_for_spawn([slot], now):
            slot.pid, slot.started, slot.ready = 1, now, True
            starts += 1
            now += lifetime
            policy.record_exit(slot, now)
        else:
            now += max(policy.next_wakeup([slot], now), 1e-3)
    return starts


def test_a_crash_loop_costs_a_few_starts_a_minute() -> None:
    starts = simulate_crash_loop(600.0, lifetime=0.01)
    # Doubling from 0.1 s to the 30 s cap: about 9 starts to reach the cap, then 2 a minute.
    assert starts < 9 + 2 * 10 + 2
    assert simulate_crash_loop(600.0, lifetime=policy.CRASH_WINDOW + 1) > 50  # healthy-ish: not throttled
