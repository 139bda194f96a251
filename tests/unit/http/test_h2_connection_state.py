"""http/h2_connection_state.py: the server side of HTTP/2, frame by frame (RFC 9113).

Client frames are built with http/h2_frames.py and header blocks with the reference
`hpack` package; what the server sends back is split into frames again and read.
"""

from __future__ import annotations

import hpack
import pytest

from corral.http import h2_frames as f
from corral.http.h2_connection_state import H2ConnectionState, StreamClosed
from corral.http.h2_guard import FloodGuard

REQUEST = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"t")]
SETTINGS = [(f.MAX_CONCURRENT_STREAMS, 100), (f.INITIAL_WINDOW_SIZE, 1 << 20)]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def on_request(self, stream_id: int, headers: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        self.calls.append(("request", stream_id, headers, end_stream))

    def on_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        self.calls.append(("data", stream_id, data, end_stream))

    def on_end(self, stream_id: int) -> None:
        self.calls.append(("end", stream_id))

    def on_reset(self, stream_id: int) -> None:
        self.calls.append(("reset", stream_id))

    def on_window(self, stream_id: int) -> None:
        self.calls.append(("window", stream_id))

    def on_goaway(self) -> None:
        self.calls.append(("goaway",))


def frames_of(data: bytes) -> list[tuple[int, int, int, bytes]]:
    found = []
    while data:
        length = int.from_bytes(data[:3], "big")
        found.append((data[3], data[4], int.from_bytes(data[5:9], "big"), data[9 : 9 + length]))
        data = data[9 + length :]
    return found


class Peer:
    """A client talking to one H2ConnectionState."""

    def __init__(self, max_streams: int = 100, list_size: int = 100_000) -> None:
        self.events = Recorder()
        self.state = H2ConnectionState(self.events, FloodGuard(), list_size, max_streams, 1 << 20, 16 << 20)
        self.state.start(SETTINGS)
        self.encoder = hpack.Encoder()
        self.now = 100.0

    def send(self, data: bytes) -> list[tuple[int, int, int, bytes]]:
        self.state.receive(data, self.now)
        return frames_of(self.state.take_output())

    def open(self) -> list[tuple[int, int, int, bytes]]:
        return self.send(f.PREFACE + f.settings_frame([]))

    def headers(self, stream_id: int, fields: list[tuple[bytes, bytes]] = REQUEST, end: bool = True) -> bytes:
        flags = f.END_HEADERS | (f.END_STREAM if end else 0)
        return f.frame(f.HEADERS, flags, stream_id, self.encoder.encode(fields))

    def goaway_code(self, frames: list[tuple[int, int, int, bytes]]) -> int:
        codes = [int.from_bytes(payload[4:8], "big") for kind, _, _, payload in frames if kind == f.GOAWAY]
        assert codes, frames
        return codes[-1]


def test_the_preface_and_settings_are_answered() -> None:
    peer = Peer()
    ours = frames_of(peer.state.take_output())
    assert [kind for kind, *_ in ours] == [f.SETTINGS, f.WINDOW_UPDATE]
    assert int.from_bytes(ours[1][3], "big") == (16 << 20) - 65535
    assert peer.open() == [(f.SETTINGS, f.ACK, 0, b"")]


def test_a_request_in_one_headers_frame() -> None:
    peer = Peer()
    peer.open()
    peer.send(peer.headers(1))
    assert peer.events.calls == [("request", 1, REQUEST, True)]


@pytest.mark.parametrize(
    "data",
    [b"GET / HTTP/1.1\r\n\r\n", f.PREFACE[:10] + b"X" * 20],
    ids=["http1", "broken"],
)
def test_not_a_preface_is_a_protocol_error(data: bytes) -> None:
    peer = Peer()
    peer.state.take_output()
    assert peer.goaway_code(peer.send(data)) == f.PROTOCOL_ERROR
    assert peer.state.error


def test_the_first_frame_must_be_settings() -> None:
    peer = Peer()
    assert peer.goaway_code(peer.send(f.PREFACE + f.frame(f.PING, 0, 0, b"12345678"))) == f.PROTOCOL_ERROR


def test_a_request_byte_by_byte_is_the_same_request() -> None:
    peer = Peer()
    data = f.PREFACE + f.settings_frame([]) + peer.headers(1, end=False) + f.data_frame(1, b"body", True)
    for at in range(len(data)):
        peer.send(data[at : at + 1])
    assert peer.events.calls == [("request", 1, REQUEST, False), ("data", 1, b"body", True)]


def test_headers_then_continuation() -> None:
    peer = Peer()
    peer.open()
    block = peer.encoder.encode(REQUEST)
    peer.send(
        f.frame(f.HEADERS, f.END_STREAM, 1, block[:3])
        + f.frame(f.CONTINUATION, 0, 1, block[3:6])
        + f.frame(f.CONTINUATION, f.END_HEADERS, 1, block[6:])
    )
    assert peer.events.calls == [("request", 1, REQUEST, True)]


def test_a_header_block_interrupted_is_a_protocol_error() -> None:
    peer = Peer()
    peer.open()
    block = peer.encoder.encode(REQUEST)
    frames = peer.send(f.frame(f.HEADERS, f.END_STREAM, 1, block[:3]) + f.frame(f.PING, 0, 0, b"12345678"))
    assert peer.goaway_code(frames) == f.PROTOCOL_ERROR
    assert peer.events.calls == []


def test_a_header_block_that_never_ends_is_cut() -> None:
    peer = Peer(list_size=10_000)
    peer.open()
    frames = peer.send(f.frame(f.HEADERS, 0, 1, b"") + f.frame(f.CONTINUATION, 0, 1, b"\x00" * 10_001))
    assert peer.goaway_code(frames) == f.PROTOCOL_ERROR


def test_an_hpack_bomb_ends_the_connection() -> None:
    peer = Peer(list_size=100_000)
    peer.open()
    frames = peer.send(peer.headers(1, REQUEST + [(b"x-bomb", b"b" * 4000)] * 400))
    assert peer.goaway_code(frames) == f.ENHANCE_YOUR_CALM
    assert peer.events.calls == []


def test_a_broken_header_block_is_a_compression_error() -> None:
    peer = Peer()
    peer.open()
    frames = peer.send(f.frame(f.HEADERS, f.END_HEADERS, 1, b"\xff\xff\xff\xff\xff\xff"))
    assert peer.goaway_code(frames) == f.COMPRESSION_ERROR


@pytest.mark.parametrize("stream_id", [0, 2])
def test_headers_on_a_server_stream_id_is_a_protocol_error(stream_id: int) -> None:
    peer = Peer()
    peer.open()
    assert peer.goaway_code(peer.send(peer.headers(stream_id))) == f.PROTOCOL_ERROR


def test_headers_on_a_closed_stream_are_decoded_and_ignored() -> None:
    """The HPACK table is the connection's: a block on a stream we closed still updates it."""
    peer = Peer()
    peer.open()
    peer.send(peer.headers(3))
    peer.state.send_headers(3, [(b":status", b"200")], end_stream=True)  # stream 3 closed both ways
    peer.send(peer.headers(1, REQUEST + [(b"x-new", b"indexed")]))  # 1 < 3: closed; x-new enters the table
    peer.send(peer.headers(5, REQUEST + [(b"x-new", b"indexed")]))  # refers to it by index
    assert peer.events.calls[-1] == ("request", 5, REQUEST + [(b"x-new", b"indexed")], True)
    assert len(peer.events.calls) == 2


def test_trailers_end_the_stream() -> None:
    peer = Peer()
    peer.open()
    peer.send(peer.headers(1, end=False) + f.data_frame(1, b"x", False) + peer.headers(1, [(b"x-t", b"1")]))
    assert peer.events.calls[-1] == ("end", 1)


def test_trailers_without_end_stream_are_a_protocol_error() -> None:
    peer = Peer()
    peer.open()
    frames = peer.send(peer.headers(1, end=False) + peer.headers(1, [(b"x-t", b"1")], end=False))
    assert peer.goaway_code(frames) == f.PROTOCOL_ERROR


def test_data_after_the_stream_ended_resets_it() -> None:
    peer = Peer()
    peer.open()
    frames = peer.send(peer.headers(1) + f.data_frame(1, b"late", False))
    assert (f.RST_STREAM, 0, 1, f.STREAM_CLOSED.to_bytes(4, "big")) in frames
    assert peer.events.calls[-1] == ("reset", 1)
    assert not peer.state.is_open(1)


@pytest.mark.parametrize("stream_id", [0, 7])
def test_data_on_stream_0_or_an_idle_stream_is_a_protocol_error(stream_id: int) -> None:
    peer = Peer()
    peer.open()
    assert peer.goaway_code(peer.send(f.data_frame(stream_id, b"x", False))) == f.PROTOCOL_ERROR


def test_padding_is_removed_and_counted_in_flow_control() -> None:
    peer = Peer()
    peer.open()
    padded = f.frame(f.DATA, f.PADDED | f.END_STREAM, 1, bytes([5]) + b"abc" + b"\0" * 5)
    peer.send(peer.headers(1, end=False) + padded)
    assert peer.events.calls[-1] == ("data", 1, b"abc", True)
    assert peer.state._recv_connection == (16 << 20) - 9


def test_padding_longer_than_the_frame_is_a_protocol_error() -> None:
    peer = Peer()
    peer.open()
    padded = f.frame(f.DATA, f.PADDED, 1, bytes([9]) + b"abc")
    assert peer.goaway_code(peer.send(peer.headers(1, end=False) + padded)) == f.PROTOCOL_ERROR


def test_received_data_is_given_back_in_window_updates() -> None:
    peer = Peer()
    peer.open()
    peer.send(peer.headers(1, end=False))
    chunk = b"x" * 16384
    updates = []
    for _ in range(8):  # 128 KiB: an update per 32 KiB, so a client on the default 64 KiB never stalls
        updates += [frame for frame in peer.send(f.data_frame(1, chunk, False)) if frame[0] == f.WINDOW_UPDATE]
    assert [(stream_id, int.from_bytes(payload, "big")) for _, _, stream_id, payload in updates] == [(1, 32768)] * 4


def test_data_beyond_the_stream_window_resets_the_stream() -> None:
    peer = Peer()
    peer.open()
    peer.send(peer.headers(1, end=False))
    peer.state._streams[1].recv_window = 10
    frames = peer.send(f.data_frame(1, b"x" * 11, False))
    assert (f.RST_STREAM, 0, 1, f.FLOW_CONTROL_ERROR.to_bytes(4, "big")) in frames


def test_send_window_follows_settings_and_updates() -> None:
    peer = Peer()
    peer.open()
    peer.send(peer.headers(1))
    assert peer.state.window(1) == 65535
    peer.state.send_data(1, b"x" * 65535)
    assert peer.state.window(1) == 0
    peer.send(f.window_update_frame(1, 100))
    assert peer.state.window(1) == 0  # the connection's window is shut too
    assert peer.events.calls[-1] == ("window", 1)
    peer.send(f.window_update_frame(0, 1000))
    assert peer.state.window(1) == 100
    assert peer.events.calls[-1] == ("window", 0)
    peer.send(f.settings_frame([(f.INITIAL_WINDOW_SIZE, 65535 + 50)]))
    assert peer.state.window(1) == 150


@pytest.mark.parametrize(
    "frame, code",
    [
        (f.window_update_frame(0, 0), f.PROTOCOL_ERROR),
        (f.window_update_frame(0, f.MAX_WINDOW), f.FLOW_CONTROL_ERROR),
        (f.frame(f.WINDOW_UPDATE, 0, 0, b"\0\0\1"), f.FRAME_SIZE_ERROR),
        (f.window_update_frame(9, 1), f.PROTOCOL_ERROR),
        (f.settings_frame([(f.MAX_FRAME_SIZE, 100)]), f.PROTOCOL_ERROR),
        (f.settings_frame([(f.ENABLE_PUSH, 2)]), f.PROTOCOL_ERROR),
        (f.settings_frame([(f.INITIAL_WINDOW_SIZE, 1 << 31)]), f.FLOW_CONTROL_ERROR),
        (f.frame(f.SETTINGS, 0, 0, b"\0\0\0"), f.FRAME_SIZE_ERROR),
        (f.frame(f.SETTINGS, f.ACK, 0, b"\0\0\0\0\0\0"), f.FRAME_SIZE_ERROR),
        (f.frame(f.SETTINGS, 0, 1, b""), f.PROTOCOL_ERROR),
        (f.frame(f.PING, 0, 0, b"1234567"), f.FRAME_SIZE_ERROR),
        (f.frame(f.PING, 0, 1, b"12345678"), f.PROTOCOL_ERROR),
        (f.rst_stream_frame(0, 8), f.PROTOCOL_ERROR),
        (f.rst_stream_frame(9, 8), f.PROTOCOL_ERROR),
        (f.frame(f.PUSH_PROMISE, f.END_HEADERS, 1, b"\0\0\0\2"), f.PROTOCOL_ERROR),
        (f.frame(f.CONTINUATION, f.END_HEADERS, 1, b""), f.PROTOCOL_ERROR),
        (f.frame(f.GOAWAY, 0, 0, b"\0\0\0"), f.FRAME_SIZE_ERROR),
        (f.frame(f.PRIORITY, 0, 0, b"\0\0\0\1\1"), f.PROTOCOL_ERROR),
        (f.frame(f.DATA, 0, 1, b"x" * 16385), f.FRAME_SIZE_ERROR),
    ],
    ids=lambda value: str(value)[:40],
)
def test_connection_errors(frame: bytes, code: int) -> None:
    peer = Peer()
    peer.open()
    assert peer.goaway_code(peer.send(frame)) == code
    assert peer.send(peer.headers(1)) == []  # nothing more is read
    assert peer.events.calls == []


def test_ping_is_answered_with_its_payload() -> None:
    peer = Peer()
    peer.open()
    assert peer.send(f.frame(f.PING, 0, 0, b"abcdefgh")) == [(f.PING, f.ACK, 0, b"abcdefgh")]
    assert peer.send(f.frame(f.PING, f.ACK, 0, b"abcdefgh")) == []


def test_unknown_frames_and_priority_are_ignored() -> None:
    peer = Peer()
    peer.open()
    assert peer.send(f.frame(0xFA, 0xFF, 1, b"whatever") + f.frame(f.PRIORITY, 0, 3, b"\0\0\0\1\x10")) == []
    peer.send(peer.headers(1))
    assert peer.events.calls == [("request", 1, REQUEST, True)]


def test_a_stream_depending_on_itself_is_reset() -> None:
    peer = Peer()
    peer.open()
    peer.send(peer.headers(1, end=False))
    frames = peer.send(f.frame(f.PRIORITY, 0, 1, b"\0\0\0\1\x10"))
    assert frames == [(f.RST_STREAM, 0, 1, f.PROTOCOL_ERROR.to_bytes(4, "big"))]


def test_headers_depending_on_their_own_stream_are_reset_unseen() -> None:
    peer = Peer()
    peer.open()
    block = peer.encoder.encode(REQUEST)
    frame = f.frame(f.HEADERS, f.END_HEADERS | f.END_STREAM | f.PRIORITY_FLAG, 1, b"\0\0\0\1\x10" + block)
    assert peer.send(frame) == [(f.RST_STREAM, 0, 1, f.PROTOCOL_ERROR.to_bytes(4, "big"))]
    assert peer.events.calls == []  # (found by tests/fuzz/fuzz_h2.py: a reset of a stream never reported)
    peer.send(peer.headers(3))
    assert peer.events.calls == [("request", 3, REQUEST, True)]


def test_more_streams_than_advertised_is_a_protocol_error() -> None:
    peer = Peer(max_streams=2)
    peer.open()
    peer.send(peer.headers(1, end=False) + peer.headers(3, end=False))
    assert peer.goaway_code(peer.send(peer.headers(5, end=False))) == f.PROTOCOL_ERROR


def test_a_reset_stream_is_reported_and_closed() -> None:
    peer = Peer()
    peer.open()
    peer.send(peer.headers(1, end=False) + f.rst_stream_frame(1, f.CANCEL))
    assert peer.events.calls[-1] == ("reset", 1)
    with pytest.raises(StreamClosed):
        peer.state.send_headers(1, [(b":status", b"200")])
    assert peer.send(f.data_frame(1, b"in flight", False)) == []  # after the reset: ignored


def test_rapid_reset_ends_in_enhance_your_calm() -> None:
    peer = Peer()
    peer.open()
    frames = []
    for n in range(300):
        sid = 2 * n + 1
        frames += peer.send(peer.headers(sid) + f.rst_stream_frame(sid, f.CANCEL))
        if peer.state.error:
            break
    assert peer.goaway_code(frames) == f.ENHANCE_YOUR_CALM
    assert sid == 2 * 200 + 1


def test_responses_are_framed_within_the_peers_frame_size() -> None:
    peer = Peer()
    peer.open()
    peer.send(peer.headers(1))
    big = [(b":status", b"200")] + [(f"x-{n}".encode(), b"v" * 100) for n in range(200)]
    peer.state.send_headers(1, big)
    peer.state.send_data(1, b"hello", end_stream=True)
    frames = frames_of(peer.state.take_output())
    assert [kind for kind, *_ in frames[:2]] == [f.HEADERS, f.CONTINUATION]
    assert all(len(payload) <= 16384 for *_, payload in frames)
    assert frames[-1] == (f.DATA, f.END_STREAM, 1, b"hello")
    decoded = hpack.Decoder().decode(b"".join(p for kind, _, _, p in frames if kind != f.DATA), raw=True)
    assert decoded == big
    assert not peer.state.is_open(1)


def test_upgrade_settings_open_stream_1() -> None:
    events = Recorder()
    state = H2ConnectionState(events, FloodGuard(), 100_000, 100, 1 << 20, 16 << 20)
    state.start(SETTINGS, b"AAQAAP__")  # INITIAL_WINDOW_SIZE 65535, base64url without padding
    assert state.highest_stream == 1
    assert state.window(1) == 65535
    state.send_headers(1, [(b":status", b"200")], end_stream=True)
    with pytest.raises(ValueError):
        H2ConnectionState(events, FloodGuard(), 100_000, 100, 1 << 20, 16 << 20).start(SETTINGS, b"!!")


def test_client_goaway_is_reported() -> None:
    peer = Peer()
    peer.open()
    peer.send(f.goaway_frame(0, f.NO_ERROR))
    assert peer.events.calls == [("goaway",)]
