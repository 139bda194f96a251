"""PROXY protocol listeners, over raw sockets and behind a real haproxy and nginx.

A real `corral serve` of tests/apps/peer_echo.py (it answers with REMOTE_ADDR and
REMOTE_PORT) on port 0. Headers are built by tests/proxy_headers.py, independently
of Corral's parser. A refused connection must close with not one byte sent back.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import Launched, Server, nginx_stream_proxy, read_to_eof
from proxy_headers import refusals, tlv, v1, v2

APP = "peer_echo:app"
GET = b"GET /%s HTTP/1.1\r\nHost: %s\r\n%s\r\n"
CLOSE = b"Connection: close\r\n"


def get(path: str = "", host: str = "x", close: bool = True) -> bytes:
    return GET % (path.encode(), host.encode(), CLOSE if close else b"")


def responses(data: bytes) -> list[dict[str, Any]]:
    """The JSON bodies of the Content-Length responses in `data`, in order."""
    found = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep and head.startswith(b"HTTP/1.1 200 "), data[:200]
        length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        found.append(json.loads(rest[:length]))
        data = rest[length:]
    return found


def talk(address: Any, data: bytes, family: int = socket.AF_INET, source: str | None = None,
         timeout: float = 5.0) -> tuple[bytes, bool, socket.socket]:
    """Connect (from `source` if given), send `data`, read until the server closes."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    if source is not None:
        sock.bind((source, 0))
    sock.connect(address)
    try:
        sock.sendall(data)
    except OSError:
        pass  # refused before we finished sending: what follows shows it
    received, closed = read_to_eof(sock, timeout)
    sock.close()
    return received, closed, sock


def ports(server: Server) -> tuple[int, ...]:
    return tuple(int(m) for m in re.findall(r"Listening at http://127\.0\.0\.1:(\d+)", server.log()))


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    # --header-timeout 1 caps the PROXY header's own deadline (5 s) at 1 s.
    with Server([APP, "--proxy-protocol", "--header-timeout", "1"]) as running:
        assert running.wait_for(r"Listening at http://127\.0\.0\.1:\d+ \(PROXY protocol\)", 1)
        yield running



# -- valid headers from a trusted peer ---------------------------------------------------


@pytest.mark.parametrize(
    ("header", "addr", "port"),
    [
        (v1("203.0.113.7", "192.0.2.1", 51000, 80), "203.0.113.7", "51000"),
        (v1("2001:db8::7", "2001:db8::1", 443, 8443), "2001:db8::7", "443"),
        (v2("198.51.100.20", "192.0.2.1", 40000, 80), "198.51.100.20", "40000"),
        (v2("2001:db8::20", "2001:db8::1", 40001, 80), "2001:db8::20", "40001"),
        (v2(tlvs=tlv(0x01, b"h2") + tlv(0x02, b"www.example.com") + tlv(0xEA, b"\x01vpce-1")), "203.0.113.7", "51000"),
        (v2("/run/lb.sock", "/run/corral.sock"), "127.0.0.1", "0"),  # AF_UNIX: a local client
    ],
)
def test_the_header_gives_the_client_address(server: Server, header: bytes, addr: str, port: str) -> None:
    data, closed, _ = talk((server.host, server.port), header + get())
    assert closed
    [seen] = responses(data)
    assert (seen["remote_addr"], seen["remote_port"]) == (addr, port)


@pytest.mark.parametrize("header", [v2(None, local=True), v2("10.1.2.3", local=True), b"PROXY UNKNOWN\r\n", v2(None)],
                         ids=["local", "local-with-addresses", "v1-unknown", "v2-unspec"])
def test_local_and_unknown_keep_the_real_peer(server: Server, header: bytes) -> None:
    sock = socket.create_connection((server.host, server.port), timeout=5)
    own_port = sock.getsockname()[1]
    sock.sendall(header + get())
    data, closed = read_to_eof(sock)
    sock.close()
    [seen] = responses(data)
    assert (seen["remote_addr"], seen["remote_port"]) == ("127.0.0.1", str(own_port))


def test_requests_pipelined_in_the_same_packet_as_the_header(server: Server) -> None:
    data, closed, _ = talk((server.host, server.port), v1() + get("one", close=False) + get("two"))
    assert closed
    seen = responses(data)
    assert [s["path"] for s in seen] == ["/one", "/two"]
    assert all(s["remote_addr"] == "203.0.113.7" and s["remote_port"] == "51000" for s in seen)


def test_a_header_split_across_packets(server: Server) -> None:
    header = v2("192.0.2.99", "192.0.2.1", 1234, 80)
    sock = socket.create_connection((server.host, server.port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for piece in (header[:5], header[5:14], header[14:20], header[20:] + get()):
        sock.sendall(piece)
        time.sleep(0.02)  # separate segments: the parser must wait for each, not misread a part
    data, closed = read_to_eof(sock)
    sock.close()
    assert responses(data)[0]["remote_addr"] == "192.0.2.99"


# -- refused: malformed, truncated, late, untrusted ---------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (get(), "not a PROXY protocol header"),
        (b"PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n" + get(), "not an IPv4 address"),
        (v2()[:12] + b"\x11" + v2()[13:] + get(), "version 1, expected 2"),
        (v2(tlvs=b"\x02\x00\x09short") + get(), "overruns the header"),
        (v2(tlvs=tlv(0x04, b"\0" * 5000)), "more than the 4096 accepted"),
    ],
    ids=["plain-http", "bad-v1-address", "bad-v2-version", "bad-tlv", "oversized"],
)
def test_malformed_headers_close_without_an_answer(server: Server, data: bytes, reason: str) -> None:
    start = len(server.log_lines)
    received, closed, sock = talk((server.host, server.port), data)
    assert (received, closed) == (b"", True)
    assert server.wait_for(reason, 5, start=start), server.log()
    [line] = refusals(server, start)  # one line per refused connection
    assert "from 127.0.0.1:" in line


def test_a_truncated_header_then_eof_closes_without_an_answer(server: Server) -> None:
    start = len(server.log_lines)
    sock = socket.create_connection((server.host, server.port), timeout=5)
    sock.sendall(v1()[:20])
    sock.shutdown(socket.SHUT_WR)
    began = time.monotonic()
    received, closed = read_to_eof(sock)
    sock.close()
    assert (received, closed) == (b"", True)
    assert time.monotonic() - began < 0.8  # at once, not at the timeout
    assert server.wait_for("ended before the PROXY header was complete", 5, start=start)


def test_a_header_that_does_not_arrive_in_time_is_closed(server: Server) -> None:
    start = len(server.log_lines)
    sock = socket.create_connection((server.host, server.port), timeout=5)
    sock.sendall(v2()[:10])
    began = time.monotonic()
    received, closed = read_to_eof(sock, 5)
    elapsed = time.monotonic() - began
    sock.close()
    assert (received, closed) == (b"", True)
    assert 0.8 < elapsed < 3.0, elapsed
    assert server.wait_for(r"no complete PROXY header within 1 s", 5, start=start)


def test_an_untrusted_peer_is_closed_without_an_answer() -> None:
    with Server([APP, "--proxy-protocol", "--trusted-proxies", "10.9.9.9"]) as untrusting:
        for header in (v1(), v2(), v2(None, local=True)):
            received, closed, _ = talk((untrusting.host, untrusting.port), header + get())
            assert (received, closed) == (b"", True)
        assert untrusting.wait_for("refused a connection from 127.0.0.1:\\d+: the peer is not a trusted proxy", 5)


# -- which listeners: per bind, Unix sockets ------------------------------------------------


def test_only_the_proxy_bind_expects_the_header(tmp_path: Path) -> None:
    path = str(tmp_path / "c.sock")
    with Server([APP, "--bind", "127.0.0.1:0", "--bind", "proxy:127.0.0.1:0", "--bind", f"proxy:unix:{path}"]) as both:
        plain, proxied = ports(both)
        assert both.wait_for(rf"Listening at http://127\.0\.0\.1:{proxied} \(PROXY protocol\)", 1)
        assert both.wait_for(rf"Listening at unix:{path} \(PROXY protocol\)", 1)
        data, _, _ = talk(("127.0.0.1", plain), get())
        assert responses(data)[0]["remote_addr"] == "127.0.0.1"
        assert talk(("127.0.0.1", proxied), get())[:2] == (b"", True)
        data, _, _ = talk(("127.0.0.1", proxied), v1("192.0.2.50") + get())
        assert responses(data)[0]["remote_addr"] == "192.0.2.50"
        # A Unix-socket peer is trusted by default (`unix` in --trusted-proxies).
        data, _, _ = talk(path, v2("2001:db8::50", "::1", 7, 80) + get(), family=socket.AF_UNIX)
        assert (responses(data)[0]["remote_addr"], responses(data)[0]["remote_port"]) == ("2001:db8::50", "7")


def test_a_connection_handed_to_another_site_keeps_the_proxy_given_peer(tmp_path: Path) -> None:
    config = tmp_path / "corral.toml"
    # corral.toml's own switch (`proxy-protocol = true`) this time; the test's --bind is plain.
    config.write_text(
        "proxy-protocol = true\n"
        + "".join(
            f'\n[sites.{name}]\napp = "{APP}"\nhosts = ["{name}.test"]\nenv = {{ SITE_NAME = "{name}" }}\n'
            for name in ("a", "b")
        )
    )
    with Server(["--config", str(config)]) as sites:
        requests = get("1", "a.test", False) + get("2", "b.test", False) + get("3", "a.test")
        data, closed, _ = talk((sites.host, sites.port), v1("198.51.100.9", "192.0.2.1", 4242, 80) + requests)
        seen = responses(data)
        assert [s["site"] for s in seen] == ["a", "b", "a"]  # two processes: it moved at least once
        assert {(s["remote_addr"], s["remote_port"]) for s in seen} == {("198.51.100.9", "4242")}


def test_bad_proxy_binds_are_clear_errors() -> None:
    for bind, message in [
        ("proxy:", "bind 'proxy:': proxy: needs an address after it, as proxy:0.0.0.0:8001"),
        ("proxy:127.0.0.1:http", "bind 'proxy:127.0.0.1:http': 'http' is not a port number"),
        ("proxy:unix:", "bind 'proxy:unix:': unix: needs a socket path"),
    ]:
        result = subprocess.run([sys.executable, "-m", "corral", "serve", "--bind", bind], capture_output=True,
                                text=True, timeout=60, check=False)
        assert result.returncode == 1, (bind, result.stderr)
        assert result.stderr.strip().splitlines()[-1] == f"corral: error: {message}", result.stderr


# -- real proxies speaking the PROXY protocol to Corral -----------------------------------------

CLIENT = "127.0.0.5"  # the test client's own loopback address: the proxies connect from 127.0.0.1


def through(proxy_port: int) -> dict[str, Any]:
    """One request through the proxy from CLIENT; what the app saw, and our own port."""
    sock = socket.socket()
    sock.settimeout(10)
    sock.bind((CLIENT, 0))
    own_port = sock.getsockname()[1]
    sock.connect(("127.0.0.1", proxy_port))
    sock.sendall(get())
    data, _closed = read_to_eof(sock, 10)
    sock.close()
    [seen] = responses(data)
    seen["own_port"] = str(own_port)
    return seen


@pytest.fixture(scope="module")
def backend() -> Iterator[Server]:
    """Corral with one PROXY listener, trusting only the proxies' address (not CLIENT)."""
    with Server([APP, "--bind", "proxy:127.0.0.1:0", "--trusted-proxies", "127.0.0.1"]) as running:
        yield running


HAPROXY_CONF = """
global
    log stderr format raw local0 notice
defaults
    mode {mode}
    log global
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend front
    bind fd@{fd}
    default_backend corral
backend corral
    server corral 127.0.0.1:{port} send-proxy-v2
"""


@pytest.mark.parametrize("mode", ["tcp", "http"])
def test_haproxy_send_proxy_v2(backend: Server, tmp_path: Path, mode: str) -> None:
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not os.access(haproxy, os.X_OK):
        pytest.skip("haproxy is not installed (.ci/run installs it)")
    # haproxy takes a socket we bound and listen on: connections queue from now on, no port race.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        fd = listener.fileno()
        conf = tmp_path / "haproxy.cfg"
        conf.write_text(HAPROXY_CONF.format(mode=mode, fd=fd, port=backend.port))
        check = subprocess.run([haproxy, "-c", "-f", str(conf)], capture_output=True, text=True, timeout=30,
                               pass_fds=[fd], check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        proxy = Launched([haproxy, "-db", "-f", str(conf)], pass_fds=[fd])
        try:
            seen = through(listener.getsockname()[1])
            assert (seen["remote_addr"], seen["remote_port"]) == (CLIENT, seen["own_port"])
        finally:
            proxy.stop()


def test_nginx_stream_proxy_protocol(backend: Server, tmp_path: Path) -> None:
    proxy, listen = nginx_stream_proxy(tmp_path, backend.port)
    try:
        seen = through(listen)  # nginx speaks v1: PROXY TCP4 127.0.0.5 127.0.0.1 <port> <listen>
        assert (seen["remote_addr"], seen["remote_port"]) == (CLIENT, seen["own_port"])
    finally:
        proxy.stop()
