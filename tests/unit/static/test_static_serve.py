"""The static map inside a real HTTPConnection whose transport has no plain socket (TLS).

Such a transport cannot take os.sendfile: the body must go out in reads written through the
transport, paced by its back-pressure (pause_writing/resume_writing), and the file must be
closed once the response is complete or the client is gone.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from corral.config.static import StaticRoute
from corral.server.connection import HTTPConnection
from corral.server.context import ServerContext
from corral.server.registry import Registry
from corral.static.serve import StaticMap
from fake_transport import HIGH_WATER, FakeTransport

BIG = os.urandom(1024 * 1024 + 17)


class TLSLikeTransport(FakeTransport):
    """asyncio's SSL transport as the connection sees it: a socket to report and an SSL context
    (so no sendfile); it counts how often it paused the connection."""

    def __init__(self, protocol: HTTPConnection, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(protocol, loop)
        self.pauses = 0

    def write(self, data: bytes) -> None:
        was_paused = self.paused
        super().write(data)
        self.pauses += self.paused and not was_paused

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        info = {"sockname": ("127.0.0.1", 443), "peername": ("127.0.0.1", 50000), "socket": object(),
                "sslcontext": object()}
        return info.get(name, default)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Length", "3")])
    return [b"app"]


def connect(loop: asyncio.AbstractEventLoop, root: Path) -> tuple[HTTPConnection, TLSLikeTransport]:
    ctx = ServerContext(app=app, loop=loop)
    ctx.static = StaticMap([StaticRoute("/static", str(root))], "", False)
    conn = HTTPConnection(ctx, Registry())
    transport = TLSLikeTransport(conn, loop)
    conn.connection_made(transport)
    return conn, transport


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_big_file_without_sendfile_follows_back_pressure(loop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(BIG)
    before = open_fds()
    conn, transport = connect(loop, tmp_path)
    conn.data_received(b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\nGET /other HTTP/1.1\r\nHost: t\r\n\r\n")
    assert transport.paused and len(transport.data) < 2 * HIGH_WATER  # stopped at the mark
    while transport.paused:
        transport.drain()
    data = transport.data
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and f"Content-Length: {len(BIG)}".encode() in head
    assert rest[: len(BIG)] == BIG
    assert rest[len(BIG):].startswith(b"HTTP/1.1 200 OK")  # the pipelined app request came after
    assert rest.endswith(b"app") and transport.pauses >= 3 and not transport.closing
    assert open_fds() == before  # the file was closed with the response


def test_client_gone_mid_file_closes_it(loop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(BIG)
    before = open_fds()
    conn, transport = connect(loop, tmp_path)
    conn.data_received(b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
    assert transport.paused and open_fds() == before + 1
    conn.connection_lost(ConnectionResetError())
    assert open_fds() == before


def test_small_file_and_range_go_out_in_one_write(loop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"0123456789")
    conn, transport = connect(loop, tmp_path)
    conn.data_received(b"GET /static/a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=2-4\r\n\r\n")
    assert len(transport.written) == 1 or transport.data  # (held, then written together)
    data = transport.data
    assert data.startswith(b"HTTP/1.1 206 Partial Content\r\n") and data.endswith(b"\r\n\r\n234")
