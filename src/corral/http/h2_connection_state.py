"""The server side of one HTTP/2 connection, sans-I/O: bytes in, callbacks out, frames to send.

How this works: `receive` splits the bytes into frames (RFC 9113 4.1) and applies each to
the connection: the client's settings, the stream states (5.1), both directions of flow
control (5.2, 6.9), the header blocks (HPACK, http/h2_hpack.py, in HEADERS then
CONTINUATION frames). What concerns a request goes to the `H2Events` the server gives
(a new stream's header list, its body, its end, its reset, a window that reopened); what
the protocol answers by itself (SETTINGS and PING acknowledgements, window updates for
received data) is appended to `out`, which the server writes to the socket. The server's
responses go the other way through `send_headers`, `send_data`, `end_stream` and
`reset_stream`, within what `window` says the client lets through.

Errors follow RFC 9113 5.4: a frame that breaks one stream resets that stream; one that
breaks the connection (or a flood the FloodGuard counts, http/h2_guard.py) ends it with
GOAWAY: `error_code` and `error` are then set and nothing more is read. A header block is
always decoded, even for a stream that is refused or closed, because the HPACK table is
shared by the whole connection.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final, Protocol

from . import h2_frames as f
from .h2_guard import CONTROL, EMPTY, RESET, FloodGuard
from .h2_hpack import Decoder, Encoder, HeaderListTooLarge, HPACKError, encode_fields

# Window updates are sent once this share of a receive window is consumed, not per frame.
_REFILL_SHARE: Final = 16


class H2Events(Protocol):
    """What the server is told (server/h2_connection.py implements it)."""

    def on_request(self, stream_id: int, headers: list[tuple[bytes, bytes]], end_stream: bool) -> None: ...

    def on_data(self, stream_id: int, data: bytes, end_stream: bool) -> None: ...

    def on_end(self, stream_id: int) -> None: ...  # trailers ended the stream (they are dropped)

    def on_reset(self, stream_id: int) -> None: ...  # reset by the client, or for breaking a stream rule

    def on_window(self, stream_id: int) -> None: ...  # a send window reopened (0: the connection's)

    def on_goaway(self) -> None: ...  # the client will open no more streams


class StreamClosed(Exception):
    """Sending on a stream that is no longer open (the client reset it meanwhile)."""


class _Fail(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _Stream:
    __slots__ = ("send_window", "recv_window", "unacked", "remote_open", "local_open")

    def __init__(self, send_window: int, recv_window: int, remote_open: bool) -> None:
        self.send_window = send_window  # what the client still lets us send on it
        self.recv_window = recv_window  # what it may still send us before a window update
        self.unacked = 0  # received but not yet given back in a window update
        self.remote_open = remote_open  # the client has not ended it
        self.local_open = True  # we have not ended it


class H2ConnectionState:
    def __init__(
        self,
        events: H2Events,
        guard: FloodGuard,
        max_header_list_size: int,
        max_concurrent_streams: int,
        stream_window: int,
        connection_window: int,
    ) -> None:
        self.events = events
        self.guard = guard
        self.out = bytearray()  # frames to send; the server writes and clears it
        self.error = ""  # set when the connection ended with an error GOAWAY
        self.error_code = f.NO_ERROR
        self.highest_stream = 0  # the highest stream id the client opened
        self.max_send_frame = f.DEFAULT_MAX_FRAME_SIZE  # the client's SETTINGS_MAX_FRAME_SIZE
        self._decoder = Decoder(max_header_list_size)
        self._encoder = Encoder()
        self._max_block = max_header_list_size  # a compressed block cannot need more
        self._max_streams = max_concurrent_streams
        self._stream_window = stream_window  # ours, for each stream's uploads
        # Below 65,535 too: a client still on the default window (our SETTINGS not yet
        # applied) must get its update before it runs out, or the upload would stall.
        self._stream_refill = min(stream_window // _REFILL_SHARE, f.DEFAULT_WINDOW // 2)
        self._connection_window = connection_window
        self._recv_connection = connection_window
        self._connection_unacked = 0
        self._peer_initial_window = f.DEFAULT_WINDOW  # SETTINGS_INITIAL_WINDOW_SIZE of the client
        self._send_connection = f.DEFAULT_WINDOW
        self._streams: dict[int, _Stream] = {}
        self._buffer = b""
        self._preface = True  # the client's preface is still to be read
        self._first_settings = True  # its first frame must be SETTINGS
        # An unfinished header block: its stream, its HEADERS flags, the fragments so far.
        self._block_stream = 0
        self._block_flags = 0
        self._block_priority = 0
        self._block: list[bytes] = []
        self._block_size = 0

    # -- starting ----------------------------------------------------------------------

    def start(
        self, settings: list[tuple[int, int]], upgrade_settings: bytes | None = None, open_window: bool = True
    ) -> None:
        """Our preface: SETTINGS, then (`open_window`) the connection's receive window raised.

        `upgrade_settings` is the HTTP2-Settings of an `Upgrade: h2c` request (RFC 7540 3.2):
        applied as the client's settings (no ACK), and stream 1 is its request, half-closed.
        """
        self.out += f.settings_frame(settings)
        if open_window:
            self.open_window()
        if upgrade_settings is not None:
            try:
                payload = base64.b64decode(upgrade_settings + b"=" * (-len(upgrade_settings) % 4), b"-_", validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("HTTP2-Settings is not base64url") from None
            if len(payload) % 6:
                raise ValueError("HTTP2-Settings is not whole SETTINGS entries")
            try:
                self._apply_settings(payload)
            except _Fail as fail:
                raise ValueError(fail.reason) from None
            self._streams[1] = _Stream(self._peer_initial_window, self._stream_window, False)
            self.highest_stream = 1

    def open_window(self) -> None:
        """Raise the connection's receive window from RFC 9113's 65,535 to ours (once)."""
        if self._connection_window > f.DEFAULT_WINDOW:
            self.out += f.window_update_frame(0, self._connection_window - f.DEFAULT_WINDOW)

    # -- frames in ---------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> None:
        if self.error:
            return
        if self._buffer:
            data = self._buffer + data
            self._buffer = b""
        pos = 0
        size = len(data)
        try:
            if self._preface:
                have = min(size, len(f.PREFACE))
                if data[:have] != f.PREFACE[:have]:
                    raise _Fail(f.PROTOCOL_ERROR, "not the HTTP/2 connection preface")
                if have < len(f.PREFACE):
                    self._buffer = data
                    return
                self._preface = False
                pos = len(f.PREFACE)
            while size - pos >= f.FRAME_HEADER_SIZE:
                length = (data[pos] << 16) | (data[pos + 1] << 8) | data[pos + 2]
                if length > f.DEFAULT_MAX_FRAME_SIZE:  # (we never raise SETTINGS_MAX_FRAME_SIZE)
                    raise _Fail(f.FRAME_SIZE_ERROR, f"a frame of {length} bytes")
                end = pos + f.FRAME_HEADER_SIZE + length
                if end > size:
                    break
                kind = data[pos + 3]
                flags = data[pos + 4]
                stream_id = int.from_bytes(data[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
                payload = data[pos + f.FRAME_HEADER_SIZE : end]
                pos = end
                self._frame(kind, flags, stream_id, payload, now)
                if self.error:
                    return
        except _Fail as fail:
            self.fail(fail.code, fail.reason)
            return
        if pos < size:
            self._buffer = data[pos:]

    def _frame(self, kind: int, flags: int, stream_id: int, payload: bytes, now: float) -> None:
        if self._block_stream and kind != f.CONTINUATION:
            raise _Fail(f.PROTOCOL_ERROR, "a header block interrupted before its end")
        if self._first_settings:
            if kind != f.SETTINGS or flags & f.ACK:
                raise _Fail(f.PROTOCOL_ERROR, "the first frame is not SETTINGS")
            self._first_settings = False
        if kind == f.DATA:
            self._data(flags, stream_id, payload, now)
        elif kind == f.HEADERS:
            self._headers(flags, stream_id, payload)
        elif kind == f.CONTINUATION:
            self._continuation(flags, stream_id, payload, now)
        elif kind == f.WINDOW_UPDATE:
            self._window_update(stream_id, payload)
        elif kind == f.RST_STREAM:
            self._rst_stream(stream_id, payload, now)
        elif kind == f.SETTINGS:
            self._settings(flags, stream_id, payload, now)
        elif kind == f.PING:
            self._ping(flags, stream_id, payload, now)
        elif kind == f.PRIORITY:
            self._priority(stream_id, payload, now)
        elif kind == f.GOAWAY:
            if stream_id:
                raise _Fail(f.PROTOCOL_ERROR, "GOAWAY on a stream")
            if len(payload) < 8:
                raise _Fail(f.FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes")
            self.events.on_goaway()
        elif kind == f.PUSH_PROMISE:
            raise _Fail(f.PROTOCOL_ERROR, "PUSH_PROMISE from a client")
        else:
            self._note(EMPTY, now)  # an extension frame we do not know: ignored, but counted

    def _data(self, flags: int, stream_id: int, payload: bytes, now: float) -> None:
        if stream_id == 0:
            raise _Fail(f.PROTOCOL_ERROR, "DATA on stream 0")
        length = len(payload)  # padding included: it is flow-controlled too
        if length:
            self._recv_connection -= length
            if self._recv_connection < 0:
                raise _Fail(f.FLOW_CONTROL_ERROR, "DATA beyond the connection's window")
            self._connection_unacked += length
            if self._connection_unacked >= self._connection_window // _REFILL_SHARE:
                self.out += f.window_update_frame(0, self._connection_unacked)
                self._recv_connection += self._connection_unacked
                self._connection_unacked = 0
        data = payload
        if flags & f.PADDED:
            if not length or payload[0] >= length:
                raise _Fail(f.PROTOCOL_ERROR, "padding longer than the frame")
            data = payload[1 : length - payload[0]]
        stream = self._streams.get(stream_id)
        if stream is None:
            if stream_id > self.highest_stream:
                raise _Fail(f.PROTOCOL_ERROR, "DATA on a stream not opened")
            return  # closed (answered or reset): ignored, its bytes refilled the window above
        if not stream.remote_open:
            self._stream_error(stream_id, f.STREAM_CLOSED)
            return
        stream.recv_window -= length
        if stream.recv_window < 0:
            self._stream_error(stream_id, f.FLOW_CONTROL_ERROR)
            return
        end = bool(flags & f.END_STREAM)
        if end:
            stream.remote_open = False
            if not stream.local_open:
                del self._streams[stream_id]
        elif length:
            stream.unacked += length
            if stream.unacked >= self._stream_refill:
                self.out += f.window_update_frame(stream_id, stream.unacked)
                stream.recv_window += stream.unacked
                stream.unacked = 0
        elif not self.guard.note(EMPTY, now):
            raise _Fail(f.ENHANCE_YOUR_CALM, self.guard.exceeded)
        self.events.on_data(stream_id, data, end)

    def _headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0 or stream_id % 2 == 0:
            raise _Fail(f.PROTOCOL_ERROR, f"HEADERS on stream {stream_id}, not a client's")
        start = 0
        end = len(payload)
        if flags & f.PADDED:
            if not end:
                raise _Fail(f.FRAME_SIZE_ERROR, "HEADERS without its pad length")
            end -= payload[0]
            start = 1
        priority = 0
        if flags & f.PRIORITY_FLAG:
            if start + 5 > len(payload):
                raise _Fail(f.FRAME_SIZE_ERROR, "HEADERS shorter than its priority")
            priority = int.from_bytes(payload[start : start + 4], "big") & 0x7FFFFFFF
            start += 5
        if end < start:
            raise _Fail(f.PROTOCOL_ERROR, "padding longer than the frame")
        fragment = payload[start:end]
        if flags & f.END_HEADERS:
            self._header_block(stream_id, flags, priority, fragment)
            return
        self._block_stream = stream_id
        self._block_flags = flags
        self._block_priority = priority
        self._block = [fragment]
        self._block_size = len(fragment)
        self._check_block_size()

    def _continuation(self, flags: int, stream_id: int, payload: bytes, now: float) -> None:
        if not self._block_stream or stream_id != self._block_stream:
            raise _Fail(f.PROTOCOL_ERROR, "CONTINUATION without a header block before it")
        if not payload:
            self._note(EMPTY, now)
        self._block.append(payload)
        self._block_size += len(payload)
        self._check_block_size()
        if flags & f.END_HEADERS:
            block = b"".join(self._block)
            self._block = []
            self._block_stream = 0
            self._header_block(stream_id, self._block_flags, self._block_priority, block)

    def _check_block_size(self) -> None:
        if self._block_size > self._max_block:
            # CVE-2024-27316: a header block that never ends is cut, not buffered.
            raise _Fail(f.PROTOCOL_ERROR, f"a header block larger than {self._max_block} bytes")

    def _header_block(self, stream_id: int, flags: int, priority: int, block: bytes) -> None:
        try:
            headers = self._decoder.decode(block)
        except HeaderListTooLarge as too_large:  # (one name per type: mypyc types `as` names once)
            raise _Fail(f.ENHANCE_YOUR_CALM, str(too_large)) from None
        except HPACKError as broken:
            raise _Fail(f.COMPRESSION_ERROR, str(broken)) from None
        end_stream = bool(flags & f.END_STREAM)
        stream = self._streams.get(stream_id)
        if stream is not None:
            if not stream.remote_open:
                self._stream_error(stream_id, f.STREAM_CLOSED)
            elif not end_stream:
                raise _Fail(f.PROTOCOL_ERROR, "trailers without END_STREAM")
            else:
                stream.remote_open = False
                if not stream.local_open:
                    del self._streams[stream_id]
                self.events.on_end(stream_id)
            return
        if stream_id <= self.highest_stream:
            return  # a stream already closed (reset by us, frames in flight): ignored
        self.highest_stream = stream_id
        if len(self._streams) >= self._max_streams:
            raise _Fail(f.PROTOCOL_ERROR, f"more than {self._max_streams} concurrent streams")
        if priority == stream_id:  # a stream depending on itself: reset before the server sees it
            self.out += f.rst_stream_frame(stream_id, f.PROTOCOL_ERROR)
            return
        self._streams[stream_id] = _Stream(self._peer_initial_window, self._stream_window, not end_stream)
        self.events.on_request(stream_id, headers, end_stream)

    def _window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise _Fail(f.FRAME_SIZE_ERROR, "WINDOW_UPDATE not 4 bytes")
        increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
        if stream_id == 0:
            if not increment:
                raise _Fail(f.PROTOCOL_ERROR, "a window update of 0")
            was = self._send_connection
            self._send_connection += increment
            if self._send_connection > f.MAX_WINDOW:
                raise _Fail(f.FLOW_CONTROL_ERROR, "the connection's window above 2^31-1")
            if was <= 0:
                self.events.on_window(0)
            return
        stream = self._streams.get(stream_id)
        if stream is None:
            if stream_id > self.highest_stream:
                raise _Fail(f.PROTOCOL_ERROR, "WINDOW_UPDATE on a stream not opened")
            return
        if not increment:
            self._stream_error(stream_id, f.PROTOCOL_ERROR)
            return
        was = stream.send_window
        stream.send_window += increment
        if stream.send_window > f.MAX_WINDOW:
            self._stream_error(stream_id, f.FLOW_CONTROL_ERROR)
            return
        if was <= 0:
            self.events.on_window(stream_id)

    def _rst_stream(self, stream_id: int, payload: bytes, now: float) -> None:
        if stream_id == 0:
            raise _Fail(f.PROTOCOL_ERROR, "RST_STREAM on stream 0")
        if len(payload) != 4:
            raise _Fail(f.FRAME_SIZE_ERROR, "RST_STREAM not 4 bytes")
        if stream_id > self.highest_stream:
            raise _Fail(f.PROTOCOL_ERROR, "RST_STREAM on a stream not opened")
        # Counted even when the stream is already answered: CVE-2023-44487's streams are.
        self._note(RESET, now)
        if self._streams.pop(stream_id, None) is not None:
            self.events.on_reset(stream_id)

    def _settings(self, flags: int, stream_id: int, payload: bytes, now: float) -> None:
        if stream_id:
            raise _Fail(f.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & f.ACK:
            if payload:
                raise _Fail(f.FRAME_SIZE_ERROR, "a SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            raise _Fail(f.FRAME_SIZE_ERROR, "SETTINGS not whole entries")
        self._note(CONTROL, now)
        opened = self._apply_settings(payload)
        self.out += f.SETTINGS_ACK
        if opened:
            self.events.on_window(0)

    def _apply_settings(self, payload: bytes) -> bool:
        """The client's settings; True when the streams' send windows grew."""
        opened = False
        for at in range(0, len(payload), 6):
            key = (payload[at] << 8) | payload[at + 1]
            value = int.from_bytes(payload[at + 2 : at + 6], "big")
            if key == f.INITIAL_WINDOW_SIZE:
                if value > f.MAX_WINDOW:
                    raise _Fail(f.FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1")
                delta = value - self._peer_initial_window
                self._peer_initial_window = value
                for stream in self._streams.values():
                    stream.send_window += delta
                    if stream.send_window > f.MAX_WINDOW:
                        raise _Fail(f.FLOW_CONTROL_ERROR, "a stream's window above 2^31-1")
                opened = opened or delta > 0
            elif key == f.MAX_FRAME_SIZE:
                if not f.DEFAULT_MAX_FRAME_SIZE <= value <= f.MAX_FRAME_SIZE_LIMIT:
                    raise _Fail(f.PROTOCOL_ERROR, "SETTINGS_MAX_FRAME_SIZE out of range")
                self.max_send_frame = value
            elif key == f.ENABLE_PUSH or key == f.ENABLE_CONNECT_PROTOCOL:
                if value > 1:
                    raise _Fail(f.PROTOCOL_ERROR, "a boolean setting above 1")
            # HEADER_TABLE_SIZE: our encoder keeps its table empty; the others bound what we
            # never do (push) or are advisory (MAX_HEADER_LIST_SIZE); unknown ones are ignored.
        return opened

    def _ping(self, flags: int, stream_id: int, payload: bytes, now: float) -> None:
        if stream_id:
            raise _Fail(f.PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise _Fail(f.FRAME_SIZE_ERROR, "PING not 8 bytes")
        self._note(CONTROL, now)
        if not flags & f.ACK:
            self.out += f.ping_ack_frame(payload)

    def _priority(self, stream_id: int, payload: bytes, now: float) -> None:
        if stream_id == 0:
            raise _Fail(f.PROTOCOL_ERROR, "PRIORITY on stream 0")
        self._note(EMPTY, now)
        if len(payload) != 5:
            self._stream_error(stream_id, f.FRAME_SIZE_ERROR)
        elif int.from_bytes(payload[:4], "big") & 0x7FFFFFFF == stream_id:
            self._stream_error(stream_id, f.PROTOCOL_ERROR)

    def _note(self, kind: int, now: float) -> None:
        if not self.guard.note(kind, now):
            raise _Fail(f.ENHANCE_YOUR_CALM, self.guard.exceeded)

    def _stream_error(self, stream_id: int, code: int) -> None:
        self.out += f.rst_stream_frame(stream_id, code)
        if self._streams.pop(stream_id, None) is not None:
            self.events.on_reset(stream_id)

    # -- frames out --------------------------------------------------------------------

    def is_open(self, stream_id: int) -> bool:
        stream = self._streams.get(stream_id)
        return stream is not None and stream.local_open

    def window(self, stream_id: int) -> int:
        """How many bytes of DATA the client lets us send on the stream now."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return 0
        return min(stream.send_window, self._send_connection)

    def send_headers(self, stream_id: int, headers: list[tuple[bytes, bytes]], end_stream: bool = False) -> None:
        self.send_block(stream_id, encode_fields(headers), end_stream)

    def send_block(self, stream_id: int, block: bytes, end_stream: bool = False) -> None:
        """HEADERS (and CONTINUATION) for an HPACK block made by h2_hpack.encode_fields."""
        stream = self._open(stream_id)
        # (Our table is empty and says so once: no SETTINGS_HEADER_TABLE_SIZE can be below it.)
        block = self._encoder.block(block)
        self.out += f.headers_frames(stream_id, block, end_stream, self.max_send_frame)
        if end_stream:
            self._ended(stream_id, stream)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Send DATA; `data` must fit in `window(stream_id)` and the client's frame size."""
        stream = self._open(stream_id)
        length = len(data)
        stream.send_window -= length
        self._send_connection -= length
        out = self.out
        out += f.frame_header(f.DATA, f.END_STREAM if end_stream else 0, stream_id, length)
        out += data  # (appended, not joined to its header first: bodies can be large)
        if end_stream:
            self._ended(stream_id, stream)

    def end_stream(self, stream_id: int) -> None:
        self.send_data(stream_id, b"", True)

    def reset_stream(self, stream_id: int, code: int) -> None:
        """RST_STREAM, unless the stream is already closed."""
        if self._streams.pop(stream_id, None) is not None:
            self.out += f.rst_stream_frame(stream_id, code)

    def goaway(self, last_stream_id: int, code: int = f.NO_ERROR, debug: bytes = b"") -> None:
        self.out += f.goaway_frame(last_stream_id, code, debug)

    def fail(self, code: int, reason: str) -> None:
        """End the connection: GOAWAY with `code`; nothing more is read or sent after it."""
        if self.error:
            return
        self.error = reason or "error"
        self.error_code = code
        self.goaway(self.highest_stream, code, reason.encode("latin-1", "replace")[:256])
        self._streams.clear()

    def take_output(self) -> bytes:
        data = bytes(self.out)
        self.out.clear()
        return data

    def _open(self, stream_id: int) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None or not stream.local_open:
            raise StreamClosed(stream_id)
        return stream

    def _ended(self, stream_id: int, stream: _Stream) -> None:
        stream.local_open = False
        if not stream.remote_open:
            del self._streams[stream_id]
