"""wsgi/response.py: start_response rules, head serialization, body framing."""

from __future__ import annotations

import sys

import pytest

from corral.wsgi.response import AppError, Response, error_response


def _write(data: bytes) -> None:
    raise AssertionError("not used")


def response(version: str = "1.1", head_only: bool = False, keep_alive: bool = True) -> Response:
    return Response(version, head_only, keep_alive, _write)


def head_of(resp: Response) -> tuple[str, dict[str, list[str]]]:
    lines = resp.head().decode("latin-1").split("\r\n")
    assert lines[-2:] == ["", ""], "a head ends with an empty line"
    headers: dict[str, list[str]] = {}
    for line in lines[1:-2]:
        name, _, value = line.partition(": ")
        headers.setdefault(name.lower(), []).append(value)
    return lines[0], headers


# -- start_response -------------------------------------------------------------------


def test_start_response_returns_the_write_callable() -> None:
    resp = response()
    assert resp.start_response("200 OK", []) is _write


def test_second_start_response_without_exc_info_is_an_error() -> None:
    resp = response()
    resp.start_response("200 OK", [])
    with pytest.raises(AppError, match="second time"):
        resp.start_response("500 Oops", [])


def test_exc_info_before_headers_replaces_status_and_headers() -> None:
    resp = response()
    resp.start_response("200 OK", [("X-First", "1"), ("Content-Length", "3")])
    try:
        raise ValueError("app failure")
    except ValueError:
        resp.start_response("500 Internal Server Error", [("Content-Length", "4")], sys.exc_info())
    status, headers = head_of(resp)
    assert status == "HTTP/1.1 500 Internal Server Error"
    assert "x-first" not in headers and headers["content-length"] == ["4"]


def test_exc_info_after_headers_reraises_the_apps_exception() -> None:
    resp = response()
    resp.start_response("200 OK", [])
    resp.head()
    error = ValueError("late")
    try:
        raise error
    except ValueError:
        with pytest.raises(ValueError) as raised:
            resp.start_response("500 Oops", [], sys.exc_info())
    assert raised.value is error  # the app's own exception, with its traceback
    assert resp.status == "200 OK"  # nothing was replaced


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (b"200 OK", []),  # bytes status
        ("200 OK", (("A", "b"),)),  # headers not a list
    ],
)
def test_start_response_type_checks(status: object, headers: object) -> None:
    with pytest.raises(AppError):
        response().start_response(status, headers)  # type: ignore[arg-type]


# -- head ---------------------------------------------------------------------------------


def test_head_has_date_server_and_app_headers_in_order() -> None:
    resp = response()
    resp.start_response("200 OK", [("Content-Type", "text/plain"), ("X-A", "1"), ("X-A", "2"), ("Content-Length", "5")])
    status, headers = head_of(resp)
    assert status == "HTTP/1.1 200 OK"
    assert headers["server"] == ["corral"] and len(headers["date"]) == 1
    assert headers["x-a"] == ["1", "2"]  # repeated headers are kept, in order
    assert "connection" not in headers and "transfer-encoding" not in headers
    assert resp.headers_sent and resp.content_length == 5 and resp.code == 200


def test_no_content_length_on_http11_is_chunked() -> None:
    resp = response()
    resp.start_response("200 OK", [])
    _, headers = head_of(resp)
    assert headers["transfer-encoding"] == ["chunked"] and resp.chunked and resp.keep_alive
    assert resp.frame(b"hello") == b"5\r\nhello\r\n"
    assert resp.end() == b"0\r\n\r\n"


def test_no_content_length_on_http10_is_close_delimited() -> None:
    resp = response("1.0")
    resp.start_response("200 OK", [])
    _, headers = head_of(resp)
    assert headers["connection"] == ["close"] and not resp.keep_alive and not resp.chunked
    assert resp.frame(b"raw") == b"raw" and resp.end() == b""


def test_http10_keepalive_is_announced() -> None:
    resp = response("1.0")
    resp.start_response("200 OK", [("Content-Length", "0")])
    _, headers = head_of(resp)
    assert headers["connection"] == ["keep-alive"]


def test_head_request_keeps_the_headers_but_sends_no_body() -> None:
    resp = response(head_only=True)
    resp.start_response("200 OK", [])
    _, headers = head_of(resp)
    assert headers["transfer-encoding"] == ["chunked"]  # the same headers as GET
    assert resp.no_body and resp.frame(b"data") == b"" and resp.end() == b""


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified", "101 Switching Protocols"])
def test_bodiless_statuses(status: str) -> None:
    resp = response()
    resp.start_response(status, [])
    _, headers = head_of(resp)
    assert resp.no_body and "transfer-encoding" not in headers
    assert resp.frame(b"ignored") == b""


def test_app_connection_close_is_honoured_once() -> None:
    resp = response()
    resp.start_response("200 OK", [("Connection", "close"), ("Content-Length", "0")])
    _, headers = head_of(resp)
    assert headers["connection"] == ["close"] and not resp.keep_alive


def test_connection_close_from_the_client_is_written() -> None:
    resp = response(keep_alive=False)
    resp.start_response("200 OK", [("Content-Length", "0")])
    assert head_of(resp)[1]["connection"] == ["close"]


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Evil", "a\r\nSet-Cookie: x=1")],  # response splitting
        [("X-Evil", "a\nb")],
        [("X-Evil", "a\x00b")],
        [("Bad Name", "v")],
        [("Bad:Name", "v")],
        [("Transfer-Encoding", "chunked")],  # hop-by-hop: the server frames the body
        [("Keep-Alive", "timeout=5")],
        [("Upgrade", "websocket")],
        [("Content-Length", "+5")],
        [("Content-Length", "1_0")],
        [("Content-Length", "\uff15")],  # a non-ASCII digit int() would accept
        [("Content-Length", "-1")],
        [("Content-Length", "5"), ("Content-Length", "5")],
        [("X-Num", 5)],  # not a str
        [(b"X-Bytes", "v")],
    ],
)
def test_unsafe_or_invalid_headers_are_app_errors(headers: list[tuple[str, str]]) -> None:
    resp = response()
    resp.start_response("200 OK", headers)
    with pytest.raises(AppError):
        resp.head()
    assert not resp.headers_sent


@pytest.mark.parametrize("status", ["OK", "2000 OK", "20 OK", "200 OK\r\nX: y", "099 Low"])
def test_invalid_status_is_an_app_error(status: str) -> None:
    resp = response()
    resp.start_response(status, [])
    with pytest.raises(AppError):
        resp.head()


def test_head_without_start_response_is_an_app_error() -> None:
    with pytest.raises(AppError, match="without calling start_response"):
        response().head()


def test_cached_heads_follow_keep_alive_and_version() -> None:
    """The serialized-head cache must never hand one response's framing to another."""
    headers = [("Content-Type", "text/plain")]
    first = response("1.1", keep_alive=True)
    first.start_response("200 OK", list(headers))
    assert "connection" not in head_of(first)[1]
    second = response("1.1", keep_alive=False)
    second.start_response("200 OK", list(headers))
    assert head_of(second)[1]["connection"] == ["close"]
    third = response("1.0", keep_alive=True)
    third.start_response("200 OK", list(headers))
    assert third.head().startswith(b"HTTP/1.0 200 OK\r\n") and not third.keep_alive
    bad = response()
    bad.start_response("200 OK", [("Content-Type", "text/plain\r\nX: y")])
    with pytest.raises(AppError):
        bad.head()
    with pytest.raises(AppError):  # an invalid head is never cached as valid
        bad.head()


# -- framing ---------------------------------------------------------------------------


def test_body_is_cut_at_content_length() -> None:
    resp = response()
    resp.start_response("200 OK", [("Content-Length", "5")])
    resp.head()
    assert resp.frame(b"123") == b"123"
    assert resp.frame(b"4567") == b"45"
    assert resp.overflow and not resp.keep_alive
    assert resp.frame(b"more") == b""
    assert resp.sent == 5


def test_short_body_forbids_reuse() -> None:
    resp = response()
    resp.start_response("200 OK", [("Content-Length", "5")])
    resp.head()
    resp.frame(b"12")
    assert resp.end() == b""
    assert not resp.keep_alive


def test_exact_body_keeps_the_connection() -> None:
    resp = response()
    resp.start_response("200 OK", [("Content-Length", "5")])
    resp.head()
    assert resp.frame(b"12345") == b"12345"
    resp.end()
    assert resp.keep_alive and not resp.overflow


def test_error_response_is_complete_and_closes() -> None:
    raw = error_response(503, "Service Unavailable", "busy")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"Connection: close" in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert b"keep-alive" in error_response(400, "Bad Request", "x", keep_alive=True)
