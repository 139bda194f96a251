"""wsgi/environ.py and wsgi/file_wrapper.py without a network: parsed request -> environ."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from corral.http.limits import Limits
from corral.http.parser import RequestParser
from corral.http.request import Request
from corral.wsgi.environ import connection_environ, header_key, request_environ
from corral.wsgi.file_wrapper import FileWrapper
from corral.wsgi.input import SpooledBody


def parse(raw: bytes) -> Request:
    parser = RequestParser(Limits(), lambda request: SpooledBody(1 << 20))
    parser.feed(raw)
    assert len(parser.ready) == 1
    return parser.ready[0]


def base(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "server_name": "127.0.0.1",
        "server_port": "8000",
        "remote_addr": "10.0.0.7",
        "remote_port": "51234",
        "url_scheme": "http",
        "multithread": False,
        "multiprocess": True,
    }
    args.update(overrides)
    return connection_environ(**args)


def environ_for(raw: bytes) -> dict[str, Any]:
    return request_environ(base(), parse(raw), io.BytesIO())


def test_connection_keys_are_pep3333_types() -> None:
    env = base()
    assert env["wsgi.version"] == (1, 0)
    assert env["SCRIPT_NAME"] == ""
    assert env["SERVER_PORT"] == "8000" and env["REMOTE_PORT"] == "51234"
    assert env["wsgi.multiprocess"] is True and env["wsgi.multithread"] is False
    assert env["wsgi.run_once"] is False and env["wsgi.input_terminated"] is True
    assert env["wsgi.file_wrapper"] is FileWrapper
    for method in ("write", "writelines", "flush"):
        assert callable(getattr(env["wsgi.errors"], method))


def test_request_keys() -> None:
    env = environ_for(
        b"GET /a%20b/caf%C3%A9?x=%41&y=1+2 HTTP/1.1\r\nHost: h.test\r\nContent-Type: text/x\r\n\r\n"
    )
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/a b/caf\xc3\xa9"
    assert env["QUERY_STRING"] == "x=%41&y=1+2"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["HTTP_HOST"] == "h.test"
    assert env["CONTENT_TYPE"] == "text/x" and "HTTP_CONTENT_TYPE" not in env


def test_each_request_gets_its_own_dict() -> None:
    shared = base()
    first = request_environ(shared, parse(b"GET /1 HTTP/1.1\r\nHost: a\r\nX-Only-First: 1\r\n\r\n"), io.BytesIO())
    second = request_environ(shared, parse(b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n"), io.BytesIO())
    assert "HTTP_X_ONLY_FIRST" in first and "HTTP_X_ONLY_FIRST" not in second
    assert "PATH_INFO" not in shared


def test_duplicate_headers_are_joined() -> None:
    env = environ_for(b"GET / HTTP/1.1\r\nHost: a\r\nAccept: a\r\nAccept: b\r\nCookie: x=1\r\nCookie: y=2\r\n\r\n")
    assert env["HTTP_ACCEPT"].replace(" ", "") == "a,b"
    assert env["HTTP_COOKIE"] == "x=1; y=2"  # RFC 6265: cookies join with "; "


def test_underscore_headers_are_dropped_not_merged() -> None:
    env = environ_for(b"GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 6.6.6.6\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n")
    assert env["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"
    assert header_key(b"X_Auth") is None
    assert header_key(b"content-length") == "CONTENT_LENGTH"
    assert header_key(b"X-Auth") == "HTTP_X_AUTH"


def test_chunked_request_has_no_content_length() -> None:
    env = environ_for(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert "CONTENT_LENGTH" not in env
    assert env["wsgi.input_terminated"] is True


def test_absolute_form_target_sets_host() -> None:
    env = environ_for(b"GET http://other.test/p?q=1 HTTP/1.1\r\nHost: other.test\r\n\r\n")
    assert env["PATH_INFO"] == "/p" and env["QUERY_STRING"] == "q=1"
    assert env["HTTP_HOST"] == "other.test"


def test_http10() -> None:
    env = environ_for(b"GET / HTTP/1.0\r\n\r\n")
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"


# -- FileWrapper ---------------------------------------------------------------------------


def test_file_wrapper_sendfile_range(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")
    with open(path, "rb") as handle:
        wrapper = FileWrapper(handle)
        fd, offset, count = wrapper.sendfile_range()  # type: ignore[misc]
        assert (fd, offset, count) == (handle.fileno(), 0, 10)
        handle.seek(4)
        assert wrapper.sendfile_range() == (handle.fileno(), 4, 6)
        handle.seek(10)
        assert wrapper.sendfile_range() is None  # nothing left: plain iteration sends nothing


def test_file_wrapper_iterates_file_likes_without_fileno() -> None:
    wrapper = FileWrapper(io.BytesIO(b"a" * 10), blksize=4)
    assert wrapper.sendfile_range() is None
    assert list(wrapper) == [b"aaaa", b"aaaa", b"aa"]


def test_file_wrapper_close_closes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x")
    handle = open(path, "rb")  # noqa: SIM115 - closed through the wrapper
    FileWrapper(handle).close()
    assert handle.closed


@pytest.mark.parametrize("filelike", [object(), io.StringIO("text")])
def test_file_wrapper_without_close_or_fileno(filelike: object) -> None:
    assert FileWrapper(filelike).sendfile_range() is None
