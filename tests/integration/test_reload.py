"""Zero-downtime reload: SIGHUP (and `corral reload`) under load loses no request."""

from __future__ import annotations

import http.client
import signal
import threading
import time
from pathlib import Path

from helpers import Server
from http_client import get

APP = '''VERSION = "{version}"


def app(environ, start_response):
    body = VERSION.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


class Load:
    """Client threads hammering the server: keep-alive ones and connection-per-request ones."""

    def __init__(self, port: int, seconds: float) -> None:
        self.port = port
        self.deadline = time.monotonic() + seconds
        self.ok = 0
        self.failures: list[str] = []
        self.versions: list[bytes] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._keepalive) for _ in range(2)]
        self.threads += [threading.Thread(target=self._fresh) for _ in range(2)]

    def _record(self, status: int, body: bytes) -> None:
        with self.lock:
            if status != 200:
                self.failures.append(f"status {status}")
                return
            self.ok += 1
            if not self.versions or self.versions[-1] != body:
                self.versions.append(body)

    def _keepalive(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while time.monotonic() < self.deadline:
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                self._record(response.status, response.read())
                if response.getheader("Connection") == "close":
                    conn.close()  # the server asked us to reconnect (it is draining that worker)
            except (OSError, http.client.HTTPException) as exc:
                with self.lock:
                    self.failures.append(f"keep-alive: {exc!r}")
                conn.close()
        conn.close()

    def _fresh(self) -> None:
        while time.monotonic() < self.deadline:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                conn.request("GET", "/", headers={"Connection": "close"})
                response = conn.getresponse()
                self._record(response.status, response.read())
            except (OSError, http.client.HTTPException) as exc:
                with self.lock:
                    self.failures.append(f"new connection: {exc!r}")
            finally:
                conn.close()

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for t in self.threads:
            t.join(30)


def _wait_for_version(server: Server, version: bytes, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if get(server.port, timeout=5)[1] == version:
            return
        time.sleep(0.05)
    raise AssertionError(f"never served {version!r}:\n{server.log()}")


def test_sighup_twice_under_load_fails_no_request(serve, tmp_path: Path) -> None:
    module = tmp_path / "versioned.py"
    module.write_text(APP.format(version="v1"))
    server: Server = serve("versioned:app", "--workers", "2", "--chdir", str(tmp_path))
    with Load(server.port, seconds=6.0) as load:
        time.sleep(1.0)
        module.write_text(APP.format(version="v2"))
        server.signal(signal.SIGHUP)
        _wait_for_version(server, b"v2")
        time.sleep(0.5)
        module.write_text(APP.format(version="v3"))
        server.signal(signal.SIGHUP)
        _wait_for_version(server, b"v3")
    assert load.failures == [], load.failures[:5]
    assert load.ok > 200
    assert load.versions[0] == b"v1" and load.versions[-1] == b"v3"
    assert b"v2" in load.versions


def test_reload_with_broken_code_keeps_old_workers(serve, tmp_path: Path) -> None:
    module = tmp_path / "versioned.py"
    module.write_text(APP.format(version="v1"))
    server: Server = serve("versioned:app", "--workers", "2", "--chdir", str(tmp_path))
    module.write_text("def app(:\n")  # a syntax error
    mark = len(server.log_lines)
    server.signal(signal.SIGHUP)
    assert server.wait_for(r"new code failed to load; the old workers keep serving", 15, start=mark), server.log()
    assert get(server.port, timeout=5) == (200, b"v1")
    assert server.proc.poll() is None

