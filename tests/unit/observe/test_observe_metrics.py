"""The Prometheus exposition of a ServerState, read back with prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from corral.observe.metrics import render
from corral.observe.state import CAUSES, MasterStats
from corral.observe.stats import BUCKETS, WorkerStats


def scrape(master: MasterStats) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, content_type = render(master.state())
    assert content_type.startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def two_sites() -> MasterStats:
    master = MasterStats()
    master.add_site("blog", 2)
    master.add_site("shop", 1)
    blog1, blog2, shop = WorkerStats(), WorkerStats(), WorkerStats()
    for stats in (blog1, blog2, shop):
        stats.opened()
    blog1.record("blog", "GET", 200, 0.003, 0, 100)
    blog1.record("blog", "GET", 200, 0.2, 0, 100)
    blog2.record("blog", "POST", 201, 0.02, 50, 10)
    blog2.record_h2("blog", "GET", 404, 0.001, 0, 9)
    shop.record("shop", "GET", 503, 12.0, 0, 0)
    for pid, site, stats, rss in ((1, "blog", blog1, 10_000_000), (2, "blog", blog2, 30_000_000), (3, "shop", shop, 5)):
        master.worker_started(pid, site)
        master.worker_ready(pid)
        master.heartbeat(pid, stats.snapshot(connections=pid, in_flight=1), rss=rss)
    return master


def test_request_counters_by_site_method_and_status_class() -> None:
    samples = scrape(two_sites())
    assert value(samples, "corral_requests_total", site="blog", method="GET", status_class="2xx") == 2
    assert value(samples, "corral_requests_total", site="blog", method="POST", status_class="2xx") == 1
    assert value(samples, "corral_requests_total", site="blog", method="GET", status_class="4xx") == 1
    assert value(samples, "corral_requests_total", site="shop", method="GET", status_class="5xx") == 1
    assert value(samples, "corral_request_body_bytes_total", site="blog") == 50
    assert value(samples, "corral_response_body_bytes_total", site="blog") == 219
    assert value(samples, "corral_connections_total", site="blog") == 2
    assert value(samples, "corral_connections_open", site="blog") == 3
    assert value(samples, "corral_requests_in_flight", site="blog") == 2
    assert value(samples, "corral_requests_by_protocol_total", site="blog", protocol="http/1.1") == 3
    assert value(samples, "corral_requests_by_protocol_total", site="blog", protocol="h2") == 1
    assert value(samples, "corral_requests_by_protocol_total", site="shop", protocol="h2") == 0


def test_latency_histogram() -> None:
    samples = scrape(two_sites())
    buckets = {le: value(samples, "corral_request_duration_seconds_bucket", site="blog", le=le)
               for le in ["0.005", "0.025", "0.1", "0.25", "10.0", "+Inf"]}
    assert buckets == {"0.005": 2, "0.025": 3, "0.1": 3, "0.25": 4, "10.0": 4, "+Inf": 4}
    assert value(samples, "corral_request_duration_seconds_count", site="blog") == 4
    assert abs(value(samples, "corral_request_duration_seconds_sum", site="blog") - 0.224) < 1e-9
    assert value(samples, "corral_request_duration_seconds_bucket", site="shop", le="10.0") == 0
    assert value(samples, "corral_request_duration_seconds_bucket", site="shop", le="+Inf") == 1
    les = [name_labels for name_labels in samples if name_labels[0] == "corral_request_duration_seconds_bucket"]
    assert len(les) == 2 * (len(BUCKETS) + 1)


def test_workers_restarts_and_readiness() -> None:
    master = two_sites()
    master.worker_started(4, "blog")
    master.worker_draining(2)
    master.worker_exited(3, "memory")
    samples = scrape(master)
    assert value(samples, "corral_workers", site="blog", state="ready") == 1
    assert value(samples, "corral_workers", site="blog", state="booting") == 1
    assert value(samples, "corral_workers", site="blog", state="draining") == 1
    assert value(samples, "corral_workers", site="shop", state="ready") == 0
    assert value(samples, "corral_workers_desired", site="blog") == 2
    assert value(samples, "corral_workers_rss_bytes", site="blog") == 40_000_000
    assert value(samples, "corral_worker_rss_max_bytes", site="blog") == 30_000_000
    for cause in CAUSES:  # every cause is present from the start, so rate() works on the first restart
        expected = 1 if cause == "memory" else 0
        assert value(samples, "corral_worker_restarts_total", site="shop", cause=cause) == expected
    assert value(samples, "corral_site_ready", site="blog") == 1
    assert value(samples, "corral_site_ready", site="shop") == 0
    # The exited worker's requests still count.
    assert value(samples, "corral_requests_total", site="shop", method="GET", status_class="5xx") == 1
    assert value(samples, "corral_start_time_seconds") > 1e9
    assert value(samples, "corral_master_process_resident_memory_bytes") > 0


def test_site_names_are_escaped() -> None:
    master = MasterStats()
    name = 'we"ird\\site\nname'
    master.add_site(name, 1)
    worker = WorkerStats()
    worker.record(name, "GET", 200, 0.01, 0, 0)
    master.worker_started(1, name)
    master.heartbeat(1, worker.snapshot())
    samples = scrape(master)
    assert value(samples, "corral_requests_total", site=name, method="GET", status_class="2xx") == 1


def test_openmetrics_when_the_scraper_asks() -> None:
    body, content_type = render(two_sites().state(), accept="application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    families = {f.name: f for f in parse_openmetrics(body.decode())}
    assert families["corral_requests"].type == "counter"
    assert families["corral_request_duration_seconds"].type == "histogram"


def test_an_empty_server_renders() -> None:
    samples = scrape(MasterStats())
    assert not any(name.startswith("corral_requests_total") for name, _ in samples)
