"""The threaded runner (server/threaded.py) through the real HTTPConnection, with a fake transport.

The app runs on a real one-thread pool; the loop side runs in the test's event loop. A
request's end is an event (the post_request hook, called by the connection on the loop
thread once the exchange completes), so waits need no polling; only the pacing test
watches a thread that must *stop*, which it does within a bounded number of loop passes.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from corral.server.connection import HTTPConnection
from corral.wsgi.file_wrapper import FileWrapper
from fake_transport import HIGH_WATER, FakeTransport, connect

GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
BLOCK = b"x" * 65536
DEADLINE = 5.0  # seconds any wait may take before the test fails


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(1, thread_name_prefix="test-app")
    yield pool
    pool.shutdown(wait=True)


class Served:
    """Connects with a threaded context and turns each completed exchange into an event."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: ThreadPoolExecutor, app: Any) -> None:
        self.loop = loop
        self.codes: list[int] = []
        self._done = asyncio.Event()
        self.conn: HTTPConnection
        self.transport: FakeTransport
        self.conn, self.transport = connect(loop, app, executor=pool, post_request=self._completed)

    def _completed(self, environ: dict[str, Any], code: int, duration: float) -> None:
        self.codes.append(code)
        self._done.set()

    def complete(self, count: int = 1) -> bytes:
        """Wait until `count` exchanges completed; what the client received."""

        async def wait() -> None:
            while len(self.codes) < count:
                self._done.clear()
                await self._done.wait()

        self.loop.run_until_complete(asyncio.wait_for(wait(), DEADLINE))
        return self.transport.data

    def passes(self, count: int) -> None:
        """Let the loop run `count` short passes (for a thread that must stop by itself)."""
        for _ in range(count):
            self.loop.run_until_complete(asyncio.sleep(0.002))


def test_a_list_response_goes_out_whole_and_the_connection_stays_open(
    loop: asyncio.AbstractEventLoop, pool: ThreadPoolExecutor
) -> None:
    threads: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        threads.append(threading.current_thread().name)
        start_response("200 OK", [("Content-Length", "5")])
        return [b"he", b"llo"]

    served = Served(loop, pool, app)
    served.conn.data_received(GET + GET)
    data = served.complete(2)
    assert data.count(b"HTTP/1.1 200 OK") == 2 and data.endswith(b"\r\n\r\nhello")
    assert threads and all(name.startswith("test-app") for name in threads)
    assert not served.transport.closing


def test_write_callable_and_generator_blocks_arrive_in_order_chunked(
    loop: asyncio.AbstractEventLoop, pool: ThreadPoolExecutor
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        write = start_response("200 OK", [])
        write(b"first;")
        yield b"second;"
        yield b""
        yield b"third"

    served = Served(loop, pool, app)
    served.conn.data_received(GET)
    data = served.complete()
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert body == b"6\r\nfirst;\r\n7\r\nsecond;\r\n5\r\nthird\r\n0\r\n\r\n"


def test_a_slow_client_paces_the_app_thread(loop: asyncio.AbstractEventLoop, pool: ThreadPoolExecutor) -> None:
    pulled = [0]
    closed = threading.Event()

    class Endless:
        def __iter__(self) -> Iterator[bytes]:
            while pulled[0] < 1000:  # bounded, so a regression fails instead of hanging
                pulled[0] += 1
                yield BLOCK

        def close(self) -> None:
            closed.set()

    def app(environ: dict[str, Any], start_response: Any) -> Endless:
        start_response("200 OK", [])
        return Endless()

    served = Served(loop, pool, app)
    served.conn.data_received(GET)
    served.passes(50)
    assert served.transport.paused
    first = pulled[0]
    # Up to the high-water mark, then two hand-offs in flight and the block being framed.
    assert first * len(BLOCK) <= HIGH_WATER + 4 * len(BLOCK), f"pulled {first} blocks past a paused client"
    served.passes(20)
    assert pulled[0] == first, "the thread went on while the client read nothing"
    served.transport.drain()
    served.passes(50)
    assert pulled[0] > first, "draining released the thread"
    served.transport.close()
    served.conn.connection_lost(ConnectionResetError())
    assert closed.wait(DEADLINE), "a client gone while the thread waits: close() is still called"


def test_an_error_before_the_head_is_a_500_after_it_an_abort(
    loop: asyncio.AbstractEventLoop, pool: ThreadPoolExecutor
) -> None:
    def before(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise ValueError("broken")

    served = Served(loop, pool, before)
    served.conn.data_received(GET)
    assert served.complete().startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert served.transport.closing and not served.transport.aborted

    finished = threading.Event()

    def after(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        try:
            yield b"part"
            raise ValueError("broken mid-body")
        finally:
            finished.set()

    served = Served(loop, pool, after)
    served.conn.data_received(GET)
    assert finished.wait(DEADLINE)
    served.passes(5)
    assert served.transport.aborted, "a started response must be cut, not completed"
    assert not served.transport.data.endswith(b"0\r\n\r\n")


def test_a_file_like_wrapper_is_read_by_the_loop_paced_and_closed(
    loop: asyncio.AbstractEventLoop, pool: ThreadPoolExecutor
) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB: several pauses at the high-water mark
    source = io.BytesIO(payload)

    def app(environ: dict[str, Any], start_response: Any) -> FileWrapper:
        start_response("200 OK", [("Content-Length", str(len(payload)))])
        return FileWrapper(source, 65536)  # no file descriptor: no sendfile, read on the loop

    served = Served(loop, pool, app)
    served.conn.data_received(GET)
    received = b""
    for _ in range(100):
        served.passes(1)
        received += b"".join(served.transport.written)
        served.transport.written.clear()
        served.transport.drain()
        if served.codes:
            break
    received += served.transport.data  # the last bytes, held until the pass ended
    assert served.codes == [200]
    assert received.partition(b"\r\n\r\n")[2] == payload
    assert source.closed, "the wrapper's close() is called once the loop sent it"
