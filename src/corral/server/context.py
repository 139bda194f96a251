"""What every connection of one worker shares: the app, limits, timeouts, pools.

What changes as the worker runs across connections (the open connections, requests
served, draining) is the worker's Registry (registry.py), not this context's.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..config.settings import from_setting
from ..http.limits import Limits
from ..observe.stats import WorkerStats
from ..proxy.forwarded import ProxyHeaders
from .app_threads import AppThreads
from .outbox import Outbox

if TYPE_CHECKING:
    from .exchange import Exchange
    from .routing import Router

WSGIApp = Callable[..., Any]


class AppPool(Protocol):
    """Threads that run app calls: AppThreads (app_threads.py); a ThreadPoolExecutor fits too."""

    def submit(self, function: Callable[[Any], object], argument: Any, /) -> object: ...

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...


class Connection(Protocol):
    """What the worker asks of every client connection, HTTP/1 (connection.py) or HTTP/2."""

    def running(self) -> list[Exchange]:
        """The exchanges in flight (the watchdog, the heartbeat): HTTP/1's one, HTTP/2's streams'."""
        ...

    def check_deadline(self, now: float) -> None: ...

    def shutdown(self, now: float, patient: bool = False) -> None: ...

    def time_out(self, ex: Exchange) -> None:
        """`ex`'s app thread is hung (watchdog.py): answer 504 if still possible, else cut it."""
        ...

    def abort(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds, each the setting named in from_setting() (its default and reason are declared there)."""

    keepalive: float = from_setting("keepalive_timeout")
    header: float = from_setting("header_timeout")
    body: float = from_setting("body_timeout")
    send: float = from_setting("send_timeout")


@dataclass(eq=False)
class ServerContext:
    app: WSGIApp
    loop: asyncio.AbstractEventLoop
    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    # None: call the app inline on the loop thread (the fastest path).
    executor: AppPool | None = None
    multiprocess: bool = False
    url_scheme: str = "http"
    # TLS listeners ("https"): connections add mod_ssl's environ keys and never use sendfile
    # (it would write the file past the encryption).
    tls: bool = False
    # --http2: a plain connection that opens with the HTTP/2 preface becomes an H2Connection.
    h2c: bool = False
    # --http2 without --no-h2c-upgrade, on a plain listener: `Upgrade: h2c` switches (RFC 7540 3.2).
    h2c_upgrade: bool = False
    access_log: Callable[..., None] | None = None
    # Which peers may say who the client is, and in which headers (--trusted-proxies, --proxy-headers).
    proxy: ProxyHeaders = field(default_factory=ProxyHeaders)
    # Counters the heartbeat carries to the master (metrics, status); site names the series.
    stats: WorkerStats = field(default_factory=WorkerStats)
    # Hide the running loop while inline app code runs: needed by code that refuses to do
    # blocking work "in an async context" (Django's ORM, asgiref); each hide costs two getpid()
    # system calls on Python 3.11, so apps that load neither skip it (see loop_sensitive()).
    hide_loop: bool = True
    loop_hidden: bool = False  # currently hidden (so nested app calls do not switch again)
    site_name: str = "main"
    app_name: str = "the app"  # what the error log calls the app: its spec, e.g. "mysite.wsgi:application"
    # Server hooks around each request (corral/hooks.py); None, the usual case, costs one check.
    pre_request: Callable[[dict[str, Any]], None] | None = None
    post_request: Callable[[dict[str, Any], int, float], None] | None = None
    _streaming_pool: AppPool | None = None
    # Multi-site: the router, this worker's site, its mount and the other sites' handoff sockets.
    router: Router | None = None
    site_index: int = 0
    mount: str = ""
    handoff: list[socket.socket] = field(default_factory=list)
    # The static map (static/serve.py StaticMap), or None: no static prefix, no cost.
    static: Any = None
    # What exchanges and the outbox measure time with (request durations, hold times);
    # tests pass a clock they advance by hand.
    clock: Callable[[], float] = time.monotonic
    # Connections whose writes wait for the end of this loop pass (see outbox.py).
    outbox: Outbox = field(init=False)

    def __post_init__(self) -> None:
        self.outbox = Outbox(self.loop, self.clock)

    @property
    def multithread(self) -> bool:
        return self.executor is not None

    def streaming_pool(self) -> AppPool:
        """Threads for requests whose body arrives while the app runs (100-continue)."""
        if self.executor is not None:
            return self.executor
        if self._streaming_pool is None:
            self._streaming_pool = AppThreads(4, "corral-stream")
        return self._streaming_pool
