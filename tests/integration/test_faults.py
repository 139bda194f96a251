"""Faults: apps that misbehave, clients that reset or stall, processes that are killed.

Bounded and loopback only: every loop has a count and a deadline.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator

import pytest

from helpers import Server, read_response, read_to_eof

Serve = Callable[..., Server]


def get(server: Server, path: str, timeout: float = 5.0) -> tuple[bytes, bool]:
    with server.connect(timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        return read_to_eof(sock, timeout)


def still_serves(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(sock)[0] == 200


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+)", status.read()).group(1))  # type: ignore[union-attr]


def worker_pids(server: Server, count: int) -> list[int]:
    pids: set[int] = set()
    deadline = time.monotonic() + 10
    while len(pids) < count and time.monotonic() < deadline:
        with server.connect() as sock:
            sock.sendall(b"GET /pid HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            pids.add(int(read_response(sock)[2]))
    assert len(pids) == count
    return sorted(pids)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with Server(["fault_apps:app"]) as running:
        yield running


# -- apps that misbehave -----------------------------------------------------------------

BEFORE_HEAD = {  # a well-formed 500, the connection usable or closed, the worker alive
    "not-iterable": "returned int",
    "start-response-twice": "start_response",
    "header-crlf": "X-Injected",
    "bad-status": "status",
}


@pytest.mark.parametrize("route", sorted(BEFORE_HEAD))
def test_misbehaving_app_before_its_head_is_a_500_and_named_in_the_log(server: Server, route: str) -> None:
    start = len(server.log_lines)
    data, _ = get(server, f"/{route}")
    assert data.startswith(b"HTTP/1.1 500 "), data[:200]
    assert b"evil" not in data and b"never" not in data
    said = rf"GET /{route}: app fault_apps:app broke the WSGI contract: .*{re.escape(BEFORE_HEAD[route])}"
    assert server.wait_for(said, 5, start=start), server.log()[-2000:]
    still_serves(server)


def test_iterable_raising_mid_body_closes_the_connection_after_its_head(server: Server) -> None:
    start = len(server.log_lines)
    data, closed = get(server, "/raise-mid-body")
    assert data.startswith(b"HTTP/1.1 200 ") and b"first part" in data and closed
    assert not data.endswith(b"0\r\n\r\n")  # no terminating chunk: the client sees a cut response
    assert server.wait_for("GET /raise-mid-body: app fault_apps:app raised", 5, start=start), server.log()[-2000:]
    assert server.wait_for("the iterable failed mid-body", 5, start=start)
    still_serves(server)


def test_close_raising_is_logged_and_the_response_stands(server: Server) -> None:
    start = len(server.log_lines)
    with server.connect() as sock:
        sock.sendall(b"GET /raise-in-close HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, body = read_response(sock)
        assert (status, body) == (200, b"body")
        said = r"closing the response iterable of GET /raise-in-close \(app fault_apps:app\)"
        assert server.wait_for(said, 5, start=start)
        assert server.wait_for("RaisesInClose failed", 5, start=start), server.log()[-2000:]
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(sock)[0] == 200


@pytest.mark.parametrize("route", ["more-than-length", "less-than-length"])
def test_body_that_disagrees_with_its_content_length_closes(server: Server, route: str) -> None:
    start = len(server.log_lines)
    data, closed = get(server, f"/{route}")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and closed
    assert len(body) <= int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
    said = {
        "more-than-length": "sent more than its Content-Length of 3",
        "less-than-length": "sent 5 bytes of its Content-Length of 100",
    }[route]
    assert server.wait_for(f"GET /{route}: app fault_apps:app {said}", 5, start=start), server.log()[-2000:]
    still_serves(server)
