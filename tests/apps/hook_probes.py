"""Server hooks for the hook tests: each writes one line `hook_probes: [pid, event, ...]` to stderr.

The test reads the server's stderr as it comes, waits for these lines, and compares
their pids with the master's (the server process) and the workers' (the app's /pid
route), so it sees in which process each hook ran. The *_raises variants raise, to
test failure handling.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _note(event: str, *details: Any) -> None:
    # One write of one short line: lines of several processes on one pipe do not interleave.
    sys.stderr.write(f"hook_probes: {json.dumps([os.getpid(), event, *details])}\n")
    sys.stderr.flush()


def post_fork(worker: Any) -> None:
    # "wsgi_apps" is the app module of the tests: post_fork runs before it is imported.
    _note("post_fork", worker.pid, worker.site, worker.index, worker.threads, "wsgi_apps" in sys.modules)


def when_ready(server: Any) -> None:
    _note("when_ready", server.pid, list(server.sites), list(server.addresses))


def pre_request(environ: dict[str, Any]) -> None:
    environ["hook_probes.pre"] = "seen"  # the app sees what pre_request set
    _note("pre_request", environ["PATH_INFO"])


def post_request(environ: dict[str, Any], status: int, duration: float) -> None:
    _note("post_request", environ["PATH_INFO"], status, duration, environ.get("hook_probes.pre"))


def worker_exit(worker: Any) -> None:
    _note("worker_exit", worker.pid, worker.index)


def on_reload(server: Any, site: str | None) -> None:
    _note("on_reload", server.pid, site)


def post_fork_raises(worker: Any) -> None:
    raise RuntimeError("no database today")


def when_ready_raises(server: Any) -> None:
    raise RuntimeError("not ready after all")


def pre_request_raises(environ: dict[str, Any]) -> None:
    _note("pre_request_raises", environ["PATH_INFO"])
    raise ValueError("pre_request is broken")


def post_request_raises(environ: dict[str, Any], status: int, duration: float) -> None:
    raise ValueError("post_request is broken")


def on_reload_raises(server: Any, site: str | None) -> None:
    raise ValueError("on_reload is broken")


NOT_A_FUNCTION = 42
