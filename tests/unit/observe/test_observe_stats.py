"""WorkerStats: what one worker counts per request, and the snapshot it sends the master."""

from __future__ import annotations

import json
import timeit

import pytest

from corral.observe.stats import BUCKETS, WorkerStats, add_site, empty_site


def site(snapshot: dict, name: str = "blog") -> dict:
    return snapshot["sites"][name]


def test_requests_by_method_and_status_class() -> None:
    stats = WorkerStats()
    stats.record("blog", "GET", 200, 0.001, 0, 10)
    stats.record("blog", "GET", 204, 0.001, 0, 0)
    stats.record("blog", "GET", 404, 0.001, 0, 5)
    stats.record("blog", "POST", 500, 0.001, 7, 0)
    stats.record("blog", "HEAD", 301, 0.001, 0, 0)
    assert site(stats.snapshot())["requests"] == {
        "GET": {"2xx": 2, "4xx": 1},
        "POST": {"5xx": 1},
        "HEAD": {"3xx": 1},
    }
    assert stats.requests == 5


def test_unknown_methods_and_odd_statuses_are_folded() -> None:
    """Label values stay bounded whatever clients send."""
    stats = WorkerStats()
    stats.record("blog", "BREW", 418, 0.0, 0, 0)
    stats.record("blog", "PROPFIND", 207, 0.0, 0, 0)
    stats.record("blog", "GET", 999, 0.0, 0, 0)
    assert site(stats.snapshot())["requests"] == {"other": {"4xx": 1, "2xx": 1}, "GET": {"other": 1}}


@pytest.mark.parametrize(
    ("duration", "first_bucket"),
    [(0.0, 0), (0.005, 0), (0.0050001, 1), (0.3, BUCKETS.index(0.5)), (10.0, len(BUCKETS) - 1), (10.5, len(BUCKETS))],
)
def test_latency_lands_in_the_first_bucket_whose_bound_it_does_not_exceed(duration: float, first_bucket: int) -> None:
    stats = WorkerStats()
    stats.record("blog", "GET", 200, duration, 0, 0)
    histogram = site(stats.snapshot())["duration"]
    assert len(histogram["buckets"]) == len(BUCKETS) + 1  # the last is +Inf
    assert histogram["buckets"] == [0] * first_bucket + [1] * (len(BUCKETS) + 1 - first_bucket)
    assert histogram["count"] == 1
    assert histogram["sum"] == pytest.approx(duration)


def test_histogram_is_cumulative_with_sum_and_count() -> None:
    stats = WorkerStats()
    for duration in (0.001, 0.02, 0.02, 0.6, 30.0):
        stats.record("blog", "GET", 200, duration, 0, 0)
    histogram = site(stats.snapshot())["duration"]
    by_bound = dict(zip([*BUCKETS, float("inf")], histogram["buckets"], strict=True))
    assert by_bound[0.005] == 1
    assert by_bound[0.025] == 3
    assert by_bound[0.5] == 3
    assert by_bound[0.75] == 4
    assert by_bound[10.0] == 4
    assert by_bound[float("inf")] == 5 == histogram["count"]
    assert histogram["sum"] == pytest.approx(30.641)


def test_bytes_connections_and_gauges() -> None:
    stats = WorkerStats()
    stats.opened()
    stats.opened()
    stats.record("blog", "POST", 201, 0.01, 300, 20)
    stats.record("blog", "GET", 200, 0.01, 0, 1000)
    snapshot = stats.snapshot(connections=2, in_flight=1)
    assert site(snapshot)["bytes_in"] == 300
    assert site(snapshot)["bytes_out"] == 1020
    assert snapshot["connections_total"] == 2
    assert snapshot["connections"] == 2
    assert snapshot["in_flight"] == 1


def test_snapshot_is_plain_json_and_independent_of_later_records() -> None:
    stats = WorkerStats()
    stats.record("blog", "GET", 200, 0.01, 0, 1)
    stats.record("shop", "GET", 200, 0.01, 0, 1)
    snapshot = stats.snapshot()
    assert json.loads(json.dumps(snapshot)) == snapshot
    assert set(snapshot["sites"]) == {"blog", "shop"}
    stats.record("blog", "GET", 200, 0.01, 0, 1)
    assert site(snapshot)["requests"]["GET"]["2xx"] == 1  # the snapshot is a copy


def test_add_site_sums_and_skips_other_bucket_layouts() -> None:
    a, b = WorkerStats(), WorkerStats()
    a.record("blog", "GET", 200, 0.01, 1, 2)
    b.record("blog", "GET", 200, 0.2, 3, 4)
    b.record("blog", "PUT", 409, 0.2, 3, 4)
    total = empty_site()
    add_site(total, site(a.snapshot()))
    add_site(total, site(b.snapshot()))
    assert total["requests"] == {"GET": {"2xx": 2}, "PUT": {"4xx": 1}}
    assert total["duration"]["count"] == 3
    assert total["duration"]["buckets"][-1] == 3
    assert total["bytes_in"] == 7 and total["bytes_out"] == 10
    foreign = site(a.snapshot())
    foreign["duration"] = {"buckets": [1, 1], "sum": 1.0, "count": 1}
    add_site(total, foreign)
    assert total["duration"]["count"] == 3  # not merged: the bounds differ
    assert total["requests"]["GET"]["2xx"] == 3  # the rest still is


def test_requests_by_protocol() -> None:
    stats = WorkerStats()
    stats.record("blog", "GET", 200, 0.01, 0, 1)
    stats.record_h2("blog", "GET", 200, 0.01, 0, 1)
    stats.record_h2("blog", "POST", 413, 0.0, 0, 0)
    stats.record_h2("shop", "GET", 504, 3.0, 0, 0)
    snapshot = stats.snapshot()
    assert snapshot["sites"]["blog"]["protocols"] == {"http/1.1": 1, "h2": 2}
    assert snapshot["sites"]["blog"]["requests"] == {"GET": {"2xx": 2}, "POST": {"4xx": 1}}  # record_h2 records
    assert snapshot["sites"]["shop"]["protocols"] == {"http/1.1": 0, "h2": 1}
    total = empty_site()
    add_site(total, snapshot["sites"]["blog"])
    add_site(total, snapshot["sites"]["blog"])
    add_site(total, {"requests": {}, "duration": {}})  # a snapshot from before the split
    assert total["protocols"] == {"http/1.1": 2, "h2": 4}


def test_record_costs_well_under_a_microsecond() -> None:
    """The hot path: measured at ~0.3 µs on the 2-core dev machine; fail only on a gross regression."""
    stats = WorkerStats()
    record = stats.record
    runs = timeit.repeat(lambda: record("blog", "GET", 200, 0.0012, 0, 512), number=20_000, repeat=5)
    per_call = min(runs) / 20_000
    assert per_call < 3e-6, f"record() took {per_call * 1e9:.0f} ns"
