"""HPACK (RFC 7541): the header block decoder and encoder of Corral's HTTP/2.

How this works: the Decoder keeps the peer's dynamic table as a list, oldest entry first, so
index 62 (the newest) is its last item; the static table is a tuple with a placeholder at 0.
An indexed field returns the table's own tuple, so the block a client sends once its table is
warm (a few one-byte references) costs one lookup and one append per field. The decoded list
size (RFC 7541 4.1 sizes: name + value + 32 per field) is counted as fields arrive; past
`max_list_size` no more fields are kept, the rest of the block is still decoded so the
dynamic table stays in step with the peer's, and HeaderListTooLarge is raised at its end:
the caller may refuse the stream alone, since the connection's HPACK state is intact.

The Encoder never inserts into its own dynamic table, so it needs no state about what the
peer has seen: its first block sets the table size to 0, and each field is either a full
static-table match (one byte) or a literal without indexing, with the static name's index
when there is one. Strings go out without Huffman coding: responses are small, and raw bytes
cost nothing to encode.
"""

from __future__ import annotations

from typing import Final

from .h2_huffman import HPACKError as HPACKError
from .h2_huffman import huffman_decode


class HeaderListTooLarge(HPACKError):
    """The decoded header list is over `max_list_size` (the HPACK bomb, RFC 7541 7.3)."""


# RFC 7541 Appendix A; index 0 is not a field (decoding it is an error).
_STATIC: Final[tuple[tuple[bytes, bytes], ...]] = (
    (b"", b""),  # 0
    (b":authority", b""),  # 1
    (b":method", b"GET"),  # 2
    (b":method", b"POST"),  # 3
    (b":path", b"/"),  # 4
    (b":path", b"/index.html"),  # 5
    (b":scheme", b"http"),  # 6
    (b":scheme", b"https"),  # 7
    (b":status", b"200"),  # 8
    (b":status", b"204"),  # 9
    (b":status", b"206"),  # 10
    (b":status", b"304"),  # 11
    (b":status", b"400"),  # 12
    (b":status", b"404"),  # 13
    (b":status", b"500"),  # 14
    (b"accept-charset", b""),  # 15
    (b"accept-encoding", b"gzip, deflate"),  # 16
    (b"accept-language", b""),  # 17
    (b"accept-ranges", b""),  # 18
    (b"accept", b""),  # 19
    (b"access-control-allow-origin", b""),  # 20
    (b"age", b""),  # 21
    (b"allow", b""),  # 22
    (b"authorization", b""),  # 23
    (b"cache-control", b""),  # 24
    (b"content-disposition", b""),  # 25
    (b"content-encoding", b""),  # 26
    (b"content-language", b""),  # 27
    (b"content-length", b""),  # 28
    (b"content-location", b""),  # 29
    (b"content-range", b""),  # 30
    (b"content-type", b""),  # 31
    (b"cookie", b""),  # 32
    (b"date", b""),  # 33
    (b"etag", b""),  # 34
    (b"expect", b""),  # 35
    (b"expires", b""),  # 36
    (b"from", b""),  # 37
    (b"host", b""),  # 38
    (b"if-match", b""),  # 39
    (b"if-modified-since", b""),  # 40
    (b"if-none-match", b""),  # 41
    (b"if-range", b""),  # 42
    (b"if-unmodified-since", b""),  # 43
    (b"last-modified", b""),  # 44
    (b"link", b""),  # 45
    (b"location", b""),  # 46
    (b"max-forwards", b""),  # 47
    (b"proxy-authenticate", b""),  # 48
    (b"proxy-authorization", b""),  # 49
    (b"range", b""),  # 50
    (b"referer", b""),  # 51
    (b"refresh", b""),  # 52
    (b"retry-after", b""),  # 53
    (b"server", b""),  # 54
    (b"set-cookie", b""),  # 55
    (b"strict-transport-security", b""),  # 56
    (b"transfer-encoding", b""),  # 57
    (b"user-agent", b""),  # 58
    (b"vary", b""),  # 59
    (b"via", b""),  # 60
    (b"www-authenticate", b""),  # 61
)
_STATIC_LAST: Final = 61
_ENTRY_OVERHEAD: Final = 32  # RFC 7541 4.1: an entry's size is its name, its value and 32
# An integer may have at most 4 continuation bytes (values up to 2**28 + prefix): none of
# HPACK's integers (indexes, lengths, table sizes) is bounded by more than a frame's size,
# so a longer one is an attack, not a header.
_MAX_INTEGER_SHIFT: Final = 28
# Huffman-decoded strings recur across connections (user-agent, accept, paths): a bounded
# cache of the short ones, emptied when full. It is shared by all connections, so a value
# that may be a secret stays out of it (a hit is faster: a timing oracle on other users'
# values): never-indexed fields, and the values of the names below.
_HUFFMAN_CACHE: Final[dict[bytes, bytes]] = {}
_HUFFMAN_CACHE_ENTRIES: Final = 512
_HUFFMAN_CACHE_LENGTH: Final = 256
_SECRET_NAMES: Final = frozenset((b"authorization", b"cookie", b"proxy-authorization"))


def _integer(block: bytes, pos: int, prefix_mask: int) -> tuple[int, int]:
    """The integer (RFC 7541 5.1) whose prefix is block[pos] & prefix_mask, and the next pos."""
    value = block[pos] & prefix_mask
    pos += 1
    if value < prefix_mask:
        return value, pos
    end = len(block)
    shift = 0
    while True:
        if pos >= end:
            raise HPACKError("an integer running past the end of the header block")
        byte = block[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift >= _MAX_INTEGER_SHIFT:
            raise HPACKError("an integer encoded in more than 4 continuation bytes")


def _string(block: bytes, pos: int, cache: bool) -> tuple[bytes, int]:
    """The string literal (RFC 7541 5.2) at pos, and the next pos; `cache`: may it be cached."""
    if pos >= len(block):
        raise HPACKError("a header block ending where a string was due")
    huffman = block[pos] & 0x80
    length, pos = _integer(block, pos, 0x7F)
    stop = pos + length
    if stop > len(block):
        raise HPACKError("a string running past the end of the header block")
    raw = block[pos:stop]
    if not huffman:
        return raw, stop
    if not cache:
        return huffman_decode(raw), stop
    cached = _HUFFMAN_CACHE.get(raw)
    if cached is not None:
        return cached, stop
    decoded = huffman_decode(raw)
    if length <= _HUFFMAN_CACHE_LENGTH:
        if len(_HUFFMAN_CACHE) >= _HUFFMAN_CACHE_ENTRIES:
            _HUFFMAN_CACHE.clear()
        _HUFFMAN_CACHE[raw] = decoded
    return decoded, stop


class Decoder:
    """Decodes one peer's header blocks, in the order they arrive on the connection."""

    def __init__(self, max_list_size: int, max_table_size: int = 4096) -> None:
        self.max_list_size = max_list_size
        # The most the peer may set its table to: our SETTINGS_HEADER_TABLE_SIZE. The table
        # starts at this size, so below 4096 (the SETTINGS default, which the peer may use
        # until it has our SETTINGS) it is only safe once the peer has acknowledged them.
        self.max_table_size = max_table_size
        self._capacity = max_table_size  # the size the peer's last update chose
        self._size = 0
        self._entries: list[tuple[bytes, bytes]] = []  # oldest first

    def decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        headers: list[tuple[bytes, bytes]] = []
        limit = self.max_list_size
        list_size = 0
        end = len(block)
        pos = 0
        # Table size updates come first in a block, before any field (RFC 7541 4.2).
        while pos < end and block[pos] & 0xE0 == 0x20:
            capacity, pos = _integer(block, pos, 0x1F)
            if capacity > self.max_table_size:
                raise HPACKError(f"a dynamic table size update to {capacity}, over {self.max_table_size}")
            self._capacity = capacity
            self._evict(0)
        while pos < end:
            byte = block[pos]
            if byte & 0x80:  # indexed field (6.1)
                index = byte & 0x7F
                if index < 0x7F:
                    pos += 1
                else:
                    index, pos = _integer(block, pos, 0x7F)
                field = self._field(index)
            elif byte & 0x40:  # literal with incremental indexing (6.2.1)
                index = byte & 0x3F
                if index < 0x3F:
                    pos += 1
                else:
                    index, pos = _integer(block, pos, 0x3F)
                field, pos = self._literal(block, pos, index, True)
                self._insert(field)
            elif byte & 0x20:
                raise HPACKError("a dynamic table size update after a header field")
            else:  # literal without indexing (6.2.2) or never indexed (6.2.3)
                index = byte & 0x0F
                if index < 0x0F:
                    pos += 1
                else:
                    index, pos = _integer(block, pos, 0x0F)
                field, pos = self._literal(block, pos, index, not byte & 0x10)
            list_size += len(field[0]) + len(field[1]) + _ENTRY_OVERHEAD
            if list_size <= limit:
                headers.append(field)
        if list_size > limit:
            raise HeaderListTooLarge(f"a decoded header list of {list_size} bytes, over {limit}")
        return headers

    def _field(self, index: int) -> tuple[bytes, bytes]:
        if index <= _STATIC_LAST:
            if index == 0:
                raise HPACKError("a header field index of 0")
            return _STATIC[index]
        entries = self._entries
        dynamic = index - _STATIC_LAST - 1
        if dynamic >= len(entries):
            raise HPACKError(f"a header field index of {index}, past the table's {_STATIC_LAST + len(entries)}")
        return entries[len(entries) - 1 - dynamic]

    def _literal(self, block: bytes, pos: int, name_index: int, indexable: bool) -> tuple[tuple[bytes, bytes], int]:
        """A literal field's name (from the table if `name_index`) and value, and the next pos."""
        if name_index:
            name = self._field(name_index)[0]
        else:
            name, pos = _string(block, pos, True)
        value, pos = _string(block, pos, indexable and name not in _SECRET_NAMES)
        return (name, value), pos

    def _insert(self, field: tuple[bytes, bytes]) -> None:
        entry_size = len(field[0]) + len(field[1]) + _ENTRY_OVERHEAD
        if entry_size > self._capacity:  # RFC 7541 4.4: too large an entry empties the table
            self._entries.clear()
            self._size = 0
            return
        self._evict(entry_size)
        self._entries.append(field)
        self._size += entry_size

    def _evict(self, room: int) -> None:
        """Drop the oldest entries until `room` more bytes fit under the capacity."""
        entries = self._entries
        target = self._capacity - room
        evicted = 0
        while self._size > target:
            name, value = entries[evicted]
            self._size -= len(name) + len(value) + _ENTRY_OVERHEAD
            evicted += 1
        if evicted:
            del entries[:evicted]


def _integer_bytes(flags: int, value: int, prefix_mask: int) -> bytes:
    """The integer (RFC 7541 5.1) with `flags` in the first byte's bits above the prefix."""
    if value < prefix_mask:
        return bytes([flags | value])
    out = bytearray([flags | prefix_mask])
    value -= prefix_mask
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _build_static_encodings() -> tuple[dict[tuple[bytes, bytes], bytes], dict[bytes, bytes]]:
    """What each static field encodes to (indexed), and each static name's literal prefix."""
    fields: dict[tuple[bytes, bytes], bytes] = {}
    names: dict[bytes, bytes] = {}
    for index in range(_STATIC_LAST, 0, -1):  # downwards, so the lowest index of a name wins
        field = _STATIC[index]
        fields[field] = bytes([0x80 | index])  # indexed field: static indexes fit the 7-bit prefix
        names[field[0]] = _integer_bytes(0x00, index, 0x0F)  # literal without indexing, indexed name
    return fields, names


_STATIC_FIELD_BYTES, _STATIC_NAME_PREFIX = _build_static_encodings()
# The length prefix of each raw string shorter than 127 bytes (no Huffman: the top bit is 0).
_SHORT_LENGTHS: Final[tuple[bytes, ...]] = tuple(bytes([length]) for length in range(0x7F))
_LITERAL_NAME: Final = b"\x00"  # literal without indexing, literal name
_TABLE_SIZE_ZERO: Final = b"\x20"  # a dynamic table size update to 0


def _length(data: bytes) -> bytes:
    length = len(data)
    if length < 0x7F:
        return _SHORT_LENGTHS[length]
    return _integer_bytes(0x00, length, 0x7F)


def encode_fields(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The HPACK representation of `headers`, indexing nothing: the same bytes on any connection."""
    pieces: list[bytes] = []
    for field in headers:
        indexed = _STATIC_FIELD_BYTES.get(field)
        if indexed is not None:
            pieces.append(indexed)
            continue
        name, value = field
        prefix = _STATIC_NAME_PREFIX.get(name)
        if prefix is not None:
            pieces.append(prefix)
        else:
            pieces.append(_LITERAL_NAME)
            pieces.append(_length(name))
            pieces.append(name)
        pieces.append(_length(value))
        pieces.append(value)
    return b"".join(pieces)


class Encoder:
    """The header blocks Corral sends on one connection (no dynamic table).

    encode_fields' bytes need no state, so a block can be cached and reused (h2_messages);
    only the connection's first block starts with a dynamic table size update to 0.
    """

    def __init__(self) -> None:
        self._started = False

    def encode(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        return self.block(encode_fields(headers))

    def block(self, fields: bytes) -> bytes:
        """`fields` (from encode_fields) as this connection's next header block."""
        if self._started:
            return fields
        self._started = True
        return _TABLE_SIZE_ZERO + fields  # the peer holds nothing of ours
