"""The README's first command works: the welcome app, then a named app, through http.client."""

import http.client

from helpers import Server
from http_client import request


def test_welcome_app_names_server_and_version(serve) -> None:
    server: Server = serve()
    status, headers, body = request(server.port)
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert b"Corral" in body and b"is running" in body
    assert headers["server"] == "corral"
    assert headers["date"]


def test_named_app_keepalive(serve) -> None:
    server: Server = serve("basic:hello")
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    for _ in range(3):
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.read() == b"Hello, World!"
    assert response.getheader("Connection") is None  # HTTP/1.1 keep-alive needs no header
    conn.close()
