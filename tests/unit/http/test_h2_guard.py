"""http/h2_guard.py: the flood counters' one-second windows, and the header list bound."""

from __future__ import annotations

import pytest

from corral.http import h2_guard
from corral.http.h2_guard import CONTROL, EMPTY, RESET, FloodGuard
from corral.http.limits import Limits

BOUNDS = {
    RESET: h2_guard.MAX_RESETS_PER_SECOND,
    CONTROL: h2_guard.MAX_CONTROL_PER_SECOND,
    EMPTY: h2_guard.MAX_EMPTY_PER_SECOND,
}


@pytest.mark.parametrize("kind", sorted(BOUNDS), ids=["reset", "control", "empty"])
def test_the_bound_is_allowed_and_one_more_is_not(kind: int) -> None:
    guard = FloodGuard()
    assert all(guard.note(kind, 100.0 + n / 10_000) for n in range(BOUNDS[kind]))
    assert guard.exceeded == ""
    assert not guard.note(kind, 100.5)
    assert (
        guard.exceeded
        == f"more than {BOUNDS[kind]} {['reset streams', 'PING/SETTINGS frames', 'empty frames'][kind]} a second"
    )


def test_a_new_window_starts_a_second_after_the_last_one_began() -> None:
    guard = FloodGuard()
    bound = BOUNDS[RESET]
    for _ in range(bound):
        assert guard.note(RESET, 10.0)
    assert not guard.note(RESET, 10.999)  # still the same window
    assert guard.note(RESET, 11.0)  # a fresh window: counts start again
    for _ in range(bound - 1):
        assert guard.note(RESET, 11.5)
    assert not guard.note(RESET, 11.9)


def test_a_steady_rate_under_the_bound_never_trips() -> None:
    guard = FloodGuard()
    bound = BOUNDS[CONTROL]
    # 90% of the bound every second, for a minute.
    assert all(guard.note(CONTROL, n / (bound * 0.9)) for n in range(int(bound * 0.9) * 60))


def test_kinds_are_counted_apart() -> None:
    guard = FloodGuard()
    for _ in range(BOUNDS[CONTROL]):
        assert guard.note(CONTROL, 5.0)
    assert guard.note(RESET, 5.0) and guard.note(EMPTY, 5.0)  # other kinds still have room
    assert not guard.note(CONTROL, 5.0)


def test_header_list_size_covers_the_http1_limits() -> None:
    limits = Limits(max_request_line=1000, max_header_size=2000, max_headers=10, max_body_size=1)
    size = h2_guard.header_list_size(limits)
    # Every field HTTP/1 would accept fits (HPACK counts 32 bytes more per field), with room
    # for the pseudo-headers and a :path as long as --max-request-line.
    assert size >= 2000 + 32 * 10 + 1000
    assert size < 2000 + 32 * 10 + 1000 + 8192
