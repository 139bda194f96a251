"""Sans-I/O HTTP/2 messages: a stream's header block -> Request, a response head -> HEADERS.

How this works: `build_request` reads the decoded header list of one stream once, and
refuses what RFC 9113 8.2-8.3 call malformed (uppercase or non-token names, CR, LF or NUL
in a value or whitespace around it, pseudo-headers unknown, repeated or after a regular
field, connection-specific fields, `te` other than `trailers`, :method, :scheme or :path
missing) with the server's own rules on top, the ones HTTP/1 requests get from the
parser: the size limits, a Content-Length we can trust, `:authority` and Host agreeing.
A refusal is an HTTPError: the stream is answered with its status, then reset (8.1.1
lets a server answer a malformed request before the reset). The Request it returns is
the one HTTP/1 builds (version "2"), so wsgi/environ.py makes the same PEP 3333 environ:
`:authority` is HTTP_HOST, several `cookie` fields are joined with "; " as one Cookie header.

The response goes the other way: the exchange frames it with wsgi/response.py as for
HTTP/1 (version "2": no chunking, no Connection header), and `response_headers` reads
that head back into the (name, value) list of a HEADERS frame, lowercased. The head
was built and checked by us (no CR or LF inside a value), so reading it back is exact.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

from .errors import BadRequest, ContentTooLarge, HeaderFieldsTooLarge, NotImplementedByServer, URITooLong
from .h2_hpack import encode_fields
from .limits import Limits
from .request import Request

HEAD_END: Final = b"\r\n\r\n"
# What an HTTP/1.1 request asking for h2c carries that the HTTP/2 request may not (RFC 9113 8.2.2).
_UPGRADE_FIELDS: Final = frozenset((b"connection", b"upgrade", b"http2-settings", b"keep-alive", b"proxy-connection"))
# Fields that only mean something to one HTTP/1.1 hop (RFC 9113 8.2.2): malformed in HTTP/2.
_CONNECTION_FIELDS: Final = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
# What a field name may be made of in HTTP/2: a lowercase token (RFC 9110 5.6.2, RFC 9113 8.2.1).
_NAME_BYTES: Final = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
# What a field value may not contain (RFC 9113 8.2.1), and may not start or end with.
_VALUE_BYTES: Final = bytes(b for b in range(256) if b not in (0, 10, 13))
_EDGES: Final = (32, 9)
# Fields that passed those checks: a client sends the same fields again and again (HPACK
# hands back the same objects for them), so each is checked once; bounded, then unchecked
# fields are simply checked every time.
_GOOD_FIELDS: Final[set[tuple[bytes, bytes]]] = set()
_GOOD_FIELDS_SIZE: Final = 4096


def build_request(headers: list[tuple[bytes, bytes]], limits: Limits) -> Request:
    """The Request of one stream's header block; raises an HTTPError that carries its status."""
    request = Request()
    request.version = "2"
    method = path = authority = b""
    fields = request.headers
    size = 0
    host: bytes | None = None
    scheme = b""
    pseudo = True  # pseudo-header fields come first (RFC 9113 8.3)
    for field in headers:
        name, value = field
        size += len(name) + len(value)
        if field not in _GOOD_FIELDS:
            _check_field(name, value)
            if len(_GOOD_FIELDS) < _GOOD_FIELDS_SIZE:
                _GOOD_FIELDS.add(field)
        if name[:1] == b":":
            if not pseudo:
                raise BadRequest("a pseudo-header field after a regular field")
            if name == b":method":
                if method:
                    raise BadRequest("two :method fields")
                method = value
            elif name == b":path":
                if path:
                    raise BadRequest("two :path fields")
                path = value
            elif name == b":authority":
                if authority:
                    raise BadRequest("two :authority fields")
                authority = value
            elif name == b":scheme":
                if scheme:
                    raise BadRequest("two :scheme fields")
                scheme = value  # the connection's own (TLS or not) is what the environ says
            else:
                raise BadRequest(f"the pseudo-header {name.decode('latin-1')} in a request")
            continue
        pseudo = False
        if name in _CONNECTION_FIELDS:
            raise BadRequest(f"the connection-specific field {name.decode('latin-1')}")
        if name == b"te" and value != b"trailers":
            raise BadRequest("te other than trailers")
        if name == b"host":
            if host is not None and host != value:
                raise BadRequest("two different Host fields")
            host = value
            continue  # one Host is added below, from :authority when present
        if name == b"content-length":
            _content_length(request, value, limits)
        fields.append((name, value))
    if len(fields) > limits.max_headers:
        raise HeaderFieldsTooLarge(f"more than {limits.max_headers} header fields")
    if size > limits.max_header_size:
        raise HeaderFieldsTooLarge(f"header block larger than {limits.max_header_size} bytes")
    if method == b"CONNECT":
        raise NotImplementedByServer("CONNECT is not supported")
    if not method or not path or not scheme:
        raise BadRequest("a request needs :method, :scheme and :path")
    if len(path) > limits.max_request_line:
        raise URITooLong(f"request target longer than {limits.max_request_line} bytes")
    if path[:1] != b"/" and not (path == b"*" and method == b"OPTIONS"):
        raise BadRequest("the :path is not an absolute path")
    if authority and host is not None and host != authority:
        # RFC 9113 8.3.1: the two must name the same origin, or a proxy and the app disagree.
        raise BadRequest("Host differs from :authority")
    host = authority or host
    if host is not None:
        request.host = host
        fields.append((b"host", host))
    request.method = method.decode("latin-1")
    request.target = path
    request.path, _, request.query = path.partition(b"?")
    return request


def _check_field(name: bytes, value: bytes) -> None:
    if value and (value.translate(None, _VALUE_BYTES) or value[0] in _EDGES or value[-1] in _EDGES):
        raise BadRequest("a field value with CR, LF, NUL or surrounding whitespace")
    if name[:1] != b":" and (not name or name.translate(None, _NAME_BYTES)):
        raise BadRequest("a field name that is not a lowercase token")


def _content_length(request: Request, value: bytes, limits: Limits) -> None:
    if not value.isdigit() or (request.content_length is not None and int(value) != request.content_length):
        raise BadRequest("invalid Content-Length")
    request.content_length = int(value)
    if request.content_length > limits.max_body_size:
        raise ContentTooLarge(f"body larger than {limits.max_body_size} bytes")


def response_headers(head: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
    """The status and header fields of a head that wsgi/response.py built (HTTP/1 syntax)."""
    lines = head.split(b"\r\n")
    status = lines[0].split(b" ", 2)[1]
    headers = [(b":status", status)]
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(b": ")
            name = name.lower()
            if name not in _CONNECTION_FIELDS:  # (an error page's Connection: close)
                headers.append((name, value))
    return int(status), headers


# Response heads seen lately -> their HPACK blocks. Apps send the same few heads (the Date
# line changes once a second), and the encoder keeps no state, so a block can be reused.
_BLOCKS: Final[dict[bytes, bytes]] = {}
_BLOCKS_SIZE: Final = 512


def response_block(head: bytes) -> bytes:
    """The HPACK block (without a table size update) of a head wsgi/response.py built."""
    block = _BLOCKS.get(head)
    if block is None:
        block = encode_fields(response_headers(head)[1])
        if len(_BLOCKS) >= _BLOCKS_SIZE:
            _BLOCKS.clear()
        _BLOCKS[head] = block
    return block


def upgrade_settings(request: Request) -> bytes | None:
    """The HTTP2-Settings of an HTTP/1.1 request that asks to switch to h2c (RFC 7540 3.2), else None.

    It must name h2c in Upgrade, list both Upgrade and HTTP2-Settings in Connection, and
    carry exactly one HTTP2-Settings: base64url of whole SETTINGS entries (6 bytes each).
    A request that does not qualify is simply answered over HTTP/1.1.
    """
    if request.version != "1.1" or request.has_body:
        return None
    upgrade = False
    connection: set[bytes] = set()
    settings: list[bytes] = []
    for name, value in request.headers:
        lower = name.lower()
        if lower == b"upgrade":
            upgrade = upgrade or b"h2c" in {token.strip().lower() for token in value.split(b",")}
        elif lower == b"connection":
            connection.update(token.strip().lower() for token in value.split(b","))
        elif lower == b"http2-settings":
            settings.append(value.strip())
    if not upgrade or not {b"upgrade", b"http2-settings"} <= connection or len(settings) != 1:
        return None
    try:
        payload = base64.b64decode(settings[0], altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None
    return settings[0] if len(payload) % 6 == 0 else None


def upgraded_request(request: Request) -> Request:
    """The upgrade request as stream 1's (RFC 7540 3.2): HTTP/2, without the upgrade's fields."""
    request.version = "2"
    request.headers = [(name, value) for name, value in request.headers if name.lower() not in _UPGRADE_FIELDS]
    request.keep_alive = True
    return request


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113 3.4
_PREFACE_HEAD = len(b"PRI * HTTP/2.0\r\n\r\n")  # what the HTTP/1 parser reads as a request head


def preface_bytes(data: bytes) -> bytes | None:
    """The connection's bytes so far, when `data` completed the preface's head; else None.

    The HTTP/1 parser recognises `PRI * HTTP/2.0` once its head is complete; what came
    before `data` was then the start of the preface, and is not kept by the parser.
    """
    for before in range(_PREFACE_HEAD):
        rest = PREFACE[before:]
        if len(data) >= _PREFACE_HEAD - before and data[: len(rest)] == rest[: len(data)]:
            return PREFACE[:before] + data
    return None
