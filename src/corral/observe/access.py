"""Access log lines in Apache's combined format, one per response."""

from __future__ import annotations

import sys
import time
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..http.errors import HTTPError
    from ..server.exchange import Exchange


class AccessLog:
    def __init__(self, target: str) -> None:
        self._stream: IO[str] = sys.stdout if target == "-" else open(target, "a", buffering=1, encoding="utf-8")

    def __call__(self, ex: Exchange | None, error: HTTPError | None = None, peer: str = "") -> None:
        when = time.strftime("%d/%b/%Y:%H:%M:%S %z")
        if ex is None:
            status = error.status if error is not None else 400
            self._stream.write(f'{peer.rpartition(":")[0] or "-"} - - [{when}] "-" {status} - "-" "-" 0.000\n')
            return
        environ: dict[str, Any] = ex.environ
        request = ex.request
        duration = time.monotonic() - ex.started
        line = request.target.decode("latin-1").replace('"', "%22")
        self._stream.write(
            f'{environ["REMOTE_ADDR"]} - - [{when}] "{request.method} {line} HTTP/{request.version}" '
            f'{ex.response.code or "-"} {ex.bytes_out or "-"} "{_quote(environ.get("HTTP_REFERER", "-"))}" '
            f'"{_quote(environ.get("HTTP_USER_AGENT", "-"))}" {duration:.3f}\n'
        )


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
