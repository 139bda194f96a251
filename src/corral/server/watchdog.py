"""A worker's own health checks: hung requests, request and memory limits.

The master replaces a worker whose event loop stops answering (its heartbeat
stops; see process/arbiter.py). Everything a worker can notice itself is here:
a request on an app thread running past --timeout is reported with the stack
of the thread running it and answered 504, after which the worker stops
accepting and is replaced once its other requests finish; the request count
and RSS limits recycle it the same graceful way.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import time
import traceback
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..config import Config

if TYPE_CHECKING:
    from .context import Connection
    from .exchange import Exchange

log = logging.getLogger("corral.error")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def request_limit(config: Config, rng: random.Random | None = None) -> int:
    """This worker's request budget: max-requests +/- jitter, 0 for unlimited."""
    if not config.max_requests:
        return 0
    jitter = (rng or random).randint(-config.max_requests_jitter, config.max_requests_jitter)
    return max(1, config.max_requests + jitter)


def rss_bytes(pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def thread_stack(ident: int | None) -> str:
    frame = sys._current_frames().get(ident) if ident is not None else None
    if frame is None:
        return "  (stack not available)\n"
    return "".join(traceback.format_stack(frame))


def hung_requests(connections: Iterable[Connection], timeout: float) -> list[tuple[Connection, Exchange]]:
    """Exchanges (with their connection) that have run on an app thread for longer than `timeout`.

    HTTP/1 connections have one exchange at most, HTTP/2 ones one per running stream.

    Once the loop sends the rest itself (a file with sendfile, or a file-like wrapper it
    iterates), the app thread is done and may already run another request: a slow
    client is then --send-timeout's business, and that thread's stack would be a stranger's.
    """
    now = time.monotonic()
    hung = []
    for conn in connections:
        for ex in conn.running():
            if (
                ex.thread_ident is not None
                and not ex.timed_out
                and now - ex.active_since > timeout
                and ex.sendfile is None
                and ex.iterator is None
            ):
                hung.append((conn, ex))
    return hung


def report_hung(ex: Exchange, timeout: float) -> None:
    ex.timed_out = True
    log.error(
        "Request %s has run for %.1fs (over --timeout %gs); stack of its thread:\n%s",
        ex.describe(),
        time.monotonic() - ex.started,
        timeout,
        thread_stack(ex.thread_ident),
    )
