"""http/h2_messages.py: a stream's header block -> Request (and its environ), a head -> HEADERS."""

from __future__ import annotations

from typing import Any

import pytest

from corral.http.errors import HTTPError
from corral.http.h2_messages import (
    PREFACE,
    build_request,
    preface_bytes,
    response_headers,
    upgrade_settings,
    upgraded_request,
)
from corral.http.limits import Limits
from corral.http.request import Request
from corral.wsgi.environ import request_environ
from corral.wsgi.input import EMPTY_INPUT
from corral.wsgi.response import AppError, Response

LIMITS = Limits()


def block(
    *extra: tuple[str, str], method: str = "GET", path: str = "/", authority: str | None = "example.test"
) -> list[tuple[bytes, bytes]]:
    fields = [(":method", method), (":scheme", "https"), (":path", path)]
    if authority is not None:
        fields.append((":authority", authority))
    return [(name.encode(), value.encode()) for name, value in [*fields, *extra]]


def environ_of(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return request_environ({}, build_request(headers, LIMITS), EMPTY_INPUT)  # type: ignore[arg-type]


def refused(headers: list[tuple[bytes, bytes]], limits: Limits = LIMITS) -> int:
    with pytest.raises(HTTPError) as caught:
        build_request(headers, limits)
    return caught.value.status


# -- pseudo-headers -> the Request HTTP/1 builds ------------------------------------------


def test_pseudo_headers_map_to_the_request_line_and_host() -> None:
    request = build_request(block(("accept", "*/*"), method="POST", path="/a/b%20c?x=1&y"), LIMITS)
    assert (request.method, request.target, request.path, request.query) == (
        "POST",
        b"/a/b%20c?x=1&y",
        b"/a/b%20c",
        b"x=1&y",
    )
    assert request.version == "2"
    assert request.host == b"example.test"
    assert request.headers == [(b"accept", b"*/*"), (b"host", b"example.test")]
    assert not any(name.startswith(b":") for name, _ in request.headers)  # no pseudo-header reaches the app


def test_environ_is_pep_3333_as_for_http1() -> None:
    env = environ_of(block(("x-thing", "one"), ("x-thing", "two"), path="/caf%C3%A9?q=1"))
    assert env["SERVER_PROTOCOL"] == "HTTP/2"
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/café".encode().decode("latin-1")
    assert env["QUERY_STRING"] == "q=1"
    assert env["HTTP_HOST"] == "example.test"
    assert env["HTTP_X_THING"] == "one,two"
    assert not any(key.startswith("HTTP_:") for key in env)


def test_cookie_crumbs_are_joined_with_semicolons() -> None:
    """RFC 9113 8.2.3: a client may split Cookie into one field per crumb."""
    env = environ_of(block(("cookie", "a=1"), ("accept", "*/*"), ("cookie", "b=2"), ("cookie", "c=3")))
    assert env["HTTP_COOKIE"] == "a=1; b=2; c=3"


def test_host_without_authority_and_the_same_host_twice() -> None:
    assert build_request(block(("host", "h.test"), authority=None), LIMITS).host == b"h.test"
    request = build_request(block(("host", "example.test")), LIMITS)
    assert request.headers == [(b"host", b"example.test")]  # one Host, never two


def test_options_star_and_content_length() -> None:
    assert build_request(block(method="OPTIONS", path="*"), LIMITS).target == b"*"
    request = build_request(block(("content-length", "12"), ("content-length", "12"), method="PUT"), LIMITS)
    assert request.content_length == 12


# -- refused requests carry their status -------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (block(path=""), 400),  # no :path
        ([(b":path", b"/"), (b":scheme", b"http")], 400),  # no :method
        (block(path="relative"), 400),  # not an absolute path
        (block(path="*"), 400),  # "*" is for OPTIONS only
        (block(("host", "other.test")), 400),  # Host differs from :authority
        (block(("host", "a.test"), ("host", "b.test"), authority=None), 400),
        (block(("content-length", "1x")), 400),
        (block(("content-length", "+5")), 400),
        (block(("content-length", "5"), ("content-length", "6")), 400),
        (block(method="CONNECT", path="/"), 501),
    ],
    ids=[
        "no-path",
        "no-method",
        "relative-path",
        "star-not-options",
        "host-vs-authority",
        "two-hosts",
        "bad-length",
        "signed-length",
        "two-lengths",
        "connect",
    ],
)
def test_bad_pseudo_headers_and_fields_are_refused(headers: list[tuple[bytes, bytes]], status: int) -> None:
    assert refused(headers) == status


def raw(*fields: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"), *fields]


@pytest.mark.parametrize(
    "headers",
    [
        raw((b"X-Upper", b"v")),
        raw((b"x bad", b"v")),
        raw((b"", b"v")),
        raw((b"x-a", b"one\r\ntwo")),
        raw((b"x-a", b"nul\0")),
        raw((b"x-a", b" leading")),
        raw((b"x-a", b"trailing\t")),
        raw((b"x-a", b"v"), (b":authority", b"late.test")),
        raw((b":method", b"POST")),
        raw((b":path", b"/again")),
        raw((b":scheme", b"http")),
        raw((b":status", b"200")),
        raw((b":protocol", b"websocket")),
        raw((b"connection", b"close")),
        raw((b"transfer-encoding", b"chunked")),
        raw((b"upgrade", b"h2c")),
        raw((b"keep-alive", b"5")),
        raw((b"proxy-connection", b"close")),
        raw((b"te", b"gzip")),
        [(b":method", b"GET"), (b":path", b"/")],  # no :scheme
    ],
    ids=[
        "uppercase-name", "space-in-name", "empty-name", "crlf-in-value", "nul-in-value",
        "leading-space", "trailing-tab", "pseudo-after-regular", "two-methods", "two-paths",
        "two-schemes", "response-pseudo", "unknown-pseudo", "connection", "transfer-encoding",
        "upgrade", "keep-alive", "proxy-connection", "te-not-trailers", "no-scheme",
    ],
)
def test_malformed_requests_are_400(headers: list[tuple[bytes, bytes]]) -> None:
    """RFC 9113 8.1.1-8.3: what makes a request malformed (answered 400, then the stream reset)."""
    assert refused(headers) == 400


def test_well_formed_edge_cases_pass() -> None:
    request = build_request(raw((b"te", b"trailers"), (b"x-empty", b""), (b"x-inner", b"a b\tc")), LIMITS)
    assert (b"te", b"trailers") in request.headers
    assert (b"x-empty", b"") in request.headers
    assert (b"x-inner", b"a b\tc") in request.headers


def test_limits_apply_as_for_http1() -> None:
    small = Limits(max_request_line=64, max_header_size=200, max_headers=3, max_body_size=100)
    assert refused(block(path="/" + "a" * 64), small) == 414
    build_request(block(*[(f"x-{n}", "v") for n in range(3)]), small)  # (:authority is not a field)
    assert refused(block(*[(f"x-{n}", "v") for n in range(4)]), small) == 431
    assert refused(block(("x-big", "v" * 200)), small) == 431
    assert refused(block(("content-length", "101"), method="POST"), small) == 413
    build_request(block(("content-length", "100"), method="POST"), small)


# -- the response head -> HEADERS -------------------------------------------------------------


def head_for(headers: list[tuple[str, str]], status: str = "200 OK") -> list[tuple[bytes, bytes]]:
    resp = Response("2", False, True, lambda data: None)
    resp.start_response(status, headers)
    code, fields = response_headers(resp.head().split(b"\r\n\r\n")[0])
    assert code == int(status[:3])
    return fields


def test_response_head_becomes_lowercase_fields_with_status_first() -> None:
    fields = head_for(
        [("Content-Type", "text/plain"), ("X-Thing", "a: b"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
    )
    assert fields[0] == (b":status", b"200")
    names = [name for name, _ in fields]
    assert names == [name.lower() for name in names]
    assert (b"x-thing", b"a: b") in fields  # split at the first ": " only
    assert [v for n, v in fields if n == b"set-cookie"] == [b"a=1", b"b=2"]  # never joined


def test_no_hop_by_hop_fields_in_an_http2_response() -> None:
    """No Connection (RFC 9113 8.2.2), no chunking: END_STREAM ends the body."""
    for headers in ([], [("Connection", "close")], [("Connection", "keep-alive")]):
        names = {name for name, _ in head_for(headers)}
        assert not names & {b"connection", b"transfer-encoding", b"keep-alive"}, names
    with pytest.raises(AppError, match="hop-by-hop"):
        head_for([("Transfer-Encoding", "chunked")])
    with pytest.raises(AppError, match="hop-by-hop"):
        head_for([("Upgrade", "websocket")])


# -- the preface an HTTP/1 connection sees ----------------------------------------------------


def test_preface_bytes_in_any_split() -> None:
    head = len(b"PRI * HTTP/2.0\r\n\r\n")
    for cut in range(head):
        assert preface_bytes(PREFACE[cut:]) == PREFACE
    assert preface_bytes(PREFACE + b"\x00\x00") == PREFACE + b"\x00\x00"  # frames after it are kept
    assert preface_bytes(b"GET / HTTP/1.1\r\n\r\n") is None


# -- Upgrade: h2c (RFC 7540 3.2) -----------------------------------------------------------------


def http1(*fields: tuple[bytes, bytes], version: str = "1.1") -> Request:
    request = Request()
    request.version = version
    request.method = "GET"
    request.headers = [(b"Host", b"t"), *fields]
    return request


ASKS = (
    (b"Connection", b"Upgrade, HTTP2-Settings"),
    (b"Upgrade", b"h2c"),
    (b"HTTP2-Settings", b"AAMAAABkAAQCAAAAAAIAAAAA"),
)


def test_an_h2c_upgrade_request_gives_its_settings() -> None:
    assert upgrade_settings(http1(*ASKS)) == b"AAMAAABkAAQCAAAAAAIAAAAA"
    assert (
        upgrade_settings(http1((b"connection", b"http2-settings , UPGRADE"), (b"upgrade", b"H2C"), ASKS[2]))
        == ASKS[2][1]
    )
    assert upgrade_settings(http1(ASKS[0], (b"Upgrade", b"websocket, h2c"), ASKS[2])) == ASKS[2][1]
    assert upgrade_settings(http1(ASKS[0], ASKS[1], (b"HTTP2-Settings", b""))) == b""  # no settings: the defaults


@pytest.mark.parametrize(
    "request_",
    [
        http1(ASKS[1], ASKS[2]),  # no Connection
        http1((b"Connection", b"Upgrade"), ASKS[1], ASKS[2]),  # HTTP2-Settings not in Connection
        http1(ASKS[0], (b"Upgrade", b"websocket"), ASKS[2]),
        http1(ASKS[0], ASKS[1]),  # no HTTP2-Settings
        http1(*ASKS, ASKS[2]),  # two
        http1(ASKS[0], ASKS[1], (b"HTTP2-Settings", b"AAMAAAB")),  # not whole settings
        http1(ASKS[0], ASKS[1], (b"HTTP2-Settings", b"AAMA*ABk")),  # not base64url
        http1(*ASKS, version="1.0"),
    ],
    ids=[
        "no-connection",
        "connection-lacks-settings",
        "websocket",
        "no-settings",
        "two-settings",
        "partial",
        "not-base64",
        "http-1.0",
    ],
)
def test_requests_that_do_not_qualify_for_h2c(request_: Request) -> None:
    assert upgrade_settings(request_) is None


def test_the_upgraded_request_is_stream_1s() -> None:
    request = upgraded_request(http1(*ASKS, (b"Keep-Alive", b"5"), (b"Cookie", b"a=1")))
    assert request.version == "2"
    assert request.headers == [(b"Host", b"t"), (b"Cookie", b"a=1")]
    env = request_environ({}, request, EMPTY_INPUT)  # type: ignore[arg-type]
    assert env["SERVER_PROTOCOL"] == "HTTP/2" and "HTTP_UPGRADE" not in env
