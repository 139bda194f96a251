"""--send-timeout holds whenever response bytes wait on the client, whatever the exchange does.

The fake transport keeps what a client has not read in `buffered` (and pauses past its
high-water mark, as asyncio's does); a real transport's close() waits for that buffer, so a
connection left under the keep-alive deadline with unsent bytes would never be freed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from corral.server import connection
from corral.server.context import Timeouts
from fake_transport import HIGH_WATER, connect

GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
TIMEOUTS = Timeouts(keepalive=30.0, send=4.0)  # keep-alive longer than send: the case that leaked


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def body_of(size: int) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", str(size))])
        return [b"x" * size]

    return app


def test_a_response_that_finishes_into_a_paused_buffer_is_under_the_send_deadline(
    loop: asyncio.AbstractEventLoop,
) -> None:
    conn, transport = connect(loop, body_of(2 * HIGH_WATER), timeouts=TIMEOUTS)
    conn.data_received(GET)
    assert transport.paused and conn.exchange is None  # complete, its bytes still ours to send
    assert conn.deadline_kind == connection.SEND
    conn.check_deadline(conn.deadline - 0.1)
    assert not transport.closing
    conn.check_deadline(conn.deadline)
    assert transport.aborted


def test_once_the_client_reads_it_the_keepalive_deadline_is_back(loop: asyncio.AbstractEventLoop) -> None:
    conn, transport = connect(loop, body_of(2 * HIGH_WATER), timeouts=TIMEOUTS)
    conn.data_received(GET)
    transport.drain()
    assert conn.deadline_kind == connection.IDLE  # not "no deadline": an idle connection must still close
    conn.check_deadline(conn.deadline)
    assert transport.closing and not transport.aborted


def test_a_tail_under_the_pause_mark_never_read_is_aborted_at_the_send_timeout(
    loop: asyncio.AbstractEventLoop,
) -> None:
    conn, transport = connect(loop, body_of(HIGH_WATER // 2), timeouts=TIMEOUTS)
    conn.data_received(GET)
    assert not transport.paused and transport.buffered > 0 and conn.deadline_kind == connection.IDLE
    idle_end = conn.deadline
    conn.check_deadline(idle_end)
    assert not transport.closing  # a close would wait for the unread bytes forever
    assert conn.deadline_kind == connection.SEND and conn.deadline == idle_end + TIMEOUTS.send
    conn.check_deadline(conn.deadline)
    assert transport.aborted


def test_a_pipelined_request_started_while_paused_keeps_the_send_deadline(loop: asyncio.AbstractEventLoop) -> None:
    conn, transport = connect(loop, body_of(2 * HIGH_WATER), timeouts=TIMEOUTS)
    conn.data_received(GET + GET)
    assert transport.paused and conn.deadline_kind == connection.SEND
    conn.check_deadline(conn.deadline)
    assert transport.aborted
