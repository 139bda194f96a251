"""Every way a request is refused, over a real socket against a real server.

Each invalid corpus file (tests/data/requests/invalid) is sent raw: the server must
answer with the right status and `Connection: close`, actually close, and never
call the app for the bad request or anything pipelined behind it. Then the
attack classes that need a live server: `_` headers, half-open sockets, response
splitting by the app, slow heads and idle keep-alive connections.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import Server, read_to_eof

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "http"))
from corpus import Case, load  # noqa: E402

INVALID = load("invalid")
_FLAGS = {
    "max_request_line": "--max-request-line",
    "max_header_size": "--max-header-size",
    "max_headers": "--max-headers",
    "max_body_size": "--max-body-size",
}


# -- raw-socket helpers -------------------------------------------------------------


def send_raw(server: Server, raw: bytes, timeout: float = 5.0) -> tuple[bytes, bool]:
    with server.connect(timeout) as sock:
        try:
            sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may refuse and close before it has read everything
        return read_to_eof(sock, timeout)


def split_responses(data: bytes) -> list[tuple[str, dict[str, str], bytes]]:
    """Split a byte stream of Content-Length-framed responses (what these tests get)."""
    responses = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"incomplete response head: {data[:200]!r}"
        lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            assert name.lower() not in headers, f"repeated header {name}"
            headers[name.lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        responses.append((lines[0], headers, rest[:length]))
        data = rest[length:]
    return responses


def hits(server: Server) -> list[str]:
    data, closed = send_raw(server, b"GET /__hits__ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert closed
    return json.loads(split_responses(data)[0][2])


# -- the invalid corpus over real sockets -----------------------------------------------


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Server]]:
    """One counting server per distinct set of limits the corpus asks for."""
    started: dict[str, Server] = {}
    yield started
    for server in started.values():
        server.stop()


def _server_for(servers: dict[str, Server], case: Case) -> Server:
    limits = case.meta.get("limits", {})
    key = json.dumps(limits, sort_keys=True)
    if key not in servers:
        args = ["counting:app"]
        for name, value in sorted(limits.items()):
            args += [_FLAGS[name], str(value)]
        servers[key] = Server(args)
    return servers[key]


@pytest.mark.parametrize("case", INVALID, ids=[case.name for case in INVALID])
def test_invalid_corpus_refused_and_closed(servers: dict[str, Server], case: Case) -> None:
    server = _server_for(servers, case)
    hits(server)  # start from an empty record
    data, closed = send_raw(server, case.raw)
    assert closed, f"server kept the connection open after {data[:100]!r}"
    responses = split_responses(data)
    before = case.meta.get("before", 0)
    assert len(responses) == before + 1, [r[0] for r in responses]
    for status_line, _, _ in responses[:before]:
        assert status_line.startswith("HTTP/1.1 200 ")
    status_line, headers, body = responses[-1]
    assert status_line.startswith(f"HTTP/1.1 {case.meta['status']} "), (status_line, body)
    assert headers["connection"] == "close"
    assert len(hits(server)) == before, "the app saw a request it must never see"


# -- pipelining after an error ----------------------------------------------------------


def test_requests_pipelined_after_a_bad_one_are_not_processed(serve) -> None:
    server = serve("counting:app")
    raw = (
        b"POST /first HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nok"
        b"GET /second HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx"
        b"DELETE /third HTTP/1.1\r\nHost: t\r\n\r\n"
        b"GET /fourth HTTP/1.1\r\nHost: t\r\n\r\n"
    )
    data, closed = send_raw(server, raw)
    assert closed
    statuses = [r[0].split()[1] for r in split_responses(data)]
    assert statuses == ["200", "400"]
    assert hits(server) == ["POST /first"]


def test_smuggled_request_in_a_body_is_never_served(serve) -> None:
    """TE.CL: a front end that honours Content-Length would forward the hidden DELETE."""
    server = serve("counting:app", "--threads", "2")
    hidden = b"DELETE /admin HTTP/1.1\r\nHost: t\r\n\r\n"
    body = b"0\r\n\r\n" + hidden
    head = b"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: %d\r\n\r\n" % len(body)
    raw = head + body
    data, closed = send_raw(server, raw)
    assert closed and split_responses(data)[0][0].startswith("HTTP/1.1 400 ")
    assert hits(server) == []


# -- headers with underscores -------------------------------------------------------------


def test_underscore_headers_cannot_shadow_dashed_ones(serve) -> None:
    server = serve("basic:environ_dump")
    for order in ((b"X_Auth: evil", b"X-Auth: good"), (b"X-Auth: good", b"X_Auth: evil")):
        raw = b"GET / HTTP/1.1\r\nHost: t\r\n" + b"\r\n".join(order) + b"\r\nConnection: close\r\n\r\n"
        data, _ = send_raw(server, raw)
        environ = json.loads(split_responses(data)[0][2])
        assert environ["HTTP_X_AUTH"] == "good"
    data, _ = send_raw(server, b"GET / HTTP/1.1\r\nHost: t\r\nX_Auth: evil\r\nConnection: close\r\n\r\n")
    environ = json.loads(split_responses(data)[0][2])
    assert "HTTP_X_AUTH" not in environ
    assert not any("evil" in str(value) for value in environ.values())


# -- half-open sockets --------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _worker_pid(server: Server) -> int:
    data, _ = send_raw(server, b"GET /__pid__ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    return int(split_responses(data)[0][2])


@pytest.mark.parametrize("threads", ["1", "2"])
def test_half_open_client_still_gets_its_response_without_busy_loop(serve, threads: str) -> None:
    server = serve("counting:app", "--threads", threads)
    pid = _worker_pid(server)
    before = _cpu_seconds(pid)
    started = time.monotonic()
    with server.connect() as sock:
        sock.sendall(b"GET /slow?1 HTTP/1.1\r\nHost: t\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)  # half-open while the app works for a second
        data, closed = read_to_eof(sock)
    elapsed = time.monotonic() - started
    used = _cpu_seconds(pid) - before
    assert closed
    assert split_responses(data)[0][0].startswith("HTTP/1.1 200 ")
    assert elapsed >= 0.9
    assert used < 0.3 * elapsed, f"worker used {used:.2f}s CPU in {elapsed:.2f}s: busy loop on EOF"


def test_half_open_pipelined_requests_all_answered_then_closed(serve) -> None:
    server = serve("counting:app")
    with server.connect() as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        data, closed = read_to_eof(sock)
    assert closed
    assert [r[2] for r in split_responses(data)] == [b"GET /a 0", b"GET /b 0"]


def test_half_open_mid_head_closes_without_busy_loop(serve) -> None:
    server = serve("counting:app")
    pid = _worker_pid(server)
    before = _cpu_seconds(pid)
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost")
        sock.shutdown(socket.SHUT_WR)
        data, closed = read_to_eof(sock, timeout=3)
        time.sleep(0.5)  # give a spinning loop time to show up in /proc
    assert closed and data == b""
    assert _cpu_seconds(pid) - before < 0.2
    assert hits(server) == []


# -- CR/LF in response headers set by the app ----------------------------------------------


@pytest.mark.parametrize("threads", ["1", "3"])
@pytest.mark.parametrize("where", ["value", "lf", "name", "status"])
def test_crlf_from_the_app_gives_500_and_never_splits_the_response(serve, threads: str, where: str) -> None:
    server = serve("counting:header_injection", "--threads", threads)
    with server.connect() as sock:
        sock.sendall(b"GET /?%s HTTP/1.1\r\nHost: t\r\n\r\nGET /?ok HTTP/1.1\r\nHost: t\r\n\r\n" % where.encode())
        data, closed = read_to_eof(sock)
    assert b"X-Injected" not in data
    assert data.startswith(b"HTTP/1.1 500 ")
    assert data.count(b"HTTP/1.1 ") == 1, "a second response: the first one was split or the connection reused"
    assert closed
    assert b"\r\nConnection: close\r\n" in data.partition(b"\r\n\r\n")[0] + b"\r\n"


# -- timeouts ------------------------------------------------------------------------------


def test_slow_head_gets_408_after_header_timeout(serve) -> None:
    server = serve("counting:app", "--header-timeout", "1")
    with server.connect() as sock:
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")  # never finished
        data, closed = read_to_eof(sock, timeout=5)
        elapsed = time.monotonic() - started
    assert closed
    assert data.startswith(b"HTTP/1.1 408 ")
    assert b"\r\nConnection: close\r\n" in data
    assert 0.9 <= elapsed < 3.5
    assert hits(server) == []


def test_silent_connection_closed_after_header_timeout(serve) -> None:
    server = serve("counting:app", "--header-timeout", "1")
    with server.connect() as sock:
        started = time.monotonic()
        data, closed = read_to_eof(sock, timeout=5)
        elapsed = time.monotonic() - started
    assert closed and data == b""  # nothing was asked: nothing to answer
    assert 0.9 <= elapsed < 3.5


def test_idle_keepalive_connection_closed_after_keepalive_timeout(serve) -> None:
    server = serve("counting:app", "--keepalive-timeout", "1")
    with server.connect() as sock:
        sock.sendall(b"GET /one HTTP/1.1\r\nHost: t\r\n\r\n")
        sock.settimeout(5)
        first = sock.recv(65536)
        started = time.monotonic()
        assert first.startswith(b"HTTP/1.1 200 ") and b"Connection: close" not in first
        rest, closed = read_to_eof(sock, timeout=5)
        elapsed = time.monotonic() - started
    assert closed and rest == b""
    assert 0.9 <= elapsed < 3.5


def test_keepalive_timeout_restarts_with_each_request(serve) -> None:
    server = serve("counting:app", "--keepalive-timeout", "1")
    with server.connect() as sock:
        sock.settimeout(5)
        for path in (b"/a", b"/b", b"/c"):
            sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
            time.sleep(0.6)  # idle, but under the timeout each time
        _, closed = read_to_eof(sock, timeout=5)
    assert closed


def test_stalled_body_gets_408_after_body_timeout(serve) -> None:
    server = serve("counting:app", "--body-timeout", "1")
    with server.connect() as sock:
        started = time.monotonic()
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        data, closed = read_to_eof(sock, timeout=5)
        elapsed = time.monotonic() - started
    assert closed and data.startswith(b"HTTP/1.1 408 ")
    assert 0.9 <= elapsed < 3.5
    assert hits(server) == []


# -- Upgrade -----------------------------------------------------------------------------------


def test_upgrade_is_answered_as_http_then_closed(serve) -> None:
    """We never switch protocols: the request is served, and what follows is never parsed."""
    server = serve("counting:app")
    raw = (
        b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        + b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n"
    )
    data, closed = send_raw(server, raw)
    assert closed
    responses = split_responses(data)
    assert [r[0].split()[1] for r in responses] == ["200"]
    assert responses[0][1]["connection"] == "close"
    assert hits(server) == ["GET /ws"]


# -- 100-continue bodies that go wrong ------------------------------------------------------------


def test_half_close_mid_100_continue_body_releases_the_app(serve) -> None:
    # A short graceful timeout: stopping the server must not wait on the blocked app.
    server = serve("basic:echo", "--threads", "2", "--graceful-timeout", "1")
    with server.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        sock.settimeout(5)
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"ab")
        sock.shutdown(socket.SHUT_WR)  # the rest of the body will never come
        _, closed = read_to_eof(sock, timeout=3)
    assert closed


@pytest.mark.parametrize(
    ("chunks", "status"),
    [(b"3\r\nabc\r\nzz\r\n", b"400"), (b"f\r\nabcabcabcabcabc\r\n0\r\n\r\n", b"413")],
    ids=["bad-chunk-size", "too-large"],
)
def test_protocol_error_in_100_continue_body_keeps_its_status(serve, chunks: bytes, status: bytes) -> None:
    server = serve("basic:echo", "--threads", "2", "--max-body-size", "10")
    with server.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
        sock.settimeout(5)
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(chunks)
        data, closed = read_to_eof(sock)
    assert closed
    assert data.startswith(b"HTTP/1.1 " + status + b" ")


# -- conformance classes that must be accepted (docs/http.md, decisions) --------------------

_ACCEPTED = [
    # (raw request, what the app must see: method, path, body, protocol)
    (b"GET /v HTTP/1.2\r\nHost: t\r\n\r\n", ("GET", "/v", "", "HTTP/1.1")),
    (
        b"POST /te HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: , chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        ("POST", "/te", "abc", "HTTP/1.1"),
    ),
    (
        b'POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3 ;a="x y"\r\nabc\r\n0\r\n\r\n',
        ("POST", "/x", "abc", "HTTP/1.1"),
    ),
    (b"GET /ct HTTP/1.1\r\nHost: t\r\nContent-Type: a/b\r\ncontent-type: a/b\r\n\r\n", ("GET", "/ct", "", "HTTP/1.1")),
]


@pytest.mark.parametrize(("raw", "seen"), _ACCEPTED, ids=["http_1_2", "te_empty_element", "chunk_ext_bws", "ct_equal"])
def test_conformance_cases_reach_the_app_over_a_socket(serve, raw: bytes, seen: tuple[str, ...]) -> None:
    server = serve("basic:environ_dump")
    data, _ = send_raw(server, raw.replace(b"Host: t\r\n", b"Host: t\r\nConnection: close\r\n", 1))
    status_line, _, body = split_responses(data)[0]
    assert status_line.startswith("HTTP/1.1 200 "), (status_line, body)
    environ = json.loads(body)
    keys = ("REQUEST_METHOD", "PATH_INFO", "wsgi.input.read", "SERVER_PROTOCOL")
    assert tuple(environ[key] for key in keys) == seen
