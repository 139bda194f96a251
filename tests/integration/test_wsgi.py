"""PEP 3333 semantics against a real server, inline (--threads 1) and threaded (--threads 4).

Each mode gets one server for the whole module (starting one per test would
dominate the runtime); tests that need a private server use `serve`. What the
app did out of band (close() called, a traceback logged) is read from the
server's stderr log, waiting for the line rather than sleeping.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import Server, parse_response, read_response, read_to_eof, read_until_close

MODES = {"inline": ("--threads", "1"), "threads": ("--threads", "4")}


@pytest.fixture(scope="module", params=sorted(MODES))
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with Server(["wsgi_apps:app", *MODES[request.param]]) as srv:
        srv.mode = request.param  # type: ignore[attr-defined]
        yield srv


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("files") / "big.bin"
    path.write_bytes(os.urandom(5 * 1024 * 1024 + 123))  # not a multiple of any block size
    return path


def request_to_eof(server: Server, raw: bytes, timeout: float = 3.0) -> tuple[bytes, bool]:
    """Send `raw`; read until the server closes. (data, closed): closed is False on timeout."""
    with server.connect(timeout) as sock:
        sock.sendall(raw)
        return read_to_eof(sock, timeout)


def tag() -> str:
    return uuid.uuid4().hex[:12]


def get(server: Server, target: str, method: str = "GET", extra: str = "", body: bytes = b"") -> bytes:
    raw = f"{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{extra}\r\n".encode() + body
    return server.request(raw)


def worker_pid(server: Server) -> int:
    status, _, body, _ = parse_response(get(server, "/pid"))
    assert status == 200
    return int(body)


# -- environ -------------------------------------------------------------------------


def test_environ_keys_and_types(server: Server) -> None:
    with server.connect() as sock:
        client_port = sock.getsockname()[1]
        sock.sendall(
            b"POST /environ/caf%C3%A9/a%2Fb?q=%20a+b&x HTTP/1.1\r\n"
            b"Host: example.test:8080\r\n"
            b"Content-Type: text/plain\r\n"
            b"Content-Length: 5\r\n"
            b"X-Dup: a\r\n"
            b"X-Dup: b\r\n"
            b"Cookie: a=1\r\n"
            b"Cookie: b=2\r\n"
            b"X-Auth: good\r\n"
            b"X_Auth: evil\r\n"
            b"Connection: close\r\n\r\nhello"
        )
        status, _, body, complete = parse_response(read_until_close(sock))
    assert status == 200 and complete
    env = json.loads(body)
    value = {key: entry.get("value") for key, entry in env.items() if isinstance(entry, dict)}
    types = {key: entry["type"] for key, entry in env.items() if isinstance(entry, dict)}

    assert value["REQUEST_METHOD"] == "POST"
    assert value["SCRIPT_NAME"] == ""
    # Percent-decoded bytes, read as latin-1 (PEP 3333's "bytes in a str"); %2F decodes too.
    assert value["PATH_INFO"] == "/environ/caf\xc3\xa9/a/b"
    assert value["QUERY_STRING"] == "q=%20a+b&x"  # raw, never decoded
    assert value["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert value["SERVER_PORT"] == str(server.port) and types["SERVER_PORT"] == "str"
    assert value["REMOTE_ADDR"] == "127.0.0.1"
    assert value["REMOTE_PORT"] == str(client_port) and types["REMOTE_PORT"] == "str"
    assert value["SERVER_NAME"]
    assert value["CONTENT_TYPE"] == "text/plain"
    assert value["CONTENT_LENGTH"] == "5"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert value["HTTP_HOST"] == "example.test:8080"
    assert value["HTTP_X_DUP"].replace(" ", "") == "a,b"
    assert value["HTTP_COOKIE"] == "a=1; b=2"
    assert value["HTTP_X_AUTH"] == "good"  # the underscore twin was dropped, not merged
    for key, type_name in types.items():
        if "." not in key:
            assert type_name == "str", key  # every CGI key is a native str

    assert types["wsgi.version"] == "tuple" and value["wsgi.version"] == [1, 0]
    assert value["wsgi.url_scheme"] == "http"
    assert value["wsgi.multithread"] is (server.mode == "threads")  # type: ignore[attr-defined]
    assert value["wsgi.multiprocess"] is False
    assert value["wsgi.run_once"] is False
    assert value["wsgi.input_terminated"] is True
    assert env["@errors_api"] and env["@input_api"]
    assert env["@body"] == "hello"
    assert env["@file_wrapper_callable"]


def test_environ_chunked_body_and_http10(server: Server) -> None:
    raw = get(server, "/environ", "POST", "Transfer-Encoding: chunked\r\n", b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    status, _, body, _ = parse_response(raw)
    env = json.loads(body)
    assert status == 200
    assert env["@body"] == "abcde"
    assert "CONTENT_LENGTH" not in env  # no length: the app must rely on wsgi.input_terminated
    assert env["wsgi.input_terminated"]["value"] is True
    assert "HTTP_TRANSFER_ENCODING" in env

    raw = server.request(b"GET /environ HTTP/1.0\r\n\r\n")
    status, _, body, _ = parse_response(raw)
    env = json.loads(body)
    assert env["SERVER_PROTOCOL"]["value"] == "HTTP/1.0"
    assert env["@body"] == ""
    assert env["QUERY_STRING"]["value"] == ""


# -- start_response, write(), close() ---------------------------------------------


def test_exc_info_before_headers_replaces_the_response(server: Server) -> None:
    status, headers, body, complete = parse_response(get(server, "/exc-before"))
    assert (status, body, complete) == (503, b"replaced", True)
    assert "x-first" not in headers


def test_exc_info_after_headers_reraises_and_aborts(server: Server) -> None:
    before = worker_pid(server)
    start = len(server.log_lines)
    raw = get(server, "/exc-after")
    _, _, body, complete = parse_response(raw)
    assert not complete, "a failed response must not look complete"
    assert b"never sent" not in raw and b"0\r\n\r\n" not in raw
    assert server.wait_for("ValueError: late failure", start=start)
    assert worker_pid(server) == before


def test_write_callable_alone(server: Server) -> None:
    status, headers, body, complete = parse_response(get(server, "/write"))
    assert (status, body, complete) == (200, b"written", True)
    assert headers["transfer-encoding"] == "chunked"


def test_write_callable_mixed_with_iterable(server: Server) -> None:
    status, headers, body, complete = parse_response(get(server, "/write-mixed"))
    assert (status, body, complete) == (200, b"written-iterated", True)
    assert headers["content-length"] == "16"


def test_close_called_on_success(server: Server) -> None:
    name = tag()
    start = len(server.log_lines)
    status, _, body, complete = parse_response(get(server, f"/closing?mode=ok&tag={name}"))
    assert (status, body, complete) == (200, b"first;last", True)
    assert server.wait_for(f"closed {name}", 5, start=start)


def test_close_called_when_iteration_raises(server: Server) -> None:
    name = tag()
    start = len(server.log_lines)
    _, _, _, complete = parse_response(get(server, f"/closing?mode=raise&tag={name}"))
    assert not complete
    assert server.wait_for(f"closed {name}", 5, start=start)
    assert server.wait_for(f"failure mid-iteration {name}", 5, start=start)


def test_close_called_when_client_disconnects_mid_stream(server: Server) -> None:
    name = tag()
    start = len(server.log_lines)
    with server.connect() as sock:
        sock.sendall(f"GET /closing?mode=forever&tag={name} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        received = 0
        while received < 256 * 1024:
            received += len(sock.recv(65536))
    assert server.wait_for(f"closed {name}", 5, start=start), "close() not called after the client left"
    worker_pid(server)  # still serving


def test_lazy_generator_calls_start_response_late(server: Server) -> None:
    status, headers, body, complete = parse_response(get(server, "/lazy"))
    assert (status, body, complete) == (201, b"lazy body", True)
    assert headers["x-lazy"] == "1"
    status, headers, body, _ = parse_response(get(server, "/lazy", "HEAD"))
    assert status == 201 and body == b"" and headers["x-lazy"] == "1"


# -- Content-Length is a contract -------------------------------------------------


def test_short_response_closes_the_connection(server: Server) -> None:
    # A second request is pipelined: it must never be answered on a connection whose
    # last body was short, or the client would read it as the rest of the first body.
    raw, closed = request_to_eof(server, b"GET /short HTTP/1.1\r\nHost: t\r\n\r\nGET /pid HTTP/1.1\r\nHost: t\r\n\r\n")
    assert closed
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 10" in head
    assert rest == b"12345"
    assert raw.count(b"HTTP/1.1") == 1


@pytest.mark.parametrize("shape", ["many", "one"])
def test_long_response_is_cut_at_content_length(server: Server, shape: str) -> None:
    query = "?one=1" if shape == "one" else ""
    start = len(server.log_lines)
    pipelined = f"GET /long{query} HTTP/1.1\r\nHost: t\r\n\r\nGET /pid HTTP/1.1\r\nHost: t\r\n\r\n"
    raw, closed = request_to_eof(server, pipelined.encode())
    assert closed
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b"Content-Length: 5" in head
    assert rest == b"12345", "never more than the declared Content-Length"
    assert raw.count(b"HTTP/1.1") == 1
    if shape == "many":
        assert server.wait_for("more than its Content-Length", 5, start=start)


# -- exceptions ---------------------------------------------------------------------


def test_exception_before_headers_is_a_500_with_logged_traceback(server: Server) -> None:
    before = worker_pid(server)
    name = tag()
    start = len(server.log_lines)
    status, headers, body, complete = parse_response(get(server, f"/boom-before?tag={name}"))
    assert status == 500 and complete
    assert name.encode() not in body  # the traceback goes to the log, not the client
    assert server.wait_for(f"RuntimeError: boom before headers {name}", 5, start=start)
    log = "".join(server.log_lines[start:])
    assert "Traceback (most recent call last)" in log and "wsgi_apps.py" in log
    assert worker_pid(server) == before


def test_exception_after_headers_aborts_the_connection(server: Server) -> None:
    before = worker_pid(server)
    name = tag()
    start = len(server.log_lines)
    raw = get(server, f"/boom-after?tag={name}")
    _, _, _, complete = parse_response(raw)
    assert not complete and b"0\r\n\r\n" not in raw
    assert server.wait_for(f"RuntimeError: boom after headers {name}", 5, start=start)
    assert worker_pid(server) == before


def test_sys_exit_in_the_app_does_not_kill_the_worker(server: Server) -> None:
    before = worker_pid(server)
    raw, closed = request_to_eof(server, b"GET /sys-exit HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert closed and parse_response(raw)[0] == 500
    assert worker_pid(server) == before


def test_broken_app_keeps_the_same_worker_on_keepalive(server: Server) -> None:
    """A 500 is followed by more requests served by the same process."""
    pids = {worker_pid(server)}
    for path in ("/boom-before", "/boom-after", "/exc-after", "/closing?mode=raise"):
        get(server, path)
        pids.add(worker_pid(server))
    assert len(pids) == 1


# -- wsgi.file_wrapper ----------------------------------------------------------------


def test_file_wrapper_sends_the_file(server: Server, big_file: Path) -> None:
    data = big_file.read_bytes()
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        for _ in range(2):  # keep-alive: the connection is usable after a sendfile
            conn.request("GET", f"/file?path={big_file}")
            response = conn.getresponse()
            assert response.status == 200
            assert response.getheader("Content-Length") == str(len(data))
            assert response.read() == data
        conn.request("HEAD", f"/file?path={big_file}")
        response = conn.getresponse()
        assert response.getheader("Content-Length") == str(len(data))
        assert response.read() == b""
        conn.request("GET", f"/file?path={big_file}&offset=1000")
        response = conn.getresponse()
        assert response.read() == data[1000:]
    finally:
        conn.close()


def test_file_wrapper_shorter_than_content_length_closes(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "small.bin"
    path.write_bytes(b"0123456789")
    raw, closed = request_to_eof(server, f"GET /file?path={path}&extra=5 HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b"Content-Length: 15" in head
    assert rest == b"0123456789"
    assert closed, "a short body must end with a close, not leave the client waiting for 5 more bytes"


def test_file_wrapper_capped_at_content_length(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "small.bin"
    path.write_bytes(b"0123456789")
    raw = server.request(f"GET /file?path={path}&cl=4 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
    assert raw.partition(b"\r\n\r\n")[2] == b"0123"


# -- real clients -------------------------------------------------------------------


def test_http_client_keepalive_mixed_requests(server: Server) -> None:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        conn.request("POST", "/echo", body=b"x" * 10000)
        response = conn.getresponse()
        assert response.read() == b"x" * 10000
        conn.request("GET", "/write")
        assert conn.getresponse().read() == b"written"
        conn.request("GET", "/lazy")
        response = conn.getresponse()
        assert (response.status, response.read()) == (201, b"lazy body")
        conn.request("GET", "/nowhere")
        response = conn.getresponse()
        assert response.status == 404
        response.read()
    finally:
        conn.close()


def _curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-s", "--max-time", "10", *args], capture_output=True, timeout=20, check=False)


@pytest.mark.skipif(not any(os.access(os.path.join(p, "curl"), os.X_OK) for p in os.environ["PATH"].split(os.pathsep)),
                    reason="curl not installed")
def test_curl_get_and_expect_continue_upload(server: Server, tmp_path: Path) -> None:
    result = _curl("-i", f"{server.url}/lazy")
    assert result.returncode == 0
    assert result.stdout.startswith(b"HTTP/1.1 201") and result.stdout.endswith(b"lazy body")

    upload = tmp_path / "upload.bin"
    upload.write_bytes(os.urandom(300_000))
    out = tmp_path / "out.bin"
    result = _curl(
        "-v", "--expect100-timeout", "5", "-H", "Expect: 100-continue",
        "--data-binary", f"@{upload}", "-o", str(out), f"{server.url}/echo",
    )
    assert result.returncode == 0, result.stderr
    assert b"< HTTP/1.1 100 Continue" in result.stderr  # the server asked for the body
    assert out.read_bytes() == upload.read_bytes()


def test_100_continue_not_sent_when_the_app_does_not_read(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"POST /pid HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n")
        status, _, body = read_response(sock)
        assert status == 200 and body.isdigit()


def test_100_continue_sent_on_first_read(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n")
        sock.settimeout(5)
        interim = sock.recv(100)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"0123456789")
        status, _, body = read_response(sock)
        assert (status, body) == (200, b"0123456789")


# -- wsgiref.validate ------------------------------------------------------------------


@pytest.fixture(scope="module", params=sorted(MODES))
def validated(request: pytest.FixtureRequest) -> Iterator[Server]:
    with Server(["wsgi_apps:validated", *MODES[request.param]]) as srv:
        yield srv


@pytest.mark.parametrize(
    ("method", "target", "body", "expected_status", "expected_body"),
    [
        ("GET", "/pid", b"", 200, None),
        ("POST", "/echo", b"payload" * 1000, 200, b"payload" * 1000),
        ("GET", "/write", b"", 200, b"written"),
        ("GET", "/write-mixed", b"", 200, b"written-iterated"),
        ("GET", "/lazy", b"", 201, b"lazy body"),
        ("HEAD", "/lazy", b"", 201, b""),
        ("GET", "/closing?mode=ok&tag=validated", b"", 200, b"first;last"),
        ("GET", "/exc-before", b"", 503, b"replaced"),
        ("GET", "/big?chunks=4&size=1000", b"", 200, b"z" * 4000),
        ("GET", "/environ/caf%C3%A9?a=b", b"", 200, None),
        ("POST", "/environ", b"abc", 200, None),
    ],
)
def test_validator_accepts_the_server(
    validated: Server, method: str, target: str, body: bytes, expected_status: int, expected_body: bytes | None
) -> None:
    start = len(validated.log_lines)
    extra = f"Content-Length: {len(body)}\r\n" if body else ""
    status, _, got, complete = parse_response(get(validated, target, method, extra, body), head_only=method == "HEAD")
    assert status == expected_status and complete
    if expected_body is not None:
        assert got == expected_body
    # The validator reports through exceptions (a 500 and a logged AssertionError) or
    # warnings and "garbage collected without being closed" on stderr.
    worker_pid(validated)  # one more exchange, so anything logged for the one above is in
    log = "".join(validated.log_lines[start:])
    assert not re.search(r"AssertionError|WSGIWarning|without being closed|Error handling", log), log
