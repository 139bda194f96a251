"""Corral's HPACK codec against RFC 7541's examples and the reference `hpack` package."""

from __future__ import annotations

import hpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.http.h2_hpack import Decoder, Encoder, HeaderListTooLarge, HPACKError
from corral.http.h2_huffman import huffman_decode, huffman_encode

Headers = list[tuple[bytes, bytes]]


def reference_decode(decoder: hpack.Decoder, block: bytes) -> Headers:
    return [(bytes(name), bytes(value)) for name, value in decoder.decode(block, raw=True)]


# RFC 7541 Appendix C.3 (requests without Huffman) and C.4 (the same with Huffman): three
# consecutive blocks of one connection, so the later ones reference the dynamic table.
_C_REQUESTS: list[Headers] = [
    [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"www.example.com")],
    [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":path", b"/"),
        (b":authority", b"www.example.com"),
        (b"cache-control", b"no-cache"),
    ],
    [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":path", b"/index.html"),
        (b":authority", b"www.example.com"),
        (b"custom-key", b"custom-value"),
    ],
]
_C3_BLOCKS = [
    "828684410f7777772e6578616d706c652e636f6d",
    "828684be58086e6f2d6361636865",
    "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
]
_C4_BLOCKS = [
    "828684418cf1e3c2e5f23a6ba0ab90f4ff",
    "828684be5886a8eb10649cbf",
    "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
]


@pytest.mark.parametrize("blocks", [_C3_BLOCKS, _C4_BLOCKS], ids=["C.3", "C.4"])
def test_rfc7541_appendix_c_requests(blocks: list[str]) -> None:
    ours, reference = Decoder(1 << 16), hpack.Decoder()
    for block, expected in zip(blocks, _C_REQUESTS, strict=True):
        raw = bytes.fromhex(block)
        assert reference_decode(reference, raw) == expected  # the example bytes are right
        assert ours.decode(raw) == expected
    # The dynamic table the RFC lists after C.3.3 / C.4.3, newest first, and nothing past it.
    assert ours.decode(b"\xbe\xbf\xc0") == [
        (b"custom-key", b"custom-value"),
        (b"cache-control", b"no-cache"),
        (b":authority", b"www.example.com"),
    ]
    with pytest.raises(HPACKError):
        ours.decode(b"\xc1")


def test_huffman_examples_of_rfc7541_c4() -> None:
    assert huffman_encode(b"www.example.com") == bytes.fromhex("f1e3c2e5f23a6ba0ab90f4ff")
    assert huffman_decode(bytes.fromhex("a8eb10649cbf")) == b"no-cache"
    assert huffman_decode(b"") == b""


@given(st.binary(max_size=200))
def test_huffman_matches_the_reference_encoder(data: bytes) -> None:
    encoded = hpack.huffman.HuffmanEncoder(
        hpack.huffman_constants.REQUEST_CODES, hpack.huffman_constants.REQUEST_CODES_LENGTH
    ).encode(data)
    assert huffman_decode(encoded) == data
    assert huffman_encode(data) == encoded


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\xff\xff\xff\xff", id="EOS inside the string"),
        pytest.param(huffman_encode(b"0") + b"\xff", id="padding of 11 bits"),
        pytest.param(b"\xff", id="padding of 8 bits"),
        pytest.param(b"\x18", id="padding of zeros (a then 000)"),
        pytest.param(huffman_encode(b"ab")[:-1] + bytes([huffman_encode(b"ab")[-1] & 0xFE]), id="padding ending 0"),
    ],
)
def test_huffman_rejects(data: bytes) -> None:
    with pytest.raises(HPACKError):
        huffman_decode(data)


def test_huffman_padding_up_to_7_bits_is_accepted() -> None:
    for text in (b"a", b"ab", b"abc", b"/index.html", b"\x00\xff"):
        assert huffman_decode(huffman_encode(text)) == text


_names = st.sampled_from(
    [b":method", b":path", b":authority", b"accept", b"content-type", b"cookie", b"x-custom", b"date", b"etag"]
) | st.binary(min_size=1, max_size=20)
_values = st.sampled_from([b"", b"GET", b"/", b"200", b"gzip, deflate", b"text/html"]) | st.binary(max_size=300)
_header_lists = st.lists(st.tuples(_names, _values), max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    blocks=st.lists(st.tuples(_header_lists, st.booleans(), st.sampled_from([None, 0, 64, 256, 4096])), max_size=6),
    sensitive=st.booleans(),
)
def test_reference_encoder_blocks_decode_to_the_same_lists(
    blocks: list[tuple[Headers, bool, int | None]], sensitive: bool
) -> None:
    encoder, decoder = hpack.Encoder(), Decoder(1 << 20)
    for headers, huffman, table_size in blocks:
        if table_size is not None:
            encoder.header_table_size = table_size  # the next block starts with a size update
        fields = [hpack.NeverIndexedHeaderTuple(*field) if sensitive else field for field in headers]
        assert decoder.decode(encoder.encode(fields, huffman=huffman)) == headers


def test_a_shared_dynamic_table_with_evictions_across_blocks() -> None:
    encoder, decoder = hpack.Encoder(), Decoder(1 << 20)
    encoder.header_table_size = 256  # a few entries: later blocks evict and re-reference
    for round_ in range(40):
        headers = [(b":path", b"/item/%d" % (round_ % 7)), (b"x-round", b"%d" % (round_ % 5)), (b"accept", b"*/*")]
        assert decoder.decode(encoder.encode(headers)) == headers


@settings(max_examples=60, deadline=None)
@given(st.lists(_header_lists, min_size=1, max_size=4))
def test_our_encoder_blocks_decode_with_the_reference_decoder(blocks: list[Headers]) -> None:
    encoder, reference, ours = Encoder(), hpack.Decoder(), Decoder(1 << 20)
    for headers in blocks:
        block = encoder.encode(headers)
        assert reference_decode(reference, block) == headers
        assert ours.decode(block) == headers


def test_encoder_representations() -> None:
    encoder = Encoder()
    assert encoder.encode([(b":status", b"200")]) == b"\x20\x88"  # size update 0 first, then indexed
    assert encoder.encode([(b":status", b"200")]) == b"\x88"  # only the first block updates
    assert encoder.encode([(b"content-length", b"13")]) == b"\x0f\x0d\x0213"  # static name 28
    assert encoder.encode([(b"x-a", b"b")]) == b"\x00\x03x-a\x01b"  # literal name
    long_value = b"v" * 200  # a length past the 7-bit prefix: 127, then 73
    assert encoder.encode([(b"x-a", long_value)]) == b"\x00\x03x-a\x7f\x49" + long_value


# One field: literal with incremental indexing, new name, raw value.
def _indexed_literal(name: bytes, value: bytes) -> bytes:
    encoder = Encoder()
    head = encoder.encode([(name, value)])[1:]  # without the size update
    return b"\x40" + head[1:]


@pytest.mark.parametrize(
    "block",
    [
        pytest.param(b"\x80", id="index 0"),
        pytest.param(b"\xbe", id="index 62 with an empty dynamic table"),
        pytest.param(b"\x0f\x30\x01v", id="a literal's name index past the table"),
        pytest.param(b"\x4f\x30\x01v", id="an indexed literal's name index past the table"),
        pytest.param(b"\xff", id="an integer cut off"),
        pytest.param(b"\xff\x80", id="an integer cut off after a continuation"),
        pytest.param(b"\xff\xff\xff\xff\xff\x01", id="an integer of 5 continuation bytes"),
        pytest.param(
            b"\x00\x7f\x80\x80\x80\x80\x00" + b"n" * 127 + b"\x01v", id="a name length of 5 continuation bytes"
        ),
        pytest.param(b"\x00\x05abc", id="a name running past the block"),
        pytest.param(b"\x00\x01a\x05abc", id="a value running past the block"),
        pytest.param(b"\x00", id="a block ending before a name"),
        pytest.param(b"\x00\x01a", id="a block ending before a value"),
        pytest.param(b"\x00\x81\xff\x01v", id="a Huffman name with 8 bits of padding"),
        pytest.param(b"\x00\x01a\x84\xff\xff\xff\xff", id="a Huffman value holding EOS"),
        pytest.param(b"\x3f\xe2\x1f", id="a table size update to 4097"),
        pytest.param(b"\x82\x20", id="a table size update after a field"),
        pytest.param(b"\x20\x82\x3f\xe1\x1f", id="a second table size update after a field"),
    ],
)
def test_broken_blocks_raise(block: bytes) -> None:
    with pytest.raises(HPACKError) as caught:
        Decoder(1 << 20).decode(block)
    assert not isinstance(caught.value, HeaderListTooLarge)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=4))
def test_any_bytes_decode_or_raise_hpack_error(blocks: list[bytes]) -> None:
    decoder = Decoder(1 << 12)
    for block in blocks:
        try:
            headers = decoder.decode(block)
        except HPACKError:
            return
        assert all(type(name) is bytes and type(value) is bytes for name, value in headers)


def test_integers_of_4_continuation_bytes_are_accepted() -> None:
    # 127 + 0 as an overlong but bounded encoding: the name length is 127.
    block = b"\x00\x7f\x80\x80\x80\x00" + b"n" * 127 + b"\x01v"
    assert Decoder(1 << 20).decode(block) == [(b"n" * 127, b"v")]


def test_size_update_to_zero_empties_the_table() -> None:
    decoder = Decoder(1 << 20)
    decoder.decode(_indexed_literal(b"x-a", b"1"))
    assert decoder.decode(b"\xbe") == [(b"x-a", b"1")]
    assert decoder.decode(b"\x20\x3f\xe1\x1f") == []  # to 0, then back to 4096: both at the start
    with pytest.raises(HPACKError):
        decoder.decode(b"\xbe")


def test_a_smaller_table_evicts_oldest_first() -> None:
    decoder = Decoder(1 << 20, max_table_size=100)
    decoder.decode(_indexed_literal(b"a", b"1") + _indexed_literal(b"b", b"2"))  # 34 bytes each
    assert decoder.decode(b"\xbe\xbf") == [(b"b", b"2"), (b"a", b"1")]
    decoder.decode(_indexed_literal(b"c", b"3"))  # 102 > 100: "a" goes
    assert decoder.decode(b"\xbe\xbf") == [(b"c", b"3"), (b"b", b"2")]
    with pytest.raises(HPACKError):
        decoder.decode(b"\xc0")


def test_an_entry_larger_than_the_table_empties_it() -> None:
    decoder = Decoder(1 << 20, max_table_size=100)
    decoder.decode(_indexed_literal(b"a", b"1"))
    assert decoder.decode(_indexed_literal(b"big", b"v" * 70)) == [(b"big", b"v" * 70)]  # 105 bytes
    with pytest.raises(HPACKError):
        decoder.decode(b"\xbe")


def test_the_hpack_bomb_is_cut_and_the_table_stays_in_step() -> None:
    field = (b"x-bomb", b"b" * 4000)
    decoder = Decoder(max_list_size=100_000)
    with pytest.raises(HeaderListTooLarge):
        decoder.decode(_indexed_literal(*field) + b"\xbe" * 400)  # 4 KB indexed, then 400 references
    assert decoder.decode(b"\xbe") == [field]  # the block was still applied to the table


def test_the_list_size_bound_is_exact_and_may_change() -> None:
    block = b"\x82\x84"  # :method GET (7 + 3 + 32) and :path / (5 + 1 + 32)
    assert Decoder(max_list_size=80).decode(block) == [(b":method", b"GET"), (b":path", b"/")]
    decoder = Decoder(max_list_size=79)
    with pytest.raises(HeaderListTooLarge):
        decoder.decode(block)
    decoder.max_list_size = 80
    assert decoder.decode(block) == [(b":method", b"GET"), (b":path", b"/")]


def test_names_and_values_come_back_as_sent() -> None:
    # Not HPACK's business: uppercase names, empty names, any bytes (the caller validates).
    block = Encoder().encode([(b"X-Upper", b"\x00\xff"), (b"", b"")])
    assert Decoder(1 << 20).decode(block) == [(b"X-Upper", b"\x00\xff"), (b"", b"")]


def test_secret_values_stay_out_of_the_shared_huffman_cache() -> None:
    from corral.http import h2_hpack

    h2_hpack._HUFFMAN_CACHE.clear()
    encoder = hpack.Encoder()
    headers = [(b"user-agent", b"curl/8.0"), (b"cookie", b"session=s3cret"), (b"x-token", b"t0ken")]
    fields = [headers[0], headers[1], hpack.NeverIndexedHeaderTuple(*headers[2])]
    assert Decoder(1 << 16).decode(encoder.encode(fields, huffman=True)) == headers
    cached = set(h2_hpack._HUFFMAN_CACHE.values())
    assert b"curl/8.0" in cached and b"x-token" in cached  # a never-indexed field's name may be
    assert b"session=s3cret" not in cached and b"t0ken" not in cached
