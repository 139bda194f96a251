"""The README's first command works: the welcome app, then a named app, through http.client."""

import http.client

from helpers import Server


def test_welcome_app_names_server_and_version(serve) -> None:
    server: Server = serve()
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    conn.request("GET", "/")
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert b"Corral" in body and b"is running" in body
    assert response.getheader("Server") == "corral"
    assert response.getheader("Date")
    conn.close()


def test_named_app_keepalive(serve) -> None:
    server: Server = serve("basic:hello")
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    for _ in range(3):
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.read() == b"Hello, World!"
    assert response.getheader("Connection") is None  # HTTP/1.1 keep-alive needs no header
    conn.close()
