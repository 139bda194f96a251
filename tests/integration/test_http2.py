"""HTTP/2: h2c with prior knowledge, h2 over TLS by ALPN, flow control, limits and attacks.

The client is the `h2` library over a plain socket (tests/h2_client.py), or raw frames
where an attack needs what a well-behaved library refuses to send; curl checks that a
real client agrees.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h2.errors
import h2.events
import pytest
from hpack import Decoder, Encoder
from hyperframe.frame import ContinuationFrame, HeadersFrame, PingFrame, RstStreamFrame, SettingsFrame

from h2_client import H2Client
from helpers import Server, parse_response
from http_client import get
from tls_pki import PKI

APP = "wsgi_apps:app"
MODES = {"inline": ("--threads", "1"), "threads": ("--threads", "4")}
ENHANCE_YOUR_CALM = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


@pytest.fixture(scope="module", params=sorted(MODES))
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with Server([APP, "--http2", "--send-timeout", "2", "--max-body-size", "100000", *MODES[request.param]]) as srv:
        yield srv


def environ(reply: Any) -> dict[str, Any]:
    return {key: entry.get("value") for key, entry in json.loads(reply.body).items() if isinstance(entry, dict)}


# -- PEP 3333 over HTTP/2 ---------------------------------------------------------------


def test_environ_as_http1(server: Server) -> None:
    with H2Client(server.port) as client:
        reply = client.get(
            "/environ/caf%C3%A9?x=1",
            headers=[("cookie", "a=1"), ("cookie", "b=2"), ("x-thing", "one"), ("x-thing", "two")],
        )
    assert reply.status == 200
    env = environ(reply)
    assert env["SERVER_PROTOCOL"] == "HTTP/2"
    assert env["HTTP_HOST"] == "example.test"  # :authority
    assert env["HTTP_COOKIE"] == "a=1; b=2"  # crumbs joined as one Cookie header
    assert env["HTTP_X_THING"] == "one,two"
    assert env["PATH_INFO"] == "/environ/café".encode().decode("latin-1")
    assert env["QUERY_STRING"] == "x=1"
    assert env["REQUEST_METHOD"] == "GET"
    assert env["wsgi.url_scheme"] == "http"
    assert not any(key.startswith("HTTP_:") for key in env)


def test_no_hop_by_hop_headers_and_streamed_bodies(server: Server) -> None:
    with H2Client(server.port) as client:
        lazy = client.get("/lazy")  # a generator without Content-Length: no chunking in HTTP/2
        head = client.get("/big?chunks=2&size=1000", method="HEAD")
    assert lazy.status == 201 and lazy.body == b"lazy body"
    for reply in (lazy, head):
        assert not {"connection", "transfer-encoding", "keep-alive"} & set(reply.headers)
    assert head.status == 200 and head.body == b"" and head.headers["content-length"] == "2000"


def test_many_streams_on_one_connection(server: Server) -> None:
    with H2Client(server.port) as client:
        sids = [client.request(f"/environ?n={n}") for n in range(30)]
        replies = client.wait(*sids)
    assert [environ(r)["QUERY_STRING"] for r in replies] == [f"n={n}" for n in range(30)]


def test_upload_and_body_limit(server: Server) -> None:
    with H2Client(server.port) as client:
        small = client.get("/echo", method="POST", body=b"x" * 70000)  # beyond one 64 KiB window
        assert small.status == 200 and small.body == b"x" * 70000
        # Refused on its HEADERS, before any of the body is sent.
        declared = client.get("/echo", method="POST", headers=[("content-length", "200000")], end=False)
        assert declared.status == 413
        sid = client.request("/echo", method="POST", body=b"z" * 60000, end=False)
        client.send_body(sid, b"z" * 60000)
        (over,) = client.wait(sid)
        assert over.status == 413
        assert client.get("/pid").status == 200  # the connection goes on


def test_errors_in_the_app(server: Server) -> None:
    with H2Client(server.port) as client:
        assert client.get("/boom-before").status == 500
        after = client.get("/boom-after")  # failed mid-body: the stream is reset, not ended
        assert after.reset == h2.errors.ErrorCodes.INTERNAL_ERROR
        short = client.get("/short")  # shorter than its Content-Length
        assert short.reset is not None and not short.ended
        assert client.get("/pid").status == 200


# -- flow control -------------------------------------------------------------------------


def test_slow_stream_blocks_neither_the_app_nor_the_others(server: Server) -> None:
    """The peer's stream window stays shut: the app is pulled no further, other streams flow."""
    with H2Client(server.port, auto_ack=False) as client:
        big = client.request("/big?chunks=64&size=65536")  # 4 MiB
        deadline = time.monotonic() + 3
        while len(client.replies[big].body) < 65535 and time.monotonic() < deadline:
            client.read_events(1)
        assert len(client.replies[big].body) == 65535  # the initial window, no byte more
        # Refill the connection's window, never the big stream's: others must still flow.
        client.conn.increment_flow_control_window(1 << 24)
        client.flush()
        other = client.get("/pulled")
        assert other.status == 200
        produced = json.loads(other.body)["bytes"]
        assert produced <= 8 * 65536, produced  # not 4 MiB: pulled only as the window allows
        # A zero window for longer than --send-timeout resets that stream alone.
        (stalled,) = client.wait(big, timeout=6)
        assert stalled.reset == h2.errors.ErrorCodes.CANCEL
        assert client.get("/pid").status == 200


def test_window_updates_let_a_big_response_through(server: Server) -> None:
    with H2Client(server.port) as client:
        reply = client.get("/big?chunks=32&size=65536")
    assert reply.status == 200 and len(reply.body) == 32 * 65536


# -- the attacks -----------------------------------------------------------------------------


_opened: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_raw_sockets() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


def raw_connection(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    _opened.append(sock)
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + SettingsFrame(0).serialize())
    return sock


def headers_block(encoder: Encoder, path: str = "/pid", extra: list[tuple[bytes, bytes]] | None = None) -> bytes:
    fields = [(b":method", b"GET"), (b":path", path.encode()), (b":scheme", b"http"), (b":authority", b"t")]
    return encoder.encode(fields + (extra or []))


def goaway_of(sock: socket.socket, timeout: float = 5.0) -> int | None:
    """Read until the server closes; the error code of the GOAWAY it sent, if any.

    Frames are split by hand: a client state machine would refuse the responses to
    streams it did not open itself and lose the GOAWAY behind them.
    """
    code = None
    buffered = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:  # closed with our flood still unread: the kernel resets
            return code
        if not data:
            return code
        buffered += data
        while len(buffered) >= 9:
            length = int.from_bytes(buffered[:3], "big")
            if len(buffered) < 9 + length:
                break
            if buffered[3] == 0x7:  # GOAWAY: last stream id, then the error code
                code = int.from_bytes(buffered[9 + 4 : 9 + 8], "big")
            buffered = buffered[9 + length :]
    raise AssertionError(f"the server did not close the connection (GOAWAY code {code})")


def test_rapid_reset_ends_in_goaway(server: Server) -> None:
    """CVE-2023-44487: streams opened and reset at once, thousands a second."""
    sock = raw_connection(server.port)
    encoder = Encoder()
    frames = b""
    for n in range(400):
        sid = 2 * n + 1
        frames += HeadersFrame(sid, headers_block(encoder), flags=["END_HEADERS", "END_STREAM"]).serialize()
        frames += RstStreamFrame(sid, error_code=8).serialize()
    try:
        sock.sendall(frames)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert goaway_of(sock) == ENHANCE_YOUR_CALM
    assert get(server.port, "/pid")[0] == 200  # the worker serves others


@pytest.mark.parametrize("frame", ["ping", "settings"])
def test_ping_and_settings_floods_end_in_goaway(server: Server, frame: str) -> None:
    sock = raw_connection(server.port)
    one = PingFrame(0, b"12345678").serialize() if frame == "ping" else SettingsFrame(0).serialize()
    try:
        sock.sendall(one * 500)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert goaway_of(sock) == ENHANCE_YOUR_CALM


def test_continuation_flood_is_cut(server: Server) -> None:
    """CVE-2024-27316: a header block that never ends, in endless CONTINUATION frames."""
    sock = raw_connection(server.port)
    encoder = Encoder()
    frames = HeadersFrame(1, headers_block(encoder)).serialize()  # no END_HEADERS
    block = encoder.encode([(b"x-pad", b"a" * 1000)])
    frames += b"".join(ContinuationFrame(1, block).serialize() for _ in range(200))
    try:
        sock.sendall(frames)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert goaway_of(sock) == h2.errors.ErrorCodes.PROTOCOL_ERROR


def test_hpack_bomb_is_cut(server: Server) -> None:
    """A small block that decodes to megabytes: one big field indexed, then referenced often."""
    sock = raw_connection(server.port)
    encoder = Encoder()
    big = [(b"x-bomb", b"b" * 4000)]
    block = headers_block(encoder, extra=big * 400)  # 1.6 MB decoded, a few KB on the wire
    assert len(block) < 10000
    frames = HeadersFrame(1, block[:16000], flags=["END_HEADERS", "END_STREAM"]).serialize()
    sock.sendall(frames)
    assert goaway_of(sock) is not None


def test_header_fields_too_large_is_431(server: Server) -> None:
    with H2Client(server.port) as client:
        reply = client.get("/pid", headers=[(f"x-h{n}", "v") for n in range(150)])
        assert reply.status == 431
        assert client.get("/pid").status == 200


def test_max_concurrent_streams(server: Server) -> None:
    """The bound is advertised; a client opening stream 101 while 100 are open is cut off."""
    with H2Client(server.port) as client:
        assert client.conn.remote_settings.max_concurrent_streams == 100
    sock = raw_connection(server.port)
    encoder = Encoder()
    frames = b"".join(
        HeadersFrame(2 * n + 1, headers_block(encoder, "/echo"), flags=["END_HEADERS"]).serialize()
        for n in range(101)  # bodies never sent: all stay open
    )
    sock.sendall(frames)
    assert goaway_of(sock) == h2.errors.ErrorCodes.PROTOCOL_ERROR


# -- Upgrade: h2c (RFC 7540 3.2) ----------------------------------------------------------------

UPGRADE_GET = b"GET /environ/up?y=1 HTTP/1.1\r\nHost: example.test\r\nCookie: a=1\r\n"


def test_upgrade_h2c_answers_on_stream_1_then_speaks_http2(server: Server) -> None:
    with H2Client(server.port, upgrade=UPGRADE_GET) as client:
        assert client.switch.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), client.switch
        assert b"\r\nUpgrade: h2c\r\n" in client.switch and b"\r\nConnection: Upgrade\r\n" in client.switch
        [first] = client.wait(1)
        [second] = client.wait(client.request("/environ?n=2"))
    assert first.status == 200 and second.status == 200
    env = environ(first)
    assert env["SERVER_PROTOCOL"] == "HTTP/2"
    assert (env["PATH_INFO"], env["QUERY_STRING"]) == ("/environ/up", "y=1")
    assert env["HTTP_HOST"] == "example.test" and env["HTTP_COOKIE"] == "a=1"
    assert not {"HTTP_UPGRADE", "HTTP_CONNECTION", "HTTP_HTTP2_SETTINGS"} & set(env), env  # the upgrade's own
    assert environ(second)["QUERY_STRING"] == "n=2"


@pytest.mark.parametrize(
    "head",
    [
        b"GET /environ HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",  # no HTTP2-Settings
        b"GET /environ HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: not*base64\r\n\r\n",
        b"GET /environ HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: websocket\r\n"
        b"HTTP2-Settings: AAMAAABk\r\n\r\n",
        b"GET /environ HTTP/1.0\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABk\r\n\r\n",
    ],
    ids=["no-settings", "bad-settings", "not-h2c", "http-1.0"],
)
def test_an_upgrade_that_does_not_qualify_is_answered_over_http1(server: Server, head: bytes) -> None:
    status, headers, _ = parse_response(server.request(head))[:3]
    assert status == 200 and headers.get("connection") == "close", headers


def test_no_h2c_upgrade_answers_over_http1() -> None:
    with Server([APP, "--http2", "--no-h2c-upgrade"]) as srv, H2Client(srv.port, upgrade=UPGRADE_GET) as client:
        assert client.switch.startswith(b"HTTP/1.1 200 "), client.switch
        # Prior knowledge still works.
        with H2Client(srv.port) as prior:
            assert prior.get("/environ").status == 200


def test_preface_without_http2_is_505() -> None:
    with Server([APP]) as srv:
        reply = srv.request(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 505 ")


def test_preface_in_pieces() -> None:
    with Server([APP, "--http2"]) as srv:
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        _opened.append(sock)
        for piece in (b"PRI * HT", b"TP/2.0\r\n", b"\r\nSM\r\n", b"\r\n" + SettingsFrame(0).serialize()):
            sock.sendall(piece)
            time.sleep(0.05)  # separate reads on the server's side
        encoder = Encoder()
        sock.sendall(HeadersFrame(1, headers_block(encoder), flags=["END_HEADERS", "END_STREAM"]).serialize())
        sock.settimeout(5)
        data = sock.recv(65536)
        assert data[3] == 4  # the server's SETTINGS frame: it speaks HTTP/2
        sock.close()


# -- --timeout per stream ------------------------------------------------------------------

HUNG_STACK = re.compile(r'ops_apps\.py", line \d+,? in deeply_asleep')


def worker_status(sock: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "corral", "status", "--control-socket", sock, "--json"],
        capture_output=True, text=True, timeout=10, check=True,
    )
    worker: dict[str, Any] = json.loads(done.stdout)["sites"][0]["workers"][0]
    return worker


def test_hung_stream_is_answered_504_and_its_worker_replaced(tmp_path: Path) -> None:
    """As HTTP/1's (test_operations.py): the stack logged, 504, a graceful recycle; the
    connection's other streams are served meanwhile, and the heartbeat counts the stream."""
    sock = str(tmp_path / "ctl.sock")
    options = ["--http2", "--threads", "4", "--timeout", "3", "--log-level", "debug", "--control-socket", sock]
    with Server(["ops_apps:hangs", *options]) as srv, H2Client(srv.port, timeout=15) as client:
        hang = client.request("/hang")
        line = srv.wait_for(r"deeply asleep in \d+", 10)
        assert line, srv.log()
        stuck = int(line.split()[-1])
        [nap] = client.wait(client.request("/nap?0.2"))
        assert (nap.status, nap.body) == (200, str(stuck).encode())
        deadline = time.monotonic() + 3
        while worker_status(sock)["in_flight"] != 1:  # (the heartbeat comes once a second)
            assert time.monotonic() < deadline, worker_status(sock)
        [hung] = client.wait(hang, timeout=10)
        assert hung.status == 504 and b"did not answer in time" in hung.body, hung
        assert srv.wait_for(rf"Worker {stuck} of app is recycling \(timeout\)", 5), srv.log()
        assert srv.wait_for(rf"Worker {stuck} exited", 10), srv.log()
    log = srv.log()
    assert re.search(r"Request GET /hang has run for [\d.]+s \(over --timeout 3s\)", log), log
    assert HUNG_STACK.search(log), log


# -- graceful stop -------------------------------------------------------------------------


def read_frames(sock: socket.socket, until_close: float = 10.0) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, stream id, payload) of every frame until the server closes."""
    data = b""
    deadline = time.monotonic() + until_close
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            raise AssertionError("the server did not close the connection") from None
        if not chunk:
            break
        data += chunk
    frames = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        kind, flags, sid = data[3], data[4], int.from_bytes(data[5:9], "big") & 0x7FFFFFFF
        frames.append((kind, flags, sid, data[9 : 9 + length]))
        data = data[9 + length :]
    return frames


def test_graceful_stop_sends_goaway_and_finishes_streams() -> None:
    """(Raw frames: the h2 library, as a client, refuses a response that follows a GOAWAY.)"""
    with Server([APP, "--http2", "--threads", "4"]) as srv:
        sock = raw_connection(srv.port)
        encoder = Encoder()
        block = headers_block(encoder, "/sleep?s=1")
        sock.sendall(HeadersFrame(1, block, flags=["END_HEADERS", "END_STREAM"]).serialize())
        assert srv.wait_for("sleeping", 5)
        srv.signal(signal.SIGTERM)
        frames = read_frames(sock)
        kinds = [kind for kind, _, _, _ in frames]
        goaway = kinds.index(7)
        last_stream, code = int.from_bytes(frames[goaway][3][:4], "big"), int.from_bytes(frames[goaway][3][4:8], "big")
        assert (last_stream, code) == (1, 0)
        headers = [f for f in frames if f[0] == 1 and f[2] == 1]
        data = [f for f in frames if f[0] == 0 and f[2] == 1]
        assert headers and data and data[-1][1] & 0x1  # the response, ended (END_STREAM)
        assert Decoder().decode(headers[0][3])[0] == (":status", "200")
        assert srv.wait(15) == 0


# -- TLS with ALPN, and curl ---------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


def serve_tls(pki: PKI, *options: str) -> Server:
    return Server([APP, "--certfile", str(pki.cert), "--keyfile", str(pki.key), *options])


def test_tls_alpn_h2_and_http1_fallback(pki: PKI) -> None:
    with serve_tls(pki) as srv:
        with H2Client(srv.port, context=pki.context()) as client:
            reply = client.get("/environ")
        env = environ(reply)
        assert env["SERVER_PROTOCOL"] == "HTTP/2" and env["HTTPS"] == "on"
        assert env["wsgi.url_scheme"] == "https"
        status, body = get(srv.port, "/environ", context=pki.context())  # offers no ALPN: HTTP/1.1
        assert status == 200 and json.loads(body)["SERVER_PROTOCOL"]["value"] == "HTTP/1.1"


def test_no_http2_tls_offers_http1_only(pki: PKI) -> None:
    with serve_tls(pki, "--no-http2-tls") as srv:
        context = pki.context()
        context.set_alpn_protocols(["h2", "http/1.1"])
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.selected_alpn_protocol() == "http/1.1"


CURL = shutil.which("curl")


def curl_has_http2() -> bool:
    if CURL is None:
        return False
    return "HTTP2" in subprocess.run([CURL, "-V"], capture_output=True, text=True).stdout


@pytest.mark.skipif(not curl_has_http2(), reason="curl without HTTP/2")
def test_curl_http2(pki: PKI) -> None:
    assert CURL is not None
    with serve_tls(pki, "--http2") as srv:
        url = f"https://127.0.0.1:{srv.port}/environ"
        out = subprocess.run(
            [CURL, "-sS", "--http2", "--cacert", str(pki.ca_file), "-w", "%{http_version}", "-o", "/dev/null", url],
            capture_output=True, text=True, timeout=10,
        )
        assert out.stdout == "2", out.stderr
    with Server([APP, "--http2"]) as plain:
        out = subprocess.run(
            [CURL, "-sS", "--http2-prior-knowledge", "-d", "hello", f"http://127.0.0.1:{plain.port}/echo"],
            capture_output=True, text=True, timeout=10,
        )
        assert out.stdout == "hello", out.stderr
        out = subprocess.run(  # --http2 on http://: curl asks with Upgrade: h2c
            [CURL, "-sS", "--http2", "-w", "%{http_version}", "-o", "/dev/null", f"http://127.0.0.1:{plain.port}/environ"],
            capture_output=True, text=True, timeout=10,
        )
        assert out.stdout == "2", out.stderr
        out = subprocess.run(  # with a body the upgrade is ignored (RFC 7540 3.2): HTTP/1.1, not 501
            [CURL, "-sS", "--http2", "-d", "hello", f"http://127.0.0.1:{plain.port}/echo"],
            capture_output=True, text=True, timeout=10,
        )
        assert out.stdout == "hello", out.stderr
