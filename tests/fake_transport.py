"""One fake asyncio transport for protocol tests and the connection fuzzer.

It behaves like asyncio's: pause_writing() is called from inside write() when the buffer
passes the high-water mark, and a failed write closes the transport at once while
connection_lost() comes later. Reading pauses are recorded (`reading_paused`) so a test
can hold back bytes a real transport would not deliver.
"""

from __future__ import annotations

import asyncio
from typing import Any

from corral.server.connection import HTTPConnection
from corral.server.context import ServerContext
from corral.server.registry import Registry

HIGH_WATER = 256 * 1024


class FakeTransport:
    def __init__(self, protocol: HTTPConnection, loop: asyncio.AbstractEventLoop) -> None:
        self.protocol = protocol
        self.loop = loop
        self.written: list[bytes] = []
        self.buffered = 0
        self.paused = False
        self.closing = False
        self.aborted = False
        self.fail_after: int | None = None  # writes before the peer "resets" the connection
        self.reading_paused = False

    # what HTTPConnection uses
    def writelines(self, pieces) -> None:  # type: ignore[no-untyped-def]
        self.write(b"".join(pieces))  # as asyncio's: one write of the pieces together

    def write(self, data: bytes) -> None:
        if self.closing:
            return  # asyncio drops writes on a closing transport
        if self.fail_after is not None and len(self.written) >= self.fail_after:
            self.closing = True  # the send failed: closed now, connection_lost later
            return
        self.written.append(bytes(data))
        self.buffered += len(data)
        if self.buffered > HIGH_WATER and not self.paused:
            self.paused = True
            self.protocol.pause_writing()

    def drain(self) -> None:
        """The client read everything buffered."""
        self.buffered = 0
        if self.paused:
            self.paused = False
            self.protocol.resume_writing()

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = self.aborted = True

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.reading_paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    @property
    def data(self) -> bytes:
        """What the client has received once the loop's current pass is over."""
        self.loop.run_until_complete(asyncio.sleep(0))
        return b"".join(self.written)


def connect(
    loop: asyncio.AbstractEventLoop, app: Any, registry: Registry[HTTPConnection] | None = None, **context: Any
) -> tuple[HTTPConnection, FakeTransport]:
    """A connection of a fresh context (keyword arguments: its fields), on its own registry by default."""
    conn = HTTPConnection(ServerContext(app=app, loop=loop, **context), registry or Registry())
    transport = FakeTransport(conn, loop)
    conn.connection_made(transport)
    return conn, transport
