"""Message framing that llhttp does not expose: request lines and chunked bodies.

How this works: `RequestParser` finds each head itself (strict CRLF, ends at the
first CRLFCRLF) and hands llhttp only heads plus Content-Length bodies. This module
holds the two pieces that need more than llhttp offers:

- `request_line` checks a request line that is not on the parser's fast path (a
  method outside the common seven, raw bytes >= 0x80 in the target, extra spaces,
  anything that is not plainly `METHOD SP /target SP HTTP/x.y`) and returns the line
  llhttp should see: a well-formed method llhttp does not know is replaced by GET
  (same body framing: for requests llhttp frames every method but CONNECT alike;
  CONNECT reaches llhttp as it is, and the HTTP/2 preface is answered here),
  and bytes >= 0x80 in the target are percent-encoded, so llhttp still rejects
  control characters and spaces there. The Request keeps the client's own method
  and target.
- `ChunkedDecoder` decodes a chunked body by RFC 9112 7.1 exactly: chunk sizes of
  at most 16 hex digits, extensions with BWS and quoted values (accepted, bounded,
  ignored), a 413 as soon as a size line announces more than --max-body-size, and
  trailer fields checked and dropped. llhttp is then given `0 CRLF CRLF` so its
  state returns to the start of the next message.
"""

from __future__ import annotations

import re
from typing import Final

from .errors import BadRequest, ContentTooLarge, HTTP2Preface, URITooLong
from .limits import Limits
from .request import Request

_TCHAR: Final = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_TOKEN_RE: Final = re.compile(_TCHAR + rb"+\Z")
_HIGH_BYTE_RE: Final = re.compile(rb"[\x80-\xff]")

# chunk = chunk-size [ chunk-ext ] CRLF; chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ).
# A trailing BWS before CRLF is also admitted, as llhttp's lenient_spaces_after_chunk_size
# did: no other reading of the size exists.
_QUOTED: Final = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_CHUNK_LINE_RE: Final = re.compile(
    rb"([0-9A-Fa-f]+)(?:[ \t]*;[ \t]*"
    + _TCHAR
    + rb"+(?:[ \t]*=[ \t]*(?:"
    + _TCHAR
    + rb"+|"
    + _QUOTED
    + rb"))?)*[ \t]*\r\n\Z"
)
_TRAILER_LINE_RE: Final = re.compile(_TCHAR + rb"+:[\t\x20-\x7e\x80-\xff]*\r\n\Z")
# A size line with its extensions: far beyond what any client sends, small enough that
# a line trickled in byte by byte costs little to rescan.
_MAX_CHUNK_LINE: Final = 4096
# Chunk framing can multiply a body's size on the wire (1-byte chunks cost 6 bytes);
# beyond this factor (plus room for a trailer section) the framing itself is the abuse.
_FRAMING_ALLOWANCE: Final = 8
# ChunkedDecoder states: a size line, chunk data, the CRLF after it, trailer lines.
_SIZE: Final = 0
_DATA: Final = 1
_DATA_END: Final = 2
_TRAILERS: Final = 3
_MAX_HEX_DIGITS: Final = 16  # a 64-bit size, as llhttp allows; more is an overflow (400, not 413)


def request_line(line: bytes, max_target: int) -> tuple[bytes, bytes, bytes]:
    """Check a request line off the fast path: (method, target, line for llhttp).

    A two-part line (`GET /`, HTTP/0.9) goes to llhttp, which answers it (505 or 400).
    """
    parts = [part for part in line.split(b" ") if part]
    _check_target_length(parts, max_target)
    if line[:1] == b" " or line[-1:] == b" ":
        raise BadRequest("whitespace at the edge of the request line")
    if len(parts) not in (2, 3):
        raise BadRequest("malformed request line")
    method, target = parts[0], parts[1]
    if not _TOKEN_RE.match(method):
        raise BadRequest("request method is not a token")  # RFC 9110 9.1
    if len(parts) == 3:
        version = parts[2]
        if version[:5] != b"HTTP/":
            # RFC 9112 2.3: HTTP-name is "HTTP", case-sensitive; llhttp also takes RTSP and ICE.
            raise BadRequest("not an HTTP request line")
        if method == b"PRI" and version == b"HTTP/2.0":
            raise HTTP2Preface("the HTTP/2 connection preface: HTTP/2 is not enabled here")
    llhttp_method = b"CONNECT" if method == b"CONNECT" else b"GET"
    llhttp_target = target if target.isascii() else percent_encode_high_bytes(target)
    return method, target, b" ".join([llhttp_method, llhttp_target, *parts[2:]])


def _check_target_length(parts: list[bytes], max_target: int) -> None:
    if len(parts) >= 2 and len(parts[1]) > max_target:
        raise URITooLong(f"request target longer than {max_target} bytes")


def percent_encode_high_bytes(target: bytes) -> bytes:
    """Bytes >= 0x80 as %XX: what llhttp's URL rules accept, and unquote() the same."""
    return _HIGH_BYTE_RE.sub(_percent_encode, target)


def _percent_encode(match: re.Match[bytes]) -> bytes:
    return b"%%%02X" % match.group()[0]


def check_partial_line(buffered: bytes | bytearray, start: int, max_target: int) -> None:
    """A head that has not ended: refuse its request line once it is certainly too long.

    Gives the answer the complete head would get (414), without waiting for it.
    """
    lf = buffered.find(b"\n", start)
    if lf >= 0:
        if lf - start > max_target:  # only then can the target be too long
            _check_target_length([p for p in bytes(buffered[start:lf]).split(b" ") if p], max_target)
        return
    space = buffered.find(b" ", start)
    # What follows the first space is the target plus at most " HTTP/x.y"; the slack
    # keeps this early answer equal to the one the complete line gets.
    unbounded = len(buffered) - start if space < 0 else len(buffered) - space - 1
    if unbounded > max_target + 4096:
        raise URITooLong(f"request target longer than {max_target} bytes")


def find_bare_cr_lf(buffered: bytes | bytearray, start: int) -> bool:
    """True if buffered[start:] holds a CR not followed by LF, or an LF not after CR.

    A CR at the very end may still get its LF.
    """
    end = len(buffered)
    pairs = buffered.count(b"\r\n", start, end)
    if buffered.count(b"\n", start, end) != pairs:
        return True
    crs = buffered.count(b"\r", start, end)
    return crs != pairs and not (crs == pairs + 1 and buffered[end - 1] == 13)


class ChunkedDecoder:
    """Decode one chunked body into `request.body` (see the module docstring)."""

    __slots__ = ("_request", "_limits", "_remaining", "_state", "_wire", "done")

    def __init__(self, request: Request, limits: Limits) -> None:
        self._request = request
        self._limits = limits
        self._remaining = 0
        self._state = _SIZE
        self._wire = 0  # framing bytes consumed (size lines, CRLFs, trailers)
        self.done = False

    def feed(self, data: bytes, pos: int) -> int:
        """Consume what it can of data[pos:]; returns the new position."""
        end = len(data)
        request = self._request
        while pos < end and not self.done:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, end - pos)
                body = request.body
                assert body is not None
                body.write(data[pos : pos + take])
                request.received += take
                self._remaining -= take
                pos += take
                if not self._remaining:
                    self._state = _DATA_END
            elif state == _DATA_END:
                if end - pos < 2:
                    if data[pos] != 13:
                        raise BadRequest("chunk data not followed by CRLF")
                    break
                if data[pos] != 13 or data[pos + 1] != 10:
                    raise BadRequest("chunk data not followed by CRLF")
                pos += 2
                self._wire += 2
                self._state = _SIZE
            else:
                lf = data.find(b"\n", pos)
                if lf < 0:
                    self._check_pending(end - pos)
                    break
                line = data[pos : lf + 1]
                pos = lf + 1
                self._wire += len(line)
                if state == _SIZE:
                    self._size_line(line)
                elif line == b"\r\n":
                    self.done = True
                elif not _TRAILER_LINE_RE.match(line):
                    raise BadRequest("malformed trailer field")
            self._check_framing(0)
        return pos

    def _size_line(self, line: bytes) -> None:
        if len(line) - 1 > _MAX_CHUNK_LINE:
            raise ContentTooLarge("chunk size line (extensions) too large")
        match = _CHUNK_LINE_RE.match(line)
        if match is None:
            raise BadRequest("malformed chunk size line")
        digits = match.group(1).lstrip(b"0")
        if len(digits) > _MAX_HEX_DIGITS:
            raise BadRequest("chunk size overflows 64 bits")
        size = int(digits, 16) if digits else 0
        request = self._request
        limit = self._limits.max_body_size
        if request.received + size > limit:
            # Refused on the size line, before any of its data (nginx does the same).
            raise ContentTooLarge(f"body larger than {limit} bytes")
        if size:
            self._remaining = size
            self._state = _DATA
        else:
            self._state = _TRAILERS

    def _check_pending(self, pending: int) -> None:
        """A line not yet ended: bound the bytes waited for."""
        if self._state == _SIZE and pending > _MAX_CHUNK_LINE:
            raise ContentTooLarge("chunk size line (extensions) too large")
        self._check_framing(pending)

    def _check_framing(self, pending: int) -> None:
        limits = self._limits
        if self._wire + pending > self._request.received * _FRAMING_ALLOWANCE + limits.max_header_size + 65536:
            raise ContentTooLarge("chunk framing (extensions, trailers) too large for the body it carries")


def without_empty_te_elements(head: bytes) -> bytes | None:
    """The head with empty Transfer-Encoding list elements dropped, or None if it has none.

    RFC 9110 5.6.1: `chunked,` is the list `chunked`. llhttp refuses a trailing empty
    element, so it is shown the list without it; the wrapper's own reading of the field
    (which skips empty elements too) then decides as for any other list.
    """
    lines = head.split(b"\r\n")
    changed = False
    for index, line in enumerate(lines):
        name, colon, value = line.partition(b":")
        if colon and name.lower() == b"transfer-encoding":
            codings = [coding.strip(b" \t") for coding in value.split(b",")]
            kept = [coding for coding in codings if coding]
            if kept and len(kept) != len(codings):
                lines[index] = name + b": " + b", ".join(kept)
                changed = True
    return b"\r\n".join(lines) if changed else None


def without_h2c_upgrade(head: bytes) -> bytes | None:
    """The head without its Upgrade field when that offers only h2c, else None.

    RFC 7540 3.2: a server may ignore an upgrade. One to h2c on a request with a body (curl
    --http2 -d on http://) is served as plain HTTP/1.1 rather than refused: llhttp, shown
    the head without Upgrade, reads the body as for any request.
    """
    lines = head.split(b"\r\n")
    kept = []
    h2c = False
    for line in lines:
        name, colon, value = line.partition(b":")
        if colon and name.lower() == b"upgrade":
            if [token.strip(b" \t").lower() for token in value.split(b",")] != [b"h2c"]:
                return None
            h2c = True
            continue
        kept.append(line)
    return b"\r\n".join(kept) if h2c else None
