"""Connection-level fuzzing: the real HTTPConnection over a fake transport (atheris).

Each input drives one connection through a random script: pipelined requests (plain,
with Content-Length or chunked bodies, streamed or failing responses, Connection: close)
mixed with garbage, cut at random points and fed between random client behaviour (the
client stops reading, reads again, half-closes, resets; loop passes run in between).
Invariants:
- no exception escapes the protocol or reaches the event loop's exception handler;
- responses never desync from requests: the n-th response answers the n-th request
  (each carries its request's sequence number), and nothing follows a refused request;
- reading pauses whenever the parser holds _MAX_QUEUED requests, so buffers stay bounded.

    python tests/fuzz/fuzz_connection.py -max_total_time=600 CORPUS_DIR

tests/unit/http/test_fuzzers.py runs it for a few seconds on every change.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: fake_transport

with atheris.instrument_imports():
    from corral.server import connection as connection_module
    from fake_transport import connect

# What a request asks the app to do; the path carries it and the request's number.
KINDS = ("plain", "stream", "raise", "raise-mid", "close", "post", "chunked")
# (A bare CRLF before a request is not garbage: RFC 9112 2.2 lets a server skip it, and we do.)
GARBAGE = (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", b"\x00\xff", b"GET /x HTTP/9.9\r\n\r\n",
           b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")


def app(environ: dict[str, Any], start_response: Any) -> Any:
    _, kind, seq = environ["PATH_INFO"].split("/")
    body = environ["wsgi.input"].read()
    if kind == "raise":
        raise RuntimeError("app fails before its headers")
    headers = [("X-Seq", seq)]
    if kind in ("stream", "raise-mid"):
        start_response("200 OK", headers)
        return _stream(kind, seq)
    payload = f"{seq}:{len(body)}".encode()
    start_response("200 OK", headers + [("Content-Length", str(len(payload)))])
    return [payload]


def _stream(kind: str, seq: str) -> Any:
    for i in range(3):
        if kind == "raise-mid" and i == 1:
            raise RuntimeError("app fails mid-body")
        yield (seq.encode() + b".") * 20000  # three blocks: enough to pass the high-water mark


def request(kind: str, seq: int) -> bytes:
    head = f"{'POST' if kind in ('post', 'chunked') else 'GET'} /{kind}/{seq} HTTP/1.1\r\nHost: fuzz\r\n"
    if kind == "close":
        return (head + "Connection: close\r\n\r\n").encode()
    if kind == "post":
        return (head + "Content-Length: 5\r\n\r\nhello").encode()
    if kind == "chunked":
        return (head + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").encode()
    return (head + "\r\n").encode()


def responses(data: bytes) -> list[tuple[int, str | None]]:
    """(status, X-Seq) of each complete response in what the client received."""
    found = []
    while data:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            break
        lines = data[:end].decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        rest = data[end + 4 :]
        if "content-length" in headers:
            size = int(headers["content-length"])
            if len(rest) < size:
                break
            data = rest[size:]
        elif headers.get("transfer-encoding") == "chunked":
            terminator = rest.find(b"\r\n0\r\n\r\n")
            if terminator < 0:
                break  # cut mid-body (an aborted stream)
            data = rest[terminator + 7 :]
        else:
            data = b""
        found.append((status, headers.get("x-seq")))
    return found


class Fuzzer:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(self._on_loop_error)
        self.loop_errors: list[Any] = []

    def _on_loop_error(self, loop: Any, context: dict[str, Any]) -> None:
        self.loop_errors.append(context)

    def pass_(self) -> None:
        self.loop.run_until_complete(asyncio.sleep(0))

    def run(self, data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        sent: list[str | None] = []  # per request on the wire: its kind, None for garbage
        stream = bytearray()
        for seq in range(fdp.ConsumeIntInRange(1, 12)):
            if fdp.ConsumeIntInRange(0, 9) == 0:
                stream += GARBAGE[fdp.ConsumeIntInRange(0, len(GARBAGE) - 1)]
                sent.append(None)
            else:
                kind = KINDS[fdp.ConsumeIntInRange(0, len(KINDS) - 1)]
                stream += request(kind, seq)
                sent.append(f"{kind}/{seq}")
        conn, transport = connect(self.loop, app)
        position = 0
        while position < len(stream) and not transport.closing:
            action = fdp.ConsumeIntInRange(0, 7)
            if action <= 3 and not transport.reading_paused:
                size = fdp.ConsumeIntInRange(1, 600)
                conn.data_received(bytes(stream[position : position + size]))
                position += size
                assert len(conn.parser.ready) < connection_module._MAX_QUEUED or transport.reading_paused
            elif action == 4:
                transport.drain()
            elif action == 5:
                self.pass_()
            elif action == 6 and fdp.ConsumeBool():
                if conn.eof_received() is False:
                    break
                position = len(stream)
            elif action == 7 and fdp.ConsumeIntInRange(0, 7) == 0:
                transport.close()  # the client resets: the transport is gone
                conn.connection_lost(ConnectionResetError())
                break
            else:
                transport.drain()
                self.pass_()
        for _ in range(8):  # let whatever is running finish, as a patient client would
            transport.drain()
            self.pass_()
        if not transport.closing:
            transport.close()
            conn.connection_lost(None)
        self.pass_()
        assert not self.loop_errors, self.loop_errors
        self.check_order(sent, responses(b"".join(transport.written)))

    @staticmethod
    def check_order(sent: list[str | None], got: list[tuple[int, str | None]]) -> None:
        for (status, seq), kind in zip(got, sent, strict=False):
            if kind is None:
                assert status >= 400 and seq is None, (status, seq, kind)
                return  # nothing after a refused request
            name, number = kind.split("/")
            if name == "raise":
                assert status == 500 and seq is None, (status, seq, kind)
            else:
                assert status == 200 and seq == number, (status, seq, kind, got, sent)
        assert len(got) <= len(sent)


FUZZER: Fuzzer | None = None


def one_input(data: bytes) -> None:
    global FUZZER
    if FUZZER is None:
        FUZZER = Fuzzer()
    FUZZER.run(data)


def main() -> None:
    logging.disable(logging.CRITICAL)  # the apps fail on purpose; their tracebacks are noise here
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
