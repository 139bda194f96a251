"""Sans-I/O request parsing: httptools (llhttp, strict mode) plus the RFC 9112
rules llhttp leaves to the server.

How this works: `feed(data)` pushes bytes through llhttp, whose callbacks fill a
`Request`. A request becomes *ready* (appended to `self.ready`) when its message
is complete, or as soon as its head is complete when the client sent
`Expect: 100-continue` (the app decides whether the body is wanted). Any
violation raises an `HTTPError` carrying its status; after that the parser is
dead and the connection must close, so nothing pipelined behind a bad request
is ever processed.

llhttp already rejects: Content-Length with Transfer-Encoding, duplicate or
non-digit Content-Length (`+1`, `0x1`, `1_0`), obs-fold, whitespace before the
colon, bare LF, control characters, bad chunk sizes and chunked not last.
Here we add: HTTP version, Host presence/uniqueness/syntax, Transfer-Encoding
on HTTP/1.0 and unsupported codings, request-line/header/body limits, and the
request-target form.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable

import httptools

from .errors import (
    BadRequest,
    ContentTooLarge,
    HeaderFieldsTooLarge,
    HTTPError,
    NotImplementedByServer,
    URITooLong,
    VersionNotSupported,
)
from .limits import Limits
from .request import BodySink, Request

# RFC 3986 host (reg-name or IP-literal) with an optional port; empty is allowed.
_HOST_RE = re.compile(rb"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(:[0-9]*)?\Z")
_SUPPORTED_VERSIONS = ("1.1", "1.0")
# Chunk framing can multiply a body's size on the wire (1-byte chunks cost 6 bytes);
# beyond this factor the framing itself is the abuse.
_FRAMING_ALLOWANCE = 8

BodyFactory = Callable[[Request], BodySink]
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}


class RequestParser:
    """Parse a connection's byte stream into `Request`s (see module docstring)."""

    __slots__ = (
        "_parser",
        "_limits",
        "_body_factory",
        "_request",
        "_header_bytes",
        "_in_body",
        "_wire_body",
        "ready",
        "upgraded",
    )

    def __init__(self, limits: Limits, body_factory: BodyFactory) -> None:
        self._limits = limits
        self._body_factory = body_factory
        self._parser = httptools.HttpRequestParser(self)
        self._request: Request | None = None
        self._header_bytes = 0
        self._in_body = False
        self._wire_body = 0
        self.ready: deque[Request] = deque()
        # Set when llhttp stopped at an Upgrade/CONNECT; no further bytes are parsed.
        self.upgraded = False

    @property
    def mid_request(self) -> bool:
        """True when part of a request has arrived but it is not complete."""
        return self._request is not None

    @property
    def awaiting_head(self) -> bool:
        return not self._in_body

    def feed(self, data: bytes) -> None:
        if self.upgraded:
            return  # we never switch protocols; the connection closes after the response
        if self._in_body:
            self._wire_body += len(data)
            if self._wire_body > self._limits.max_body_size * _FRAMING_ALLOWANCE + 65536:
                raise ContentTooLarge("request body framing exceeds the body size limit")
        else:
            self._header_bytes += len(data)
            if self._header_bytes > self._limits.max_header_size + self._limits.max_request_line + 4096:
                raise HeaderFieldsTooLarge("request head too large")
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            request = self.ready[-1] if self.ready else None
            if request is not None and request.method == "CONNECT":
                raise NotImplementedByServer("CONNECT is not supported") from None
            self.upgraded = True
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, HTTPError):
                raise cause from None
            raise
        except httptools.HttpParserInvalidMethodError:
            raise NotImplementedByServer("unknown request method") from None
        except httptools.HttpParserError as exc:
            message = str(exc)
            if "version" in message.lower():
                raise VersionNotSupported(message) from None
            raise BadRequest(message) from None

    # -- llhttp callbacks -------------------------------------------------------

    def on_message_begin(self) -> None:
        self._request = Request()
        self._header_bytes = 0
        self._wire_body = 0

    def on_url(self, url: bytes) -> None:
        request = self._request
        assert request is not None
        request.target += url
        if len(request.target) > self._limits.max_request_line:
            raise URITooLong(f"request target longer than {self._limits.max_request_line} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        # Counted in on_headers_complete; until then feed() bounds the head's bytes.
        if not self._in_body:  # trailer fields: framing only, never exposed to the app
            self._request.headers.append((name, value))  # type: ignore[union-attr]

    def on_headers_complete(self) -> None:
        request = self._request
        assert request is not None
        parser = self._parser
        version = parser.get_http_version()
        if version not in _SUPPORTED_VERSIONS:
            raise VersionNotSupported(f"HTTP/{version} is not supported")
        request.version = version
        method = parser.get_method()
        request.method = _METHODS.get(method) or method.decode("ascii")
        if not parser.should_keep_alive():
            request.keep_alive = False
        if len(request.headers) > self._limits.max_headers:
            raise HeaderFieldsTooLarge(f"more than {self._limits.max_headers} header fields")
        self._check_fields(request)
        self._split_target(request)
        self._in_body = True
        if request.has_body:
            if request.content_length is not None and request.content_length > self._limits.max_body_size:
                raise ContentTooLarge(f"body larger than {self._limits.max_body_size} bytes")
            request.body = self._body_factory(request)
            if request.expect_continue:
                self.ready.append(request)

    def on_body(self, data: bytes) -> None:
        request = self._request
        assert request is not None and request.body is not None
        request.received += len(data)
        if request.received > self._limits.max_body_size:
            raise ContentTooLarge(f"body larger than {self._limits.max_body_size} bytes")
        request.body.write(data)

    def on_message_complete(self) -> None:
        request = self._request
        assert request is not None
        self._request = None
        self._in_body = False
        self._header_bytes = 0
        request.complete = True
        if request.body is not None:
            request.body.finish()
        if not (request.expect_continue and request.has_body):
            self.ready.append(request)

    # -- RFC 9112 rules on top of llhttp ----------------------------------------

    def _check_fields(self, request: Request) -> None:
        host: bytes | None = None
        hosts = 0
        transfer_encoding: bytes | None = None
        # Exact field sizes matter only when the head's bytes could exceed the limit.
        if self._header_bytes > self._limits.max_header_size:
            size = sum(len(name) + len(value) + 4 for name, value in request.headers)
        else:
            size = 0
        for name, value in request.headers:
            lower = name.lower()
            if lower == b"host":
                hosts += 1
                host = value
            elif lower == b"content-length":
                request.content_length = int(value)  # llhttp admitted digits only
            elif lower == b"transfer-encoding":
                transfer_encoding = value if transfer_encoding is None else transfer_encoding + b"," + value
            elif lower == b"expect":
                if value.strip().lower() == b"100-continue":
                    request.expect_continue = True
        if size > self._limits.max_header_size:
            raise HeaderFieldsTooLarge(f"header fields larger than {self._limits.max_header_size} bytes")
        if hosts > 1:
            raise BadRequest("more than one Host header")
        if host is None:
            if request.version == "1.1":
                raise BadRequest("missing Host header")
        elif not _HOST_RE.match(host):
            raise BadRequest("malformed Host header")
        request.host = host
        if transfer_encoding is not None:
            if request.version == "1.0":
                # RFC 9112 6.1: faulty framing; a 1.0 intermediary may not understand it.
                raise BadRequest("Transfer-Encoding in an HTTP/1.0 request")
            codings = [c.strip().lower() for c in transfer_encoding.split(b",")]
            if codings[-1] != b"chunked":
                raise BadRequest("Transfer-Encoding does not end in chunked")
            if len(codings) != 1:
                raise NotImplementedByServer("only the chunked transfer coding is supported")
            request.chunked = True

    def _split_target(self, request: Request) -> None:
        target = request.target
        if target[:1] == b"/":
            path, sep, query = target.partition(b"?")
            request.path = path
            request.query = query
            return
        if target == b"*" and request.method == "OPTIONS":
            request.path = b"*"
            return
        if target[:7].lower() == b"http://" or target[:8].lower() == b"https://":
            try:
                url = httptools.parse_url(target)
            except httptools.HttpParserInvalidURLError:
                raise BadRequest("malformed absolute request target") from None
            # RFC 9112 3.2.2: the authority of an absolute-form target replaces Host.
            authority = url.host or b""
            if url.port is not None:
                authority += b":%d" % url.port
            request.host = authority
            request.path = url.path or b"/"
            request.query = url.query or b""
            return
        raise BadRequest("malformed request target")
