"""In-process cost of one hello-world request over HTTP/2 (h2c), without sockets or a load tool.

As bench/micro_keepalive.py does for HTTP/1: a do-nothing transport stands in for asyncio's,
and one H2Connection is fed the frames h2load sends (a HEADERS frame per request, its fields
HPACK-indexed after the first), one request per data_received (a client with one stream
open) and 10 per feed (ten streams in flight). Best of --rounds, in microseconds per request:
the server's own CPU per request minus the kernel, for comparing two builds on one machine.

    python bench/micro_http2.py                 # the installed corral
"""

from __future__ import annotations

import asyncio
import sys
import time

import hpack
from micro_keepalive import BODY, NullTransport, app, arguments, frozen_loop

from corral.http import h2_frames as f
from corral.server.context import ServerContext
from corral.server.h2_connection import H2Connection
from corral.server.registry import Registry

FIELDS = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "127.0.0.1:8000"),
          ("user-agent", "h2load nghttp2/1.52.0")]


_FRAMES: dict[int, list[bytes]] = {}


def request_frames(count: int) -> list[bytes]:
    """The HEADERS frames of `count` requests on a fresh connection (made once, replayed)."""
    if count not in _FRAMES:
        encoder = hpack.Encoder()
        _FRAMES[count] = [
            f.frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, 2 * n + 1, encoder.encode(FIELDS)) for n in range(count)
        ]
    return _FRAMES[count]


def run_once(loop: asyncio.AbstractEventLoop, requests: int, per_feed: int) -> float:
    ctx = ServerContext(app=app, loop=loop, hide_loop=False)
    conn = H2Connection(ctx, Registry())
    transport = NullTransport()
    conn.connection_made(transport)
    conn.data_received(f.PREFACE + f.settings_frame([]) + f.window_update_frame(0, 1 << 30))
    frames = request_frames(requests)
    feeds = [b"".join(frames[at : at + per_feed]) for at in range(0, requests, per_feed)]
    end_pass = ctx.outbox.send_all
    started = time.perf_counter()
    for data in feeds:
        conn.data_received(data)
        end_pass()
    took = time.perf_counter() - started
    loop.run_until_complete(asyncio.sleep(0))
    if transport.closing or transport.written < requests * len(BODY):
        raise SystemExit("the connection did not answer every request: the benchmark is broken")
    conn.connection_lost(None)
    return took / requests


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__, argv)
    loop = frozen_loop()
    try:
        for label, per_feed in (("one stream", 1), ("10 streams", 10)):
            run_once(loop, min(args.requests, 2000), per_feed)
            best = min(run_once(loop, args.requests, per_feed) for _ in range(args.rounds))
            print(f"hello over h2c, {label:>10}: {best * 1e6:6.2f} us/request (best of {args.rounds})")
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
