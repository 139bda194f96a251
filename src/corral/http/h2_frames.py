"""HTTP/2 frames on the wire (RFC 9113 section 4 and 6): their codes, and the server's frames built.

How this works: every frame is a 9-byte header (24-bit length, type, flags, 31-bit stream
id) and a payload. Reading them is done inline by http/h2_connection_state.py, where the
fields are needed; this module names the codes and builds the frames a server sends, each
as one bytes object ready for the socket.
"""

from __future__ import annotations

from typing import Final

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # the client's connection preface (RFC 9113 3.4)
FRAME_HEADER_SIZE: Final = 9
DEFAULT_MAX_FRAME_SIZE: Final = 16384  # SETTINGS_MAX_FRAME_SIZE until the peer raises it
MAX_FRAME_SIZE_LIMIT: Final = (1 << 24) - 1
MAX_WINDOW: Final = (1 << 31) - 1
DEFAULT_WINDOW: Final = 65535

# Frame types (RFC 9113 6).
DATA: Final = 0x0
HEADERS: Final = 0x1
PRIORITY: Final = 0x2
RST_STREAM: Final = 0x3
SETTINGS: Final = 0x4
PUSH_PROMISE: Final = 0x5
PING: Final = 0x6
GOAWAY: Final = 0x7
WINDOW_UPDATE: Final = 0x8
CONTINUATION: Final = 0x9

# Flags.
END_STREAM: Final = 0x1
ACK: Final = 0x1
END_HEADERS: Final = 0x4
PADDED: Final = 0x8
PRIORITY_FLAG: Final = 0x20

# SETTINGS parameters (RFC 9113 6.5.2).
HEADER_TABLE_SIZE: Final = 0x1
ENABLE_PUSH: Final = 0x2
MAX_CONCURRENT_STREAMS: Final = 0x3
INITIAL_WINDOW_SIZE: Final = 0x4
MAX_FRAME_SIZE: Final = 0x5
MAX_HEADER_LIST_SIZE: Final = 0x6
ENABLE_CONNECT_PROTOCOL: Final = 0x8  # RFC 8441

# Error codes (RFC 9113 7).
NO_ERROR: Final = 0x0
PROTOCOL_ERROR: Final = 0x1
INTERNAL_ERROR: Final = 0x2
FLOW_CONTROL_ERROR: Final = 0x3
SETTINGS_TIMEOUT: Final = 0x4
STREAM_CLOSED: Final = 0x5
FRAME_SIZE_ERROR: Final = 0x6
REFUSED_STREAM: Final = 0x7
CANCEL: Final = 0x8
COMPRESSION_ERROR: Final = 0x9
CONNECT_ERROR: Final = 0xA
ENHANCE_YOUR_CALM: Final = 0xB
INADEQUATE_SECURITY: Final = 0xC
HTTP_1_1_REQUIRED: Final = 0xD


def frame_header(kind: int, flags: int, stream_id: int, length: int) -> bytes:
    return bytes((length >> 16, (length >> 8) & 0xFF, length & 0xFF, kind, flags)) + stream_id.to_bytes(4, "big")


def frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return frame_header(kind, flags, stream_id, len(payload)) + payload


def settings_frame(values: list[tuple[int, int]]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(key.to_bytes(2, "big") + value.to_bytes(4, "big") for key, value in values))


SETTINGS_ACK: Final = frame(SETTINGS, ACK, 0, b"")


def window_update_frame(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, increment.to_bytes(4, "big"))


def rst_stream_frame(stream_id: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, stream_id, code.to_bytes(4, "big"))


def goaway_frame(last_stream_id: int, code: int, debug: bytes = b"") -> bytes:
    return frame(GOAWAY, 0, 0, last_stream_id.to_bytes(4, "big") + code.to_bytes(4, "big") + debug)


def ping_ack_frame(payload: bytes) -> bytes:
    return frame(PING, ACK, 0, payload)


def data_frame(stream_id: int, data: bytes, end_stream: bool) -> bytes:
    return frame(DATA, END_STREAM if end_stream else 0, stream_id, data)


def headers_frames(stream_id: int, block: bytes, end_stream: bool, max_frame_size: int) -> bytes:
    """A header block as HEADERS and, past the peer's frame size, CONTINUATION frames."""
    flags = END_STREAM if end_stream else 0
    if len(block) <= max_frame_size:
        return frame(HEADERS, flags | END_HEADERS, stream_id, block)
    pieces = [frame(HEADERS, flags, stream_id, block[:max_frame_size])]
    start = max_frame_size
    while start < len(block):
        end = start + max_frame_size
        pieces.append(frame(CONTINUATION, END_HEADERS if end >= len(block) else 0, stream_id, block[start:end]))
        start = end
    return b"".join(pieces)
