"""Observability over real sockets: the metrics/health server, access logs of a real `corral serve`."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from corral.observe.httpd import MetricsServer, parse_address
from corral.observe.state import MasterStats, ServerState
from corral.observe.stats import WorkerStats
from h2_client import H2Client
from helpers import Server
from http_client import request


def samples(body: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


@pytest.fixture
def master() -> MasterStats:
    stats = MasterStats()
    stats.add_site("blog", 1)
    return stats


@pytest.fixture
def server(master: MasterStats) -> Iterator[MetricsServer]:
    metrics = MetricsServer("127.0.0.1:0", master.state)
    metrics.start()
    yield metrics
    metrics.stop()


# -- the metrics server, in-process, against a state we drive ---------------------------


def test_healthz_is_live_even_while_nothing_is_ready(server: MetricsServer, master: MasterStats) -> None:
    master.set_draining()
    status, headers, body = request(server.address, "/healthz")
    assert (status, body) == (200, b"ok\n")
    assert headers["content-length"] == "3"


def test_readyz_follows_the_workers(server: MetricsServer, master: MasterStats) -> None:
    status, _, body = request(server.address, "/readyz")
    assert status == 503
    assert body == b"not ready\nsite 'blog' has no ready worker\n"
    master.worker_started(10, "blog")
    master.worker_ready(10)
    assert request(server.address, "/readyz")[:3:2] == (200, b"ok\n")
    master.worker_draining(10)  # e.g. recycled, replacement not up yet
    assert request(server.address, "/readyz")[0] == 503
    master.worker_started(11, "blog")
    master.worker_ready(11)
    assert request(server.address, "/readyz?verbose=1")[0] == 200  # the query string is ignored
    master.set_draining()
    status, _, body = request(server.address, "/readyz")
    assert (status, body) == (503, b"not ready\nthe server is stopping\n")


def test_metrics_after_known_traffic(server: MetricsServer, master: MasterStats) -> None:
    worker = WorkerStats()
    master.worker_started(10, "blog")
    master.worker_ready(10)
    for _ in range(3):
        worker.record("blog", "GET", 200, 0.002, 0, 13)
    worker.record("blog", "POST", 500, 0.3, 10, 0)
    master.heartbeat(10, worker.snapshot(connections=2, in_flight=1), rss=50_000_000)
    master.worker_exited(10, "timeout")
    master.worker_started(11, "blog")
    status, headers, body = request(server.address, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    found = samples(body)
    key = ("corral_requests_total", frozenset({"site": "blog", "method": "GET", "status_class": "2xx"}.items()))
    assert found[key] == 3
    assert found[("corral_request_duration_seconds_bucket", frozenset({"site": "blog", "le": "0.005"}.items()))] == 3
    assert found[("corral_request_duration_seconds_count", frozenset({"site": "blog"}.items()))] == 4
    assert found[("corral_worker_restarts_total", frozenset({"site": "blog", "cause": "timeout"}.items()))] == 1
    assert found[("corral_workers", frozenset({"site": "blog", "state": "booting"}.items()))] == 1
    assert found[("corral_response_body_bytes_total", frozenset({"site": "blog"}.items()))] == 39


def test_openmetrics_head_404_and_405(server: MetricsServer) -> None:
    status, headers, body = request(server.address, "/metrics", headers={"Accept": "application/openmetrics-text"})
    assert status == 200 and headers["content-type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    status, headers, body = request(server.address, "/healthz", method="HEAD")
    assert (status, headers["content-length"], body) == (200, "3", b"")
    assert request(server.address, "/")[0] == 404
    assert request(server.address, "/metrics/")[0] == 404
    status, headers, _ = request(server.address, "/metrics", method="POST")
    assert (status, headers["allow"]) == (405, "GET, HEAD")


def test_keep_alive_serves_several_requests_on_one_connection(server: MetricsServer) -> None:
    conn = http.client.HTTPConnection(*server.address, timeout=5)
    try:
        for path in ("/healthz", "/metrics", "/readyz"):
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            assert response.status in (200, 503)
    finally:
        conn.close()


def test_a_failing_state_provider_gives_500_and_the_server_goes_on() -> None:
    calls = 0

    def broken() -> ServerState:
        nonlocal calls
        calls += 1
        raise RuntimeError("arbiter state unavailable")

    metrics = MetricsServer("127.0.0.1:0", broken)
    metrics.start()
    try:
        assert request(metrics.address, "/metrics")[0] == 500
        assert request(metrics.address, "/readyz")[0] == 500
        assert request(metrics.address, "/healthz")[0] == 200  # liveness needs no state
        assert calls == 2
    finally:
        metrics.stop()


def test_stop_releases_the_port(master: MasterStats) -> None:
    metrics = MetricsServer("127.0.0.1:0", master.state)
    metrics.start()
    address = metrics.address
    metrics.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=2).close()
    again = MetricsServer(f"127.0.0.1:{address[1]}", master.state)  # the port can be bound again
    again.start()
    again.stop()


def test_address_in_use_fails_at_start(master: MasterStats) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        metrics = MetricsServer(f"127.0.0.1:{taken.getsockname()[1]}", master.state)
        with pytest.raises(OSError):
            metrics.start()
        metrics.stop()


def test_ipv6_bind(master: MasterStats) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    metrics = MetricsServer("[::1]:0", master.state)
    try:
        metrics.start()
    except OSError:
        pytest.skip("::1 not configured")
    try:
        assert metrics.address[0] == "::1"
        assert request(metrics.address, "/healthz")[0] == 200
    finally:
        metrics.stop()


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:9100") == ("127.0.0.1", 9100)
    assert parse_address(":9100") == ("0.0.0.0", 9100)
    assert parse_address("[::]:9100") == ("::", 9100)
    assert parse_address("localhost:0") == ("localhost", 0)
    for bad in ("9100", "host:", "host:http", "::1:9100", "h:70000", "unix:/tmp/x"):
        with pytest.raises(ValueError):
            parse_address(bad)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_forked_children_do_not_hold_the_metrics_port(server: MetricsServer) -> None:
    """A worker forked by the master closes its copy of the listening socket at once."""
    assert server._httpd is not None
    fd = server._httpd.socket.fileno()
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads running
        pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.fstat(fd)
            os.write(write_end, b"open")
        except OSError:
            os.write(write_end, b"closed")
        os._exit(0)
    os.close(write_end)
    try:
        assert os.read(read_end, 16) == b"closed"
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    assert request(server.address, "/healthz")[0] == 200  # the parent's socket is untouched


# -- access logs of a real server ------------------------------------------------------------


def stopped(server: Server) -> None:
    server.signal(signal.SIGTERM)
    assert server.wait(30) == 0


def test_json_access_log_from_a_real_server(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log_file = tmp_path / "access.jsonl"
    server = serve("basic:echo", "--access-log", str(log_file), "--access-log-format", "json")
    assert server.request(
        b"POST /up/load?x=1&y=%20 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nUser-Agent: probe/1.0\r\n"
        b"Referer: http://ref.example/\r\nX-Request-ID: req-42\r\nConnection: close\r\n\r\nhello"
    ).startswith(b"HTTP/1.1 200 ")
    assert server.request(b"GET / HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 200 ")
    assert server.request(b"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    stopped(server)
    upload, plain, rejected = (json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines())
    assert upload["site"] == "main"
    assert (upload["method"], upload["path"], upload["query"]) == ("POST", "/up/load", "x=1&y=%20")
    assert (upload["status"], upload["bytes"], upload["bytes_in"]) == (200, 5, 5)
    assert upload["request_id"] == "req-42"
    assert upload["remote_addr"] == "127.0.0.1"
    assert upload["user_agent"] == "probe/1.0" and upload["referer"] == "http://ref.example/"
    assert upload["protocol"] == "HTTP/1.1"
    assert 0 <= upload["duration"] < 5
    assert plain["protocol"] == "HTTP/1.0" and plain["bytes"] == 0 and plain["user_agent"] is None
    assert plain["request_id"] and plain["request_id"] != upload["request_id"]
    assert rejected["status"] == 400 and rejected["method"] is None and rejected["remote_addr"] == "127.0.0.1"


def test_combined_access_log_from_a_real_server(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log_file = tmp_path / "access.log"
    server = serve("basic:hello", "--access-log", str(log_file))
    server.request(b'GET /a?q="x" HTTP/1.1\r\nHost: t\r\nUser-Agent: probe\r\nConnection: close\r\n\r\n')
    stopped(server)
    (line,) = log_file.read_text(encoding="utf-8").splitlines()
    assert re.fullmatch(
        r'127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /a\?q=%22x%22 HTTP/1\.1" 200 13 "-" '
        r'"probe" \d+\.\d{3}',
        line,
    ), line


def test_a_bad_access_log_format_is_a_config_error(tmp_path: Path) -> None:
    server = Server(["basic:hello", "--access-log", str(tmp_path / "a.log"), "--access-log-format", "xml"], ready="")
    try:
        assert server.wait(30) != 0
        assert "expected combined or json" in server.log()
    finally:
        server.stop()


# -- the master serving metrics (wired into process/arbiter.py by the lead) ------------------


def test_real_server_metrics_after_known_traffic(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("basic:hello", "--workers", "2", "--metrics-bind", "127.0.0.1:0")
    line = server.wait_for(r"Metrics and health checks at http://\S+:(\d+)/metrics", 2)
    assert line is not None
    address = ("127.0.0.1", int(re.search(r":(\d+)/metrics", line).group(1)))  # type: ignore[union-attr]
    for _ in range(7):
        assert server.request(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").startswith(b"HTTP/1.1 200")
    assert request(address, "/readyz")[0] == 200
    # Heartbeats carry the counters once a second: wait for them on the metrics server, with a deadline.
    key = ("corral_requests_total", frozenset({"site": "main", "method": "GET", "status_class": "2xx"}.items()))
    found: dict = {}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # nothing to wait on but the scrape itself
        found = samples(request(address, "/metrics")[2])
        if found.get(key) == 7:
            break
        time.sleep(0.1)
    assert found.get(key) == 7
    assert found[("corral_workers", frozenset({"site": "main", "state": "ready"}.items()))] == 2
    assert found[("corral_response_body_bytes_total", frozenset({"site": "main"}.items()))] == 7 * 13


def test_real_server_metrics_by_protocol(serve) -> None:  # type: ignore[no-untyped-def]
    """HTTP/1.1 and h2c requests to one server, counted apart (and both in corral_requests_total)."""
    server = serve("basic:hello", "--http2", "--metrics-bind", "127.0.0.1:0")
    line = server.wait_for(r"Metrics and health checks at http://\S+:(\d+)/metrics", 2)
    assert line is not None
    address = ("127.0.0.1", int(re.search(r":(\d+)/metrics", line).group(1)))  # type: ignore[union-attr]
    for _ in range(2):
        assert server.request(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").startswith(b"HTTP/1.1 200")
    with H2Client(server.port) as client:
        replies = client.wait(*[client.request("/") for _ in range(3)])
    assert [reply.status for reply in replies] == [200] * 3
    keys = {
        protocol: ("corral_requests_by_protocol_total", frozenset({"site": "main", "protocol": protocol}.items()))
        for protocol in ("http/1.1", "h2")
    }
    total = ("corral_requests_total", frozenset({"site": "main", "method": "GET", "status_class": "2xx"}.items()))
    found: dict = {}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # heartbeats carry the counters once a second
        found = samples(request(address, "/metrics")[2])
        if found.get(total) == 5:
            break
        time.sleep(0.1)
    assert (found.get(keys["http/1.1"]), found.get(keys["h2"]), found.get(total)) == (2, 3, 5), found
