"""Kubernetes and systemd lifecycle on real `corral serve` processes.

--shutdown-delay (/readyz 503 at once while new connections and requests are
still served, then the usual drain), sd_notify to a datagram socket the test
binds and passes as NOTIFY_SOCKET (start, reload, stop), the master's "Reload
finished" and "Stopped" lines, and a failed reload in `corral status`.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers import Server
from http_client import get

Serve = Callable[..., Server]
METRICS_PORT = r"Metrics and health checks at http://127\.0\.0\.1:(\d+)/"

ENV_APP = '''import os
VERSION = "{version}"


def app(environ, start_response):
    body = f"{{VERSION}} {{os.environ.get('NOTIFY_SOCKET', 'none')}}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def metrics_port(server: Server) -> int:
    line = server.wait_for(METRICS_PORT, 5)
    assert line, server.log()
    return int(re.search(METRICS_PORT, line).group(1))  # type: ignore[union-attr]


def corral(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "corral", *args], capture_output=True, text=True, timeout=15)


def status(sock: str) -> dict[str, Any]:
    result = corral("status", "--json", "--control-socket", sock)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


# -- --shutdown-delay ---------------------------------------------------------------------


def test_shutdown_delay_fails_readyz_while_serving_then_drains(serve: Serve) -> None:
    server = serve("basic:slow", "--workers", "2", "--shutdown-delay", "2", "--graceful-timeout", "5",
                   "--metrics-bind", "127.0.0.1:0")
    metrics = metrics_port(server)
    assert get(metrics, "/readyz")[0] == 200
    keep_alive = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    keep_alive.request("GET", "/?0")
    assert keep_alive.getresponse().read() == b"done"

    sent = time.monotonic()
    server.signal(signal.SIGTERM)
    assert server.wait_for(r"Received SIGTERM: /readyz fails from now on; serving for 2s more", 5), server.log()
    code, body = get(metrics, "/readyz")
    assert code == 503 and b"stopping" in body, body
    assert get(metrics, "/healthz")[0] == 200

    # During the delay Corral serves as before: new connections, and keep-alive ones stay open.
    served = 0
    while time.monotonic() - sent < 1.2:
        assert get(server.port, "/?0") == (200, b"done")
        keep_alive.request("GET", "/?0")
        response = keep_alive.getresponse()
        assert response.read() == b"done" and response.getheader("Connection") != "close"
        served += 1
        time.sleep(0.05)  # a client's pace, not a poll: the delay runs on its own clock
    assert served >= 5
    # A request accepted during the delay and still running when the drain starts finishes.
    slow: list[tuple[int, bytes]] = []
    in_flight = threading.Thread(target=lambda: slow.append(get(server.port, "/?1.5", timeout=10)))
    in_flight.start()
    assert server.wait_for(r"Shutdown delay over: finishing in-flight requests \(up to 5s\)", 3), server.log()
    assert 1.9 <= time.monotonic() - sent
    with pytest.raises(ConnectionRefusedError):
        get(server.port, "/?0")  # draining now: new connections are refused, as without a delay
    in_flight.join(10)
    keep_alive.close()
    assert slow == [(200, b"done")]
    assert server.wait(10) == 0, server.log()
    assert time.monotonic() - sent < 2 + 5, "exits after the delay plus the drain"
    assert re.search(r"Stopped \(graceful, after a 2 s shutdown delay\) in [23]\.\d s", server.log()), server.log()


def test_a_second_sigterm_skips_the_rest_of_the_delay(serve: Serve, tmp_path: Path) -> None:
    sock = str(tmp_path / "ctl.sock")
    server = serve("basic:hello", "--shutdown-delay", "60", "--control-socket", sock)
    server.signal(signal.SIGTERM)
    assert server.wait_for("Received SIGTERM: /readyz fails", 5), server.log()
    data = status(sock)
    assert data["ready"] is False and data["draining"] is False
    assert 0 < data["shutdown_delay_left"] <= 60
    assert "shutting down (draining in" in corral("status", "--control-socket", sock).stdout
    assert get(server.port) == (200, b"Hello, World!")
    refused = corral("reload", "--control-socket", sock)
    assert refused.returncode == 1 and "the server is stopping" in refused.stderr
    sent = time.monotonic()
    server.signal(signal.SIGTERM)
    assert server.wait(10) == 0, server.log()
    assert time.monotonic() - sent < 5
    assert "Received SIGTERM during the shutdown delay: finishing in-flight requests" in server.log()


def test_a_server_that_was_never_ready_does_not_wait(tmp_path: Path) -> None:
    """Nothing routes traffic to a server that never became ready: SIGTERM drains at once."""
    (tmp_path / "sleepy.py").write_text("import time\ntime.sleep(30)\napp = None\n")
    # Ready once a worker boots: by then the master's signal handlers are in place.
    server = Server(["sleepy:app", "--chdir", str(tmp_path), "--shutdown-delay", "60", "--bind", "127.0.0.1:0",
                     "--graceful-timeout", "1", "--log-level", "debug"], ready="Booting worker")
    try:
        server.signal(signal.SIGTERM)
        assert server.wait(10) == 0, server.log()  # the booting worker: killed after --graceful-timeout + 1 s
        assert "Received SIGTERM: finishing in-flight requests" in server.log()
        assert "shutdown delay" not in server.log()
    finally:
        server.stop()


# -- sd_notify -------------------------------------------------------------------------------


class Systemd:
    """The notify socket systemd would listen on: datagrams of KEY=value lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[dict[str, str]] = []

    def until(self, key: str, timeout: float = 15.0) -> list[dict[str, str]]:
        """Messages received until (and with) the next one that has `key`."""
        got: list[dict[str, str]] = []
        deadline = time.monotonic() + timeout
        while not got or key not in got[-1]:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                raise AssertionError(f"no {key} within {timeout}s; got {got}") from None
            got.append(dict(line.split("=", 1) for line in data.splitlines()))
        self.messages += got
        return got

    def close(self) -> None:
        self.sock.close()


def test_sd_notify_start_reload_stop(serve: Serve, tmp_path: Path) -> None:
    systemd = Systemd(tmp_path / "notify.sock")
    (tmp_path / "envapp.py").write_text(ENV_APP.format(version="v1"))
    try:
        server = serve("envapp:app", "--workers", "2", "--chdir", str(tmp_path),
                       env={"NOTIFY_SOCKET": str(systemd.path)}, ready="")
        start = systemd.until("READY")
        assert start[-1] == {"READY": "1", "STATUS": "2 worker(s) x 1 thread(s) serving"}, start
        assert server.wait_for("Corral ready", 5)
        port = int(re.search(r"Listening at http://\S+:(\d+)", server.log()).group(1))  # type: ignore[union-attr]
        assert get(port) == (200, b"v1 none")  # the app never sees NOTIFY_SOCKET

        (tmp_path / "envapp.py").write_text(ENV_APP.format(version="v2"))
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        server.signal(signal.SIGHUP)
        reload = systemd.until("READY")
        assert reload[0]["RELOADING"] == "1" and reload[0]["STATUS"] == "Reloading app: starting 2 new workers"
        assert before <= int(reload[0]["MONOTONIC_USEC"]) <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert reload[-1] == {"READY": "1", "STATUS": "2 worker(s) x 1 thread(s) serving (reloaded)"}, reload
        # READY=1 comes once every new worker accepts; the old ones, signalled at that moment,
        # may take a last connection or two before they stop accepting.
        deadline = time.monotonic() + 5
        while get(port) != (200, b"v2 none"):
            assert time.monotonic() < deadline, server.log()
        assert server.wait_for(r"Reload of app: 2 new workers serving after", 1), server.log()

        server.signal(signal.SIGTERM)
        stop = systemd.until("STOPPING")
        assert stop == [{"STOPPING": "1", "STATUS": "Draining: finishing in-flight requests"}]
        assert server.wait(10) == 0, server.log()
        assert [next(iter(m)) for m in systemd.messages] == ["READY", "RELOADING", "READY", "STOPPING"]
    finally:
        systemd.close()


def test_sd_notify_failed_reload_is_ready_again_with_the_reason(serve: Serve, tmp_path: Path) -> None:
    systemd = Systemd(tmp_path / "notify.sock")
    (tmp_path / "envapp.py").write_text(ENV_APP.format(version="v1"))
    try:
        server = serve("envapp:app", "--chdir", str(tmp_path), env={"NOTIFY_SOCKET": str(systemd.path)})
        systemd.until("READY")
        (tmp_path / "envapp.py").write_text("def app(:\n")
        server.signal(signal.SIGHUP)
        reload = systemd.until("READY")
        assert "RELOADING" in reload[0]
        assert reload[-1]["STATUS"].startswith("Reload of app failed; the old workers keep serving: "), reload
        assert "syntax error in" in reload[-1]["STATUS"] and "envapp.py, line 1" in reload[-1]["STATUS"]
    finally:
        systemd.close()


# -- the master says when a reload or a stop is over; `corral status` shows a failed reload --------


def test_reload_and_stop_say_when_they_finish(serve: Serve, tmp_path: Path) -> None:
    sock = str(tmp_path / "ctl.sock")
    (tmp_path / "envapp.py").write_text(ENV_APP.format(version="v1"))
    server = serve("envapp:app", "--workers", "2", "--chdir", str(tmp_path), "--control-socket", sock)
    assert status(sock)["sites"][0]["last_reload"] is None
    (tmp_path / "envapp.py").write_text(ENV_APP.format(version="v2"))
    server.signal(signal.SIGHUP)
    assert server.wait_for(r"Reload finished: 2 new workers serving, old generation retired in \d+\.\d s", 15), \
        server.log()
    reload = status(sock)["sites"][0]["last_reload"]
    assert reload["state"] == "done" and reload["ok"] is True and reload["error"] is None, reload
    assert 0 < reload["serving_after"] <= reload["finished_after"] < 15
    assert abs(reload["started_at"] - time.time()) < 30
    assert "last reload: done" in corral("status", "--control-socket", sock).stdout
    server.signal(signal.SIGTERM)
    assert server.wait(10) == 0
    assert re.search(r"Stopped \(graceful\) in \d+\.\d s", server.log()), server.log()


def test_a_failed_reload_shows_in_status(serve: Serve, tmp_path: Path) -> None:
    sock = str(tmp_path / "ctl.sock")
    (tmp_path / "envapp.py").write_text(ENV_APP.format(version="v1"))
    server = serve("envapp:app", "--chdir", str(tmp_path), "--control-socket", sock)
    (tmp_path / "envapp.py").write_text("def app(:\n")
    assert corral("reload", "--control-socket", sock).returncode == 0
    assert server.wait_for("new code failed to load; the old workers keep serving", 15), server.log()
    reload = status(sock)["sites"][0]["last_reload"]
    assert reload["state"] == "failed" and reload["ok"] is False, reload
    assert "syntax error in" in reload["error"] and "envapp.py, line 1" in reload["error"], reload
    assert abs(reload["started_at"] - time.time()) < 30
    table = corral("status", "--control-socket", sock).stdout
    line = next(line for line in table.splitlines() if "last reload" in line)
    assert re.search(r"last reload: FAILED \d+s ago \(\d\d:\d\d:\d\d\): cannot load app .*syntax error", line), table
    assert get(server.port) == (200, b"v1 none")  # the old generation still serves
    # A good reload afterwards replaces the record.
    (tmp_path / "envapp.py").write_text(ENV_APP.format(version="v2"))
    server.signal(signal.SIGHUP)
    assert server.wait_for("Reload finished", 15), server.log()
    assert status(sock)["sites"][0]["last_reload"]["state"] == "done"
