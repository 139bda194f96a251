"""The app the PROXY protocol tests serve: who the client is, as the app sees it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = json.dumps(
        {
            "remote_addr": environ.get("REMOTE_ADDR"),
            "remote_port": environ.get("REMOTE_PORT"),
            "path": environ.get("PATH_INFO"),
            "scheme": environ.get("wsgi.url_scheme"),
            "site": os.environ.get("SITE_NAME"),
            "pid": os.getpid(),
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
