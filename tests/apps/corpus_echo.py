"""The app the corpora are replayed against: it answers every request with what it received.

The body is JSON (method, path, body as latin-1), so the replay can compare a parsed request
with what the corpus expects. Plain WSGI, no Corral import: the same app runs under gunicorn
and waitress in bench/corpus.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = environ["wsgi.input"].read()
    payload = json.dumps(
        {"method": environ["REQUEST_METHOD"], "path": environ.get("PATH_INFO", ""), "body": body.decode("latin-1")}
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]
