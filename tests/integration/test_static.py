"""The static map over real sockets: every header and every refusal, then curl's view of it.

One server for the module (`--static /static=ROOT` in front of tests/apps/basic.py); each test
speaks raw HTTP/1.1 on its own connection and reads exact responses.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from h2_client import H2Client
from helpers import Server, parse_head

CSS = b"body { color: #333 }\n" * 20
HASHED = "app.3f2a1b9c8d7e.css"
BIG = bytes(range(256)) * 4096  # 1 MiB: sent with os.sendfile


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("static")
    root = base / "root"
    (root / "css").mkdir(parents=True)
    (root / "css" / "app.css").write_bytes(CSS)
    (root / "css" / "app.css.gz").write_bytes(gzip.compress(CSS))
    (root / "css" / "app.css.br").write_bytes(b"pretend-brotli")
    (root / "css" / HASHED).write_bytes(CSS)
    (root / "big.bin").write_bytes(BIG)
    (root / "empty.txt").write_bytes(b"")
    (root / "notes.txt").write_text("héllo\n", encoding="utf-8")
    (root / "caf\u00e9.txt").write_text("coffee\n")
    (root / ".env").write_text("SECRET=1\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    (base / "outside.txt").write_text("outside\n")
    os.symlink(base / "outside.txt", root / "leak.txt")
    return root


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[Server]:
    with Server(["basic:hello", "--static", f"/static={root}"]) as running:
        yield running


def exchange(server: Server, raw: bytes, sock: socket.socket | None = None) -> tuple[int, dict[str, str], bytes]:
    """Send one request (on `sock` when given) and read exactly its response."""
    own = sock is None
    sock = sock or server.connect()
    try:
        sock.sendall(raw)
        return read_one(sock, head_only=raw.startswith(b"HEAD "))
    finally:
        if own:
            _leftover.pop(id(sock), None)
            sock.close()


_leftover: dict[int, bytes] = {}  # bytes read past a response, by socket: pipelined answers


def read_one(sock: socket.socket, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
    data = _leftover.pop(id(sock), b"")
    deadline = time.monotonic() + 5
    while b"\r\n\r\n" not in data:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed mid-head: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    length = 0 if head_only or status == 304 else int(headers.get("content-length", "0"))
    while len(rest) < length:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        rest += chunk
    assert len(rest) >= length, (status, headers, len(rest))
    if len(rest) > length:
        _leftover[id(sock)] = rest[length:]
    return status, headers, rest[:length]


def get(path: str, *headers: str, method: str = "GET") -> bytes:
    extra = "".join(f"{h}\r\n" for h in headers)
    return f"{method} {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode("latin-1")


# -- the answer and its headers ---------------------------------------------------------


def test_a_file_with_every_header(server: Server) -> None:
    status, headers, body = exchange(server, get("/static/css/app.css"))
    assert status == 200 and body == CSS
    assert headers["content-type"] == "text/css; charset=utf-8"
    assert headers["content-length"] == str(len(CSS))
    assert headers["etag"].startswith('"') and headers["etag"].endswith('"')
    assert headers["last-modified"].endswith(" GMT")
    assert headers["cache-control"] == "public, max-age=60"
    assert headers["accept-ranges"] == "bytes"
    assert headers["vary"] == "Accept-Encoding"  # siblings exist: caches must key on it
    assert "content-encoding" not in headers and "connection" not in headers


def test_keep_alive_head_then_get_on_one_connection(server: Server) -> None:
    with server.connect() as sock:
        status, headers, body = exchange(server, get("/static/big.bin", method="HEAD"), sock)
        assert status == 200 and body == b"" and headers["content-length"] == str(len(BIG))
        status, headers, body = exchange(server, get("/static/notes.txt"), sock)
        assert status == 200 and body == "héllo\n".encode()
        status, _, body = exchange(server, get("/static/big.bin"), sock)  # os.sendfile
        assert status == 200 and hashlib.sha256(body).digest() == hashlib.sha256(BIG).digest()
        status, _, body = exchange(server, get("/"), sock)  # the app still answers the rest
        assert status == 200 and body


def test_pipelined_static_and_app_requests_stay_in_order(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(get("/static/css/app.css") + get("/static/missing") + get("/") + get("/static/notes.txt"))
        assert read_one(sock)[0] == 200
        assert read_one(sock)[0] == 404
        assert read_one(sock)[2].startswith(b"Hello")  # the app answers between static files
        assert read_one(sock)[2] == "héllo\n".encode()


def test_http_1_0_and_connection_close(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /static/notes.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status, headers, _ = read_one(sock)
        assert status == 200 and headers["connection"] == "keep-alive"
        sock.sendall(get("/static/notes.txt", "Connection: close"))
        status, headers, _ = read_one(sock)
        assert headers["connection"] == "close"
        sock.settimeout(5)
        assert sock.recv(10) == b""


def test_empty_file_and_utf8_name(server: Server) -> None:
    status, headers, body = exchange(server, get("/static/empty.txt"))
    assert status == 200 and headers["content-length"] == "0" and body == b""
    status, _, body = exchange(server, get("/static/caf%C3%A9.txt"))
    assert status == 200 and body == b"coffee\n"


def test_hashed_names_are_cached_for_a_year(server: Server) -> None:
    _, headers, _ = exchange(server, get(f"/static/css/{HASHED}"))
    assert headers["cache-control"] == "public, max-age=31536000, immutable"


# -- conditional requests ----------------------------------------------------------------


def test_304_by_etag_and_by_date(server: Server) -> None:
    _, first, _ = exchange(server, get("/static/css/app.css"))
    etag, modified = first["etag"], first["last-modified"]
    status, headers, body = exchange(server, get("/static/css/app.css", f"If-None-Match: {etag}"))
    assert status == 304 and body == b""
    assert headers["etag"] == etag and headers["vary"] == "Accept-Encoding" and "cache-control" in headers
    assert "content-length" not in headers and "content-type" not in headers
    status, _, _ = exchange(server, get("/static/css/app.css", f"If-Modified-Since: {modified}"))
    assert status == 304
    status, _, _ = exchange(server, get("/static/css/app.css", "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT"))
    assert status == 200
    # If-None-Match present and not matching: If-Modified-Since is not looked at (RFC 9110 13.2.2).
    status, _, _ = exchange(
        server, get("/static/css/app.css", 'If-None-Match: "stale"', f"If-Modified-Since: {modified}")
    )
    assert status == 200
    status, _, _ = exchange(server, get("/static/css/app.css", 'If-Match: "stale"'))
    assert status == 412
    status, _, _ = exchange(server, get("/static/css/app.css", f"If-Match: {etag}"))
    assert status == 200


# -- ranges ----------------------------------------------------------------------------


def test_ranges(server: Server) -> None:
    status, headers, body = exchange(server, get("/static/big.bin", "Range: bytes=1000-1999"))
    assert status == 206 and body == BIG[1000:2000]
    assert headers["content-range"] == f"bytes 1000-1999/{len(BIG)}"
    status, headers, body = exchange(server, get("/static/big.bin", "Range: bytes=-100"))
    assert status == 206 and body == BIG[-100:]
    status, headers, body = exchange(server, get("/static/big.bin", "Range: bytes=65536-"))  # large: sendfile
    assert status == 206 and body == BIG[65536:]
    status, headers, body = exchange(server, get("/static/big.bin", f"Range: bytes={len(BIG)}-"))
    assert status == 416 and headers["content-range"] == f"bytes */{len(BIG)}"
    status, _, body = exchange(server, get("/static/notes.txt", "Range: bytes=0-1, 3-4"))
    assert status == 200  # several ranges: the whole file
    status, _, body = exchange(server, get("/static/notes.txt", "Range: bytes=0-1", method="HEAD"))
    assert status == 200  # Range is for GET only


def test_if_range(server: Server) -> None:
    _, first, _ = exchange(server, get("/static/big.bin"))
    status, _, body = exchange(server, get("/static/big.bin", "Range: bytes=0-9", f"If-Range: {first['etag']}"))
    assert status == 206 and body == BIG[:10]
    status, _, body = exchange(server, get("/static/big.bin", "Range: bytes=0-9", 'If-Range: "old"'))
    assert status == 200 and len(body) == len(BIG)
    date = first["last-modified"]
    status, _, _ = exchange(server, get("/static/big.bin", "Range: bytes=0-9", f"If-Range: {date}"))
    assert status == 206


# -- precompressed siblings ----------------------------------------------------------------


def test_precompressed_siblings_by_accept_encoding(server: Server) -> None:
    status, headers, body = exchange(server, get("/static/css/app.css", "Accept-Encoding: gzip, br"))
    assert status == 200 and headers["content-encoding"] == "br" and body == b"pretend-brotli"
    assert headers["content-type"] == "text/css; charset=utf-8" and headers["vary"] == "Accept-Encoding"
    status, headers, body = exchange(server, get("/static/css/app.css", "Accept-Encoding: gzip;q=1, br;q=0"))
    assert headers["content-encoding"] == "gzip" and gzip.decompress(body) == CSS
    gzip_etag = headers["etag"]
    status, headers, body = exchange(server, get("/static/css/app.css", "Accept-Encoding: identity"))
    assert "content-encoding" not in headers and body == CSS and headers["etag"] != gzip_etag
    status, _, _ = exchange(server, get("/static/css/app.css", "Accept-Encoding: gzip;q=1, br;q=0",
                                        f"If-None-Match: {gzip_etag}"))
    assert status == 304
    _, headers, _ = exchange(server, get("/static/notes.txt", "Accept-Encoding: gzip"))
    assert "vary" not in headers and "content-encoding" not in headers  # no sibling: nothing varies


# -- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/static/../basic.py",
        "/static/css/../../outside.txt",
        "/static/%2e%2e/outside.txt",
        "/static/%2E%2E%2Foutside.txt",
        "/static/..%2f..%2fetc%2fpasswd",
        "/static/css%2f..%2f..%2foutside.txt",
        "/static/notes.txt%00.png",
        "/static/..%5coutside.txt",
        "/static/css%5capp.css",
        "/static//etc/passwd",
        "/static/%2fetc/passwd",
        "/static/.env",
        "/static/.git/config",
        "/static/%2egit/config",
        "/static/css/",
        "/static/css",
        "/static/",
        "/static",
        "/static/leak.txt",
        "/static/missing.css",
        "/static/notes.txt/",
    ],
)
def test_refused_paths_are_404(server: Server, path: str) -> None:
    status, headers, body = exchange(server, get(path))
    assert status == 404, (path, body)
    assert b"outside" not in body and b"SECRET" not in body and b"root:" not in body


def test_only_get_and_head(server: Server) -> None:
    for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
        raw = f"{method} /static/notes.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n".encode()
        status, headers, _ = exchange(server, raw)
        assert status == 405 and headers["allow"] == "GET, HEAD", method


def test_paths_beside_the_prefix_go_to_the_app(server: Server) -> None:
    status, _, body = exchange(server, get("/staticfiles/notes.txt"))
    assert status == 200 and body.startswith(b"Hello")


# -- curl's view --------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_ranges_and_compression(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "part"
    done = subprocess.run(["curl", "-sS", "-r", "100-299", "-o", str(out), "-w", "%{http_code}",
                           f"{server.url}/static/big.bin"], capture_output=True, text=True, timeout=10, check=True)
    assert done.stdout == "206" and out.read_bytes() == BIG[100:300]
    done = subprocess.run(["curl", "-sS", "--compressed", "-H", "Accept-Encoding: gzip", "-D", "-",
                           f"{server.url}/static/css/app.css"], capture_output=True, timeout=10, check=True)
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    assert b"Content-Encoding: gzip" in head and body == CSS  # curl decompressed the .gz sibling
    done = subprocess.run(["curl", "-sS", "-o", str(out), f"{server.url}/static/big.bin"], timeout=10, check=True)
    assert out.read_bytes() == BIG


# -- start-up ----------------------------------------------------------------------------


def test_a_missing_root_stops_the_server_with_a_clear_error(tmp_path: Path) -> None:
    with Server(["basic:hello", "--static", f"/static={tmp_path / 'nope'}"], ready="") as server:
        assert server.wait(20) == 1
        assert f"static /static: directory {tmp_path / 'nope'} does not exist" in server.log()


def test_symlinks_out_of_the_root_when_allowed(root: Path) -> None:
    with Server(["basic:hello", "--static", f"/static={root}", "--static-follow-symlinks"]) as server:
        status, _, body = exchange(server, get("/static/leak.txt"))
        assert status == 200 and body == b"outside\n"


# -- over HTTP/2 ---------------------------------------------------------------------------


def test_over_http2_ranges_304_and_big_files(root: Path) -> None:
    """The same map on HTTP/2 streams (h2c): DATA frames paced by the windows, no sendfile."""
    with Server(["basic:hello", "--http2", "--static", f"/static={root}"]) as srv, H2Client(srv.port) as client:
        full = client.get("/static/css/app.css")
        assert full.status == 200 and full.body == CSS
        assert full.headers["content-type"] == "text/css; charset=utf-8"
        assert full.headers["content-length"] == str(len(CSS)) and full.headers["accept-ranges"] == "bytes"
        assert not {"connection", "transfer-encoding", "keep-alive"} & set(full.headers)
        etag, modified = full.headers["etag"], full.headers["last-modified"]
        sids = [
            client.request("/static/css/app.css", headers=[("if-none-match", etag)]),
            client.request("/static/css/app.css", headers=[("if-modified-since", modified)]),
            client.request("/static/big.bin", headers=[("range", "bytes=1000-1999")]),
            client.request("/static/big.bin", headers=[("range", "bytes=-100")]),
            client.request("/static/big.bin", headers=[("range", f"bytes={len(BIG)}-")]),
            client.request("/static/big.bin", headers=[("range", "bytes=0-9"), ("if-range", '"old"')]),
            client.request("/static/big.bin"),
            client.request("/static/big.bin", method="HEAD"),
            client.request("/static/css/app.css", headers=[("accept-encoding", "gzip")]),
            client.request("/static/.env"),
            client.request("/"),
        ]
        etag304, date304, part, suffix, unsatisfiable, if_range, whole, head, gz, hidden, app = client.wait(
            *sids, timeout=10
        )
    assert (etag304.status, etag304.body, date304.status) == (304, b"", 304)
    assert etag304.headers["etag"] == etag and "content-length" not in etag304.headers
    assert part.status == 206 and part.body == BIG[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(BIG)}"
    assert suffix.status == 206 and suffix.body == BIG[-100:]
    assert unsatisfiable.status == 416 and unsatisfiable.headers["content-range"] == f"bytes */{len(BIG)}"
    assert if_range.status == 200 and len(if_range.body) == len(BIG)
    assert whole.status == 200 and hashlib.sha256(whole.body).digest() == hashlib.sha256(BIG).digest()
    assert head.status == 200 and head.body == b"" and head.headers["content-length"] == str(len(BIG))
    assert gz.headers["content-encoding"] == "gzip" and gzip.decompress(gz.body) == CSS
    assert hidden.status == 404
    assert app.status == 200 and app.body.startswith(b"Hello")
