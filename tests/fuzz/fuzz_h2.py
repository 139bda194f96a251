"""Coverage-guided fuzzing of the HTTP/2 connection state (http/h2_connection_state.py).

The invariant: after the preface and a SETTINGS frame, any bytes, cut anywhere, are either
taken as frames or end the connection with a GOAWAY -- never an exception -- and what the
state reports is coherent: requests on new, increasing, odd stream ids; data, ends and
resets only for streams it reported; nothing at all once it failed; every header list
either builds a request or is refused with an HTTPError; what it sends is whole frames.
Each request is answered at once (HEADERS, then as much DATA as the window allows), so the
sending side and its windows are fuzzed too.

    python tests/fuzz/fuzz_h2.py -max_total_time=600 CORPUS_DIR

tests/integration/test_fuzzers.py runs it for a few seconds on every change.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from corral.http import h2_frames as f
    from corral.http.errors import HTTPError
    from corral.http.h2_connection_state import H2ConnectionState, StreamClosed
    from corral.http.h2_guard import FloodGuard
    from corral.http.h2_messages import build_request
    from corral.http.limits import Limits

LIMITS = Limits(max_header_size=2048, max_headers=16)
OPENING = f.PREFACE + f.settings_frame([])
RESPONSE = [(b":status", b"200"), (b"content-type", b"text/plain")]


class Checker:
    def __init__(self) -> None:
        self.state: H2ConnectionState
        self.known: set[int] = set()
        self.highest = 0

    def _alive(self) -> None:
        assert not self.state.error, "an event after the connection failed"

    def on_request(self, stream_id: int, headers: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        self._alive()
        assert stream_id % 2 == 1 and stream_id > self.highest, f"stream {stream_id} after {self.highest}"
        self.highest = stream_id
        self.known.add(stream_id)
        try:
            build_request(headers, LIMITS)
        except HTTPError:
            pass
        state = self.state
        try:
            state.send_headers(stream_id, RESPONSE)
            size = min(state.window(stream_id), state.max_send_frame, 100)
            state.send_data(stream_id, b"x" * max(size, 0), end_stream=True)
        except StreamClosed:
            pass

    def on_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        self._alive()
        assert stream_id in self.known, f"data on stream {stream_id}, never reported"

    def on_end(self, stream_id: int) -> None:
        self._alive()
        assert stream_id in self.known

    def on_reset(self, stream_id: int) -> None:
        self._alive()
        assert stream_id in self.known

    def on_window(self, stream_id: int) -> None:
        self._alive()

    def on_goaway(self) -> None:
        self._alive()


def whole_frames(data: bytes) -> None:
    at = 0
    while at < len(data):
        assert len(data) - at >= 9, "a frame header cut short"
        at += 9 + int.from_bytes(data[at : at + 3], "big")
    assert at == len(data), "a frame payload cut short"


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    cuts = sorted(fdp.ConsumeIntInRange(0, 4096) for _ in range(fdp.ConsumeIntInRange(0, 4)))
    body = fdp.ConsumeBytes(fdp.remaining_bytes())
    checker = Checker()
    state = checker.state = H2ConnectionState(checker, FloodGuard(), 8192, 8, 65535, 1 << 20)
    state.start([(f.MAX_CONCURRENT_STREAMS, 8)])
    whole_frames(state.take_output())
    stream = OPENING + body
    start = 0
    for cut in [*cuts, len(stream)]:
        state.receive(stream[start : max(cut, start)], 0.0)
        start = max(cut, start)
        whole_frames(state.take_output())


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
