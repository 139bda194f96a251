"""process/heartbeats.py: what a worker's silence means, judged with a fake clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from corral.process import heartbeats
from corral.process.heartbeats import Verdict
from worker_handles import Handles, group, handle_factory


@pytest.fixture
def make() -> Iterator[Handles]:
    with handle_factory() as handles:
        yield handles


def test_a_ready_worker_is_hung_only_past_timeout_plus_grace(make: Handles) -> None:
    g = group(timeout=30.0)
    handle = make(g, last_heartbeat=100.0)
    handle.slot.ready = True
    limit = 100.0 + 30.0 + heartbeats.HEARTBEAT_GRACE
    assert heartbeats.judge(handle, limit) is None
    assert heartbeats.judge(handle, limit + 0.01) is Verdict.HUNG


def test_a_booting_worker_is_never_hung(make: Handles) -> None:
    handle = make(group(timeout=1.0), last_heartbeat=0.0)
    assert heartbeats.judge(handle, 1e6) is None  # loading a big app takes what it takes


def test_a_draining_worker_gets_the_graceful_timeout_from_the_first_look(make: Handles) -> None:
    handle = make(group(graceful_timeout=5.0), told_to_stop=True)
    handle.slot.ready = True
    assert heartbeats.judge(handle, 50.0) is None  # sets the deadline; heartbeats no longer matter
    assert handle.drain_deadline == 50.0 + 5.0 + heartbeats.KILL_MARGIN
    assert heartbeats.judge(handle, handle.drain_deadline - 0.01) is None
    assert heartbeats.judge(handle, handle.drain_deadline) is Verdict.STUCK_DRAINING


def test_a_dumped_worker_is_killed_at_its_time_whatever_else_it_is(make: Handles) -> None:
    handle = make(group(), told_to_stop=True, kill_at=10.0)
    assert heartbeats.judge(handle, 9.99) is None
    assert heartbeats.judge(handle, 10.0) is Verdict.KILL
    assert handle.drain_deadline == 0.0  # not judged as a draining worker meanwhile
