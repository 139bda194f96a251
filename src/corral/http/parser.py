"""Sans-I/O request parsing: httptools (llhttp, strict mode) plus the RFC 9112
rules llhttp leaves to the server.

How this works: `feed(data)` finds each head itself (framing.py: strict CRLF, a head
ends at the first CRLFCRLF), checks its request line, and gives llhttp the head,
whose callbacks fill a `Request`; then the body is counted (Content-Length, through
llhttp) or decoded by framing.ChunkedDecoder. A request becomes *ready* (appended to
`self.ready`) when its message is complete, or as soon as its head is complete when
the client sent `Expect: 100-continue` (the app decides whether the body is wanted).
Any violation raises an `HTTPError` carrying its status; after that the parser is
dead (every later `feed` raises the same error) and the connection must close, so
nothing pipelined behind a bad request is ever processed. A body that was being
received when the error struck is failed, so an app reading it wakes up.

llhttp rejects: Content-Length with Transfer-Encoding, duplicate or non-digit
Content-Length (`+1`, `0x1`, `1_0`), obs-fold, whitespace before the colon, bare
CR/LF, control characters in fields and target. framing.py: method tokens, the
protocol name, chunk sizes and extensions, trailers. Here we add: the HTTP version,
Host presence/uniqueness/syntax, singleton fields repeated with different values,
HTTP/1.2-1.9 read as 1.1 (llhttp runs with lenient_version, so every other version
is ours to refuse), Transfer-Encoding on HTTP/1.0 and unsupported codings (empty
list elements skipped), CONNECT and Upgrade, `Connection: close` winning over
keep-alive, request-target form, and every size limit. docs/http.md lists each
rejection; tests/data/requests holds one raw request per rule.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from typing import Any, Final

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
from .framing import (
    ChunkedDecoder,
    check_partial_line,
    find_bare_cr_lf,
    percent_encode_high_bytes,
    request_line,
    without_empty_te_elements,
    without_h2c_upgrade,
)
from .limits import Limits
from .request import BodySink, Request

# RFC 3986 host (reg-name or IP-literal) with an optional port; empty is allowed.
_HOST_RE: Final = re.compile(rb"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(:[0-9]*)?\Z")
_SUPPORTED_VERSIONS: Final = ("1.1", "1.0")
# llhttp (with lenient_version) reports any DIGIT.DIGIT; a higher HTTP/1 minor is 1.1
# (RFC 9110 2.5: "the highest minor version ... it supports").
_VERSION_ALIASES: Final = {f"1.{minor}": "1.1" for minor in range(2, 10)}
# What the parser is reading: a head, a Content-Length body, a chunked body.
# (Final: mypyc inlines them, where plain globals are a dict lookup each use.)
_HEAD: Final = 0
_LENGTH: Final = 1
_CHUNKED: Final = 2
# llhttp's reason for `Transfer-Encoding: chunked,` (see without_empty_te_elements).
_TE_REASON: Final = "Invalid `Transfer-Encoding` header value"
# Head bytes allowed beyond the request-line and field limits (method, version, CRLFs).
_HEAD_SLACK: Final = 4096
# llhttp reasons that mean "a version we do not speak", not "a broken request line".
_VERSION_REASONS: Final = ("Invalid HTTP version", "Pause on PRI/Upgrade")

BodyFactory = Callable[[Request], BodySink]
_valid_hosts: Final[set[bytes]] = set()  # Host values already checked against _HOST_RE
_METHODS: Final = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}
# Singleton fields a request may carry once (RFC 9110: their grammar is not a list).
# Sent twice with different values they are refused: a proxy that keeps the first and
# an app that keeps the last would read different requests. Host and Content-Length
# are handled above (any repeat is refused); equal repeats of these are collapsed.
_SINGLETONS: Final = frozenset(
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
# What _check_fields must look at, by field-name length (a byte per length: cheaper
# than a set lookup): 1, the length of a singleton; 2, of host, expect, content-length
# or transfer-encoding. Names of every other length are skipped without a lower().
_SINGLETON_LENGTH: Final = 1
_SPECIAL_LENGTH: Final = 2
_FIELD_LENGTHS: Final = bytes(
    (_SINGLETON_LENGTH if any(len(name) == size for name in _SINGLETONS) else 0)
    | (_SPECIAL_LENGTH if size in (4, 6, 14, 17) else 0)
    for size in range(max(len(name) for name in _SINGLETONS) + 1)
)
# The versions a fast-path request line may end with, as llhttp reports them.
_LINE_VERSIONS: Final = {b" HTTP/1.1": "1.1", b" HTTP/1.0": "1.0"}
_SHORTEST_FAST_HEAD: Final = len(b"GET / HTTP/1.1\r\n\r\n")


class RequestParser:
    """Parse a connection's byte stream into `Request`s (see module docstring)."""

    __slots__ = (
        "_parser",
        "_limits",
        "_body_factory",
        "_request",
        "_phase",
        "_remaining",
        "_decoder",
        "_buf",
        "_scanned",
        "_head_size",
        "_version",
        "_max_target",
        "_max_headers",
        "_error",
        "ready",
        "upgraded",
    )

    def __init__(self, limits: Limits, body_factory: BodyFactory) -> None:
        self._limits = limits
        self._body_factory = body_factory
        self._parser = self._new_llhttp()
        self._request: Request | None = None
        self._phase = _HEAD
        self._remaining = 0  # Content-Length bytes still to come
        self._decoder: ChunkedDecoder | None = None
        # Bytes received but not yet consumed: part of a head, or an unfinished chunk line.
        self._buf = bytearray()
        self._scanned = 0  # how much of a partial head in _buf was already searched
        self._head_size = 0
        # The version read off a fast-path request line; "" when llhttp is to be asked.
        self._version = ""
        # Limits is frozen (and not compiled): read once, not per request.
        self._max_target = limits.max_request_line
        self._max_headers = limits.max_headers
        self._error: HTTPError | None = None
        self.ready: deque[Request] = deque()
        # Set when llhttp stopped after an Upgrade request; later bytes are not HTTP.
        self.upgraded = False

    def _new_llhttp(self) -> httptools.HttpRequestParser:
        # This class has no on_body on purpose: httptools would copy every body piece into
        # new bytes for it. _consume hands the body to the sink itself, from the read.
        parser = httptools.HttpRequestParser(self)
        # Any DIGIT.DIGIT version reaches on_headers_complete, which maps or refuses it
        # (docs/http.md, "Where we differ from llhttp").
        parser.set_dangerous_leniencies(lenient_version=True)
        return parser

    @property
    def mid_request(self) -> bool:
        """True when part of a request has arrived but it is not complete."""
        return self._request is not None or len(self._buf) > 0

    @property
    def awaiting_head(self) -> bool:
        return self._phase == _HEAD

    @property
    def receiving_body(self) -> Request | None:
        """The request whose head is complete and whose body is still arriving."""
        return self._request if self._phase != _HEAD else None

    def feed(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        if self.upgraded:
            return  # we never switch protocols; the connection closes after the response
        buf = self._buf
        try:
            if buf:
                buf += data
                if self._phase == _HEAD and not self._head_arrived(buf):
                    return
                data = bytes(buf)
                buf.clear()
            pos = self._consume(data)
            if pos < len(data) and not self.upgraded:
                buf += data[pos:]
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
        self._buf.clear()
        request = self._request
        if request is not None and request.body is not None:
            fail = getattr(request.body, "fail", None)
            if fail is not None:
                fail(error)  # a 100-continue app blocked on the body must not wait for a timeout
        raise error from None

    # -- framing: heads found here, bodies counted or decoded here ---------------

    def _consume(self, data: bytes) -> int:
        """Process data from its start; returns how much of it was used."""
        pos = 0
        end = len(data)
        while pos < end:
            phase = self._phase
            if phase == _HEAD:
                # RFC 9112 2.2: empty lines before a request line are ignored (llhttp
                # skips CR and LF alike there).
                while data[pos] == 13 or data[pos] == 10:
                    pos += 1
                    if pos == end:
                        return pos
                stop = data.find(b"\r\n\r\n", pos) if pos else data.find(b"\r\n\r\n")  # no start: cheaper call
                if stop < 0:
                    self._partial_head(data, pos, pos)
                    self._scanned = end - pos
                    return pos
                stop += 4
                if not self._fast_head(data, pos, stop):
                    self._head(self._begin(data, pos, stop))
                pos = stop
                if self.upgraded:
                    return end
            elif phase == _LENGTH:
                take = min(self._remaining, end - pos)
                request = self._request
                assert request is not None and request.body is not None
                request.received += take  # within Content-Length, checked on the head
                if take == end:  # the common case of a large body: the read itself, not a copy
                    request.body.write(data)
                    self._parser.feed_data(data)
                else:
                    request.body.write(data[pos : pos + take])
                    # llhttp only counts these bytes (no on_body: the body went above).
                    self._parser.feed_data(memoryview(data)[pos : pos + take])
                pos += take
                self._remaining -= take
                if not self._remaining:
                    self._complete()
            else:
                decoder = self._decoder
                assert decoder is not None
                pos = decoder.feed(data, pos)
                if not decoder.done:
                    return pos
                self._parser.feed_data(b"0\r\n\r\n")  # llhttp back at the start of a message
                self._decoder = None
                self._complete()
        return pos

    def _head_arrived(self, buf: bytearray) -> bool:
        """A partial head grew: True once it is complete, else bound and check it."""
        scanned = self._scanned
        if buf.find(b"\r\n\r\n", scanned - 3 if scanned > 3 else 0) >= 0:
            return True
        self._partial_head(buf, 0, scanned)
        self._scanned = len(buf)
        return False

    def _partial_head(self, buffered: bytes | bytearray, start: int, scan_from: int) -> None:
        """Checks on a head that has not ended yet, so bad ones need not wait for more."""
        limits = self._limits
        check_partial_line(buffered, start, limits.max_request_line)
        if len(buffered) - start > limits.max_request_line + limits.max_header_size + _HEAD_SLACK:
            raise HeaderFieldsTooLarge("request head too large")
        if scan_from > start and buffered[scan_from - 1] == 13:
            scan_from -= 1  # that CR's LF may be the first new byte
        if find_bare_cr_lf(buffered, scan_from):
            # RFC 9112 2.2. llhttp names the fault, as it would in a complete head.
            head = bytes(buffered[start:])
            if head.find(b"\n") >= 0:
                self._head(self._begin(head, 0, len(head)))
            raise BadRequest("bare CR or LF in the request head")

    def _fast_head(self, data: bytes, pos: int, stop: int) -> bool:
        """Start and parse the head data[pos:stop] if it is the common kind; else False.

        The common kind: one of _METHODS, a target of printable ASCII, ` HTTP/1.1` or
        ` HTTP/1.0`, the line ended by CRLF: what _begin's own fast path takes, read
        with fewer calls (bytes methods taking a start offset cost as much as the
        search). Any other head returns False having changed nothing, and goes the
        careful way through _begin.
        """
        if stop - pos < _SHORTEST_FAST_HEAD:
            return False
        size = 3  # the shortest method; the longest (OPTIONS) has 7 letters
        while data[pos + size] != 32:
            size += 1
            if size > 7:
                return False
        method = _METHODS.get(data[pos : pos + size])
        if method is None:
            return False
        eol = data.find(b"\r\n", pos) if pos else data.find(b"\r\n")
        start = pos + size + 1
        if eol - 9 <= start:  # no room for a target and the version (checked first:
            return False  # a negative slice start means something else, compiled or not)
        version = _LINE_VERSIONS.get(data[eol - 9 : eol])
        if version is None:
            return False
        target = data[start : eol - 9]
        # A space or LF in it would split the line elsewhere; other bytes < 0x20 and DEL
        # are llhttp's to refuse (as on _begin's fast path); >= 0x80 go the careful way.
        if 32 in target or 10 in target or not target.isascii():
            return False
        if len(target) > self._max_target:
            raise URITooLong(f"request target longer than {self._max_target} bytes")
        request = Request()
        request.method = method
        request.target = target
        self._request = request
        self._head_size = stop - pos
        self._version = version
        self._head(data if pos == 0 and stop == len(data) else data[pos:stop])
        return True

    def _begin(self, data: bytes, pos: int, stop: int) -> bytes:
        """Start the request whose head is data[pos:stop]; returns the head llhttp sees."""
        lf = data.find(b"\n", pos, stop)
        eol = lf - 1 if data[lf - 1] == 13 else lf
        line = data[pos:eol]
        parts = line.split(b" ")
        max_target = self._max_target
        self._version = ""  # llhttp reads the version
        method: str | None = None
        target = b""
        if len(parts) == 3:
            method = _METHODS.get(parts[0])
            target = parts[1]
        if method is not None and parts[2].startswith(b"HTTP/") and target.isascii():
            # The fast path: `GET /x HTTP/1.1`, which llhttp reads as we do.
            if len(target) > max_target:
                raise URITooLong(f"request target longer than {max_target} bytes")
            head = data if pos == 0 and stop == len(data) else data[pos:stop]
        else:
            raw_method, target, llhttp_line = request_line(line, max_target)
            method = _METHODS.get(raw_method) or raw_method.decode("ascii")
            head = llhttp_line + data[eol:stop]
        request = Request()
        request.method = method
        request.target = target
        self._request = request
        self._head_size = stop - pos
        return head

    def _head(self, head: bytes, retried: bool = False) -> None:
        """Give llhttp one head; on_headers_complete decides the body's framing."""
        request = self._request
        assert request is not None
        try:
            self._parser.feed_data(head)
        except httptools.HttpParserUpgrade:
            fixed = without_h2c_upgrade(head) if request.has_body and not retried else None
            if fixed is None:
                self._upgrade(request)
                return
            if self.ready and self.ready[-1] is request:
                self.ready.pop()
        except httptools.HttpParserError as exc:
            fixed = None
            if type(exc) is httptools.HttpParserError and str(exc) == _TE_REASON and not retried:
                fixed = without_empty_te_elements(head)
            if fixed is None:
                raise
        else:
            if self._phase == _HEAD and self._request is request:
                raise BadRequest("malformed request head")  # llhttp saw no end of it
            return
        # Outside the except block, so errors from the retry keep their own context.
        self._parser = self._new_llhttp()
        request.headers.clear()
        self._head(fixed, True)

    def _complete(self) -> None:
        request = self._request
        assert request is not None
        self._request = None
        self._phase = _HEAD
        request.complete = True
        body = request.body
        if body is not None:
            body.finish()
        if not (request.expect_continue and request.has_body):
            self.ready.append(request)

    def _upgrade(self, request: Request) -> None:
        """llhttp stopped after a CONNECT or Upgrade request; we never switch protocols."""
        if request.method == "CONNECT" or request.has_body:
            if self.ready and self.ready[-1] is request:
                self.ready.pop()
            if request.method == "CONNECT":
                raise NotImplementedByServer("CONNECT is not supported")
            # llhttp would hand the body over as the new protocol's bytes, unread.
            raise NotImplementedByServer("an Upgrade request with a body is not supported")
        # Answered as plain HTTP (on_headers_complete queued it), then closed: what
        # follows may not be HTTP.
        request.keep_alive = False
        self.upgraded = True

    # -- llhttp callbacks -------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp strips leading OWS but keeps trailing OWS (RFC 9110 5.5: not part of the value).
        if value and (value[-1] == 32 or value[-1] == 9):  # rarely: skip the call
            value = value.rstrip(b" \t")
        request = self._request
        assert request is not None  # narrowed, so mypyc appends to a known list
        request.headers.append((name, value))

    def on_headers_complete(self) -> None:
        request = self._request
        assert request is not None
        parser = self._parser
        # get_http_version formats a new str each time: a tenth of a short request's cost.
        version = self._version or parser.get_http_version()
        if version not in _SUPPORTED_VERSIONS:
            alias = _VERSION_ALIASES.get(version)
            if alias is None:
                raise VersionNotSupported(f"HTTP/{version} is not supported")
            version = alias
        request.version = version
        if not parser.should_keep_alive():
            request.keep_alive = False
        if len(request.headers) > self._max_headers:
            raise HeaderFieldsTooLarge(f"more than {self._max_headers} header fields")
        self._check_fields(request)
        self._split_target(request)
        if not request.has_body:
            self._complete()
            return
        if request.chunked:
            self._phase = _CHUNKED
            self._decoder = ChunkedDecoder(request, self._limits)
        else:
            length = request.content_length
            assert length is not None
            if length > self._limits.max_body_size:
                raise ContentTooLarge(f"body larger than {self._limits.max_body_size} bytes")
            self._phase = _LENGTH
            self._remaining = length
        request.body = self._body_factory(request)
        if request.expect_continue:
            self.ready.append(request)

    # -- RFC 9112 rules on top of llhttp ----------------------------------------

    def _check_fields(self, request: Request) -> None:
        limits = self._limits
        host: bytes | None = None
        hosts = 0
        transfer_encoding: bytes | None = None
        singletons: dict[bytes, bytes] | None = None
        # The head's size bounds the fields' size, so below it no exact sum is needed.
        if self._head_size > limits.max_header_size:
            size = sum(len(name) + len(value) + 4 for name, value in request.headers)
            if size > limits.max_header_size:
                raise HeaderFieldsTooLarge(f"header fields larger than {limits.max_header_size} bytes")
        for name, value in request.headers:
            size = len(name)
            kind = _FIELD_LENGTHS[size] if size < len(_FIELD_LENGTHS) else 0
            if not kind:
                continue  # most fields need no look: skip the lower() for them
            if kind & _SINGLETON_LENGTH:
                lower = name.lower()
                if lower in _SINGLETONS:
                    if singletons is None:
                        singletons = {lower: value}
                    elif singletons.setdefault(lower, value) != value:
                        raise BadRequest(f"{name.decode('latin-1')} sent twice with different values")
                    continue
            if not kind & _SPECIAL_LENGTH:
                continue
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
            if not target.isascii():  # parse_url refuses raw bytes >= 0x80; %XX decodes the same
                target = percent_encode_high_bytes(target)
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
