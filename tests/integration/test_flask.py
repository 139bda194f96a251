"""A real Flask app (tests/apps/flask_app.py) served by `corral serve flask_app:create_app()`."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import httpx
import pytest

from helpers import Server

pytest.importorskip("flask")

ServeFn = Callable[..., Server]


def read_until(sock: socket.socket, marker: bytes, buffer: bytes = b"", timeout: float = 5.0) -> bytes:
    """Read until `marker` is in what was read; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while marker not in buffer:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {marker!r} within {timeout}s; got {buffer!r}"
        sock.settimeout(remaining)
        data = sock.recv(65536)
        assert data, f"connection closed before {marker!r}; got {buffer!r}"
        buffer += data
    return buffer


def dechunk(data: bytes) -> bytes:
    body, rest = b"", data
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert rest == b"\r\n", rest
            return body
        body, rest = body + rest[:size], rest[size + 2 :]


def test_routes_json_and_errors(serve: ServeFn) -> None:
    server = serve("flask_app:create_app()")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        index = client.get("/")
        assert index.status_code == 200
        assert index.text == "Hello from Flask (default)"
        assert index.headers["content-type"] == "text/html; charset=utf-8"

        hello = client.get("/hello/Corral", params=[("x", "1"), ("x", "2"), ("q", "a b")])
        assert hello.json() == {"greeting": "Hello, Corral!", "args": {"x": ["1", "2"], "q": ["a b"]}}

        item = {"name": "widget", "tags": ["z", "a"], "note": "é"}
        created = client.post("/api/items", json=item)
        assert created.status_code == 201
        assert created.headers["location"] == "/api/items/widget"
        assert created.json() == {"name": "widget", "tags": ["a", "z"], "size": len(created.request.content)}

        bad = client.post("/api/items", json=["not", "an", "object"])
        assert bad.status_code == 400
        assert "expected a JSON object with a name" in bad.text

        missing = client.get("/no/such/page")
        assert missing.status_code == 404
        assert missing.json() == {"error": "not found", "path": "/no/such/page"}

        wrong_method = client.delete("/api/items")
        assert wrong_method.status_code == 405
        assert set(wrong_method.headers["allow"].split(", ")) == {"OPTIONS", "POST"}  # Flask's order varies


def test_factory_with_literal_arguments(serve: ServeFn) -> None:
    server = serve("flask_app:create_app('prod')")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/").text == "Hello from Flask (prod)"


def test_chunked_json_request_body(serve: ServeFn) -> None:
    # A chunked upload has no Content-Length: Flask reads it only because the server
    # sets wsgi.input_terminated and ends wsgi.input at the last chunk.
    server = serve("flask_app:create_app()")
    payload = json.dumps({"name": "chunky", "tags": ["b", "a"]}).encode()
    half = len(payload) // 2
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (payload[:half], payload[half:]))
    raw = (b"POST /api/items HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks + b"0\r\n\r\n")
    response = server.request(raw)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201 "), response
    assert json.loads(body) == {"name": "chunky", "tags": ["a", "b"], "size": None}


def test_streamed_response_arrives_incrementally(serve: ServeFn) -> None:
    # Two threads: the stream holds one while /release runs on the other.
    server = serve("flask_app:create_app()", "--threads", "2")
    with server.connect() as sock:
        sock.sendall(b"GET /stream?count=3&wait=1 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        received = read_until(sock, b"first line of 3\n")
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        headers = head.lower().split(b"\r\n")
        assert b"transfer-encoding: chunked" in headers
        assert b"content-type: text/plain; charset=utf-8" in headers
        assert b"released" not in body  # the first chunk went out before the generator finished

        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/release").text == "ok"
        body = read_until(sock, b"\r\n0\r\n\r\n", body)
    assert dechunk(body) == b"first line of 3\nreleased\nline 1 /stream\nline 2 /stream\n"


def test_streamed_response_without_waiting(serve: ServeFn) -> None:
    server = serve("flask_app:create_app()")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with client.stream("GET", "/stream", params={"count": "50"}) as response:
            assert response.status_code == 200
            assert "content-length" not in response.headers
            lines = list(response.iter_lines())
    assert lines[0] == "first line of 50"
    assert lines[1:] == [f"line {n} /stream" for n in range(1, 50)]
