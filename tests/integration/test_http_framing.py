"""HTTP/1.1 message framing over raw sockets: keep-alive and close, HTTP/1.0,
pipelining, HEAD, chunked bodies both ways, request-target forms,
Expect: 100-continue, Date/Server, and the limit flags."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import pytest

from helpers import Server


@dataclass
class Response:
    status_line: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    chunked_wire: bytes = b""  # the raw chunked framing, when there was one

    @property
    def status(self) -> int:
        return int(self.status_line.split()[1])

    def header(self, name: str) -> str | None:
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        assert len(values) <= 1, f"{name} repeated"
        return values[0] if values else None


class Reader:
    """Reads responses one at a time from a socket without losing pipelined bytes."""

    def __init__(self, sock: socket.socket, timeout: float = 5.0) -> None:
        self.sock = sock
        self.buffer = b""
        self.deadline = time.monotonic() + timeout

    def _fill(self) -> bool:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no complete response; have {self.buffer[:200]!r}")
        self.sock.settimeout(remaining)
        data = self.sock.recv(65536)
        self.buffer += data
        return bool(data)

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if not self._fill():
                raise ConnectionError(f"closed mid-line: {self.buffer!r}")
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def _exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            if not self._fill():
                raise ConnectionError("closed mid-body")
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def response(self, head_request: bool = False) -> Response:
        response = Response(self._line().decode("latin-1"))
        while line := self._line():
            name, _, value = line.decode("latin-1").partition(":")
            response.headers.append((name, value.strip()))
        if head_request or response.status in (100, 204, 304):
            return response
        length = response.header("Content-Length")
        if response.header("Transfer-Encoding") == "chunked":
            wire, parts = [], []
            while True:
                size_line = self._line()
                wire.append(size_line + b"\r\n")
                size = int(size_line, 16)
                if size == 0:
                    assert self._line() == b"", "trailers in a response"
                    break
                parts.append(self._exactly(size))
                assert self._line() == b""
            response.body, response.chunked_wire = b"".join(parts), b"".join(wire)
        elif length is not None:
            response.body = self._exactly(int(length))
        else:
            while self._fill():
                pass
            response.body, self.buffer = self.buffer, b""
        return response

    def closed(self) -> bool:
        """True when the server closed with nothing more sent (False on timeout)."""
        try:
            return not self.buffer and not self._fill()
        except (TimeoutError, ConnectionResetError):
            return False


def open_reader(server: Server) -> tuple[socket.socket, Reader]:
    sock = server.connect()
    return sock, Reader(sock)


GET = b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n"


# -- keep-alive and close ------------------------------------------------------------------


def test_http11_keeps_the_connection_alive(serve) -> None:
    server = serve("counting:app")
    sock, reader = open_reader(server)
    with sock:
        for path in (b"/a", b"/b", b"/c"):
            sock.sendall(GET % path)
            response = reader.response()
            assert response.status == 200 and response.body == b"GET %s 0" % path
            assert response.header("Connection") is None


def test_connection_close_is_honoured(serve) -> None:
    server = serve("counting:app")
    sock, reader = open_reader(server)
    with sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" + GET % b"/never")
        assert reader.response().header("Connection") == "close"
        assert reader.closed()


def test_http10_closes_by_default(serve) -> None:
    server = serve("counting:app")
    sock, reader = open_reader(server)
    with sock:
        sock.sendall(b"GET /old HTTP/1.0\r\n\r\n")
        response = reader.response()
        assert response.status == 200 and response.body == b"GET /old 0"
        assert response.header("Connection") == "close"
        assert reader.closed()


def test_http10_keep_alive_when_asked_and_length_known(serve) -> None:
    server = serve("counting:app")
    sock, reader = open_reader(server)
    with sock:
        for path in (b"/1", b"/2"):
            sock.sendall(b"GET %s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % path)
            response = reader.response()
            assert response.body == b"GET %s 0" % path
            assert response.header("Connection") == "keep-alive"


def test_http10_without_length_is_close_delimited(serve) -> None:
    server = serve("counting:no_length")
    sock, reader = open_reader(server)
    with sock:
        sock.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        response = reader.response()  # no length, not chunked: reads to EOF
        assert response.header("Transfer-Encoding") is None and response.header("Content-Length") is None
        assert response.header("Connection") == "close"
        assert response.body == b"first,second,third"


def test_http11_without_length_is_chunked(serve) -> None:
    server = serve("counting:no_length")
    sock, reader = open_reader(server)
    with sock:
        sock.sendall(GET % b"/" + GET % b"/again")
        for _ in range(2):  # the connection survives a chunked response
            response = reader.response()
            assert response.header("Transfer-Encoding") == "chunked"
            assert response.header("Content-Length") is None
            assert response.body == b"first,second,third"
            assert response.chunked_wire == b"6\r\n7\r\n5\r\n0\r\n"


# -- pipelining ----------------------------------------------------------------------------


@pytest.mark.parametrize("threads", ["1", "4"])
def test_ten_pipelined_requests_answered_in_order(serve, threads: str) -> None:
    server = serve("counting:app", "--threads", threads)
    requests = []
    for i in range(10):
        if i % 3 == 1:
            requests.append(b"POST /%d HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (i, i, b"x" * i))
        elif i == 5:
            requests.append(b"GET /slow?0.2 HTTP/1.1\r\nHost: t\r\n\r\n")  # later ones must wait for it
        else:
            requests.append(GET % b"/%d" % i)
    sock, reader = open_reader(server)
    with sock:
        sock.sendall(b"".join(requests))
        bodies = [reader.response().body for _ in range(10)]
    expected = []
    for i in range(10):
        if i % 3 == 1:
            expected.append(b"POST /%d %d" % (i, i))
        elif i == 5:
            expected.append(b"GET /slow 0")
        else:
            expected.append(b"GET /%d 0" % i)
    assert bodies == expected


# -- HEAD ----------------------------------------------------------------------------------


@pytest.mark.parametrize("app", ["basic:hello", "counting:no_length"])
def test_head_has_get_headers_and_no_body(serve, app: str) -> None:
    server = serve(app)
    sock, reader = open_reader(server)
    with sock:
        sock.sendall(b"GET /h HTTP/1.1\r\nHost: t\r\n\r\n")
        get = reader.response()
        sock.sendall(b"HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n" + GET % b"/after")
        head = reader.response(head_request=True)
        after = reader.response()  # parses only if HEAD sent no body bytes
    assert head.status == get.status == 200
    skip = {"date"}
    assert [h for h in head.headers if h[0].lower() not in skip] == [h for h in get.headers if h[0].lower() not in skip]
    if app == "basic:hello":
        assert head.header("Content-Length") == "13"
        assert after.body == b"Hello, World!"
    else:
        assert after.body == b"first,second,third"


# -- chunked request bodies ------------------------------------------------------------------


@pytest.mark.parametrize("threads", ["1", "2"])
def test_chunked_request_body_reaches_app_dechunked(serve, threads: str) -> None:
    server = serve("basic:environ_dump", "--threads", threads)
    body = b"5;name=value\r\nhello\r\n1;flag\r\n \r\n5\r\nworld\r\n0\r\nX-Checksum: 42\r\nX-Other: y\r\n\r\n"
    sock, reader = open_reader(server)
    with sock:
        sock.sendall(b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + body + GET % b"/next")
        environ = json.loads(reader.response().body)
        assert json.loads(reader.response().body)["PATH_INFO"] == "/next"  # framing held
    assert environ["wsgi.input.read"] == "hello world"
    assert environ["wsgi.input_terminated"] is True
    assert "CONTENT_LENGTH" not in environ
    assert "HTTP_X_CHECKSUM" not in environ and "HTTP_X_OTHER" not in environ  # trailers stay out


def test_chunked_body_sent_in_pieces(serve) -> None:
    server = serve("basic:echo")
    sock, reader = open_reader(server)
    with sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in (b"3\r", b"\nab", b"c\r\n", b"0\r\n", b"\r\n"):
            time.sleep(0.02)
            sock.sendall(piece)
        assert reader.response().body == b"abc"


# -- request-target forms --------------------------------------------------------------------


def test_absolute_form_target(serve) -> None:
    server = serve("basic:environ_dump")
    sock, reader = open_reader(server)
    with sock:
        sock.sendall(b"GET http://other.example:8080/p/a%20b?x=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        environ = json.loads(reader.response().body)
    assert environ["HTTP_HOST"] == "other.example:8080"  # RFC 9112 3.2.2: the target wins
    assert environ["PATH_INFO"] == "/p/a b"
    assert environ["QUERY_STRING"] == "x=1"


def test_options_asterisk(serve) -> None:
    server = serve("basic:environ_dump")
    sock, reader = open_reader(server)
    with sock:
        sock.sendall(b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n")
        response = reader.response()
    environ = json.loads(response.body)
    assert response.status == 200
    assert environ["REQUEST_METHOD"] == "OPTIONS"
    assert environ["RAW_URI"] == "*"


# -- Expect: 100-continue -------------------------------------------------------------------


@pytest.mark.parametrize("threads", ["1", "2"])
def test_100_continue_sent_when_app_reads_body(serve, threads: str) -> None:
    server = serve("basic:echo", "--threads", threads)
    sock, reader = open_reader(server)
    with sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        interim = reader.response()
        assert interim.status_line == "HTTP/1.1 100 Continue" and interim.headers == []
        sock.sendall(b"hello")
        final = reader.response()
        assert final.status == 200 and final.body == b"hello"
        # The body was read whole, so the connection lives on.
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
        assert reader.response().body == b"hi"


@pytest.mark.parametrize("threads", ["1", "2"])
def test_no_100_continue_when_app_ignores_body(serve, threads: str) -> None:
    server = serve("counting:ignore_body", "--threads", threads)
    sock, reader = open_reader(server)
    with sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        final = reader.response()  # a 100 first would fail here: it is not a 403
        assert final.status == 403 and final.body == b"not reading"
        # The unsent body makes the connection unusable: the server closes it.
        assert reader.closed()


@pytest.mark.parametrize("threads", ["1", "2"])
def test_final_response_without_reading_100_continue_body_says_close(serve, threads: str) -> None:
    server = serve("counting:ignore_body", "--threads", threads)
    sock, reader = open_reader(server)
    with sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        final = reader.response()
    assert final.header("Connection") == "close"


def test_100_continue_ignored_for_http10(serve) -> None:
    server = serve("basic:echo")
    sock, reader = open_reader(server)
    with sock:
        sock.sendall(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello")
        response = reader.response()
    assert response.status == 200 and response.body == b"hello"


# -- Date and Server -------------------------------------------------------------------------


def test_date_and_server_headers(serve) -> None:
    server = serve("counting:app")
    sock, reader = open_reader(server)
    with sock:
        sock.sendall(GET % b"/")
        response = reader.response()
        sock.sendall(b"GET / HTTP/1.1\r\nHost : bad\r\n\r\n")
        error = reader.response()
    for r in (response, error):
        date = r.header("Date")
        assert date is not None and date.endswith(" GMT")
        assert abs(parsedate_to_datetime(date).timestamp() - time.time()) < 5
        assert r.header("Server") == "corral"


# -- limit flags change behaviour ---------------------------------------------------------------


def _status(server: Server, raw: bytes) -> int:
    sock, reader = open_reader(server)
    with sock:
        sock.sendall(raw)
        return reader.response().status


def test_max_body_size_flag(serve) -> None:
    server = serve("basic:echo", "--max-body-size", "1k")
    post = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s"
    chunked = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
    assert _status(server, post % (1024, b"x" * 1024)) == 200
    assert _status(server, post % (1025, b"x" * 1025)) == 413
    assert _status(server, chunked % (1024, b"x" * 1024)) == 200
    assert _status(server, chunked % (1025, b"x" * 1025)) == 413


def test_default_body_limit_refuses_huge_content_length_at_once(serve) -> None:
    server = serve("basic:echo")
    assert _status(server, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (100 * 1024 * 1024 + 1)) == 413


def test_header_limit_flags(serve) -> None:
    server = serve("counting:app", "--max-request-line", "100", "--max-headers", "5", "--max-header-size", "200")
    assert _status(server, GET % (b"/" + b"a" * 99)) == 200
    assert _status(server, GET % (b"/" + b"a" * 100)) == 414
    four = b"".join(b"X-%d: v\r\n" % i for i in range(4))
    assert _status(server, b"GET / HTTP/1.1\r\nHost: t\r\n" + four + b"\r\n") == 200
    assert _status(server, b"GET / HTTP/1.1\r\nHost: t\r\n" + four + b"X-5: v\r\n\r\n") == 431
    assert _status(server, b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"v" * 150 + b"\r\n\r\n") == 200
    assert _status(server, b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"v" * 250 + b"\r\n\r\n") == 431
    default = serve("counting:app")
    assert _status(default, GET % (b"/" + b"a" * 100)) == 200
    assert _status(default, b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"v" * 250 + b"\r\n\r\n") == 200


# -- conformance classes: methods, raw target bytes, chunk framing --------------------------


def test_every_token_method_reaches_the_app_and_non_tokens_are_400(serve) -> None:
    server = serve("basic:environ_dump")
    sock, reader = open_reader(server)
    with sock:
        for method in (b"FOO", b"-BLARGH", b"M-SEARCH", b"get"):
            sock.sendall(method + b" /x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
            environ = json.loads(reader.response().body)
            assert environ["REQUEST_METHOD"] == method.decode()
            assert environ["wsgi.input.read"] == "hi"  # its body framed like any other
    sock, reader = open_reader(server)
    with sock:
        sock.sendall(b"G@T /x HTTP/1.1\r\nHost: t\r\n\r\n")
        assert reader.response().status == 400
        assert reader.closed()


def test_raw_high_bytes_in_the_target_reach_the_app_as_sent(serve) -> None:
    server = serve("basic:environ_dump")
    sock, reader = open_reader(server)
    with sock:
        sock.sendall(b"GET /caf\xc3\xa9?q=\xc3\xa9 HTTP/1.1\r\nHost: t\r\n\r\n")
        environ = json.loads(reader.response().body)
    assert environ["PATH_INFO"] == "/caf\xc3\xa9"  # latin-1, as for /caf%C3%A9 (PEP 3333)
    assert environ["QUERY_STRING"] == "q=\xc3\xa9"
    sock, reader = open_reader(server)
    with sock:
        sock.sendall(b"GET /caf\xc3\xa9\x7f HTTP/1.1\r\nHost: t\r\n\r\n")  # DEL: still refused
        assert reader.response().status == 400


@pytest.mark.parametrize("line", [b"GET / RTSP/1.0", b"SOURCE / ICE/1.0"])
def test_other_protocols_are_refused(serve, line: bytes) -> None:
    server = serve("basic:environ_dump")
    sock, reader = open_reader(server)
    with sock:
        sock.sendall(line + b"\r\nHost: t\r\n\r\n")
        assert reader.response().status == 400


def test_chunk_size_over_the_limit_is_413_before_its_data(serve) -> None:
    server = serve("basic:echo", "--max-body-size", "1k")
    sock, reader = open_reader(server)
    with sock:
        # Only the size line is sent: the answer must not wait for the announced data.
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n401\r\n")
        assert reader.response().status == 413
    sock, reader = open_reader(server)
    with sock:
        head = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        sock.sendall(head + b"200\r\n" + b"x" * 512 + b"\r\n201\r\n")
        assert reader.response().status == 413  # the running total, on the second size line


def test_chunked_trailing_empty_element_and_extension_bws(serve) -> None:
    server = serve("basic:echo")
    sock, reader = open_reader(server)
    with sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked,\r\n\r\n"
            b'3 ; a = b ; q = "x y"\r\nabc\r\n2;z\r\nde\r\n0\r\n\r\n' + GET % b"/after"
        )
        assert reader.response().body == b"abcde"
        assert reader.response().status == 200  # framing held for the pipelined request
