"""HTTPS served by Corral itself: a trustme CA, real clients, raw sockets, a reload under load."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from helpers import APPS, Server, read_to_eof
from http_client import get
from tls_pki import PKI

APP = "wsgi_apps:app"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


def serve_tls(pki: PKI, *options: str, cert: Path | None = None, key: Path | None = None) -> Server:
    return Server([APP, "--certfile", str(cert or pki.cert), "--keyfile", str(key or pki.key), *options])


@pytest.fixture(scope="module")
def server(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    control = tmp_path_factory.mktemp("control") / "corral.sock"
    with serve_tls(pki, "--header-timeout", "1", "--control-socket", str(control)) as running:
        running.control = control  # type: ignore[attr-defined]
        yield running


def environ_of(port: int, context: ssl.SSLContext) -> dict[str, Any]:
    status, body = get(port, "/environ", context=context)
    assert status == 200
    return {key: entry.get("value") for key, entry in json.loads(body).items() if isinstance(entry, dict)}


# -- the handshake and what the app sees ----------------------------------------------------


def test_https_request_and_environ(server: Server, pki: PKI) -> None:
    assert server.wait_for(rf"Listening at https://127\.0\.0\.1:{server.port}", 1)
    environ = environ_of(server.port, pki.context())
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["HTTPS"] == "on"
    assert environ["SSL_PROTOCOL"] == "TLSv1.3"
    assert environ["SSL_CIPHER"]
    assert "SSL_CLIENT_VERIFY" not in environ  # no --client-cert: nothing asked, nothing to say


def test_keep_alive_over_one_tls_connection(server: Server, pki: PKI) -> None:
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=pki.context(), timeout=5)
    try:
        for _ in range(5):
            conn.request("GET", "/environ")
            response = conn.getresponse()
            assert response.status == 200
            response.read()
        peer = conn.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
    finally:
        conn.close()
    assert peer == ssl.PEM_cert_to_DER_cert(pki.server.cert_chain_pems[0].bytes().decode())


def test_httpx_client(server: Server, pki: PKI) -> None:
    with httpx.Client(verify=pki.context(), timeout=5) as client:
        response = client.get(f"https://127.0.0.1:{server.port}/environ")
    assert response.status_code == 200
    assert response.json()["HTTPS"]["value"] == "on"


def test_alpn_selects_h2_first_then_http_1_1(server: Server, pki: PKI) -> None:
    for offered, chosen in ((["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1")):  # (docs/http2.md)
        context = pki.context()
        context.set_alpn_protocols(offered)
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.selected_alpn_protocol() == chosen


def test_tls_1_2_is_accepted_and_older_is_refused(server: Server, pki: PKI) -> None:
    environ = environ_of(server.port, pki.context(maximum_version=ssl.TLSVersion.TLSv1_2))
    assert environ["SSL_PROTOCOL"] == "TLSv1.2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the very point: a deprecated version
        old = pki.context(minimum_version=ssl.TLSVersion.TLSv1, maximum_version=ssl.TLSVersion.TLSv1_1)
        old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
        with pytest.raises(ssl.SSLError) as info:
            get(server.port, "/environ", context=old)
    if info.value.reason == "NO_PROTOCOLS_AVAILABLE":
        pytest.skip("this OpenSSL cannot even offer TLS 1.1 as a client")
    # The server's alert, or (uvloop drops the alert when a handshake fails) its close.
    assert info.value.reason in ("TLSV1_ALERT_PROTOCOL_VERSION", "UNEXPECTED_EOF_WHILE_READING"), info.value


def test_file_wrapper_response_is_encrypted_whole(server: Server, pki: PKI, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / "blob"
    path.write_bytes(data)
    status, body = get(server.port, f"/file?path={path}", context=pki.context())
    assert status == 200
    assert body == data


def test_control_socket_is_unaffected(server: Server) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "corral", "status", "--control-socket", str(server.control), "--json"],  # type: ignore[attr-defined]
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)


# -- what is not TLS -----------------------------------------------------------------------


def test_plain_http_to_the_tls_port_gets_400_and_close(server: Server) -> None:
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test\r\n\r\n")
        data, closed = read_to_eof(sock, 3)
    assert closed
    assert time.monotonic() - start < 0.9  # answered at once, not at --header-timeout
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), data
    assert b"Connection: close\r\n" in data
    assert data.endswith(b"The plain HTTP request was sent to an HTTPS port.\n")
    assert server.wait_for("plain HTTP sent to an HTTPS port", 2)


@pytest.mark.parametrize("sent", [b"", b"\x16\x03\x01\x02\x00\x01"], ids=["silent", "partial-client-hello"])
def test_stalled_handshake_is_closed_after_header_timeout(server: Server, pki: PKI, sent: bytes) -> None:
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(sent)
        data, closed = read_to_eof(sock, 4)
    elapsed = time.monotonic() - start
    assert closed and data == b""
    assert 0.8 <= elapsed < 2.5, elapsed  # --header-timeout 1
    status, _ = get(server.port, "/environ", context=pki.context())  # the worker is none the worse
    assert status == 200


# -- client certificates --------------------------------------------------------------------


@pytest.fixture(scope="module")
def mtls_required(pki: PKI) -> Iterator[Server]:
    with serve_tls(pki, "--ca-certs", str(pki.ca_file), "--client-cert", "required") as running:
        yield running


@pytest.fixture(scope="module")
def mtls_optional(pki: PKI) -> Iterator[Server]:
    with serve_tls(pki, "--ca-certs", str(pki.ca_file), "--client-cert", "optional", "--threads", "2") as running:
        yield running


def test_required_client_certificate(mtls_required: Server, pki: PKI) -> None:
    with pytest.raises((ssl.SSLError, ConnectionResetError, http.client.RemoteDisconnected)):
        get(mtls_required.port, "/environ", context=pki.context())
    stranger = trustme.CA().issue_cert("mallory@example.org", common_name="mallory")
    with pytest.raises((ssl.SSLError, ConnectionResetError, http.client.RemoteDisconnected)):
        get(mtls_required.port, "/environ", context=pki.context(stranger))
    environ = environ_of(mtls_required.port, pki.context(pki.client))
    assert environ["SSL_CLIENT_VERIFY"] == "SUCCESS"
    assert environ["SSL_CLIENT_S_DN"] == "CN=alice,OU=QA,O=People"
    assert environ["SSL_CLIENT_I_DN"].endswith(",O=Corral Test CA")
    assert environ["SSL_CLIENT_CERT"] == pki.client.cert_chain_pems[0].bytes().decode()
    assert environ["SSL_CLIENT_M_SERIAL"]


def test_optional_client_certificate(mtls_optional: Server, pki: PKI, tmp_path: Path) -> None:
    without = environ_of(mtls_optional.port, pki.context())
    assert without["SSL_CLIENT_VERIFY"] == "NONE"
    assert "SSL_CLIENT_S_DN" not in without
    with_cert = environ_of(mtls_optional.port, pki.context(pki.client))
    assert with_cert["SSL_CLIENT_VERIFY"] == "SUCCESS"
    assert with_cert["SSL_CLIENT_S_DN"] == "CN=alice,OU=QA,O=People"
    stranger = trustme.CA().issue_cert("mallory@example.org")
    with pytest.raises((ssl.SSLError, ConnectionResetError, http.client.RemoteDisconnected)):
        get(mtls_optional.port, "/environ", context=pki.context(stranger))  # optional, but verified when sent
    # With app threads the file goes the threaded way; still through the encryption.
    data = os.urandom(1024 * 1024 + 3)
    (tmp_path / "blob").write_bytes(data)
    assert get(mtls_optional.port, f"/file?path={tmp_path / 'blob'}", context=pki.context()) == (200, data)


# -- certificates at start and at reload ----------------------------------------------------


def run_corral(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(APPS))
    return subprocess.run(
        [sys.executable, "-m", "corral", "serve", APP, "--bind", "127.0.0.1:0", *args],
        capture_output=True, text=True, timeout=20, env=env, check=False,
    )


def test_bad_certificate_at_start_is_one_line(pki: PKI, tmp_path: Path) -> None:
    junk = pki.write("junk.pem", b"not a certificate\n")
    result = run_corral("--certfile", str(junk), "--keyfile", str(pki.key))
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert errors == [f"corral: error: certfile {junk}: no PEM certificate in it (-----BEGIN CERTIFICATE----- ...)"]
    assert "Traceback" not in result.stderr
    wrong_key = pki.write("wrong.key", pki.ca.issue_cert("other").private_key_pem.bytes())
    result = run_corral("--certfile", str(pki.cert), "--keyfile", str(wrong_key))
    assert result.returncode != 0
    assert f"corral: error: the private key does not belong to the certificate in {pki.cert}\n" in result.stderr


class FreshConnections:
    """Client threads each making one new TLS connection per request, for a bounded time."""

    def __init__(self, port: int, context: ssl.SSLContext, seconds: float, threads: int = 2) -> None:
        self.port = port
        self.context = context
        self.deadline = time.monotonic() + seconds
        self.failures: list[str] = []
        self.seen: list[bytes] = []  # the server certificate (DER) of each successful request, in order
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]
        for thread in self.threads:
            thread.start()

    def _run(self) -> None:
        while time.monotonic() < self.deadline:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=5)
            try:
                conn.connect()
                peer = conn.sock.getpeercert(binary_form=True)
                conn.request("GET", "/environ")
                response = conn.getresponse()
                response.read()
                with self.lock:
                    if response.status == 200 and peer:
                        self.seen.append(peer)
                    else:
                        self.failures.append(f"status {response.status}")
            except (OSError, http.client.HTTPException) as exc:
                with self.lock:
                    self.failures.append(repr(exc))
            finally:
                conn.close()

    def count(self, der: bytes) -> int:
        with self.lock:
            return sum(1 for seen in self.seen if seen == der)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(10)


def der_of(cert: trustme.LeafCert) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())


def replace_file(path: Path, data: bytes) -> None:
    """As certbot does: the new file appears whole (a rename), never half-written."""
    temporary = path.with_suffix(".new")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def test_sighup_reloads_the_certificate_under_load(pki: PKI, tmp_path: Path) -> None:
    first = pki.ca.issue_cert("localhost", "127.0.0.1")
    second = pki.ca.issue_cert("127.0.0.1", "localhost")  # same CA, another serial and SAN order
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    replace_file(cert, first.cert_chain_pems[0].bytes())
    replace_file(key, first.private_key_pem.bytes())
    with serve_tls(pki, "--workers", "2", cert=cert, key=key) as server:
        load = FreshConnections(server.port, pki.context(), seconds=30)
        try:
            deadline = time.monotonic() + 5
            while load.count(der_of(first)) < 10 and time.monotonic() < deadline:
                time.sleep(0.01)
            replace_file(cert, second.cert_chain_pems[0].bytes())
            replace_file(key, second.private_key_pem.bytes())
            mark = len(server.log_lines)
            server.signal(signal.SIGHUP)
            assert server.wait_for(f"TLS certificate re-read from {cert}", 5, start=mark), server.log()
            # Every new connection gets the new certificate once the old generation has retired.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with load.lock:
                    tail = load.seen[-20:]
                if len(tail) == 20 and all(seen == der_of(second) for seen in tail) and load.count(der_of(second)) > 20:
                    break
                time.sleep(0.01)

            # A bad certificate at a reload: logged in one line, the current one stays.
            replace_file(cert, b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
            mark = len(server.log_lines)
            server.signal(signal.SIGHUP)
            line = server.wait_for("Reload keeps the TLS certificate already loaded", 5, start=mark)
            assert line is not None and line.rstrip().endswith(
                f"cannot load the certificate {cert} and its key: a PEM block in them is malformed (OpenSSL: PEM lib)"
            )
            assert server.wait_for("Corral ready|Reloading app", 5, start=mark)
            before = load.count(der_of(second))
            deadline = time.monotonic() + 5
            while load.count(der_of(second)) < before + 20 and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            load.deadline = 0.0
            load.join()
        assert load.failures == [], load.failures[:5]
        assert load.count(der_of(first)) >= 10
        assert load.seen[-20:] == [der_of(second)] * 20, "new connections still get the old certificate"
        assert load.count(der_of(second)) >= 40
        assert load.count(der_of(first)) + load.count(der_of(second)) == len(load.seen)
