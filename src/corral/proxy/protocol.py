"""The PROXY protocol, versions 1 and 2, sans I/O (haproxy's doc/proxy-protocol.txt).

How this works: a proxy that speaks it writes one header at the very start of the
connection, before any HTTP, saying whom it relays (the client's address and port).
`ProxyHeaderReader.feed` takes the bytes as they arrive, split anywhere: it returns
None while the header is incomplete, then a `ProxyHeader` and the bytes that followed
it (the start of HTTP), and raises `ProxyHeaderError` the moment the bytes cannot be
a valid header, so a stray HTTP request is refused at its first byte, not after a
timeout. `parse_header` is the same decision on a whole buffer.

Version 1 is one text line (`PROXY TCP4 1.2.3.4 5.6.7.8 5000 80\r\n`, at most 107
bytes). Version 2 is binary: a 12-byte signature, version and command, family and
transport, a length, the addresses, then TLVs (type-length-value extensions, skipped
but bounds-checked and kept). A header that gives no address (v1 UNKNOWN, v2 LOCAL,
v2 UNSPEC) means "use the real peer": `source` is None.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

V1_PREFIX = b"PROXY "
V1_MAX = 107  # the spec's worst case, CRLF included ("PROXY UNKNOWN" + two full IPv6 addresses)
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_V2_FIXED = struct.Struct("!12sBBH")  # signature, version+command, family+transport, length
# Largest v2 header accepted. The format allows 16 + 65535 bytes, but what real senders
# write (addresses, ALPN, SNI, a unique id, haproxy's SSL TLVs, an AWS endpoint id) stays
# well under 1 KiB; 4 KiB leaves room for all of that and keeps a peer from making every
# connection buffer 64 KiB before a byte of HTTP.
V2_MAX = 4096

LOCAL, PROXY = 0x0, 0x1  # v2 commands
AF_UNSPEC, AF_INET, AF_INET6, AF_UNIX = 0x0, 0x1, 0x2, 0x3
UNSPEC, STREAM, DGRAM = 0x0, 0x1, 0x2
_ADDRESS_BLOCK = {AF_INET: 12, AF_INET6: 36, AF_UNIX: 216}  # 2 addresses (+ 2 ports for IP)
_FAMILY_NAMES = {AF_INET: "AF_INET", AF_INET6: "AF_INET6", AF_UNIX: "AF_UNIX"}

Address = tuple[str, int] | str  # (host, port), or "" for a Unix-socket endpoint


class ProxyHeaderError(Exception):
    """Bytes that are not a valid PROXY protocol header; the message says why."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    version: int  # 1 or 2
    # The client the proxy relays, or None: the proxy speaks for itself (v2 LOCAL, a health
    # check) or did not know (v1 UNKNOWN, v2 UNSPEC), so the real peer stands.
    source: Address | None
    destination: Address | None
    local: bool = False  # a v2 LOCAL command
    tlvs: tuple[tuple[int, bytes], ...] = ()  # v2 (type, value) pairs in the order sent
    length: int = 0  # bytes the header took on the wire


def parse_header(data: bytes) -> ProxyHeader | None:
    """The header at the start of `data`, or None if more bytes are needed to decide."""
    if data[:1] == b"\r":
        return _parse_v2(data)
    return _parse_v1(data)


class ProxyHeaderReader:
    """Feed bytes as they arrive; the header is bounded, so the buffering is too."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> tuple[ProxyHeader, bytes] | None:
        """(header, the bytes after it) once complete; None: wait for more."""
        buffer = self._buffer + data if self._buffer else data
        header = parse_header(buffer)
        if header is None:
            self._buffer = buffer
            return None
        self._buffer = b""
        return header, buffer[header.length :]


# -- version 1 ---------------------------------------------------------------------


def _parse_v1(data: bytes) -> ProxyHeader | None:
    head = data[: len(V1_PREFIX)]
    if not V1_PREFIX.startswith(head):
        raise ProxyHeaderError(f"not a PROXY protocol header (starts {data[:16]!r})")
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX:
            raise ProxyHeaderError(f"v1 header: no CRLF in the first {V1_MAX} bytes")
        if b"\n" in data or b"\r" in data[:-1]:
            raise ProxyHeaderError("v1 header: a lone CR or LF before the CRLF")
        return None
    line = data[:end]
    if b"\n" in line or b"\r" in line:
        raise ProxyHeaderError("v1 header: a lone CR or LF before the CRLF")
    parts = line.split(b" ")
    length = end + 2
    if len(parts) < 2:
        raise ProxyHeaderError("v1 header: no protocol after PROXY")
    protocol = parts[1]
    if protocol == b"UNKNOWN":
        return ProxyHeader(1, None, None, length=length)  # the rest of the line is ignored
    if protocol not in (b"TCP4", b"TCP6"):
        raise ProxyHeaderError(f"v1 header: protocol {_shown(protocol)} is not TCP4, TCP6 or UNKNOWN")
    if len(parts) != 6:
        raise ProxyHeaderError(
            "v1 header: expected PROXY TCP4|TCP6 SOURCE DESTINATION SPORT DPORT separated by single spaces"
        )
    version = 4 if protocol == b"TCP4" else 6
    source = _v1_address(parts[2], version)
    destination = _v1_address(parts[3], version)
    return ProxyHeader(
        1, (source, _v1_port(parts[4])), (destination, _v1_port(parts[5])), length=length
    )


def _v1_address(text: bytes, version: int) -> str:
    try:
        value = text.decode("ascii")
        address = ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)
    except ValueError:  # (UnicodeDecodeError is one) also leading zeros in IPv4: octal-looking
        raise ProxyHeaderError(f"v1 header: {_shown(text)} is not an IPv{version} address") from None
    if "%" in value:
        raise ProxyHeaderError(f"v1 header: {_shown(text)} has a zone, not an IPv6 address of the peer")
    return str(address)


def _v1_port(text: bytes) -> int:
    # bytes.isdigit is ASCII-only: int() would also take "+1", "1_0" and other scripts' digits.
    if not text.isdigit() or (len(text) > 1 and text[:1] == b"0") or int(text) > 65535:
        raise ProxyHeaderError(f"v1 header: {_shown(text)} is not a port number (0-65535, no leading zeros)")
    return int(text)


# -- version 2 ---------------------------------------------------------------------


def _parse_v2(data: bytes) -> ProxyHeader | None:
    if not data.startswith(V2_SIGNATURE):
        if V2_SIGNATURE.startswith(data):
            return None
        raise ProxyHeaderError(f"not a PROXY protocol header (bad v2 signature {data[:12]!r})")
    if len(data) > len(V2_SIGNATURE):
        version_command = data[12]
        if version_command >> 4 != 2:
            raise ProxyHeaderError(f"v2 header: version {version_command >> 4}, expected 2")
        if version_command & 0x0F not in (LOCAL, PROXY):
            raise ProxyHeaderError(f"v2 header: unknown command {version_command & 0x0F:#x}")
    if len(data) < _V2_FIXED.size:
        return None
    _signature, version_command, family_transport, block = _V2_FIXED.unpack_from(data)
    total = _V2_FIXED.size + block
    if total > V2_MAX:
        raise ProxyHeaderError(f"v2 header: {total} bytes, more than the {V2_MAX} accepted")
    if len(data) < total:
        return None
    family, transport = family_transport >> 4, family_transport & 0x0F
    if version_command & 0x0F == LOCAL:
        # The proxy's own connection (a health check): whatever follows is skipped unread.
        return ProxyHeader(2, None, None, local=True, length=total)
    if family > AF_UNIX or transport > DGRAM:
        raise ProxyHeaderError(f"v2 header: unknown address family or transport {family_transport:#04x}")
    if family == AF_UNSPEC or transport == UNSPEC:
        # Unsupported by the sender: the spec lets us accept it with the real peer's address
        # (and skip the block unread: its layout is unknown, so is where any TLV starts).
        return ProxyHeader(2, None, None, length=total)
    body = data[_V2_FIXED.size : total]
    needed = _ADDRESS_BLOCK[family]
    if block < needed:
        raise ProxyHeaderError(
            f"v2 header: {block} address bytes, {_FAMILY_NAMES[family]} needs {needed}"
        )
    source, destination = _v2_addresses(family, body)
    return ProxyHeader(2, source, destination, tlvs=_tlvs(body, needed), length=total)


def _v2_addresses(family: int, body: bytes) -> tuple[Address, Address]:
    if family == AF_INET:
        source, destination = str(ipaddress.IPv4Address(body[0:4])), str(ipaddress.IPv4Address(body[4:8]))
        ports = struct.unpack_from("!HH", body, 8)
    elif family == AF_INET6:
        source, destination = str(ipaddress.IPv6Address(body[0:16])), str(ipaddress.IPv6Address(body[16:32]))
        ports = struct.unpack_from("!HH", body, 32)
    else:
        return "", ""  # AF_UNIX: a local endpoint, whatever its path (as a Unix-socket peer)
    return (source, ports[0]), (destination, ports[1])


def _tlvs(body: bytes, offset: int) -> tuple[tuple[int, bytes], ...]:
    """The TLVs after the addresses; each must fit inside the header's announced length."""
    found = []
    end = len(body)
    while offset < end:
        if end - offset < 3:
            raise ProxyHeaderError(f"v2 header: {end - offset} stray bytes where a TLV (3+ bytes) belongs")
        kind = body[offset]
        size = (body[offset + 1] << 8) | body[offset + 2]
        start = offset + 3
        if start + size > end:
            raise ProxyHeaderError(f"v2 header: TLV {kind:#04x} of {size} bytes overruns the header")
        found.append((kind, body[start : start + size]))
        offset = start + size
    return tuple(found)


def _shown(text: bytes) -> str:
    return repr(text[:48].decode("ascii", "replace"))
