"""The master's own little HTTP server: /metrics, /healthz and /readyz.

How this works: a stdlib ThreadingHTTPServer on a daemon thread of the master
(the master never imports app code, and this serves a handful of scrapes and
probes a second, so the stdlib is enough). Each request asks the state
provider for a fresh `ServerState`; the provider must be safe to call from
this thread (`MasterStats.state` is). The listening socket is closed in every
child the master forks, so workers never hold the metrics port.

- /healthz: 200 "ok" for as long as the master runs (liveness: never fails
  while draining, or a probe would kill a pod that is shutting down cleanly).
- /readyz: 200 when every site has a ready worker that is not draining, 503
  with the reasons otherwise (readiness: a load balancer stops sending).
- /metrics: Prometheus text (or OpenMetrics, if the scraper asks for it).
- anything else: 404; methods other than GET and HEAD: 405.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import weakref
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .state import ServerState

log = logging.getLogger("corral.error")

# Seconds a probe or scraper may take to send its request: a stuck client must not keep a thread.
_CLIENT_TIMEOUT = 10.0


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `[IPv6]:PORT` or `:PORT` (all interfaces) -> (host, port)."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not port_text.isdigit() or not port_text.isascii():
        raise ValueError(f"expected HOST:PORT such as 127.0.0.1:9100, got {text!r}")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port {port} is out of range (0-65535)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"write an IPv6 address in brackets, as [{host}]:{port}")
    return host or "0.0.0.0", port


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a scrape in progress never delays the master's exit
    block_on_close = False

    def __init__(self, address: tuple[str, int], endpoints: _Endpoints) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.endpoints = endpoints
        super().__init__(address, _Handler)


class _Endpoints:
    def __init__(self, state: Callable[[], ServerState]) -> None:
        from .metrics import Exposition  # prometheus-client: loaded only when metrics are on

        self.state = state
        self.exposition = Exposition(state)

    def answer(self, path: str, accept: str) -> tuple[int, str, bytes]:
        if path == "/healthz":
            return 200, "text/plain; charset=utf-8", b"ok\n"
        if path == "/readyz":
            state = self.state()
            if state.ready:
                return 200, "text/plain; charset=utf-8", b"ok\n"
            reasons = "not ready\n" + "".join(f"{reason}\n" for reason in state.not_ready_reasons())
            return 503, "text/plain; charset=utf-8", reasons.encode()
        if path == "/metrics":
            exposition, content_type = self.exposition.render(accept)
            return 200, content_type, exposition
        return 404, "text/plain; charset=utf-8", b"not found: try /metrics, /healthz or /readyz\n"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = _CLIENT_TIMEOUT
    protocol_version = "HTTP/1.1"
    server_version = "corral-metrics"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(head=True)

    def _answer(self, head: bool) -> None:
        path = self.path.partition("?")[0]
        try:
            status, content_type, body = self.server.endpoints.answer(path, self.headers.get("Accept", ""))
        except Exception:
            log.exception("Metrics endpoint %s failed", path)
            status, content_type, body = 500, "text/plain; charset=utf-8", b"internal error\n"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _not_allowed(self) -> None:
        body = b"method not allowed\n"
        self.send_response(405)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (signature from http.server)
        pass  # probes every few seconds would drown the error log; failures are logged in _answer


class MetricsServer:
    """Serve /metrics, /healthz and /readyz on `bind` (HOST:PORT) from a thread of the master."""

    def __init__(self, bind: str, state: Callable[[], ServerState]) -> None:
        self.bind = bind
        self._address = parse_address(bind)
        self._endpoints = _Endpoints(state)
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); the real port when `bind` asked for port 0."""
        assert self._httpd is not None, "not started"
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Bind and start serving; raises OSError (e.g. address in use) before any thread starts."""
        httpd = _Server(self._address, self._endpoints)
        self._httpd = httpd
        _close_in_children(httpd)
        self._thread = threading.Thread(target=httpd.serve_forever, name="corral-metrics", daemon=True)
        self._thread.start()
        host, port = self.address
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        log.info("Metrics and health checks at http://%s/metrics", shown)

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()  # waits for serve_forever to return
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None


def _close_in_children(httpd: _Server) -> None:
    """A forked worker must not keep the metrics port open (or answer on it after the master died)."""
    ref = weakref.ref(httpd)

    def close() -> None:
        server = ref()
        if server is not None:
            server.socket.close()

    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=close)
