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
from typing import Any

from ..http.date import date_cache
from ..http.serialize import LAST_CHUNK, UnsafeHeader, build_head, check_header, chunk, status_line

# RFC 9110 7.6.1: connection-specific fields an app may not set (PEP 3333 too).
_HOP_BY_HOP = frozenset(
    ("keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade")
)
SERVER_HEADER = b"Server: corral\r\n"
_HEAD_CACHE_SIZE = 512  # distinct header sets; apps have a handful, a bound keeps odd ones from growing it
# Until start_response: shared and never mutated (start_response replaces it).
_NO_HEADERS: list[Any] = []
_head_cache: dict[tuple[object, ...], tuple[bytes, bytes, int, int | None, bool, bool, bool]] = {}


class AppError(Exception):
    """The app broke the WSGI contract (e.g. bad status, unsafe header)."""


class Response:
    # Class-level defaults: only what differs per response is set in __init__.
    # (Only immutable defaults here: compiled by mypyc (setup.py), this is a native class.)
    status: str | None = None
    writer: Callable[[bytes], None] | None = None
    headers: list[Any] = _NO_HEADERS  # the app's (name, value) pairs, checked by _serialize
    headers_sent = False
    content_length: int | None = None
    sent = 0
    chunked = False
    code = 0
    overflow = False

    def __init__(self, version: str, head_only: bool, keep_alive: bool, write: Callable[[bytes], None]) -> None:
        self.version = version
        self.head_only = head_only
        self.no_body = head_only
        self.keep_alive = keep_alive
        # The write() callable start_response hands the app (an Exchange uses its own method).
        self.writer = write

    def start_response(self, status: Any, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        # Any: the app may pass anything, and the checks below (not the compiled code's own
        # type checks) must be what answers it.
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
        # (Returned, never stored as a bound method: that would be a reference cycle, and an
        # exchange, with the request body it holds, would then wait for the GC to be freed.)
        return self.writer if self.writer is not None else self.write

    def write(self, data: bytes) -> None:
        """PEP 3333's write() callable, provided by the exchange."""
        raise AppError("this response has no write() callable")

    def head(self) -> bytes:
        """Serialize the head; decides framing and keep-alive. Call once.

        Apps send the same few header sets again and again, so the validated,
        serialized header block is cached by its exact content; only the Date
        line is fresh per second.
        """
        status = self.status
        if status is None:
            raise AppError("the app returned without calling start_response")
        try:
            key = (status, tuple(self.headers), self.version, self.keep_alive, self.head_only)
            entry = _head_cache.get(key)
        except TypeError:  # unhashable header values: the slow path reports them
            key, entry = None, None
        if entry is None:
            entry = self._serialize(status)
            if key is not None and len(_head_cache) < _HEAD_CACHE_SIZE:
                _head_cache[key] = entry
        status_bytes, block, self.code, self.content_length, self.chunked, self.no_body, self.keep_alive = entry
        self.headers_sent = True
        return status_bytes + date_cache.header() + block

    def _serialize(self, status: str) -> tuple[bytes, bytes, int, int | None, bool, bool, bool]:
        try:
            status_bytes = status_line(self.version, status)
        except UnsafeHeader as exc:
            raise AppError(str(exc)) from None
        code = int(status[:3])
        keep_alive = self.keep_alive
        content_length = None
        chunked = False
        no_body = self.head_only
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
                if not value.isdigit() or not value.isascii() or content_length is not None:
                    raise AppError(f"invalid or repeated Content-Length {value!r}")
                content_length = int(value)
            elif lower == "connection":
                if "close" in value.lower():
                    keep_alive = False
                continue  # we write our own Connection header
            elif lower in _HOP_BY_HOP:
                raise AppError(f"hop-by-hop header {name!r} may not be set by a WSGI app")
            lines.append(f"{name}: {value}\r\n")
        if code < 200 or code == 204 or code == 304:
            no_body = True
        elif content_length is None:
            if self.version == "1.1":
                chunked = not self.head_only
                lines.append("Transfer-Encoding: chunked\r\n")
            elif self.version != "2":  # (HTTP/2: the stream's END_STREAM ends the body)
                keep_alive = False  # HTTP/1.0: the body ends when we close
        if self.version == "2":
            pass  # no Connection header in HTTP/2 (RFC 9113 8.2.2); GOAWAY says what it said
        elif not keep_alive:
            lines.append("Connection: close\r\n")
        elif self.version == "1.0":
            lines.append("Connection: keep-alive\r\n")
        block = SERVER_HEADER + "".join(lines).encode("latin-1") + b"\r\n"
        return status_bytes, block, code, content_length, chunked, no_body, keep_alive

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
            self.length_broken(True)
        self.sent += len(data)
        return data

    def frame_parts(self, data: bytes) -> tuple[bytes, ...]:
        """frame() without copying `data`: the pieces to hand to writelines()."""
        if self.chunked:
            return (b"%x\r\n" % len(data), data, b"\r\n")
        return (self.frame(data),)

    def end(self) -> bytes:
        """Bytes that close the body; also settles whether the connection can be reused."""
        if self.chunked:
            return LAST_CHUNK
        if self.content_length is not None and not self.no_body and self.sent != self.content_length:
            self.keep_alive = False  # short (or capped) body: only closing tells the client
            if not self.overflow:
                self.length_broken(False)
        return b""

    def length_broken(self, too_long: bool) -> None:
        """The body disagrees with the Content-Length (`too_long`: more was offered, and cut).

        A hook, called only on that cold path, for the owner to log with the app's name.
        """

def error_response(status: int, reason: str, detail: str, keep_alive: bool = False) -> bytes:
    """A small plain-text response the server itself sends (errors, 503, 504)."""
    body = f"{status} {reason}\n{detail}\n".encode("latin-1", "replace")
    lines = [
        "Content-Type: text/plain; charset=utf-8\r\n",
        f"Content-Length: {len(body)}\r\n",
        "Connection: keep-alive\r\n" if keep_alive else "Connection: close\r\n",
    ]
    return build_head(status_line("1.1", f"{status} {reason}"), lines, SERVER_HEADER) + body
