"""Behind a proxy (docs/proxies.md): a real Django app behind real nginx, over TCP and a Unix
socket, and the same headers sent straight to Corral over raw sockets.

Everything runs on loopback, where every address is local: the test's "internet client"
connects from 127.0.0.5, which is not in Corral's default --trusted-proxies (127.0.0.1, ::1,
unix), while nginx reaches Corral from 127.0.0.1 or over the Unix socket (both trusted).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from django_project import create_django_project
from helpers import NGINX, Server, read_response

CLIENT = "127.0.0.5"  # an untrusted client address (all of 127/8 is loopback)
HOST = "www.example.com"

SETTINGS = """
from .settings import *  # noqa: F403

# No SECURE_PROXY_SSL_HEADER, no USE_X_FORWARDED_HOST: Corral has rewritten the environ.
ALLOWED_HOSTS = ["www.example.com", "backend", "127.0.0.1"]
ROOT_URLCONF = "mysite.urls_proxy"
"""

URLS = """
from django.http import JsonResponse
from django.urls import path


def whoami(request):
    meta = request.META
    return JsonResponse({
        "remote_addr": meta["REMOTE_ADDR"],
        "remote_port": meta["REMOTE_PORT"],
        "scheme": request.scheme,
        "secure": request.is_secure(),
        "host": request.get_host(),
        "server": [meta["SERVER_NAME"], meta["SERVER_PORT"]],
        "script_name": meta["SCRIPT_NAME"],
        "url": request.build_absolute_uri(),
        "peer": meta.get("corral.peer"),
        "original": meta.get("corral.original"),
        "proxy_headers": sorted(k for k in meta if "FORWARD" in k or "REAL_IP" in k),
    })


urlpatterns = [path("whoami/", whoami)]
"""

NGINX_CONF = """{user}
worker_processes 1;
pid {root}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream tcp {{ server 127.0.0.1:{tcp}; keepalive 4; }}
    upstream unix {{ server unix:{sock}; keepalive 4; }}
    include {root}/servers.conf;
}}
"""

SERVER = """
server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {root}/cert.pem;
    ssl_certificate_key {root}/key.pem;
    location / {{ proxy_pass http://{upstream}; include {root}/headers.conf; }}
    location /app/ {{
        proxy_pass http://{upstream}/;
        include {root}/headers.conf;
        proxy_set_header X-Forwarded-Prefix /app;
    }}
}}
"""

# What docs/proxies.md tells nginx users to send.
HEADERS = """
proxy_http_version 1.1;
proxy_set_header Connection "";
proxy_set_header Host $host;
proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
proxy_set_header X-Forwarded-Proto $scheme;
proxy_set_header X-Forwarded-Host $host;
proxy_set_header X-Forwarded-Port $server_port;
proxy_set_header Forwarded "";
"""


@dataclass
class Stack:
    corral: Server
    sock: Path
    ports: dict[str, int]  # nginx's TLS port for each upstream kind
    tls: ssl.SSLContext


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def exchange(address: tuple[str, int] | str, raw: bytes, source: str | None = CLIENT,
             tls: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    """One request on a fresh raw socket (from `source` over TCP); the status and body."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family) as plain:
        plain.settimeout(10)
        if source is not None and family == socket.AF_INET:
            plain.bind((source, 0))
        plain.connect(address)
        sock = tls.wrap_socket(plain, server_hostname=HOST) if tls is not None else plain
        try:
            sock.sendall(raw)
            status, _headers, body = read_response(sock, 10)
        finally:
            sock.close()
        return status, body


def get(lines: list[str], target: str = "/whoami/", host: str = "backend") -> bytes:
    return (f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
            + "".join(line + "\r\n" for line in lines) + "\r\n").encode("latin-1")


def whoami(address: tuple[str, int] | str, lines: list[str], source: str | None = CLIENT, **kw: Any) -> dict[str, Any]:
    status, body = exchange(address, get(lines, **kw), source)
    assert status == 200, body[:500]
    return json.loads(body)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = create_django_project(tmp_path_factory.mktemp("proxied") / "site")
    (root / "mysite/settings_proxy.py").write_text(textwrap.dedent(SETTINGS).lstrip())
    (root / "mysite/urls_proxy.py").write_text(textwrap.dedent(URLS).lstrip())
    return root


@pytest.fixture(scope="module")
def corral(project: Path) -> Iterator[tuple[Server, Path]]:
    sock = project / "corral.sock"
    server = Server(["--settings", "mysite.settings_proxy", "--chdir", str(project), "--bind", "127.0.0.1:0",
                     "--bind", f"unix:{sock}"], timeout=30)
    yield server, sock
    server.stop()


@pytest.fixture(scope="module")
def stack(corral: tuple[Server, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not os.access(NGINX, os.X_OK):
        pytest.skip(f"nginx is not installed at {NGINX} (.ci/run installs it)")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificate for nginx (.ci/run installs it)")
    server, sock = corral
    root = tmp_path_factory.mktemp("nginx")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "2", "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=DNS:{HOST}",
                    "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem")], check=True, capture_output=True)
    tls = ssl.create_default_context(cafile=str(root / "cert.pem"))
    (root / "headers.conf").write_text(HEADERS)
    user = "user root;" if os.geteuid() == 0 else ""  # root's workers would be "nobody": no access to tmp
    for _attempt in range(3):  # a free port may be taken by another test in between
        ports = {"tcp": free_port(), "unix": free_port()}
        (root / "nginx.conf").write_text(NGINX_CONF.format(user=user, root=root, tcp=server.port, sock=sock))
        (root / "servers.conf").write_text("".join(SERVER.format(port=port, upstream=kind, root=root)
                                                   for kind, port in ports.items()))
        nginx = Server.__new__(Server)
        nginx._launch([NGINX, "-p", f"{root}/", "-c", str(root / "nginx.conf"), "-e", "stderr", "-g", "daemon off;"])
        if nginx.wait_for(r"start worker process|emerg", 10) and "emerg" not in nginx.log():
            break
        nginx.stop()
        assert "Address already in use" in nginx.log(), nginx.log()
    else:
        raise RuntimeError("no free ports for nginx")
    yield Stack(server, sock, ports, tls)
    nginx.stop()


def through_nginx(stack: Stack, kind: str, lines: list[str], target: str = "/whoami/") -> dict[str, Any]:
    raw = get(lines, target=target, host=HOST)
    status, body = exchange(("127.0.0.1", stack.ports[kind]), raw, CLIENT, tls=stack.tls)
    assert status == 200, body[:500]
    return json.loads(body)  # type: ignore[no-any-return]


# -- through nginx --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_client_scheme_and_host_reach_django_through_nginx(stack: Stack, kind: str) -> None:
    port = stack.ports[kind]
    seen = through_nginx(stack, kind, [])
    assert seen["remote_addr"] == CLIENT and seen["remote_port"] == "0"
    assert (seen["scheme"], seen["secure"]) == ("https", True)
    assert seen["host"] == f"{HOST}:{port}" and seen["server"] == [HOST, str(port)]
    assert seen["url"] == f"https://{HOST}:{port}/whoami/"
    # The connection's own values stay available under documented names.
    assert seen["peer"] == ("unix" if kind == "unix" else seen["original"]["REMOTE_ADDR"] + ":"
                            + seen["original"]["REMOTE_PORT"])
    assert seen["original"]["REMOTE_ADDR"] == "127.0.0.1" and seen["original"]["wsgi.url_scheme"] == "http"
    assert seen["original"]["HTTP_HOST"] == HOST


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_prefix_becomes_script_name_through_nginx(stack: Stack, kind: str) -> None:
    seen = through_nginx(stack, kind, [], target="/app/whoami/")
    assert seen["script_name"] == "/app"
    assert seen["url"] == f"https://{HOST}:{stack.ports[kind]}/app/whoami/"


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_a_client_cannot_spoof_through_nginx(stack: Stack, kind: str) -> None:
    # nginx appends the client's address to what the client sent: the walk stops there.
    seen = through_nginx(stack, kind, ["X-Forwarded-For: 6.6.6.6", "X-Forwarded-Proto: http",
                                       "X-Forwarded-Host: evil.example", "Forwarded: for=6.6.6.6;host=evil.example"])
    assert (seen["remote_addr"], seen["scheme"], seen["host"]) == (CLIENT, "https", f"{HOST}:{stack.ports[kind]}")
    # nginx sends what it was told to; the client's Forwarded was cleared (docs/proxies.md's config).
    assert "HTTP_FORWARDED" not in seen["proxy_headers"]


# -- straight to Corral -------------------------------------------------------------------------

SPOOF = ["X-Forwarded-For: 6.6.6.6", "X-Forwarded-Proto: https", "X-Forwarded-Host: evil.example",
         "X-Forwarded-Port: 443", "X-Forwarded-Prefix: /evil", "Forwarded: for=6.6.6.6;proto=https;host=evil.example",
         "X-Real-IP: 6.6.6.6", "X-Forwarded-Ssl: on", "X_Forwarded_For: 6.6.6.6", "X_Forwarded_Proto: https",
         "X-Forwarded_Host: evil.example"]


def test_a_spoofed_header_sent_straight_to_corral_does_not_reach_django(corral: tuple[Server, Path]) -> None:
    server, _sock = corral
    seen = whoami(("127.0.0.1", server.port), SPOOF, source=CLIENT)
    assert seen["remote_addr"] == CLIENT and seen["scheme"] == "http" and not seen["secure"]
    assert seen["host"] == "backend" and seen["script_name"] == "" and seen["original"] is None
    assert seen["proxy_headers"] == []  # removed, so SECURE_PROXY_SSL_HEADER could not be fooled either


def test_a_trusted_peer_straight_to_corral_is_believed(corral: tuple[Server, Path]) -> None:
    server, sock = corral
    lines = ["Forwarded: for=\"[2001:db8::7]:4711\";proto=https;host=www.example.com, for=127.0.0.1"]
    for address in (("127.0.0.1", server.port), str(sock)):
        seen = whoami(address, lines, source="127.0.0.1")
        assert (seen["remote_addr"], seen["remote_port"], seen["scheme"]) == ("2001:db8::7", "4711", "https")
        assert seen["host"] == HOST and seen["server"] == [HOST, "443"]
        assert seen["proxy_headers"] == ["HTTP_FORWARDED"]  # a trusted proxy's headers stay for the app


@pytest.mark.parametrize("line", ["Forwarded: for=\"[::1", "Forwarded: for=1.2.3.4:99999;proto=\"https",
                                  "X-Forwarded-Proto: https, http", "Forwarded: for=_hidden;host=\"a b\"",
                                  "X-Forwarded-Port: 0", "Forwarded: ,;,=;\"", "X-Forwarded-Prefix: evil"])
def test_malformed_values_from_a_trusted_peer_are_never_a_500(corral: tuple[Server, Path], line: str) -> None:
    server, _sock = corral
    seen = whoami(("127.0.0.1", server.port), [line], source="127.0.0.1")
    assert seen["remote_addr"] == "127.0.0.1" and seen["host"] == "backend"


# -- multi-site routing -----------------------------------------------------------------------

SITES = """
bind = ["127.0.0.1:0"]

[sites.a]
app = "site_probe:app"
env = {{ SITE_NAME = "a" }}
hosts = ["a.test"]
default = true

[sites.b]
app = "site_probe:app"
env = {{ SITE_NAME = "b" }}
hosts = ["b.test"]
mount = "/b"
"""


def test_sites_route_by_the_rewritten_host_only_for_a_trusted_peer(tmp_path: Path) -> None:
    config = tmp_path / "corral.toml"
    config.write_text(SITES.format())
    with Server(["--config", str(config)], timeout=30) as server:
        address = ("127.0.0.1", server.port)
        forwarded = ["X-Forwarded-Host: b.test", "X-Forwarded-Prefix: /shop"]
        seen = whoami(address, forwarded, source="127.0.0.1", target="/b/x", host="backend")
        assert (seen["site"], seen["host"]) == ("b", "b.test")
        assert (seen["script_name"], seen["path_info"]) == ("/shop/b", "/x")  # the mount after the prefix
        seen = whoami(address, ["Forwarded: host=b.test"], source="127.0.0.1", target="/b/x", host="a.test")
        assert seen["site"] == "b"
        # An untrusted peer's header is removed: Host routes.
        seen = whoami(address, forwarded, source=CLIENT, target="/b/x", host="a.test")
        assert (seen["site"], seen["host"], seen["script_name"]) == ("a", "a.test", "")
