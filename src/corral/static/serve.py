"""The static map of one worker: requests under a static prefix answered from the event loop.

How this works: the connection asks `StaticMap.serve` about each request before it builds
an environ (single site) or right after routing (several sites). A request outside every
prefix costs a few `startswith` calls; one inside becomes an Exchange like an app's (so
keep-alive, pipelining, deadlines, stats and the access log behave the same) but never
reaches the app or an app thread. The file is opened and described by resolve.py; the
head is assembled from the description's cached block; the body goes out in one write
when it is small, with os.sendfile when it is not, and through `send_file`'s read loop,
paced by the transport's back-pressure, when the transport has no plain socket (TLS).
A guarded prefix (auth = "django") first waits for its credentials check on a thread.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from ..config.static import StaticRoute
from ..http.date import date_cache
from ..http.serialize import status_line
from ..server import exchange as run
from ..wsgi.response import SERVER_HEADER
from . import rules
from .auth import OK, DjangoGuard, challenge_headers, pool
from .resolve import Described, Root, safe_relative

if TYPE_CHECKING:
    from ..server.connection import HTTPConnection

log = logging.getLogger("corral.error")

SMALL_FILE = 64 * 1024  # at most this is read and written with the head in one write
_READ_BLOCK = 256 * 1024  # per read when os.sendfile cannot be used (TLS)
_NO_EXCHANGE_DEADLINE = 4  # connection.NONE: the exchange, not a timer, decides now
_REASONS = {200: "OK", 206: "Partial Content", 304: "Not Modified", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 412: "Precondition Failed",
            416: "Range Not Satisfiable"}
_WANTED = {
    b"if-none-match": "if_none_match",
    b"if-modified-since": "if_modified_since",
    b"if-match": "if_match",
    b"if-unmodified-since": "if_unmodified_since",
    b"range": "range",
    b"if-range": "if_range",
    b"accept-encoding": "accept_encoding",
}
_WANTED_LENGTHS = frozenset(len(name) for name in _WANTED)


class Mapped:
    """One prefix of the map: its route, its directory, and its guard when it has one."""

    __slots__ = ("prefix", "route", "root", "guard")

    def __init__(self, route: StaticRoute, root: Root, guard: DjangoGuard | None) -> None:
        self.prefix = route.prefix.encode("latin-1")
        self.route = route
        self.root = root
        self.guard = guard


class FileHandle:
    """The open file of a response in flight; closed with the exchange (complete or lost)."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


class StaticMap:
    def __init__(self, routes: Sequence[StaticRoute], cache_control: str, follow_symlinks: bool) -> None:
        by_prefix = {route.prefix: route for route in routes}  # a later route for a prefix wins
        self.mapped = sorted(
            (
                Mapped(
                    route,
                    Root(route.root, follow_symlinks, cache_control, private=bool(route.auth)),
                    DjangoGuard(f"static {route.prefix}", route.auth_groups, route.auth_allow_http)
                    if route.auth else None,
                )
                for route in by_prefix.values()
            ),
            key=lambda m: -len(m.prefix),
        )

    # -- entry point: called by the connection for every request ------------------------

    def serve(self, conn: HTTPConnection, request: Any, environ: dict[str, Any]) -> bool | None:
        """None: not a static path. Else the request is ours: True when already answered."""
        if "PATH_INFO" in environ:  # several sites: routed, the site's mount already stripped
            path = environ["PATH_INFO"].encode("latin-1")
        else:
            raw = request.path
            path = unquote_to_bytes(raw) if 0x25 in raw else raw  # 0x25: "%"
        found = self._find(path)
        if found is None:
            return None
        mapped, rest = found
        ctx = conn.ctx
        if mapped.guard is not None or ctx.access_log is not None:
            if "REQUEST_METHOD" not in environ:
                environ = conn.static_environ(request)
        ex = conn.exchange = run.Exchange(conn, request, environ)
        conn.deadline_kind = _NO_EXCHANGE_DEADLINE
        if request.method != "GET" and request.method != "HEAD":
            return error(ex, 405, "Only GET and HEAD are served here.", [("Allow", "GET, HEAD")])
        relative = safe_relative(rest)
        if relative is None:
            return error(ex, 404, "No such file.")
        if mapped.guard is not None:
            return self._guarded(ex, mapped, relative)
        return respond(ex, mapped.root, relative)

    def _find(self, path: bytes) -> tuple[Mapped, bytes] | None:
        for mapped in self.mapped:
            prefix = mapped.prefix
            if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == 0x2F):
                return mapped, path[len(prefix):]
        return None

    # -- guarded prefixes -----------------------------------------------------------------

    def _guarded(self, ex: run.Exchange, mapped: Mapped, relative: bytes) -> bool:
        guard = mapped.guard
        assert guard is not None
        status, credentials = guard.precheck(ex.environ)
        if status == OK and credentials is not None:
            return respond(ex, mapped.root, relative)
        if status or credentials is None:
            return error(ex, status or 401, _refusal(status), challenge_headers(guard, status or 401))
        loop = ex.conn.ctx.loop

        def check() -> None:
            answer = guard.check(ex.environ, *credentials)
            loop.call_soon_threadsafe(after, answer)

        def after(answer: int) -> None:
            conn = ex.conn
            if ex.aborted or conn.exchange is not ex:
                return  # the client left meanwhile
            if answer == OK:
                done = respond(ex, mapped.root, relative)
            else:
                done = error(ex, answer, _refusal(answer), challenge_headers(guard, answer))
            if done:
                conn.proceed()

        pool().submit(check)
        return False


def _refusal(status: int) -> str:
    if status == 403:
        return "Access to these files is not allowed for this user, or not over plain HTTP."
    return "These files need a user name and password."


# -- responses --------------------------------------------------------------------------


def respond(ex: run.Exchange, root: Root, relative: bytes) -> bool:
    """Answer a GET or HEAD for a file under `root`. True when the response is complete."""
    request = ex.request
    opened = root.open(relative)
    if opened is None:
        return error(ex, 404, "No such file.")
    fd, described = opened
    wanted = _wanted_headers(request.headers)
    if described.siblings:
        encoding = rules.select_encoding(wanted.get("accept_encoding"), described.siblings)
        if encoding:
            encoded = root.open_encoded(relative, encoding)
            if encoded is not None:
                os.close(fd)
                fd, described = encoded
    decided = rules.evaluate_preconditions(
        request.method,
        described.etag,
        described.mtime,
        wanted.get("if_match"),
        wanted.get("if_unmodified_since"),
        wanted.get("if_none_match"),
        wanted.get("if_modified_since"),
    )
    if decided is not None:
        os.close(fd)
        if decided == 304:
            return _write(ex, 304, described.not_modified, b"")
        return error(ex, decided, "A precondition of the request does not hold.")
    size = described.size
    first, count, status, extra = 0, size, 200, b""
    range_value = wanted.get("range")
    if range_value is not None and request.method == "GET":
        if_range = wanted.get("if_range")
        span = rules.parse_range(range_value, size)
        if span is not None and (if_range is None or rules.if_range_holds(if_range, described.etag, described.mtime)):
            if span == rules.UNSATISFIABLE:
                os.close(fd)
                return error(ex, 416, "The range is outside the file.", [("Content-Range", f"bytes */{size}")])
            first, last = span
            count, status = last - first + 1, 206
            extra = b"Content-Range: bytes %d-%d/%d\r\n" % (first, last, size)
    block = described.block + extra + b"Content-Length: %d\r\n" % count
    if ex.head_only or count == 0:
        os.close(fd)
        return _write(ex, status, block, b"")
    if count <= SMALL_FILE:
        try:
            data = os.pread(fd, count, first)
        except OSError:
            data = b""
        finally:
            os.close(fd)
        if len(data) != count:  # the file shrank under us: only closing tells the client
            ex.keep_alive = False
        return _write(ex, status, block, data)
    ex.code = status
    return send_file(ex, _head(ex, status, block), fd, first, count)


def send_file(ex: run.Exchange, head: bytes, fd: int, offset: int, count: int) -> bool:
    """The one place a file body leaves: os.sendfile when the transport has a plain socket,
    else reads written through the transport, paced by its back-pressure (TLS)."""
    ex.result = FileHandle(fd)  # closed by complete() or connection_lost
    conn = ex.conn
    if conn.sendfile(ex, head, fd, offset, count):
        return False
    conn.transport.write(head)
    ex.headers_sent = True
    ex.content_length = count
    ex.iterator = _blocks(fd, offset, count)
    return run.pump(ex)


def _blocks(fd: int, offset: int, count: int) -> Iterator[bytes]:
    end = offset + count
    while offset < end:
        data = os.pread(fd, min(_READ_BLOCK, end - offset), offset)
        if not data:
            return  # the file shrank: the response is short and the connection closes
        offset += len(data)
        yield data


def error(ex: run.Exchange, status: int, detail: str, headers: Sequence[tuple[str, str]] = ()) -> bool:
    body = f"{status} {_REASONS[status]}\n{detail}\n".encode()
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
    block = f"Content-Type: text/plain; charset=utf-8\r\n{lines}Content-Length: {len(body)}\r\n".encode("latin-1")
    return _write(ex, status, block, b"" if ex.head_only else body)


def _write(ex: run.Exchange, status: int, block: bytes, body: bytes) -> bool:
    ex.code = status
    ex.conn.transport.write(_head(ex, status, block) + body if body else _head(ex, status, block))
    ex.bytes_out = len(body)
    return ex.conn.complete(ex)


def _head(ex: run.Exchange, status: int, block: bytes) -> bytes:
    ex.headers_sent = True
    if not ex.keep_alive:
        connection = b"Connection: close\r\n"
    elif ex.version == "1.0":
        connection = b"Connection: keep-alive\r\n"
    else:
        connection = b""
    return b"".join((status_line(ex.version, f"{status} {_REASONS[status]}"), date_cache.header(),
                     SERVER_HEADER, block, connection, b"\r\n"))


def _wanted_headers(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    wanted: dict[str, str] = {}
    for name, value in headers:
        if len(name) in _WANTED_LENGTHS:
            key = _WANTED.get(name.lower())
            if key is not None:
                text = value.decode("latin-1")
                wanted[key] = wanted[key] + ", " + text if key in wanted else text
    return wanted


__all__ = ["Described", "StaticMap", "send_file"]
