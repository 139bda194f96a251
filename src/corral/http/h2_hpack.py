"""TEMPORARY shim over the hpack package until the helper's codec lands (not committed)."""
from __future__ import annotations
import hpack
import hpack.exceptions


class HPACKError(Exception):
    pass


class HeaderListTooLarge(HPACKError):
    pass


class Decoder:
    def __init__(self, max_list_size: int, max_table_size: int = 4096) -> None:
        self._d = hpack.Decoder(max_header_list_size=max_list_size)
        self.max_list_size = max_list_size

    def decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        try:
            return [(bytes(n), bytes(v)) for n, v in self._d.decode(block, raw=True)]
        except hpack.exceptions.OversizedHeaderListError as e:
            raise HeaderListTooLarge(str(e)) from None
        except hpack.exceptions.HPACKError as e:
            raise HPACKError(str(e)) from None


class Encoder:
    def __init__(self) -> None:
        self._e = hpack.Encoder()

    def encode(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        return self._e.encode(headers, huffman=False)
