"""The inline (--threads 1) request path through the real HTTPConnection, with a fake transport.

The fake behaves like asyncio's: pause_writing() is called from inside write()
when the buffer passes the high-water mark, and a failed write closes the
transport at once while connection_lost() comes later. Everything runs
synchronously (`data` first lets the loop finish its pass, which sends the bytes the
outbox held), so the exact bytes and the exact number of items pulled from the app's
iterable can be asserted.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from corral.server.outbox import HOLD_TIME
from fake_transport import HIGH_WATER, connect


class Counting:
    """An endless response whose pulls and close() are counted."""

    def __init__(self, limit: int | None = None, fail_at: int | None = None) -> None:
        self.pulled = 0
        self.closed = 0
        self.limit = limit
        self.fail_at = fail_at

    def __iter__(self) -> Iterator[bytes]:
        while self.limit is None or self.pulled < self.limit:
            if self.fail_at is not None and self.pulled == self.fail_at:
                raise RuntimeError("app failed mid-stream")
            self.pulled += 1
            yield b"x" * 65536

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def streaming_app(body: Counting, headers: list[tuple[str, str]] | None = None) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Counting:
        start_response("200 OK", headers or [("Content-Type", "text/plain")])
        return body

    return app


GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


def test_pipelined_requests_are_answered_in_order(loop: asyncio.AbstractEventLoop) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["PATH_INFO"].encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    conn, transport = connect(loop, app)
    conn.data_received(b"GET /one HTTP/1.1\r\nHost: t\r\n\r\nGET /two HTTP/1.1\r\nHost: t\r\n\r\n")
    data = transport.data
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert data.index(b"/one") < data.index(b"/two")
    assert not transport.closing  # keep-alive


def test_pulling_stops_while_the_transport_is_paused(loop: asyncio.AbstractEventLoop) -> None:
    body = Counting()
    conn, transport = connect(loop, streaming_app(body))
    conn.data_received(GET)
    assert transport.paused
    first = body.pulled
    assert first * 65536 <= HIGH_WATER + 65536, "pulled past the high-water mark"
    transport.drain()  # the client caught up: production resumes, up to the mark again
    assert transport.paused and first < body.pulled <= 2 * first + 1
    assert body.closed == 0


def test_client_gone_mid_stream_stops_pulling_and_closes(loop: asyncio.AbstractEventLoop) -> None:
    body = Counting(limit=1000)  # bounded, so a regression fails instead of hanging
    conn, transport = connect(loop, streaming_app(body))
    transport.fail_after = 3  # the fourth write fails: the transport closes, no pause ever comes
    conn.data_received(GET)
    assert transport.closing and body.pulled < 10
    assert body.closed == 1
    conn.connection_lost(ConnectionResetError())
    assert body.closed == 1  # exactly once


def test_client_gone_while_paused_closes_the_iterable(loop: asyncio.AbstractEventLoop) -> None:
    body = Counting()
    conn, transport = connect(loop, streaming_app(body))
    conn.data_received(GET)
    assert transport.paused and body.closed == 0
    conn.connection_lost(ConnectionResetError())
    assert body.closed == 1


def test_finished_stream_is_closed_and_chunked(loop: asyncio.AbstractEventLoop) -> None:
    body = Counting(limit=2)
    conn, transport = connect(loop, streaming_app(body))
    conn.data_received(GET)
    assert body.closed == 1
    assert transport.data.endswith(b"0\r\n\r\n") and b"Transfer-Encoding: chunked" in transport.data
    assert not transport.closing


def test_error_before_headers_is_a_500(loop: asyncio.AbstractEventLoop) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise ValueError("broken")

    conn, transport = connect(loop, app)
    conn.data_received(GET)
    assert transport.data.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert transport.closing and not transport.aborted


def test_error_after_headers_aborts(loop: asyncio.AbstractEventLoop) -> None:
    body = Counting(fail_at=1)
    conn, transport = connect(loop, streaming_app(body))
    conn.data_received(GET)
    assert transport.aborted, "a started response must be cut, not completed"
    assert not transport.data.endswith(b"0\r\n\r\n")
    assert body.closed == 1


def test_content_length_caps_the_body_and_closes(loop: asyncio.AbstractEventLoop) -> None:
    body = Counting(limit=3)
    conn, transport = connect(loop, streaming_app(body, [("Content-Length", "100000")]))
    conn.data_received(GET + GET)
    head, _, rest = transport.data.partition(b"\r\n\r\n")
    assert len(rest) == 100000
    assert transport.closing and transport.data.count(b"HTTP/1.1") == 1
    assert body.closed == 1


class Marker:
    """Put in the environ: alive for as long as the exchange holding that environ is."""


@pytest.mark.parametrize("uses_write", [False, True])
def test_a_finished_exchange_is_freed_at_once_not_by_the_cycle_collector(
    loop: asyncio.AbstractEventLoop, uses_write: bool
) -> None:
    # A cycle through the exchange would keep its environ and request body (up to 1 MiB)
    # alive until the next GC pass: under load, 100 MiB of bodies waiting to be collected.
    markers: list[weakref.ref[Marker]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        marker = environ["test.marker"] = Marker()
        markers.append(weakref.ref(marker))
        write = start_response("200 OK", [("Content-Length", "2")])
        if uses_write:
            write(b"ok")
            return []
        return [b"ok"]

    gc.disable()
    try:
        conn, transport = connect(loop, app)
        conn.data_received(GET)
        assert transport.data.endswith(b"\r\n\r\nok")
        assert markers and markers[0]() is None
    finally:
        gc.enable()


class Clock:
    """The exchanges' and the outbox's clock: time passes only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_quick_response_waits_for_the_pass_a_slow_ones_leaves_at_once(loop: asyncio.AbstractEventLoop) -> None:
    clock = Clock()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/slow":
            clock.now += HOLD_TIME * 3  # the app call takes longer than the outbox holds a response
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    conn, transport = connect(loop, app, clock=clock)
    conn.data_received(GET)
    assert transport.written == [], "held until the loop's pass ends"
    conn.data_received(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
    assert b"".join(transport.written).count(b"HTTP/1.1 200 OK") == 2, "the slow one took the quick one along"
