"""Parser behaviour the corpus cannot show: what is ready when, sticky errors,
failing a body mid-stream, and limits that span several reads."""

from __future__ import annotations

import pytest
from corpus import Sink

from corral.http.errors import HTTPError
from corral.http.limits import Limits
from corral.http.parser import _SINGLETONS, RequestParser

HEAD = b"POST / HTTP/1.1\r\nHost: t\r\n"


def _parser(limits: Limits | None = None) -> tuple[RequestParser, list[Sink]]:
    sinks: list[Sink] = []

    def factory(request: object) -> Sink:
        sinks.append(Sink())
        return sinks[-1]

    return RequestParser(limits or Limits(), factory), sinks


def _status(parser: RequestParser, *pieces: bytes) -> int | None:
    try:
        for piece in pieces:
            parser.feed(piece)
    except HTTPError as error:
        return error.status
    return None


def test_expect_continue_request_is_ready_at_its_head() -> None:
    parser, sinks = _parser()
    parser.feed(HEAD + b"Expect: 100-continue\r\nContent-Length: 4\r\n\r\n")
    assert len(parser.ready) == 1 and not parser.ready[0].complete
    assert parser.receiving_body is parser.ready[0]
    parser.feed(b"body")
    assert parser.ready[0].complete and bytes(sinks[0].data) == b"body" and sinks[0].finished
    assert parser.receiving_body is None and not parser.mid_request


def test_plain_request_is_ready_only_when_complete() -> None:
    parser, _ = _parser()
    parser.feed(HEAD + b"Content-Length: 4\r\n\r\nbo")
    assert not parser.ready and parser.mid_request and not parser.awaiting_head
    parser.feed(b"dy")
    assert len(parser.ready) == 1


def test_error_mid_body_fails_the_body_for_a_waiting_app() -> None:
    parser, sinks = _parser()
    parser.feed(HEAD + b"Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    assert _status(parser, b"zz\r\n") == 400
    assert isinstance(sinks[0].failed, HTTPError) and sinks[0].failed.status == 400


def test_too_large_headers_caught_for_a_second_request_in_the_same_read() -> None:
    """The header-size check once relied on a byte count reset by each message start."""
    parser, _ = _parser(Limits(max_header_size=100))
    small = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
    big = b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"v" * 200 + b"\r\n\r\n"
    assert _status(parser, small + big) == 431
    assert len(parser.ready) == 1


def test_endless_field_line_stopped_across_many_reads() -> None:
    parser, _ = _parser(Limits(max_request_line=100, max_header_size=100))
    pieces = [b"GET / HTTP/1.1\r\nHost: t\r\nX: "] + [b"v" * 100] * 100
    assert _status(parser, *pieces) == 431


def test_endless_trailers_stopped() -> None:
    parser, _ = _parser(Limits(max_header_size=100))
    pieces = [HEAD + b"Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n"] + [b"X-T: " + b"v" * 1000 + b"\r\n"] * 100
    assert _status(parser, *pieces) == 413


def test_endless_chunk_extension_stopped() -> None:
    parser, _ = _parser(Limits(max_header_size=100))
    assert _status(parser, HEAD + b"Transfer-Encoding: chunked\r\n\r\n1;ext=", *[b"v" * 1000] * 100) == 413


def test_small_chunks_are_not_mistaken_for_abuse() -> None:
    parser, sinks = _parser(Limits(max_body_size=10_000))
    parser.feed(HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    for _ in range(5000):
        parser.feed(b"1\r\nx\r\n")
    parser.feed(b"0\r\n\r\n")
    assert len(sinks[0].data) == 5000 and parser.ready[0].complete


def test_upgrade_answered_then_nothing_more_parsed() -> None:
    parser, _ = _parser()
    parser.feed(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n\x00\x01binary")
    assert len(parser.ready) == 1 and parser.ready[0].keep_alive is False and parser.upgraded
    parser.feed(b"GET /more HTTP/1.1\r\nHost: t\r\n\r\n")
    assert len(parser.ready) == 1


UPGRADE_POST = b"POST /e HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABk\r\n"


def test_an_h2c_upgrade_with_a_body_is_served_as_http1() -> None:
    """RFC 7540 3.2: the upgrade is ignored (curl --http2 -d on http://), not refused."""
    parser, sinks = _parser()
    parser.feed(UPGRADE_POST + b"Upgrade: h2c\r\nContent-Length: 5\r\n\r\nhelloGET /next HTTP/1.1\r\nHost: t\r\n\r\n")
    first, second = parser.ready
    assert not parser.upgraded and first.keep_alive and sinks[-1].data == b"hello"
    assert [name.lower() for name, _ in first.headers] == [b"host", b"connection", b"http2-settings", b"content-length"]
    assert second.target == b"/next"


def test_other_upgrades_with_a_body_are_still_refused() -> None:
    parser, _ = _parser()
    assert _status(parser, UPGRADE_POST + b"Upgrade: h2c, websocket\r\nContent-Length: 5\r\n\r\nhello") == 501


@pytest.mark.parametrize(
    ("value", "keep_alive"),
    [
        (b"keep-alive", True),
        (b"close", False),
        (b"keep-alive, close", False),
        (b"Keep-Alive , CLOSE", False),
        (b"keep-alive, closed", True),
    ],
)
def test_http10_connection_tokens(value: bytes, keep_alive: bool) -> None:
    parser, _ = _parser()
    parser.feed(b"GET / HTTP/1.0\r\nConnection: " + value + b"\r\n\r\n")
    assert parser.ready[0].keep_alive is keep_alive


_SINGLETON_NAMES = [name.decode() for name in sorted(_SINGLETONS)]


@pytest.mark.parametrize("name", _SINGLETON_NAMES)
def test_every_singleton_field_with_two_values_is_refused(name: str) -> None:
    head = b"GET / HTTP/1.1\r\nHost: t\r\n%s: 1\r\n%s: 2\r\n\r\n" % (name.title().encode(), name.upper().encode())
    parser, _ = _parser()
    assert _status(parser, head) == 400
    parser, _ = _parser()
    assert _status(parser, head.replace(b": 2", b": 1")) is None  # equal repeats are one value
    assert len(parser.ready) == 1


@pytest.mark.parametrize("minor", range(2, 10))
def test_every_higher_http1_minor_is_http11(minor: int) -> None:
    parser, _ = _parser()
    assert _status(parser, b"GET / HTTP/1.%d\r\nHost: t\r\n\r\n" % minor) is None
    assert parser.ready[0].version == "1.1" and parser.ready[0].keep_alive


@pytest.mark.parametrize("version", [b"0.9", b"2.0", b"2.1", b"3.0", b"9.9"])
def test_other_versions_keep_505(version: bytes) -> None:
    parser, _ = _parser()
    assert _status(parser, b"GET / HTTP/%s\r\nHost: t\r\n\r\n" % version) == 505


# Request lines at the edges of the parser's fast path (RequestParser._fast_head): each
# must get the answer the careful path (_begin) gives, whole and byte by byte. "POST 1.1"
# once crashed the compiled build (a negative slice start) instead of answering 400.
@pytest.mark.parametrize(
    ("line", "answer"),
    [
        (b"POST 1.1", (400, "Unexpected start char in url")),
        (b"GET /a b HTTP/1.1", (400, "malformed request line")),
        (b"GET /a\nb HTTP/1.1", (400, "Invalid header token")),
        (b"GET  HTTP/1.1", (400, "Unexpected char in url schema")),
        (b"GET / HTTP/1.1 ", (400, "whitespace at the edge of the request line")),
        (b"GET /\x7f HTTP/1.1", (400, "Invalid char in url path")),
        (b"GET / HTTP/1.1x", (400, "Expected CRLF after version")),
        (b"PRI * HTTP/2.0", (505, "the HTTP/2 connection preface: HTTP/2 is not enabled here")),
        (b"GET /\xc3\xa9?q HTTP/1.1", ("GET", b"/\xc3\xa9", b"q", "1.1")),
        (b"GET / HTTP/1.5", ("GET", b"/", b"", "1.1")),
        (b"HEAD /x?y HTTP/1.0", ("HEAD", b"/x", b"y", "1.0")),
        (b"OPTIONS * HTTP/1.1", ("OPTIONS", b"*", b"", "1.1")),
        (b"DELETE /d HTTP/1.1", ("DELETE", b"/d", b"", "1.1")),
    ],
)
def test_request_lines_at_the_fast_path_edges(line: bytes, answer: tuple[object, ...]) -> None:
    raw = b"\r\n" + line + b"\r\nHost: t\r\nX: a \t\r\n\r\n"
    for pieces in ([raw], [raw[i : i + 1] for i in range(len(raw))]):
        parser, _ = _parser()
        try:
            for piece in pieces:
                parser.feed(piece)
        except HTTPError as error:
            # A bare LF is named by whichever check meets it first; the status is one.
            assert (error.status, error.detail) == answer if len(pieces) == 1 else error.status == answer[0]
            continue
        (request,) = parser.ready
        assert (request.method, request.path, request.query, request.version) == answer
        assert request.headers == [(b"Host", b"t"), (b"X", b"a")]  # trailing OWS dropped


def test_fast_path_heads_pipelined_in_one_read() -> None:
    parser, sinks = _parser()
    one = b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n"
    two = b"POST /b HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi"
    parser.feed(one + two + b"\r\n" + one)
    assert [(r.method, r.target, r.version, r.keep_alive) for r in parser.ready] == [
        ("GET", b"/a", "1.1", True),
        ("POST", b"/b", "1.0", True),
        ("GET", b"/a", "1.1", True),
    ]
    assert bytes(sinks[0].data) == b"hi"
