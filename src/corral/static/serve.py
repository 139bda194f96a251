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
from typing import Any, Protocol
from urllib.parse import unquote_to_bytes

from ..config.static import StaticRoute
from ..http.date import date_cache
from ..http.request import Request
from ..http.serialize import status_line
from ..server import inline
from ..server.exchange import Exchange
from ..wsgi.response import SERVER_HEADER
from . import rules
from .auth import OK, DjangoGuard, challenge_headers, pool
from .resolve import Described, Root, safe_relative

log = logging.getLogger("corral.error")

SMALL_FILE = 64 * 1024  # at most this is read and written with the head in one write
_READ_BLOCK = 256 * 1024  # per read when os.sendfile cannot be used (TLS)
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


class Host(Protocol):
    """What the static map needs of the connection a request came on."""

    @property
    def logs_access(self) -> bool:
        """Whether an access log wants the environ of every request."""

    def static_environ(self, request: Request) -> dict[str, Any]:
        """The environ of a request the map answers (for a guard or the access log)."""

    def begin(self, request: Request, environ: dict[str, Any]) -> Exchange:
        """The request's exchange, with its response sink and on-complete callback."""


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

    def serve(self, host: Host, request: Request, environ: dict[str, Any]) -> bool:
        """True when the request is ours: answered now, or its exchange completes later."""
        if "PATH_INFO" in environ:  # several sites: routed, the site's mount already stripped
            path = environ["PATH_INFO"].encode("latin-1")
        else:
            raw = request.path
            path = unquote_to_bytes(raw) if 0x25 in raw else raw  # 0x25: "%"
        found = self._find(path)
        if found is None:
            return False
        mapped, rest = found
        if mapped.guard is not None or host.logs_access:
            if "REQUEST_METHOD" not in environ:
                environ = host.static_environ(request)
        ex = host.begin(request, environ)
        if request.method != "GET" and request.method != "HEAD":
            error(ex, 405, "Only GET and HEAD are served here.", [("Allow", "GET, HEAD")])
            return True
        relative = safe_relative(rest)
        if relative is None:
            error(ex, 404, "No such file.")
        elif mapped.guard is not None:
            self._guarded(ex, mapped, relative)
        else:
            respond(ex, mapped.root, relative)
        return True

    def _find(self, path: bytes) -> tuple[Mapped, bytes] | None:
        for mapped in self.mapped:
            prefix = mapped.prefix
            if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == 0x2F):
                return mapped, path[len(prefix):]
        return None

    # -- guarded prefixes -----------------------------------------------------------------

    def _guarded(self, ex: Exchange, mapped: Mapped, relative: bytes) -> None:
        guard = mapped.guard
        assert guard is not None
        status, credentials = guard.precheck(ex.environ)
        if status == OK and credentials is not None:
            respond(ex, mapped.root, relative)
            return
        if status or credentials is None:
            error(ex, status or 401, _refusal(status), challenge_headers(guard, status or 401))
            return
        loop = ex.ctx.loop

        def check() -> None:
            answer = guard.check(ex.environ, *credentials)
            loop.call_soon_threadsafe(after, answer)

        def after(answer: int) -> None:
            if ex.aborted or ex.sink.is_closing():
                return  # the client left meanwhile
            if answer == OK:
                respond(ex, mapped.root, relative)
            else:
                error(ex, answer, _refusal(answer), challenge_headers(guard, answer))

        pool().submit(check)


def _refusal(status: int) -> str:
    if status == 403:
        return "Access to these files is not allowed for this user, or not over plain HTTP."
    return "These files need a user name and password."


# -- responses --------------------------------------------------------------------------


def respond(ex: Exchange, root: Root, relative: bytes) -> None:
    """Answer a GET or HEAD for a file under `root` (now, or as the socket takes it)."""
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


def send_file(ex: Exchange, head: bytes, fd: int, offset: int, count: int) -> None:
    """The one place a file body leaves: os.sendfile when the sink has a plain socket,
    else reads written through the sink, paced by its back-pressure (TLS)."""
    ex.result = FileHandle(fd)  # closed by complete() or connection_lost
    sink = ex.sink
    if sink.sendfile(ex, head, fd, offset, count):
        return
    sink.write(head)
    ex.headers_sent = True
    ex.content_length = count
    ex.iterator = _blocks(fd, offset, count)
    inline.pump(ex)


def _blocks(fd: int, offset: int, count: int) -> Iterator[bytes]:
    end = offset + count
    while offset < end:
        data = os.pread(fd, min(_READ_BLOCK, end - offset), offset)
        if not data:
            return  # the file shrank: the response is short and the connection closes
        offset += len(data)
        yield data


def error(ex: Exchange, status: int, detail: str, headers: Sequence[tuple[str, str]] = ()) -> None:
    body = f"{status} {_REASONS[status]}\n{detail}\n".encode()
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
    block = f"Content-Type: text/plain; charset=utf-8\r\n{lines}Content-Length: {len(body)}\r\n".encode("latin-1")
    return _write(ex, status, block, b"" if ex.head_only else body)


def _write(ex: Exchange, status: int, block: bytes, body: bytes) -> None:
    ex.code = status
    ex.bytes_out = len(body)
    ex.finish(_head(ex, status, block) + body if body else _head(ex, status, block))


def _head(ex: Exchange, status: int, block: bytes) -> bytes:
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
