"""One HTTP client for the integration tests: a request on a fresh connection, through
http.client (a real client, which checks the response's framing), closed afterwards.

`request()` gives status, headers and body; `get()` the (status, body) most tests compare.
Tests that must control the exact bytes on the wire use raw sockets (helpers.Server.request).
"""

from __future__ import annotations

import http.client
import ssl
from typing import NamedTuple

Address = int | tuple[str, int]  # a port on 127.0.0.1, or (host, port)


class Reply(NamedTuple):
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes


def request(address: Address, path: str = "/", method: str = "GET", headers: dict[str, str] | None = None,
            context: ssl.SSLContext | None = None, timeout: float = 10.0) -> Reply:
    """One request with `Connection: close` (so the server is not left holding an idle
    connection that would delay a drain); HTTPS when a TLS `context` is given."""
    host, port = ("127.0.0.1", address) if isinstance(address, int) else address
    conn = (http.client.HTTPSConnection(host, port, context=context, timeout=timeout) if context
            else http.client.HTTPConnection(host, port, timeout=timeout))
    try:
        conn.request(method, path, headers={"Connection": "close", **(headers or {})})
        response = conn.getresponse()
        found: dict[str, str] = {}
        for name, value in response.getheaders():
            key = name.lower()
            found[key] = f"{found[key]}, {value}" if key in found else value
        return Reply(response.status, found, response.read())
    finally:
        conn.close()


def get(address: Address, path: str = "/", headers: dict[str, str] | None = None,
        context: ssl.SSLContext | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    """A GET's (status, body)."""
    reply = request(address, path, headers=headers, context=context, timeout=timeout)
    return reply.status, reply.body
