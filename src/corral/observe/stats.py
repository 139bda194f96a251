"""Per-worker request counters, cheap enough for every request.

How this works: `record` runs once per response, on the event loop thread
(`HTTPConnection.complete` never runs anywhere else, even with --threads > 1),
so the counters need no lock. It does a handful of dict/int operations: one
lookup of the site's counters, one increment for (method, status class), one
bisect into the latency buckets, three additions. Everything else (cumulative
buckets, label names, JSON shape) is worked out in `snapshot`, which the
worker's sweeper calls once a second and sends to the master in its heartbeat.

Counters only grow for the life of the process; the master keeps what exited
workers had counted (see metrics.py), so the totals it exposes never go back.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

# Upper bounds (seconds) of the latency histogram: Prometheus' defaults, which
# span a cached page (5 ms) to a slow report (10 s). The last bucket is +Inf.
BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

# Methods kept as their own label value; anything else is counted as "other",
# so a client inventing methods cannot create unbounded label values.
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"))
OTHER_METHOD = "other"

# Bumped when the snapshot's shape changes; the master ignores shapes it does not know.
SNAPSHOT_VERSION = 1


class _SiteCounters:
    __slots__ = ("requests", "buckets", "duration_sum", "bytes_in", "bytes_out", "h2")

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}  # (method, status // 100) -> count
        self.buckets = [0] * (len(BUCKETS) + 1)  # per bucket, not cumulative; last is +Inf
        self.duration_sum = 0.0
        self.bytes_in = 0
        self.bytes_out = 0
        self.h2 = 0  # of the requests, those over HTTP/2 (the rest are HTTP/1.x)


class WorkerStats:
    """Cumulative counters of one worker process."""

    def __init__(self) -> None:
        self._sites: dict[str, _SiteCounters] = {}
        self.connections_total = 0  # accepted connections; bump with `opened()`

    def record(self, site: str, method: str, status: int, duration: float, bytes_in: int, bytes_out: int) -> None:
        """Count one finished response (hot path: keep it to plain dict/int work)."""
        counters = self._sites.get(site)
        if counters is None:
            counters = self._sites[site] = _SiteCounters()
        requests = counters.requests
        key = (method, status // 100)
        requests[key] = requests.get(key, 0) + 1
        counters.buckets[bisect_left(BUCKETS, duration)] += 1  # bisect_left: a value on a bound is "le" it
        counters.duration_sum += duration
        counters.bytes_in += bytes_in
        counters.bytes_out += bytes_out

    def record_h2(self, site: str, method: str, status: int, duration: float, bytes_in: int, bytes_out: int) -> None:
        """`record` for a response on an HTTP/2 stream: HTTP/1's path pays nothing for the split."""
        self.record(site, method, status, duration, bytes_in, bytes_out)
        self._sites[site].h2 += 1

    def opened(self) -> None:
        """Count one accepted connection (call from connection_made)."""
        self.connections_total += 1

    @property
    def requests(self) -> int:
        """Responses recorded so far, all sites."""
        return sum(sum(c.requests.values()) for c in self._sites.values())

    def snapshot(self, *, connections: int = 0, in_flight: int = 0) -> dict[str, Any]:
        """JSON-serializable cumulative counters plus the two gauges the caller knows.

        Shape (SNAPSHOT_VERSION 1)::

            {"v": 1, "connections": 3, "in_flight": 1, "connections_total": 40,
             "sites": {"blog": {"requests": {"GET": {"2xx": 10, "4xx": 1}},
                                "duration": {"buckets": [cumulative counts, one per BUCKETS bound, then +Inf],
                                             "sum": 0.42, "count": 11},
                                "bytes_in": 0, "bytes_out": 5120,
                                "protocols": {"http/1.1": 9, "h2": 2}}}}

        ("http/1.1" counts HTTP/1.0 too: what HTTP/2 is not.)
        """
        sites: dict[str, Any] = {}
        for name, counters in self._sites.items():
            requests: dict[str, dict[str, int]] = {}
            for (method, klass), count in counters.requests.items():
                label = method if method in METHODS else OTHER_METHOD
                by_class = requests.setdefault(label, {})
                status_class = f"{klass}xx" if 1 <= klass <= 5 else "other"
                by_class[status_class] = by_class.get(status_class, 0) + count
            cumulative: list[int] = []
            running = 0
            for count in counters.buckets:
                running += count
                cumulative.append(running)
            sites[name] = {
                "requests": requests,
                "duration": {"buckets": cumulative, "sum": counters.duration_sum, "count": running},
                "bytes_in": counters.bytes_in,
                "bytes_out": counters.bytes_out,
                "protocols": {"http/1.1": running - counters.h2, "h2": counters.h2},
            }
        return {
            "v": SNAPSHOT_VERSION,
            "connections": connections,
            "in_flight": in_flight,
            "connections_total": self.connections_total,
            "sites": sites,
        }


def empty_site() -> dict[str, Any]:
    """A site's counters before any request (the identity of `add_site`)."""
    return {
        "requests": {},
        "duration": {"buckets": [0] * (len(BUCKETS) + 1), "sum": 0.0, "count": 0},
        "bytes_in": 0,
        "bytes_out": 0,
        "protocols": {},
    }


def add_site(total: dict[str, Any], other: dict[str, Any]) -> None:
    """Add one site's counters from a snapshot into `total`, in place."""
    requests = total["requests"]
    for method, by_class in other.get("requests", {}).items():
        mine = requests.setdefault(method, {})
        for status_class, count in by_class.items():
            mine[status_class] = mine.get(status_class, 0) + int(count)
    duration, theirs = total["duration"], other.get("duration", {})
    buckets = theirs.get("buckets", ())
    if len(buckets) == len(duration["buckets"]):  # another bucket layout cannot be merged: skip it
        duration["buckets"] = [a + int(b) for a, b in zip(duration["buckets"], buckets, strict=True)]
        duration["sum"] += float(theirs.get("sum", 0.0))
        duration["count"] += int(theirs.get("count", 0))
    total["bytes_in"] += int(other.get("bytes_in", 0))
    total["bytes_out"] += int(other.get("bytes_out", 0))
    protocols = total.setdefault("protocols", {})
    for protocol, count in other.get("protocols", {}).items():
        protocols[protocol] = protocols.get(protocol, 0) + int(count)
