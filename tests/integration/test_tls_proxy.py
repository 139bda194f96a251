"""TLS passed through by a load balancer, a PROXY header in front of the handshake.

A real `corral serve` of tests/apps/peer_echo.py with --certfile and the PROXY protocol.
Raw sockets send a PROXY v1 or v2 header (built by tests/proxy_headers.py) and then run a
TLS handshake on the same connection, as an AWS NLB or HAProxy in TCP mode does; the app
must see the header's client and https. Then a real HAProxy with send-proxy-v2.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import Launched, Server, nginx_stream_proxy, read_to_eof
from proxy_headers import refusals, tlv, v1, v2
from tls_pki import PKI

APP = "peer_echo:app"
REQUEST = b"GET /%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


def serve(pki: PKI, *options: str) -> Server:
    return Server([APP, "--certfile", str(pki.cert), "--keyfile", str(pki.key), *options])


@pytest.fixture(scope="module")
def server(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # --header-timeout 1 caps the PROXY header's own deadline (5 s) at 1 s.
    unix = tmp_path_factory.mktemp("sock") / "c.sock"
    with serve(pki, "--proxy-protocol", "--header-timeout", "1", "--bind", "127.0.0.1:0",
               "--bind", f"unix:{unix}") as running:
        assert running.wait_for(r"Listening at https://127\.0\.0\.1:\d+ \(PROXY protocol\)", 1), running.log()
        running.unix = str(unix)  # type: ignore[attr-defined]
        yield running


def parse(data: bytes) -> dict[str, Any]:
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep and head.startswith(b"HTTP/1.1 200 "), data[:300]
    return dict(json.loads(body))


def over_tls(sock: socket.socket, pki: PKI, path: str = "") -> dict[str, Any]:
    """A TLS handshake on `sock` (already connected, a header maybe sent), one request, the answer."""
    with pki.context().wrap_socket(sock, server_hostname="127.0.0.1") as tls:
        tls.sendall(REQUEST % path.encode())
        data, closed = read_to_eof(tls, 5)
    assert closed
    return parse(data)


def handshake_fails(sock: socket.socket, pki: PKI) -> None:
    """The server closes instead of answering the ClientHello (without a byte of TLS back)."""
    with pki.context().wrap_socket(sock, server_hostname="127.0.0.1", do_handshake_on_connect=False) as tls:
        with pytest.raises((ssl.SSLError, OSError)) as info:
            tls.do_handshake()
    assert not isinstance(info.value, TimeoutError)  # closed at once, not left to stall


def connect(address: Any, family: int = socket.AF_INET) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(address)
    return sock



# -- a header, then TLS -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "addr", "port"),
    [
        (v1("203.0.113.7", "192.0.2.1", 51000, 443), "203.0.113.7", "51000"),
        (v1("2001:db8::7", "2001:db8::1", 443, 8443), "2001:db8::7", "443"),
        (v2("198.51.100.20", "192.0.2.1", 40000, 443), "198.51.100.20", "40000"),
        # What an AWS NLB sends: TLVs (ALPN, authority, its VPC endpoint id) before the handshake.
        (v2("2001:db8::20", "2001:db8::1", 40001, 443,
            tlvs=tlv(0x01, b"h2") + tlv(0x02, b"www.example.com") + tlv(0xEA, b"\x01vpce-1")), "2001:db8::20", "40001"),
    ],
    ids=["v1", "v1-ipv6", "v2", "v2-ipv6-tlvs"],
)
def test_the_header_then_tls_gives_the_client_and_https(server: Server, pki: PKI, header: bytes, addr: str,
                                                        port: str) -> None:
    sock = connect((server.host, server.port))
    sock.sendall(header)
    seen = over_tls(sock, pki)
    assert (seen["remote_addr"], seen["remote_port"], seen["scheme"]) == (addr, port, "https")


def test_a_local_header_keeps_the_real_peer(server: Server, pki: PKI) -> None:
    sock = connect((server.host, server.port))
    own_port = sock.getsockname()[1]
    sock.sendall(v2("10.1.2.3", local=True))  # a health check: the proxy speaks for itself
    seen = over_tls(sock, pki)
    assert (seen["remote_addr"], seen["remote_port"]) == ("127.0.0.1", str(own_port))


def test_the_header_and_the_client_hello_in_one_segment(server: Server, pki: PKI) -> None:
    """The header's reader must not take a byte of the TLS record that follows it."""
    sock = connect((server.host, server.port))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = pki.context().wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    prefix = v1("192.0.2.77", "192.0.2.1", 4321, 443)
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            pass
        sock.sendall(prefix + outgoing.read())  # the first time: header + ClientHello in one send
        prefix = b""
        chunk = sock.recv(65536)
        assert chunk, "closed during the handshake"
        incoming.write(chunk)
    tls.write(REQUEST % b"one")
    sock.sendall(outgoing.read())
    data = b""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            data += tls.read(65536)
            continue
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            break
        chunk = sock.recv(65536)
        if not chunk:
            break
        incoming.write(chunk)
    sock.close()
    seen = parse(data)
    assert (seen["remote_addr"], seen["remote_port"], seen["path"]) == ("192.0.2.77", "4321", "/one")


def test_a_header_split_across_packets_then_tls(server: Server, pki: PKI) -> None:
    header = v2("192.0.2.99", "192.0.2.1", 1234, 443)
    sock = connect((server.host, server.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for piece in (header[:5], header[5:14], header[14:20], header[20:]):
        sock.sendall(piece)
        time.sleep(0.02)  # separate segments: the reader must wait for each, taking only header bytes
    assert over_tls(sock, pki)["remote_addr"] == "192.0.2.99"


def test_a_unix_socket_listener(server: Server, pki: PKI) -> None:
    sock = connect(server.unix, socket.AF_UNIX)  # type: ignore[attr-defined]
    sock.sendall(v2("2001:db8::50", "::1", 7, 443))  # a Unix-socket peer is trusted by default
    seen = over_tls(sock, pki)
    assert (seen["remote_addr"], seen["remote_port"], seen["scheme"]) == ("2001:db8::50", "7", "https")


# -- refused --------------------------------------------------------------------------------------


def test_tls_without_a_header_is_refused_without_an_answer(server: Server, pki: PKI) -> None:
    start = len(server.log_lines)
    sock = connect((server.host, server.port))
    handshake_fails(sock, pki)  # its ClientHello is not a PROXY header
    assert server.wait_for(r"refused a connection from 127\.0\.0\.1:\d+: not a PROXY protocol header", 5,
                           start=start), server.log()
    assert len(refusals(server, start)) == 1


def test_a_late_header_is_closed(server: Server) -> None:
    start = len(server.log_lines)
    sock = connect((server.host, server.port))
    sock.sendall(v2()[:10])
    began = time.monotonic()
    received, closed = read_to_eof(sock, 5)
    elapsed = time.monotonic() - began
    sock.close()
    assert (received, closed) == (b"", True)
    assert 0.8 < elapsed < 3.0, elapsed
    assert server.wait_for(r"no complete PROXY header within 1 s", 5, start=start)


def test_plain_http_after_the_header_gets_400_naming_the_client(server: Server) -> None:
    start = len(server.log_lines)
    sock = connect((server.host, server.port))
    sock.sendall(v1("203.0.113.9", "192.0.2.1", 5555, 443) + REQUEST % b"")
    data, closed = read_to_eof(sock, 3)
    sock.close()
    assert closed and data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), data
    assert server.wait_for(r"Rejected connection from 203\.0\.113\.9:5555: plain HTTP sent to an HTTPS port", 5,
                           start=start)


def test_an_untrusted_peer_is_closed_before_tls(pki: PKI) -> None:
    with serve(pki, "--proxy-protocol", "--trusted-proxies", "10.9.9.9") as untrusting:
        sock = connect((untrusting.host, untrusting.port))
        sock.sendall(v1())
        assert read_to_eof(sock, 5) == (b"", True)  # closed at accept: no TLS, no byte back
        sock.close()
        assert untrusting.wait_for(
            r"refused a connection from 127\.0\.0\.1:\d+: the peer is not a trusted proxy", 5
        ), untrusting.log()


# -- a real HAProxy, TCP mode, send-proxy-v2 -----------------------------------------------------

CLIENT = "127.0.0.5"  # the test client's own address: haproxy connects to Corral from 127.0.0.1
HAPROXY_CONF = """
global
    log stderr format raw local0 notice
defaults
    mode tcp
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


def test_haproxy_passes_tls_through_with_send_proxy_v2(pki: PKI, tmp_path: Path) -> None:
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not os.access(haproxy, os.X_OK):
        pytest.skip("haproxy is not installed (.ci/run installs it)")
    backend = serve(pki, "--bind", "proxy:127.0.0.1:0", "--trusted-proxies", "127.0.0.1")
    # haproxy takes a socket we bound and listen on: connections queue from now on, no port race.
    listener = socket.create_server(("127.0.0.1", 0))
    proxy: Launched | None = None
    try:
        fd = listener.fileno()
        conf = tmp_path / "haproxy.cfg"
        conf.write_text(HAPROXY_CONF.format(fd=fd, port=backend.port))
        check = subprocess.run([haproxy, "-c", "-f", str(conf)], capture_output=True, text=True, timeout=30,
                               pass_fds=[fd], check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        proxy = Launched([haproxy, "-db", "-f", str(conf)], pass_fds=(fd,))
        sock = socket.socket()
        sock.settimeout(10)
        sock.bind((CLIENT, 0))
        own_port = sock.getsockname()[1]
        sock.connect(listener.getsockname())
        seen = over_tls(sock, pki)  # the handshake is with Corral, through haproxy
        assert (seen["remote_addr"], seen["remote_port"], seen["scheme"]) == (CLIENT, str(own_port), "https")
        # Straight from CLIENT (not a trusted proxy), the same port refuses.
        direct = socket.socket()
        direct.settimeout(5)
        direct.bind((CLIENT, 0))
        direct.connect(("127.0.0.1", backend.port))
        direct.sendall(v2())
        assert read_to_eof(direct, 5) == (b"", True)
        direct.close()
    finally:
        if proxy is not None:
            proxy.stop()
        listener.close()
        backend.stop()


# -- nginx's stream module passing TLS through (docs/proxy-protocol.md's example) ---------------

def test_nginx_stream_passes_tls_through_with_proxy_protocol(pki: PKI, tmp_path: Path) -> None:
    with serve(pki, "--bind", "proxy:127.0.0.1:0", "--trusted-proxies", "127.0.0.1") as backend:
        proxy, listen = nginx_stream_proxy(tmp_path, backend.port)
        try:
            sock = socket.socket()
            sock.settimeout(10)
            sock.bind((CLIENT, 0))
            own_port = sock.getsockname()[1]
            sock.connect(("127.0.0.1", listen))
            seen = over_tls(sock, pki)  # nginx writes v1, then relays our handshake to Corral
            assert (seen["remote_addr"], seen["remote_port"], seen["scheme"]) == (CLIENT, str(own_port), "https")
        finally:
            proxy.stop()
