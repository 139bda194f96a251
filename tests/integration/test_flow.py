"""Flow control: slow readers and slow writers cost neither memory nor other clients' service.

The response generator of /big counts the bytes it has produced (readable at
/pulled), so "the worker did not run ahead of the client" is measured in the
app itself, not guessed from timings. Inline mode matters most: there a worker
that blocked on one client would serve nobody else.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
from collections.abc import Iterator

import pytest

from helpers import Server, read_response
from http_client import get

MODES = {"inline": ("--threads", "1"), "threads": ("--threads", "4")}
MiB = 1024 * 1024


@pytest.fixture(scope="module", params=sorted(MODES))
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with Server(["wsgi_apps:app", *MODES[request.param]]) as srv:
        yield srv


def fetch(server: Server, target: str, timeout: float = 5.0) -> bytes:
    """One GET on a fresh connection; fails if the server does not answer in time."""
    status, body = get(server.port, target, timeout=timeout)
    assert status == 200
    return body


def pulled(server: Server) -> int:
    return int(json.loads(fetch(server, "/pulled"))["bytes"])


def settled_pulled(server: Server, deadline: float = 5.0) -> int:
    """The producer's count once it stopped moving: the socket buffers are full."""
    last = -1
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        now = pulled(server)
        if now == last:
            return now
        last = now
        time.sleep(0.2)  # no event exists for "the kernel buffers are full"; bounded by `deadline`
    return last


def slow_reader(server: Server, target: str) -> socket.socket:
    """A client with a small receive window (it reads slowly) that has asked for `target`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(10)
    sock.connect((server.host, server.port))
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
    return sock


def test_slow_reader_of_a_large_response(server: Server) -> None:
    total = 1024 * 64 * 1024  # 64 MiB: far more than socket buffers and the write high-water mark
    rss_before = int(fetch(server, "/rss"))
    with slow_reader(server, "/big?chunks=1024&size=65536") as sock:
        received = len(sock.recv(65536))

        # Other clients are served while this one is stalled (in inline mode too),
        # and the producer stopped once the buffers were full.
        ahead = settled_pulled(server)
        assert ahead < 16 * MiB, f"the worker pulled {ahead} bytes for a client that read {received}"
        rss_during = int(fetch(server, "/rss"))
        assert rss_during - rss_before < 32 * 1024, "worker RSS (KiB) grew as if it buffered the response"

        # The client reads a little: production resumes, paced by what was read.
        while received < 8 * MiB:
            received += len(sock.recv(1 << 20))
        assert settled_pulled(server) > ahead

        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    head_size = received - total
    assert 0 < head_size < 400, "every byte arrived, exactly once"
    assert pulled(server) == total


def test_write_callable_is_paced_in_threaded_mode(server: Server, request: pytest.FixtureRequest) -> None:
    if "threads" not in request.node.callspec.id:
        pytest.skip("inline, write() cannot block the loop: documented in docs/operations.md")
    total = 512 * 65536
    with slow_reader(server, "/big-write?chunks=512&size=65536") as sock:
        received = len(sock.recv(65536))
        ahead = settled_pulled(server)
        assert ahead < 12 * MiB, f"write() ran {ahead} bytes ahead of a client that read {received}"
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    assert total < received < total + 400


def test_each_block_is_sent_without_waiting_for_the_next(server: Server) -> None:
    """PEP 3333: the server must not delay a block while the app produces the next one."""
    with server.connect(timeout=5) as sock:
        sock.sendall(b"GET /pause?s=1.5 HTTP/1.1\r\nHost: t\r\n\r\n")
        started = time.monotonic()
        seen = b""
        sock.settimeout(1.0)
        while b"first-block;" not in seen:
            try:
                seen += sock.recv(4096)
            except TimeoutError:
                pytest.fail(f"first block not received while the app paused (got {seen!r})")
        assert time.monotonic() - started < 1.0
        sock.settimeout(5)
        while not seen.endswith(b"0\r\n\r\n"):
            seen += sock.recv(4096)
        assert seen.startswith(b"HTTP/1.1 200 ") and b"second-block" in seen


def test_large_upload_is_spooled_and_echoed(server: Server) -> None:
    payload = os.urandom(5 * MiB + 7)  # beyond the 1 MiB in-memory body buffer
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("POST", "/echo", body=payload)
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200
        assert response.getheader("X-Input-Fileno") == "True", "a large body goes to a temporary file"
        assert body == payload
        conn.request("POST", "/echo", body=b"small")
        response = conn.getresponse()
        assert response.read() == b"small"
        assert response.getheader("X-Input-Fileno") == "False", "a small body stays in memory"
    finally:
        conn.close()


def test_slow_uploader_does_not_block_other_clients(server: Server) -> None:
    with server.connect(timeout=5) as slow:
        slow.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n" + b"a" * 1000)
        for _ in range(3):  # the app has not been called for the slow one; others are served at once
            started = time.monotonic()
            assert fetch(server, "/pid", timeout=2).isdigit()
            assert time.monotonic() - started < 1.0
        slow.sendall(b"a" * 199_000)
        status, _, body = read_response(slow, timeout=5)
        assert status == 200 and body == b"a" * 200_000


def test_slow_reader_of_a_file_does_not_block_other_clients(server: Server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "big.bin"
    data = os.urandom(16 * MiB)
    path.write_bytes(data)
    with slow_reader(server, f"/file?path={path}") as sock:
        received = sock.recv(65536)
        for _ in range(3):
            assert fetch(server, "/pid", timeout=2).isdigit()
        chunks = [received]
        while chunk := sock.recv(1 << 20):
            chunks.append(chunk)
    raw = b"".join(chunks)
    assert raw.partition(b"\r\n\r\n")[2] == data
