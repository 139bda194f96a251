"""The PROXY protocol parser: v1 and v2, every family, TLVs, truncations, bad input."""

from __future__ import annotations

import random

import pytest

from corral.proxy.protocol import (
    V1_MAX,
    V2_MAX,
    ProxyHeader,
    ProxyHeaderError,
    ProxyHeaderReader,
    parse_header,
)
from proxy_headers import SIGNATURE, tlv, v1, v2

HTTP = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"

VALID: list[tuple[bytes, ProxyHeader]] = [
    (v1(), ProxyHeader(1, ("203.0.113.7", 51000), ("192.0.2.1", 80))),
    (v1("2001:db8::7", "2001:db8::1", 0, 65535), ProxyHeader(1, ("2001:db8::7", 0), ("2001:db8::1", 65535))),
    (b"PROXY UNKNOWN\r\n", ProxyHeader(1, None, None)),
    (b"PROXY UNKNOWN ffff::1 ffff::2 65535 65535\r\n", ProxyHeader(1, None, None)),
    (v2(), ProxyHeader(2, ("203.0.113.7", 51000), ("192.0.2.1", 80))),
    (v2("2001:db8::7", "2001:db8::1", 1, 2), ProxyHeader(2, ("2001:db8::7", 1), ("2001:db8::1", 2))),
    (v2("/run/lb.sock", "/run/corral.sock"), ProxyHeader(2, "", "")),
    (v2(None), ProxyHeader(2, None, None)),
    (v2(None, local=True), ProxyHeader(2, None, None, local=True)),
    (v2("10.0.0.1", local=True), ProxyHeader(2, None, None, local=True)),  # LOCAL ignores addresses
    (
        v2(tlvs=tlv(0x01, b"http/1.1") + tlv(0x04, b"") + tlv(0xEA, b"\x01vpce-0123")),
        ProxyHeader(
            2,
            ("203.0.113.7", 51000),
            ("192.0.2.1", 80),
            tlvs=((0x01, b"http/1.1"), (0x04, b""), (0xEA, b"\x01vpce-0123")),
        ),
    ),
]


def _expect(raw: bytes, header: ProxyHeader) -> ProxyHeader:
    from dataclasses import replace

    return replace(header, length=len(raw))


@pytest.mark.parametrize(("raw", "expected"), VALID)
def test_valid_headers_parse_and_leave_the_rest(raw: bytes, expected: ProxyHeader) -> None:
    header = parse_header(raw + HTTP)
    assert header == _expect(raw, expected)
    assert ProxyHeaderReader().feed(raw + HTTP) == (header, HTTP)


@pytest.mark.parametrize(("raw", "expected"), VALID)
def test_every_truncation_point_needs_more(raw: bytes, expected: ProxyHeader) -> None:
    for cut in range(len(raw)):
        assert parse_header(raw[:cut]) is None, cut


@pytest.mark.parametrize(("raw", "expected"), VALID)
def test_fed_byte_by_byte_and_in_random_chunks(raw: bytes, expected: ProxyHeader) -> None:
    stream = raw + HTTP
    reader = ProxyHeaderReader()
    results = [reader.feed(stream[i : i + 1]) for i in range(len(raw))]
    assert results[:-1] == [None] * (len(raw) - 1)
    assert results[-1] == (_expect(raw, expected), b"")
    rng = random.Random(len(raw))
    for _ in range(20):
        reader = ProxyHeaderReader()
        position, result = 0, None
        while result is None:
            step = rng.randint(1, 40)
            result = reader.feed(stream[position : position + step])
            position += step
        header, rest = result
        assert header == _expect(raw, expected)
        assert rest + stream[position:] == HTTP


def test_v1_line_of_the_maximum_length_is_accepted_one_byte_more_is_not() -> None:
    longest = b"PROXY UNKNOWN " + b"f" * (V1_MAX - 16) + b"\r\n"
    assert len(longest) == V1_MAX
    assert parse_header(longest) == ProxyHeader(1, None, None, length=V1_MAX)
    too_long = b"PROXY UNKNOWN " + b"f" * (V1_MAX - 15) + b"\r\n"
    with pytest.raises(ProxyHeaderError, match="no CRLF in the first 107 bytes"):
        parse_header(too_long)
    with pytest.raises(ProxyHeaderError, match="no CRLF"):  # decided without waiting for the CRLF
        parse_header(b"PROXY TCP4 " + b"1" * 200)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"GET / HTTP/1.1\r\n", "not a PROXY protocol header"),
        (b"G", "not a PROXY protocol header"),  # refused at the first byte
        (b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "not a PROXY protocol header"),
        (b"PROXY\r\n", "not a PROXY protocol header"),
        (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "'TCP5' is not TCP4, TCP6 or UNKNOWN"),
        (b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "is not TCP4, TCP6 or UNKNOWN"),
        (b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "is not TCP4"),
        (b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "single spaces"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "single spaces"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "single spaces"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "lone CR or LF"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r", None),  # might still be CRLF: wait
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX\r\n", "lone CR or LF"),
        (b"PROXY TCP4 1.2.3.4\n5.6.7.8 1 2\r\n", "lone CR or LF"),
        (b"PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n", "'1.2.3.04' is not an IPv4 address"),
        (b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "is not an IPv4 address"),
        (b"PROXY TCP4 ::1 ::2 1 2\r\n", "'::1' is not an IPv4 address"),
        (b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", "'1.2.3.4' is not an IPv6 address"),
        (b"PROXY TCP6 fe80::1%eth0 ::2 1 2\r\n", "has a zone"),
        (b"PROXY TCP4 localhost 5.6.7.8 1 2\r\n", "is not an IPv4 address"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "'65536' is not a port number"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", "'080' is not a port number"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n", "is not a port number"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "is not a port number"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1_0 2\r\n", "is not a port number"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 \xd9\xa1 2\r\n", "is not a port number"),  # an Arabic-Indic 1
        (b"PROXY TCP4 1.2.3.\xc3\xa9 5.6.7.8 1 2\r\n", "is not an IPv4 address"),
    ],
)
def test_v1_malformed(raw: bytes, message: str | None) -> None:
    if message is None:
        assert parse_header(raw) is None
        return
    with pytest.raises(ProxyHeaderError, match=message):
        parse_header(raw)


def _with_byte(raw: bytes, index: int, value: int) -> bytes:
    return raw[:index] + bytes([value]) + raw[index + 1 :]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\r\n\r\n\x00\r\nQUIX\n", "bad v2 signature"),
        (b"\r\n\r\n\x01", "bad v2 signature"),  # refused before the signature is complete
        (b"\r\n", None),  # a prefix of the signature: wait
        (_with_byte(v2(), 12, 0x11), "version 1, expected 2"),
        (_with_byte(v2(), 12, 0x31), "version 3, expected 2"),
        (SIGNATURE + b"\x22", "unknown command 0x2"),  # decided with 13 bytes
        (_with_byte(v2(), 13, 0x41), "unknown address family or transport 0x41"),
        (_with_byte(v2(), 13, 0x13), "unknown address family or transport 0x13"),
        (v2(block=b"\x01\x02\x03\x04" * 2), "8 address bytes, AF_INET needs 12"),
        (v2("::1", "::2", block=b"\0" * 20), "20 address bytes, AF_INET6 needs 36"),
        (v2("/a", "/b", block=b"\0" * 108), "108 address bytes, AF_UNIX needs 216"),
        (v2(tlvs=b"\x01\x00"), "2 stray bytes where a TLV"),
        (v2(tlvs=tlv(0x02, b"example.com")[:-1]), "TLV 0x02 of 11 bytes overruns the header"),
        (v2(tlvs=tlv(0x04, b"") + b"\x05\xff\xff"), "TLV 0x05 of 65535 bytes overruns"),
    ],
)
def test_v2_malformed(raw: bytes, message: str | None) -> None:
    if message is None:
        assert parse_header(raw) is None
        return
    with pytest.raises(ProxyHeaderError, match=message):
        parse_header(raw)


def test_v2_header_above_the_cap_is_refused_from_its_fixed_part() -> None:
    at_cap = v2(tlvs=tlv(0x04, b"\0" * (V2_MAX - 16 - 12 - 3)))
    assert len(at_cap) == V2_MAX
    assert parse_header(at_cap) is not None
    over = v2(tlvs=tlv(0x04, b"\0" * (V2_MAX - 16 - 12 - 2)))
    with pytest.raises(ProxyHeaderError, match=f"{V2_MAX + 1} bytes, more than the {V2_MAX} accepted"):
        parse_header(over[:16])  # known from the length field alone: nothing more is buffered


def test_v2_dgram_and_unspec_transports() -> None:
    udp = _with_byte(v2(), 13, 0x12)
    assert parse_header(udp) == ProxyHeader(2, ("203.0.113.7", 51000), ("192.0.2.1", 80), length=len(udp))
    inet_unspec = _with_byte(v2(), 13, 0x10)  # a family without a transport: the real peer stands
    assert parse_header(inet_unspec) == ProxyHeader(2, None, None, length=len(inet_unspec))


def test_ipv4_mapped_ipv6_source_is_kept_as_sent() -> None:
    header = parse_header(v2("::ffff:203.0.113.7", "::1"))
    assert header is not None and header.source == ("::ffff:cb00:7107", 51000)


def test_any_bytes_parse_need_more_or_raise_our_error() -> None:
    """The fuzz invariant: nothing but a header, None or ProxyHeaderError, whatever arrives."""
    rng = random.Random(1)
    seeds = [raw for raw, _ in VALID]
    for _ in range(3000):
        raw = bytearray(rng.choice(seeds) + HTTP)
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        data = bytes(raw[: rng.randint(0, len(raw))])
        try:
            header = parse_header(data)
        except ProxyHeaderError:
            continue
        if header is not None:
            assert 0 < header.length <= len(data)
