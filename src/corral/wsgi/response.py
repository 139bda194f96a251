"""start_response and body framing for one response (PEP 3333).

The connection owns the socket; this object owns the rules: headers are
validated (no CR/LF can split the response), the head is built when the first
non-empty chunk is ready (or at the end), bodies are chunked on HTTP/1.1 when
the app gives no Content-Length, and a body is never sent past its declared
Content-Length. `must_close` records every reason the connection cannot be
reused after this response.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from ..http.serialize import LAST_CHUNK, UnsafeHeader, build_head, check_header, chunk, status_line

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]

# RFC 9110 7.6.1: connection-specific fields an app may not set (PEP 3333 too).
_HOP_BY_HOP = frozenset(
    ("keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade")
)
SERVER_HEADER = b"Server: corral\r\n"


class AppError(Exception):
    """The app broke the WSGI contract (e.g. bad status, unsafe header)."""


class Response:
    __slots__ = (
        "version",
        "head_only",
        "keep_alive",
        "status",
        "headers",
        "headers_sent",
        "content_length",
        "sent",
        "chunked",
        "no_body",
        "write",
        "code",
        "overflow",
    )

    def __init__(self, version: str, head_only: bool, keep_alive: bool) -> None:
        self.version = version
        self.head_only = head_only
        self.keep_alive = keep_alive
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.headers_sent = False
        self.content_length: int | None = None
        self.sent = 0
        self.chunked = False
        self.no_body = head_only
        self.code = 0
        self.overflow = False
        # The connection sets this to its write() callable for the app.
        self.write: Callable[[bytes], None] = _no_write

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AppError("start_response called a second time without exc_info")
        if type(status) is not str:
            raise AppError(f"status must be a str, got {status!r}")
        if type(headers) is not list:
            raise AppError(f"headers must be a list, got {type(headers).__name__}")
        self.status = status
        self.headers = headers
        return self.write

    def head(self) -> bytes:
        """Serialize the head; decides framing and keep-alive. Call once."""
        status = self.status
        if status is None:
            raise AppError("the app returned without calling start_response")
        try:
            status_bytes = status_line(self.version, status)
        except UnsafeHeader as exc:
            raise AppError(str(exc)) from None
        code = self.code = int(status[:3])
        lines = []
        for name, value in self.headers:
            if type(name) is not str or type(value) is not str:
                raise AppError(f"header {name!r}: {value!r} is not a pair of str")
            try:
                check_header(name, value)
            except UnsafeHeader as exc:
                raise AppError(str(exc)) from None
            lower = name.lower()
            if lower == "content-length":
                if not value.isdigit() or not value.isascii():
                    raise AppError(f"invalid Content-Length {value!r}")
                self.content_length = int(value)
            elif lower == "connection":
                if "close" in value.lower():
                    self.keep_alive = False
                continue  # we write our own Connection header
            elif lower in _HOP_BY_HOP:
                raise AppError(f"hop-by-hop header {name!r} may not be set by a WSGI app")
            lines.append(f"{name}: {value}\r\n")
        if code < 200 or code == 204 or code == 304:
            self.no_body = True
        elif self.content_length is None:
            if self.version == "1.1":
                self.chunked = not self.head_only
                lines.append("Transfer-Encoding: chunked\r\n")
            else:
                self.keep_alive = False  # HTTP/1.0: the body ends when we close
        if not self.keep_alive:
            lines.append("Connection: close\r\n")
        elif self.version == "1.0":
            lines.append("Connection: keep-alive\r\n")
        self.headers_sent = True
        return build_head(status_bytes, lines, SERVER_HEADER)

    def frame(self, data: bytes) -> bytes:
        """Bytes to send for one body chunk (chunk framing, Content-Length cap)."""
        if self.no_body:
            return b""
        if self.chunked:
            return chunk(data)
        length = self.content_length
        if length is not None and self.sent + len(data) > length:
            data = data[: length - self.sent]  # never more than declared
            self.overflow = True
            self.keep_alive = False
        self.sent += len(data)
        return data

    def end(self) -> bytes:
        """Bytes that close the body; also settles whether the connection can be reused."""
        if self.chunked:
            return LAST_CHUNK
        if self.content_length is not None and not self.no_body and self.sent != self.content_length:
            self.keep_alive = False  # short (or capped) body: only closing tells the client
        return b""

def _no_write(data: bytes) -> None:
    raise AppError("write() called before start_response")


def error_response(status: int, reason: str, detail: str, keep_alive: bool = False) -> bytes:
    """A small plain-text response the server itself sends (errors, 503, 504)."""
    body = f"{status} {reason}\n{detail}\n".encode("latin-1", "replace")
    lines = [
        "Content-Type: text/plain; charset=utf-8\r\n",
        f"Content-Length: {len(body)}\r\n",
        "Connection: keep-alive\r\n" if keep_alive else "Connection: close\r\n",
    ]
    return build_head(status_line("1.1", f"{status} {reason}"), lines, SERVER_HEADER) + body
