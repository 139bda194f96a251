"""PROXY protocol headers as a sender writes them, built independently of corral's parser."""

from __future__ import annotations

import socket
import struct
from typing import Any

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(source: str = "203.0.113.7", destination: str = "192.0.2.1", sport: int = 51000, dport: int = 80) -> bytes:
    protocol = "TCP6" if ":" in source else "TCP4"
    return f"PROXY {protocol} {source} {destination} {sport} {dport}\r\n".encode()


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!BH", kind, len(value)) + value


def v2(
    source: str | None = "203.0.113.7",
    destination: str = "192.0.2.1",
    sport: int = 51000,
    dport: int = 80,
    *,
    local: bool = False,
    tlvs: bytes = b"",
    family_transport: int | None = None,
    block: bytes | None = None,
) -> bytes:
    """A v2 header: PROXY for `source` (IPv4, IPv6, or a path starting with / for AF_UNIX),
    LOCAL with `local`, UNSPEC with source None; `block` replaces the address bytes."""
    if source is None:
        fam, addresses = 0x00, b""
    elif source.startswith("/"):
        fam = 0x31
        addresses = source.encode().ljust(108, b"\0") + destination.encode().ljust(108, b"\0")
    elif ":" in source:
        fam = 0x21
        addresses = socket.inet_pton(socket.AF_INET6, source) + socket.inet_pton(socket.AF_INET6, destination)
        addresses += struct.pack("!HH", sport, dport)
    else:
        fam = 0x11
        addresses = socket.inet_aton(source) + socket.inet_aton(destination) + struct.pack("!HH", sport, dport)
    if family_transport is not None:
        fam = family_transport
    body = (addresses if block is None else block) + tlvs
    return SIGNATURE + bytes([0x20 if local else 0x21, fam]) + struct.pack("!H", len(body)) + body


def refusals(server: Any, start: int) -> list[str]:
    """The PROXY-protocol refusal lines a server logged since log line `start`."""
    return [line for line in server.log_lines[start:] if "PROXY protocol: refused" in line]
