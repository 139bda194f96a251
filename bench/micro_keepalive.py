"""In-process cost of one hello-world request, without sockets or a load tool.

A do-nothing transport stands in for asyncio's; HTTPConnection is driven with GETs, one per
data_received (a client waiting for each answer) and pipelined in batches, and after each
feed the outbox sends what it held, as the loop's end-of-pass callback would (the loop
itself is not run per feed: a run_until_complete costs ~11 us, more than the request). Best of --rounds, in
microseconds per request: a figure for comparing two builds of Corral on one machine (the
server's own CPU per request, minus the kernel), not a throughput to publish. A third
figure is a whole connection per request (`Connection: close`): our protocol object made,
connection_made, the request, the close and connection_lost; the event loop's own transport
set-up and teardown are not in it.

    python bench/micro_keepalive.py                 # the installed corral
    python bench/micro_keepalive.py --requests 20000 --rounds 7
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from typing import Any

import corral
from corral.server.connection import HTTPConnection
from corral.server.context import ServerContext
from corral.server.registry import Registry

BODY = b"Hello, world!"
GET = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: micro\r\nAccept: */*\r\n\r\n"
GET_CLOSE = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: micro\r\nAccept: */*\r\nConnection: close\r\n\r\n"
PIPELINE = 8  # requests per feed in the pipelined case (under the connection's queue bound)


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [BODY]


class NullTransport:
    """Takes every write, never pauses: the cost measured is Corral's alone."""

    def __init__(self) -> None:
        self.written = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def writelines(self, pieces: Any) -> None:
        for piece in pieces:
            self.written += len(piece)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)


def run_once(loop: asyncio.AbstractEventLoop, requests: int, per_feed: int) -> float:
    """Seconds per request for `requests` GETs fed `per_feed` at a time on one connection."""
    ctx = ServerContext(app=app, loop=loop, hide_loop=False)  # as a worker whose app has no Django
    conn = HTTPConnection(ctx, Registry())
    transport = NullTransport()
    conn.connection_made(transport)
    data = GET * per_feed
    feeds = requests // per_feed
    end_pass = ctx.outbox.send_all
    started = time.perf_counter()
    for _ in range(feeds):
        conn.data_received(data)
        end_pass()
    took = time.perf_counter() - started
    loop.run_until_complete(asyncio.sleep(0))  # the end-of-pass callbacks left queued
    expected = feeds * per_feed
    if transport.closing or transport.written < expected * len(BODY):
        raise SystemExit("the connection did not answer every request: the benchmark is broken")
    conn.connection_lost(None)
    return took / expected


def run_connections(loop: asyncio.AbstractEventLoop, connections: int) -> float:
    """Seconds per connection for `connections` connections of one `Connection: close` GET each."""
    ctx = ServerContext(app=app, loop=loop, hide_loop=False)
    registry: Registry[Any] = Registry()
    end_pass = ctx.outbox.send_all
    answered = 0
    started = time.perf_counter()
    for _ in range(connections):
        conn = HTTPConnection(ctx, registry)
        transport = NullTransport()
        conn.connection_made(transport)
        conn.data_received(GET_CLOSE)
        end_pass()
        if transport.closing:
            answered += transport.written >= len(BODY)
            conn.connection_lost(None)
    took = time.perf_counter() - started
    loop.run_until_complete(asyncio.sleep(0))
    if answered != connections:
        raise SystemExit("a connection was not answered and closed: the benchmark is broken")
    return took / connections


def arguments(doc: str, argv: list[str] | None) -> argparse.Namespace:
    """The micro benchmarks' common options (this one's and bench/micro_http2.py's)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000, help="requests per round (default 20000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the best counts (default 5)")
    return parser.parse_args(argv)


def frozen_loop() -> asyncio.AbstractEventLoop:
    """A loop, with the heap frozen as a worker freezes it once its app is loaded; prints the build."""
    loop = asyncio.new_event_loop()
    gc.collect()
    gc.freeze()
    version = getattr(corral, "__version__", "?")
    compiled = "compiled" if not corral.server.connection.__file__.endswith(".py") else "pure Python"
    print(f"corral {version} ({compiled}), Python {sys.version.split()[0]}")
    return loop


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__, argv)
    loop = frozen_loop()
    try:
        for label, per_feed in (("one per feed", 1), (f"{PIPELINE} pipelined", PIPELINE)):
            run_once(loop, min(args.requests, 2000), per_feed)  # warm-up: caches, date line
            best = min(run_once(loop, args.requests, per_feed) for _ in range(args.rounds))
            print(f"hello keep-alive, {label:>14}: {best * 1e6:6.2f} us/request (best of {args.rounds})")
        run_connections(loop, min(args.requests, 2000))
        best = min(run_connections(loop, args.requests // 4) for _ in range(args.rounds))
        print(f"hello Connection: close, a connection each: {best * 1e6:6.2f} us/request (best of {args.rounds})")
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
