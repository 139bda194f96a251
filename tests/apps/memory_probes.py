"""What the master and a worker have imported, for tests/integration/test_memory.py.

`when_ready` runs in the master once every worker accepts and writes one stderr line
`memory_probes: {"pid": ..., "loaded": [...]}`; the app `loaded` answers, from the worker
that serves it, the same list as JSON. Only the modules of WATCHED (and their submodules)
are listed, so the line stays one short write.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

WATCHED = (
    "asyncio", "uvloop", "httptools", "ssl", "_ssl", "h2", "hpack", "hyperframe", "prometheus_client",
    "email", "http.client", "http.server", "subprocess", "ctypes", "concurrent.futures", "tempfile", "secrets",
    "hashlib", "platform",
    "corral.server.worker", "corral.server.connection", "corral.server.h2_connection", "corral.server.tls",
    "corral.http.parser", "corral.wsgi.response", "corral.observe.metrics", "corral.static.serve",
)


def loaded() -> list[str]:
    return sorted(name for name in sys.modules if any(name == w or name.startswith(w + ".") for w in WATCHED))


def when_ready(server: Any) -> None:
    sys.stderr.write("memory_probes: " + json.dumps({"pid": os.getpid(), "loaded": loaded()}) + "\n")
    sys.stderr.flush()


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = json.dumps({"pid": os.getpid(), "loaded": loaded()}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
