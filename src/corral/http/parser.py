"""Sans-I/O request parsing: httptools (llhttp, strict mode) plus the RFC 9112
rules llhttp leaves to the server.

How this works: `feed(data)` pushes bytes through llhttp, whose callbacks fill a
`Request`. A request becomes *ready* (appended to `self.ready`) when its message
is complete, or as soon as its head is complete when the client sent
`Expect: 100-continue` (the app decides whether the body is wanted). Any
violation raises an `HTTPError` carrying its status; after that the parser is
dead (every later `feed` raises the same error) and the connection must close,
so nothing pipelined behind a bad request is ever processed. A body that was
being received when the error struck is failed, so an app reading it wakes up.

llhttp already rejects: Content-Length with Transfer-Encoding, duplicate or
non-digit Content-Length (`+1`, `0x1`, `1_0`), obs-fold, whitespace before the
colon, bare CR/LF, control characters, bad or overflowing chunk sizes, chunked
not last or applied twice. Here we add: the HTTP version, Host
presence/uniqueness/syntax, singleton fields repeated with different values,
HTTP/1.2-1.9 read as 1.1 (llhttp runs with lenient_version, so every other version
is ours to refuse), Transfer-Encoding on HTTP/1.0 and unsupported codings (empty
list elements skipped), CONNECT and Upgrade, `Connection: close` winning over keep-alive,
request-target form, and every size limit. docs/http.md lists each rejection;
tests/data/requests holds one raw request per rule.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from typing import Any

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
# llhttp (with lenient_version) reports any DIGIT.DIGIT; a higher HTTP/1 minor is 1.1
# (RFC 9110 2.5: "the highest minor version ... it supports").
_VERSION_ALIASES = {f"1.{minor}": "1.1" for minor in range(2, 10)}
# Chunk framing can multiply a body's size on the wire (1-byte chunks cost 6 bytes);
# beyond this factor (plus room for a trailer section) the framing itself is the abuse.
_FRAMING_ALLOWANCE = 8
# Head bytes allowed beyond the request-line and field limits (method, version, CRLFs).
_HEAD_SLACK = 4096
# llhttp reasons that mean "a version we do not speak", not "a broken request line".
_VERSION_REASONS = ("Invalid HTTP version", "Pause on PRI/Upgrade")

BodyFactory = Callable[[Request], BodySink]
# Lengths of the field names _check_fields acts on: host, expect, content-length, transfer-encoding.
_SPECIAL_LENGTHS = frozenset((4, 6, 14, 17))
_valid_hosts: set[bytes] = set()  # Host values already checked against _HOST_RE
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}
# Singleton fields a request may carry once (RFC 9110: their grammar is not a list).
# Sent twice with different values they are refused: a proxy that keeps the first and
# an app that keeps the last would read different requests. Host and Content-Length
# are handled above (any repeat is refused); equal repeats of these are collapsed.
_SINGLETONS = frozenset(
    (
        b"authorization",  # 11.6.2
        b"content-location",  # 8.7
        b"content-range",  # 14.4
        b"content-type",  # 8.3
        b"from",  # 10.1.2
        b"if-modified-since",  # 13.1.3
        b"if-range",  # 13.1.5
        b"if-unmodified-since",  # 13.1.4
        b"max-forwards",  # 7.6.2
        b"proxy-authorization",  # 11.7.2
        b"range",  # 14.2
        b"referer",  # 10.1.3
    )
)
_SINGLETON_LENGTHS = frozenset(len(name) for name in _SINGLETONS)


class RequestParser:
    """Parse a connection's byte stream into `Request`s (see module docstring)."""

    __slots__ = (
        "_parser",
        "_limits",
        "_body_factory",
        "_request",
        "_head_bytes",
        "_head_carry",
        "_feed_size",
        "_in_body",
        "_wire_body",
        "_chunks",
        "_error",
        "ready",
        "upgraded",
    )

    def __init__(self, limits: Limits, body_factory: BodyFactory) -> None:
        self._limits = limits
        self._body_factory = body_factory
        self._parser = parser = httptools.HttpRequestParser(self)
        # Both leniencies only widen what llhttp admits to what RFC 9112 allows; the
        # wrapper then decides (docs/http.md, "Where we differ from llhttp"):
        # any DIGIT.DIGIT version reaches on_headers_complete, which maps or refuses it;
        # BWS between a chunk size and its extensions (RFC 9112 7.1.1).
        parser.set_dangerous_leniencies(lenient_version=True, lenient_spaces_after_chunk_size=True)
        self._request: Request | None = None
        # Bytes fed while reading heads: never less than the current head's size
        # (drives the exact field-size check); minus `_head_carry`, never more
        # (drives the guard against a head that never ends).
        self._head_bytes = 0
        self._head_carry = 0
        self._feed_size = 0
        self._in_body = False
        self._wire_body = 0
        self._chunks = 0
        self._error: HTTPError | None = None
        self.ready: deque[Request] = deque()
        # Set when llhttp stopped after an Upgrade request; later bytes are not HTTP.
        self.upgraded = False

    @property
    def mid_request(self) -> bool:
        """True when part of a request has arrived but it is not complete."""
        return self._request is not None

    @property
    def awaiting_head(self) -> bool:
        return not self._in_body

    @property
    def receiving_body(self) -> Request | None:
        """The request whose head is complete and whose body is still arriving."""
        return self._request if self._in_body else None

    def feed(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        if self.upgraded:
            return  # we never switch protocols; the connection closes after the response
        self._feed_size = size = len(data)
        if self._in_body:
            self._wire_body += size
        else:
            self._head_bytes += size
        try:
            self._parser.feed_data(data)
            request = self._request
            if request is not None:
                self._check_progress(request)
        except httptools.HttpParserUpgrade:
            self._upgrade()
        except HTTPError as error:
            self._die(error)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, HTTPError):
                self._die(cause)
            if isinstance(cause, httptools.HttpParserError):  # httptools' own state checks
                self._die(BadRequest(str(cause)))
            raise
        except httptools.HttpParserInvalidMethodError:
            self._die(NotImplementedByServer("unknown request method"))
        except httptools.HttpParserError as exc:
            reason = str(exc)
            self._die(VersionNotSupported(reason) if reason in _VERSION_REASONS else BadRequest(reason))

    def _die(self, error: HTTPError) -> None:
        self._error = error
        request = self._request
        if request is not None and request.body is not None:
            fail = getattr(request.body, "fail", None)
            if fail is not None:
                fail(error)  # a 100-continue app blocked on the body must not wait for a timeout
        raise error from None

    def _upgrade(self) -> None:
        """llhttp stopped after a CONNECT or Upgrade request; we never switch protocols.

        Checked here rather than on every head: llhttp has already completed the
        request (skipping any body) and queued it last, so a refusal unqueues it.
        """
        request = self.ready[-1]
        if request.method == "CONNECT":
            self.ready.pop()
            self._die(NotImplementedByServer("CONNECT is not supported"))
        if request.has_body:
            # llhttp handed the body over as the new protocol's bytes, unread.
            self.ready.pop()
            self._die(NotImplementedByServer("an Upgrade request with a body is not supported"))
        # Answer it as plain HTTP, then close: what follows may not be HTTP.
        request.keep_alive = False
        self.upgraded = True

    def _check_progress(self, request: Request) -> None:
        """After a feed that left a request incomplete: bound what it may still grow to."""
        limits = self._limits
        if not self._in_body:
            if self._head_bytes - self._head_carry > limits.max_request_line + limits.max_header_size + _HEAD_SLACK:
                raise HeaderFieldsTooLarge("request head too large")
        elif self._wire_body > request.received * _FRAMING_ALLOWANCE + limits.max_header_size + 65536:
            raise ContentTooLarge("chunk framing (extensions, trailers) too large for the body it carries")

    # -- llhttp callbacks -------------------------------------------------------

    def on_message_begin(self) -> None:
        self._request = Request()
        self._wire_body = 0
        self._chunks = 0

    def on_url(self, url: bytes) -> None:
        request = self._request
        assert request is not None
        request.target += url
        if len(request.target) > self._limits.max_request_line:
            raise URITooLong(f"request target longer than {self._limits.max_request_line} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        # Counted in on_headers_complete; until then feed() bounds the head's bytes.
        if not self._in_body:  # trailer fields: framing only, never exposed to the app
            # llhttp strips leading OWS but keeps trailing OWS (RFC 9110 5.5: not part of the value).
            self._request.headers.append((name, value.rstrip(b" \t")))  # type: ignore[union-attr]

    def on_headers_complete(self) -> None:
        request = self._request
        assert request is not None
        parser = self._parser
        version = parser.get_http_version()
        if version not in _SUPPORTED_VERSIONS:
            alias = _VERSION_ALIASES.get(version)
            if alias is None:
                raise VersionNotSupported(f"HTTP/{version} is not supported")
            version = alias
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

    def on_chunk_header(self) -> None:
        # Our reading of Transfer-Encoding and llhttp's must agree, or framing is ambiguous.
        if not self._request.chunked:  # type: ignore[union-attr]
            raise BadRequest("chunked framing without Transfer-Encoding: chunked")
        self._chunks += 1

    def on_message_complete(self) -> None:
        request = self._request
        assert request is not None
        self._request = None
        self._in_body = False
        # The rest of this feed may already be the next head: count all of it.
        self._head_bytes = self._head_carry = self._feed_size
        request.complete = True
        body = request.body
        if body is not None:  # every chunked request has one
            if request.chunked and not self._chunks and not self._parser.should_upgrade():
                # (An Upgrade request's body is skipped by llhttp; _upgrade() refuses it.)
                raise BadRequest("Transfer-Encoding: chunked without chunked framing")
            body.finish()
        if not (request.expect_continue and request.has_body):
            self.ready.append(request)

    # -- RFC 9112 rules on top of llhttp ----------------------------------------

    def _check_fields(self, request: Request) -> None:
        limits = self._limits
        host: bytes | None = None
        hosts = 0
        transfer_encoding: bytes | None = None
        singletons: dict[bytes, bytes] | None = None
        # `_head_bytes` never undercounts the head, so below it no exact sum is needed.
        if self._head_bytes > limits.max_header_size:
            size = sum(len(name) + len(value) + 4 for name, value in request.headers)
            if size > limits.max_header_size:
                raise HeaderFieldsTooLarge(f"header fields larger than {limits.max_header_size} bytes")
        for name, value in request.headers:
            size = len(name)
            if size in _SINGLETON_LENGTHS:
                lower = name.lower()
                if lower in _SINGLETONS:
                    if singletons is None:
                        singletons = {lower: value}
                    elif singletons.setdefault(lower, value) != value:
                        raise BadRequest(f"{name.decode('latin-1')} sent twice with different values")
                    continue
            if size not in _SPECIAL_LENGTHS:
                continue  # most fields need no look: skip the lower() for them
            lower = name.lower()
            if lower == b"host":
                hosts += 1
                host = value
            elif lower == b"content-length":
                request.content_length = int(value)  # llhttp admitted digits only
            elif lower == b"transfer-encoding":
                transfer_encoding = value if transfer_encoding is None else transfer_encoding + b"," + value
            elif lower == b"expect":
                # RFC 9110 10.1.1: a server MUST ignore 100-continue from an HTTP/1.0 client.
                if value.lower() == b"100-continue" and request.version == "1.1":
                    request.expect_continue = True
        if request.version == "1.0" and request.keep_alive:
            # RFC 9112 9.6: close wins; llhttp keeps a 1.0 "keep-alive, close" open.
            for name, value in request.headers:
                if name.lower() == b"connection" and b"close" in [t.strip() for t in value.lower().split(b",")]:
                    request.keep_alive = False
        if hosts > 1:
            raise BadRequest("more than one Host header")
        if host is None:
            if request.version == "1.1":
                raise BadRequest("missing Host header")
        elif host not in _valid_hosts:
            if not _HOST_RE.match(host):
                raise BadRequest("malformed Host header")
            if len(_valid_hosts) < 1024:  # clients choose Host values: bounded
                _valid_hosts.add(host)
        request.host = host
        if transfer_encoding is not None:
            if request.version == "1.0":
                # RFC 9112 6.1: faulty framing; a 1.0 intermediary may not understand it.
                raise BadRequest("Transfer-Encoding in an HTTP/1.0 request")
            # RFC 9110 5.6.1: empty list elements do not count (", chunked" is chunked).
            codings = [c for c in (c.strip(b" \t").lower() for c in transfer_encoding.split(b",")) if c]
            if not codings or codings[-1] != b"chunked":
                raise BadRequest("Transfer-Encoding does not end in chunked")
            if len(codings) != 1:
                raise NotImplementedByServer("only the chunked transfer coding is supported")
            request.chunked = True

    def _split_target(self, request: Request) -> None:
        target = request.target
        if 0x23 in target:  # "#", as an int: a memchr, ten times cheaper than b"#" in target
            raise BadRequest("fragment in request target")  # RFC 9112 3.2: never sent
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
                url: Any = httptools.parse_url(target)  # Any: its stub claims fields that may be None
            except httptools.HttpParserInvalidURLError:
                raise BadRequest("malformed absolute request target") from None
            if url.userinfo is not None:
                raise BadRequest("userinfo in request target")  # RFC 9110 4.2.4
            host = url.host or b""
            if not host:
                raise BadRequest("empty host in request target")  # RFC 9110 4.2.1
            # RFC 9112 3.2.2: the authority of an absolute-form target replaces Host.
            authority = b"[" + host + b"]" if b":" in host else host
            if url.port is not None:
                authority += b":%d" % url.port
            if not _HOST_RE.match(authority):
                raise BadRequest("malformed host in request target")
            request.host = authority
            request.absolute_form = True
            request.path = url.path or b"/"
            request.query = url.query or b""
            return
        if request.method == "CONNECT":
            raise NotImplementedByServer("CONNECT is not supported")  # authority-form is CONNECT's
        raise BadRequest("malformed request target")
