"""Access log lines, one per response: Apache's combined format, or JSON.

The worker calls the log once per response from `HTTPConnection.complete`
(`log(ex)`) and once per rejected request (`log(None, error=..., peer=...)`),
always on the event loop thread. The timestamp text is built once a second,
not per line. The file is line-buffered: each line reaches the kernel whole,
so several workers appending to one file do not interleave within a line.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..http.errors import HTTPError
    from ..server.exchange import Exchange

FORMATS = ("combined", "json")
# Which address a line names: REMOTE_ADDR as a trusted proxy's headers rewrote it, or the peer
# that connected (REMOTE_ADDR before the rewrite; see docs/proxies.md).
CLIENTS = ("client", "peer")
# A client-sent X-Request-ID longer than this is cut: it is copied into every log line.
_MAX_REQUEST_ID = 128


class AccessLog:
    def __init__(self, target: str, format: str = "combined", site: str = "", client: str = "client") -> None:  # noqa: A002
        if format not in FORMATS:
            raise ValueError(f"unknown access log format {format!r}; expected one of {', '.join(FORMATS)}")
        if client not in CLIENTS:
            raise ValueError(f"unknown access log client {client!r}; expected one of {', '.join(CLIENTS)}")
        self.by_peer = client == "peer"
        self._own = target != "-"
        self._stream: IO[str] = open(target, "a", buffering=1, encoding="utf-8") if self._own else sys.stdout
        self.format = format
        self.site = site
        self._write = self._json if format == "json" else self._combined
        # Request ids: a per-process random prefix and a counter, unique across workers and restarts.
        self._id_prefix = f"{os.getpid():x}{os.urandom(3).hex()}-"  # (secrets would load hashlib)
        self._ids = itertools.count(1)
        self._second = -1
        self._clf_time = ""
        self._iso_time = ""

    def __call__(self, ex: Exchange | None, error: HTTPError | None = None, peer: str = "") -> None:
        now = time.time()
        if int(now) != self._second:
            self._tick(now)
        self._write(ex, error, peer)

    def close(self) -> None:
        if self._own:
            self._stream.close()

    def request_id(self, environ: dict[str, Any] | None) -> str:
        """The client's (or proxy's) X-Request-ID when sent, else a fresh one."""
        if environ is not None:
            given = environ.get("HTTP_X_REQUEST_ID")
            if given:
                return str(given)[:_MAX_REQUEST_ID]
        return f"{self._id_prefix}{next(self._ids):x}"

    def address(self, environ: dict[str, Any]) -> str | None:
        """The address a line names (see CLIENTS)."""
        if self.by_peer:
            original = environ.get("corral.original")
            if original and "REMOTE_ADDR" in original:
                return str(original["REMOTE_ADDR"])
        return environ.get("REMOTE_ADDR")

    def _tick(self, now: float) -> None:
        self._second = int(now)
        local = datetime.fromtimestamp(self._second).astimezone()
        self._clf_time = local.strftime("%d/%b/%Y:%H:%M:%S %z")
        self._iso_time = local.isoformat()

    def _combined(self, ex: Exchange | None, error: HTTPError | None, peer: str) -> None:
        when = self._clf_time
        if ex is None:
            status = error.status if error is not None else 400
            self._stream.write(f'{_peer_host(peer) or "-"} - - [{when}] "-" {status} - "-" "-" 0.000\n')
            return
        environ: dict[str, Any] = ex.environ
        request = ex.request
        duration = time.monotonic() - ex.started
        line = request.target.decode("latin-1").replace('"', "%22")
        self._stream.write(
            f'{self.address(environ)} - - [{when}] "{request.method} {line} HTTP/{request.version}" '
            f'{ex.response.code or "-"} {ex.bytes_out or "-"} "{_quote(environ.get("HTTP_REFERER", "-"))}" '
            f'"{_quote(environ.get("HTTP_USER_AGENT", "-"))}" {duration:.3f}\n'
        )

    def _json(self, ex: Exchange | None, error: HTTPError | None, peer: str) -> None:
        if ex is None:
            record: dict[str, Any] = {
                "time": self._iso_time,
                "site": self.site,
                "remote_addr": _peer_host(peer),
                "method": None,
                "path": None,
                "query": None,
                "protocol": None,
                "status": error.status if error is not None else 400,
                "bytes": 0,
                "bytes_in": 0,
                "duration": 0.0,
                "request_id": self.request_id(None),
                "user_agent": None,
                "referer": None,
                "error": error.detail if error is not None else None,
            }
        else:
            environ = ex.environ
            request = ex.request
            record = {
                "time": self._iso_time,
                "site": self.site,
                "remote_addr": self.address(environ),
                "method": request.method,
                "path": request.path.decode("latin-1"),
                "query": request.query.decode("latin-1"),
                "protocol": f"HTTP/{request.version}",
                "status": ex.response.code or None,
                "bytes": ex.bytes_out,
                "bytes_in": request.received,
                "duration": round(time.monotonic() - ex.started, 6),
                "request_id": self.request_id(environ),
                "user_agent": environ.get("HTTP_USER_AGENT"),
                "referer": environ.get("HTTP_REFERER"),
            }
        self._stream.write(json.dumps(record, separators=(",", ":")) + "\n")


def _peer_host(peer: str) -> str:
    """`1.2.3.4:5678` -> `1.2.3.4`; `::1:5678` -> `::1`; `unix` stays."""
    host, sep, _ = peer.rpartition(":")
    return host if sep else peer


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
