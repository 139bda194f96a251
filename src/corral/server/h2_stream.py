"""One HTTP/2 stream: its request as it arrives, and the response sink of its exchange.

How this works: the exchange writes the bytes wsgi/response.py framed for version "2"
(an HTTP/1-style head, then the plain body); the stream reads the head back into the
HPACK block of a HEADERS frame (http/h2_messages.py, cached per head) and keeps the body in `out` until the peer's flow
control windows let the connection send it (H2Connection.send). `write_paused` is set
while more than STREAM_HIGH_WATER bytes wait, or while the socket itself is paused, so
the exchange pulls the app only as fast as this stream's window opens; a slow stream
pauses alone. The stream is also what the static map calls its host (static/serve.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from ..http.h2_messages import HEAD_END, response_block
from ..http.request import Request
from ..wsgi.input import SpooledBody
from .exchange import Exchange

if TYPE_CHECKING:
    from .h2_connection import H2Connection

# What a stream's deadline measures (checked by the worker's sweeper once a second).
BODY: Final = 0
RUNNING: Final = 1
SEND: Final = 2


class H2Stream:
    """The response sink (sink.py) of one stream's exchange."""

    def __init__(self, conn: H2Connection, stream_id: int, request: Request) -> None:
        self.conn = conn
        self.id = stream_id
        self.request = request
        self.body: SpooledBody | None = None
        self.exchange: Exchange | None = None
        self.write_paused = False
        self.head: bytes | None = None  # the HPACK block of HEADERS not sent yet
        self.head_done = False  # the head was read (it may still wait in `head`)
        self._partial = b""  # a head not complete yet (the exchange writes it whole, in practice)
        self.out = bytearray()  # body bytes waiting for the flow-control window
        self.ended = False  # the exchange finished: END_STREAM once `out` is sent
        self.truncated = False  # shorter than its Content-Length: reset, not ended
        self.closed = False  # ended, reset, or the connection is gone
        self.deadline = 0.0
        self.deadline_kind = BODY

    # -- the response sink --------------------------------------------------------

    def write(self, data: bytes) -> None:
        self._take(data)
        self.conn.send(self)

    def writelines(self, pieces: tuple[bytes, ...]) -> None:
        for piece in pieces:
            self._take(piece)
        self.conn.send(self)

    def finish(self, data: bytes) -> None:
        self._take(data)
        ex = self.exchange
        if ex is not None and ex.content_length is not None and not ex.no_body and ex.sent != ex.content_length:
            self.truncated = True  # only a reset tells the client the body is incomplete
        self.ended = True
        self.conn.send(self)

    def flush(self) -> None:
        self.conn.schedule_flush()

    def is_closing(self) -> bool:
        return self.closed or self.conn.closed

    def can_sendfile(self) -> bool:
        return False  # DATA frames are built in user space: the file is read and framed

    def sendfile(self, ex: Exchange, head: bytes, fd: int, offset: int, count: int) -> bool:
        return False

    def abort(self) -> None:
        self.conn.reset(self)

    def _take(self, data: bytes) -> None:
        if not self.head_done:
            data = self._partial + data
            end = data.find(HEAD_END)
            if end < 0:
                self._partial = data
                return
            self._partial = b""
            self.head = response_block(data[:end])
            self.head_done = True
            data = data[end + len(HEAD_END) :]
        if data:
            self.out += data

    # -- the static map's host (static/serve.py) ----------------------------------

    @property
    def logs_access(self) -> bool:
        return self.conn.ctx.access_log is not None

    def static_environ(self, request: Request) -> dict[str, Any]:
        return self.conn.environ_of(request, None)

    def begin(self, request: Request, environ: dict[str, Any]) -> Exchange:
        ex = self.exchange = Exchange(self, request, environ, self.conn.ctx, self.conn.complete)
        self.deadline_kind = RUNNING
        return ex
