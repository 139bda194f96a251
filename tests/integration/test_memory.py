"""The master stays small: it never loads the workers' world; a worker loads only what its configuration uses.

Observed in the running processes: a master hook (when_ready, which runs in the master once the
workers accept) and the app (which runs in the worker) report which of the watched modules their
process has imported (tests/apps/memory_probes.py). docs/architecture.md states the rule;
docs/benchmarks.md has the figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

from helpers import Server
from http_client import request

Serve = Callable[..., Server]

# The event loop, the HTTP parser, TLS, HTTP/2, metrics, the response writer: the workers' world.
WORKER_WORLD = {
    "asyncio", "uvloop", "httptools", "ssl", "_ssl", "h2", "hpack", "prometheus_client", "email", "http.client",
    "concurrent.futures", "corral.server.worker", "corral.server.connection", "corral.http.parser",
    "corral.wsgi.response",
}
MASTER_EXTRAS = {"subprocess", "ctypes", "http.server", "tempfile", "secrets", "hashlib", "platform"}


def test_the_running_master_imports_none_of_the_workers_world(serve: Serve) -> None:
    server = serve("memory_probes:app", "--workers", "1", "--hooks", "when_ready=memory_probes:when_ready")
    line = server.wait_for(r"^memory_probes: ", 10.0)
    assert line is not None, server.log()
    master = json.loads(line.split(": ", 1)[1])
    assert master["pid"] == server.proc.pid
    loaded = set(master["loaded"])
    assert not loaded & (WORKER_WORLD | MASTER_EXTRAS), sorted(loaded & (WORKER_WORLD | MASTER_EXTRAS))

    status, _headers, body = request(server.port)
    assert status == 200
    worker = json.loads(body)
    assert worker["pid"] != server.proc.pid
    # The probe sees imports: the worker has its event loop and parser (so an empty list above means something).
    assert {"asyncio", "httptools", "corral.server.connection", "corral.http.parser"} <= set(worker["loaded"])


def test_a_worker_without_tls_http2_metrics_or_static_loads_none_of_them(serve: Serve) -> None:
    server = serve("memory_probes:app", "--workers", "1")
    request(server.port)  # the first request: whatever a request needs is loaded by now
    status, _headers, body = request(server.port)
    assert status == 200
    loaded = set(json.loads(body)["loaded"])
    # (asyncio itself imports ssl and subprocess; http/date.py uses email.utils)
    unused = {"h2", "hpack", "hyperframe", "prometheus_client", "corral.server.h2_connection",
              "corral.observe.metrics", "corral.static.serve", "tempfile", "secrets", "hashlib", "platform",
              "http.client", "http.server"}
    assert not loaded & unused, sorted(loaded & unused)


def test_importing_the_masters_modules_loads_none_of_the_workers_world() -> None:
    # What `corral serve` imports before it forks, in a fresh interpreter: no app, no server stack.
    code = (
        "import sys, json\n"
        "import corral.cli, corral.commands.serve, corral.process.arbiter, corral.process.spawn\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, timeout=30)
    loaded = set(json.loads(out.stdout))
    assert not loaded & (WORKER_WORLD | MASTER_EXTRAS), sorted(loaded & (WORKER_WORLD | MASTER_EXTRAS))
    assert "corral.process.arbiter" in loaded
