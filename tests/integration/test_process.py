"""The process model: workers, signals, graceful stop, supervision, bad apps, bind forms.

Every wait is on a log line or a process exit, with a deadline. Worker pids
come from the app itself (/pid) or from the master's log.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import Server, read_until_close
from http_client import get

Serve = Callable[..., Server]
MODES = {"inline": ("--threads", "1"), "threads": ("--threads", "4")}


def get_pid(server: Server) -> int:
    status, body = get(server.port, "/pid")
    assert status == 200
    return int(body)


class Background:
    """A request on a thread; `result` is (status, body) or the exception it raised."""

    def __init__(self, server: Server, target: str, timeout: float = 10.0) -> None:
        self.result: object = None
        self.thread = threading.Thread(target=self._run, args=(server, target, timeout), daemon=True)
        self.thread.start()

    def _run(self, server: Server, target: str, timeout: float) -> None:
        try:
            self.result = get(server.port, target, timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - reported to the test through `result`
            self.result = exc

    def join(self, timeout: float = 10.0) -> object:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "background request did not finish"
        return self.result


def start_sleeping(server: Server, seconds: float, tag: str) -> Background:
    """Start a request that sleeps in the app; return once the app is running it."""
    start = len(server.log_lines)
    request = Background(server, f"/sleep?s={seconds}&tag={tag}")
    assert server.wait_for(rf"sleeping \d+ {tag}\b", 5, start=start), server.log()
    return request


def refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(b"GET /pid HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            return read_until_close(sock, 2) == b""  # accepted but never answered counts as refused
    except (ConnectionRefusedError, ConnectionResetError):
        return True


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- workers ---------------------------------------------------------------------------


def test_three_workers_serve_with_distinct_pids(serve: Serve) -> None:
    server = serve("wsgi_apps:app", "--workers", "3")
    # Each request holds its worker's loop (inline app), so the next one must be
    # accepted by a different, idle worker.
    requests = [start_sleeping(server, 1.0, f"w{i}") for i in range(3)]
    pids = {int(r.join()[1]) for r in requests}  # type: ignore[index]
    assert len(pids) == 3
    assert server.proc.pid not in pids
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
    assert pids == {int(c) for c in children}
    env = json.loads(get(server.port, "/environ")[1])
    assert env["wsgi.multiprocess"]["value"] is True


# -- graceful stop -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", sorted(MODES))
def test_sigterm_finishes_the_request_in_flight(serve: Serve, mode: str) -> None:
    server = serve("wsgi_apps:app", *MODES[mode])
    request = start_sleeping(server, 2.0, "drain")
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    assert server.wait_for("Received SIGTERM", 5)
    assert refused(server.host, server.port), "new connections must be refused while draining"
    status, body = request.join()  # type: ignore[misc]
    assert status == 200 and body.isdigit()
    assert server.wait(10) == 0
    assert time.monotonic() - started < 5.0


def test_response_finished_during_a_stop_announces_the_close(serve: Serve) -> None:
    """A keep-alive client must learn from the response itself that the connection ends.

    (Threaded mode: inline, the worker only sees the signal after the app returned.)
    """
    server = serve("wsgi_apps:app", "--threads", "4")
    with server.connect(timeout=10) as sock:
        start = len(server.log_lines)
        sock.sendall(b"GET /sleep?s=1&tag=ka HTTP/1.1\r\nHost: t\r\n\r\n")
        assert server.wait_for(r"sleeping \d+ ka", 5, start=start)
        server.signal(signal.SIGTERM)
        raw = read_until_close(sock, 5)
    head = raw.partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 200") and b"\r\nConnection: close" in head
    assert server.wait(10) == 0


@pytest.mark.parametrize("mode", sorted(MODES))
def test_graceful_timeout_bounds_the_stop(serve: Serve, mode: str) -> None:
    server = serve("wsgi_apps:app", "--graceful-timeout", "1", *MODES[mode])
    request = start_sleeping(server, 5.0, "long")
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    server.wait(10)
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 3.0, f"stopped after {elapsed:.1f}s with --graceful-timeout 1"
    assert not isinstance(request.join(), tuple), "the cut request must not look complete"


def test_second_sigint_exits_at_once(serve: Serve) -> None:
    server = serve("wsgi_apps:app")
    request = start_sleeping(server, 5.0, "int")
    server.signal(signal.SIGINT)
    assert server.wait_for("Received SIGINT", 5)
    started = time.monotonic()
    server.signal(signal.SIGINT)
    server.wait(10)
    assert time.monotonic() - started < 1.5
    request.join()


def test_idle_keepalive_connections_do_not_delay_the_stop(serve: Serve) -> None:
    server = serve("wsgi_apps:app")
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        conn.request("GET", "/pid")
        assert conn.getresponse().read().isdigit()  # the connection stays open, idle
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        assert server.wait(10) == 0
        assert time.monotonic() - started < 2.0
    finally:
        conn.close()


# -- supervision ---------------------------------------------------------------------------


def test_killed_worker_is_replaced(serve: Serve) -> None:
    server = serve("wsgi_apps:app")
    old = get_pid(server)
    start = len(server.log_lines)
    os.kill(old, signal.SIGKILL)
    assert server.wait_for(rf"Worker {old} (of \S+ )?died \(killed by SIGKILL\)", 5, start=start), server.log()
    new = get_pid(server)  # waits in the listen backlog until the replacement accepts it
    assert new != old
    assert server.proc.poll() is None


def test_crash_loop_backs_off(serve: Serve) -> None:
    server = serve("wsgi_apps:crash_on_request", "--log-level", "debug")
    master_cpu = cpu_seconds(server.proc.pid)
    start = len(server.log_lines)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:  # every request kills the worker that takes it
        try:
            with socket.create_connection((server.host, server.port), timeout=5) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                read_until_close(sock, 5)
        except OSError:
            pass
    log = "".join(server.log_lines[start:])
    deaths = len(re.findall(r"Worker \d+ (?:of \S+ )?died \(exit status 7\)", log))
    assert 3 <= deaths <= 8, f"{deaths} restarts in 3s:\n{log}"
    assert re.search(r"crashed \d+ times in a row; next start in \d", log)
    assert cpu_seconds(server.proc.pid) - master_cpu < 0.5, "the master spun during the crash loop"
    assert server.proc.poll() is None, "a crash loop after boot is survived, not fatal"


# -- bad apps --------------------------------------------------------------------------------


RAISES = '''
def helper():
    raise ZeroDivisionError("user code failed at import")

helper()

def app(environ, start_response):
    pass
'''


@pytest.mark.parametrize("workers", ["1", "3"])
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_xyz:app", r"module 'no_such_module_xyz' not found"),
        ("wsgi_apps:missing", r"has no attribute 'missing'"),
        ("wsgi_apps:NOT_CALLABLE", r"is not callable"),
        ("raises_at_import:app", r"raised ZeroDivisionError: user code failed at import"),
    ],
)
def test_bad_app_fails_once_and_clearly(serve: Serve, tmp_path: Path, workers: str, spec: str, message: str) -> None:
    (tmp_path / "raises_at_import.py").write_text(RAISES)
    started = time.monotonic()
    server = serve(spec, "--workers", workers, "--pythonpath", str(tmp_path), "--log-level", "debug", ready="")
    code = server.wait(10)
    log = server.log()
    assert code != 0
    assert time.monotonic() - started < 5.0
    errors = [line for line in log.splitlines() if line.startswith("corral: error:")]
    assert len(errors) == 1, log
    assert re.search(message, errors[0]), errors[0]
    assert log.count("Booting worker") == 1, "no restart loop, no second worker"
    if spec.startswith("raises_at_import"):
        assert log.count("Traceback (most recent call last)") == 1
        assert 'raises_at_import.py", line 5, in <module>' in log
        assert 'raises_at_import.py", line 3, in helper' in log
        assert not re.search(r'File "[^"]*/corral/', log), "the user's traceback, not ours"
    else:
        assert "Traceback" not in log


# -- bind forms ------------------------------------------------------------------------------


def test_unix_socket(serve: Serve, tmp_path: Path) -> None:
    path = tmp_path / "corral.sock"
    server = serve("wsgi_apps:app", "--bind", f"unix:{path}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(b"GET /environ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        raw = read_until_close(sock)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    env = json.loads(body)
    assert isinstance(env["REMOTE_ADDR"]["value"], str) and isinstance(env["SERVER_PORT"]["value"], str)
    assert server.stop() == 0
    assert not path.exists(), "the socket file is removed on exit"


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_loopback(serve: Serve) -> None:
    server = serve("wsgi_apps:app", "--bind", "[::1]:0")
    assert server.port
    status, body = get(("::1", server.port), "/environ")
    env = json.loads(body)
    assert status == 200
    assert env["REMOTE_ADDR"]["value"] == "::1"
    assert env["SERVER_PORT"]["value"] == str(server.port)


# -- reload ----------------------------------------------------------------------------------


def test_sighup_starts_new_workers_without_failed_requests(serve: Serve) -> None:
    server = serve("wsgi_apps:app", "--workers", "2", "--log-level", "debug")
    before = {get_pid(server) for _ in range(4)}
    stop = threading.Event()
    seen: list[int] = []
    failures: list[object] = []

    def client_loop() -> None:
        while not stop.is_set():
            try:
                status, body = get(server.port, "/pid")
                if status == 200:
                    seen.append(int(body))
                else:
                    failures.append(status)
            except Exception as exc:  # noqa: BLE001 - every failure is a test failure
                failures.append(exc)

    client = threading.Thread(target=client_loop, daemon=True)
    client.start()
    try:
        start = len(server.log_lines)
        server.signal(signal.SIGHUP)
        assert server.wait_for("Reloading", 5, start=start)
        for pid in before:  # the old generation drained and left
            assert server.wait_for(rf"Worker {pid} exited", 10, start=start), server.log()
        count = len(seen)
        deadline = time.monotonic() + 5
        while len(seen) < count + 20 and time.monotonic() < deadline:
            time.sleep(0.05)  # let the client loop run on the new generation
    finally:
        stop.set()
        client.join(10)
    assert not failures, failures
    after = set(seen[-10:])
    assert after and not after & before, "requests are served by the new workers"
    assert server.proc.poll() is None
