"""Prometheus exposition of a `ServerState` (master side).

Why prometheus-client with a custom Collector: the workers never touch it (they
count with stats.py and send snapshots in their heartbeats), so its
multiprocess mode and its per-request locks are not used; the master only
turns the aggregated state into metric families at scrape time. What the
library gives us is the part that is easy to get subtly wrong by hand: label
escaping (site names come from config), histogram `_bucket`/`_sum`/`_count`
and `le` formatting, HELP/TYPE lines, OpenMetrics content negotiation, and a
parser the tests use to read the output back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder, floatToGoString
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

from .state import CAUSES, ServerState
from .stats import BUCKETS

_LE = [floatToGoString(bound) for bound in BUCKETS] + ["+Inf"]


class StateCollector(Collector):
    """Builds the metric families from a fresh `ServerState` on every scrape."""

    def __init__(self, state: Callable[[], ServerState]) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        state = self._state()
        requests = CounterMetricFamily(
            "corral_requests", "Responses sent, by site, method and status class.",
            labels=["site", "method", "status_class"],
        )
        by_protocol = CounterMetricFamily(
            "corral_requests_by_protocol", "Responses sent, by site and protocol (http/1.1 or h2).",
            labels=["site", "protocol"],
        )
        duration = HistogramMetricFamily(
            "corral_request_duration_seconds",
            "Time from the request head being parsed to the response handed to the socket.",
            labels=["site"],
        )
        bytes_in = CounterMetricFamily(
            "corral_request_body_bytes", "Request body bytes received.", labels=["site"]
        )
        bytes_out = CounterMetricFamily(
            "corral_response_body_bytes", "Response body bytes sent.", labels=["site"]
        )
        connections = CounterMetricFamily("corral_connections", "Connections accepted.", labels=["site"])
        open_connections = GaugeMetricFamily("corral_connections_open", "Connections open now.", labels=["site"])
        in_flight = GaugeMetricFamily(
            "corral_requests_in_flight", "Requests being answered now.", labels=["site"]
        )
        workers = GaugeMetricFamily(
            "corral_workers", "Worker processes by state (booting, ready, draining).", labels=["site", "state"]
        )
        desired = GaugeMetricFamily("corral_workers_desired", "Worker processes configured.", labels=["site"])
        rss = GaugeMetricFamily("corral_workers_rss_bytes", "Resident memory of all workers.", labels=["site"])
        rss_max = GaugeMetricFamily(
            "corral_worker_rss_max_bytes", "Resident memory of the largest worker.", labels=["site"]
        )
        restarts = CounterMetricFamily(
            "corral_worker_restarts",
            "Workers replaced, by cause: " + ", ".join(CAUSES) + ".",
            labels=["site", "cause"],
        )
        ready = GaugeMetricFamily("corral_site_ready", "1 when the site has a ready worker and is not draining.",
                                  labels=["site"])
        for site in state.sites:
            name = site.name
            stats = site.stats
            for method, by_class in sorted(stats["requests"].items()):
                for status_class, count in sorted(by_class.items()):
                    requests.add_metric([name, method, status_class], count)
            for protocol in ("http/1.1", "h2"):
                by_protocol.add_metric([name, protocol], stats.get("protocols", {}).get(protocol, 0))
            histogram = stats["duration"]
            duration.add_metric([name], list(zip(_LE, histogram["buckets"], strict=True)), histogram["sum"])
            bytes_in.add_metric([name], stats["bytes_in"])
            bytes_out.add_metric([name], stats["bytes_out"])
            connections.add_metric([name], site.connections_total)
            open_connections.add_metric([name], sum(w.connections for w in site.workers))
            in_flight.add_metric([name], sum(w.in_flight for w in site.workers))
            for worker_state in ("booting", "ready", "draining"):
                workers.add_metric([name, worker_state], sum(1 for w in site.workers if w.state == worker_state))
            desired.add_metric([name], site.desired_workers)
            rss.add_metric([name], sum(w.rss for w in site.workers))
            rss_max.add_metric([name], max((w.rss for w in site.workers), default=0))
            for cause in sorted(set(CAUSES) | set(site.restarts)):
                restarts.add_metric([name, cause], site.restarts.get(cause, 0))
            ready.add_metric([name], 1 if site.ready else 0)
        yield from (requests, by_protocol, duration, bytes_in, bytes_out, connections, open_connections, in_flight)
        yield from (workers, desired, rss, rss_max, restarts, ready)
        yield GaugeMetricFamily("corral_start_time_seconds", "When the master started (Unix time).", state.started)


class Exposition:
    """The registry the metrics server renders: our state plus the master's own process metrics."""

    def __init__(self, state: Callable[[], ServerState]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StateCollector(state))
        # CPU, memory and open fds of the master process itself (workers: corral_workers_rss_bytes).
        ProcessCollector(namespace="corral_master", registry=self.registry)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition body and its content type, in the format the scraper asked for."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


def render(state: ServerState, accept: str = "") -> tuple[bytes, str]:
    """One-off rendering of a state (tests, tools)."""
    return Exposition(lambda: state).render(accept)
