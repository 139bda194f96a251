"""The environ of a peer: its per-connection keys (server and client addresses, TLS keys),
and each request's environ built on them, with a trusted proxy's headers applied.

Used by HTTP/1 (connection.py) and HTTP/2 (h2_connection.py) alike; an HTTP/1 connection
switching to h2c hands over the per-connection keys it built.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

from ..http.request import Request
from ..wsgi.environ import connection_environ, proxy_headers_in, request_environ
from . import tls
from .context import ServerContext


def transport_environ(ctx: ServerContext, transport: Any, peername: Any) -> tuple[dict[str, Any], str, bool]:
    """(environ, the peer as logs show it, whether the peer is a trusted proxy)."""
    sockname = transport.get_extra_info("sockname")
    if peername is None:
        peername = transport.get_extra_info("peername")
    if isinstance(sockname, tuple):
        server_name, server_port = str(sockname[0]), str(sockname[1])
    else:
        server_name, server_port = "localhost", "0"
    if isinstance(peername, tuple):
        remote_addr, remote_port = str(peername[0]), str(peername[1])
        shown = f"{remote_addr}:{remote_port}"
        trusted = ctx.proxy.trusts_peer(remote_addr)
        peer = f"[{remote_addr}]:{remote_port}" if ":" in remote_addr else shown
    else:
        remote_addr, remote_port = "127.0.0.1", "0"  # Unix socket: a local peer
        shown = peer = "unix"
        trusted = ctx.proxy.trusts_peer(None)
    environ = connection_environ(
        server_name=server_name,
        server_port=server_port,
        remote_addr=remote_addr,
        remote_port=remote_port,
        url_scheme=ctx.url_scheme,
        multithread=ctx.multithread,
        multiprocess=ctx.multiprocess,
    )
    if ctx.tls:
        environ.update(tls.connection_environ(transport.get_extra_info("ssl_object")))
    environ["corral.peer"] = peer
    return environ, shown, trusted


def peer_request_environ(ctx: ServerContext, base: dict[str, Any], request: Request, body: Any,
                         peer_trusted: bool) -> dict[str, Any]:
    """A request's environ on its connection's `base`; a trusted peer's proxy headers applied
    (before routing: the rewritten host routes), an untrusted peer's removed."""
    environ = request_environ(base, request, body)
    if proxy_headers_in(environ):
        ctx.proxy.apply(environ, peer_trusted)
    return environ


def request_site(ctx: ServerContext, request: Request, peer_trusted: bool) -> int | None:
    """Multi-site: the index of the site a connection's first request names (None: no site).

    Read from the request itself, before any environ exists: a trusted proxy's forwarded
    host, else Host (`:authority` for HTTP/2), and the percent-decoded path.
    """
    assert ctx.router is not None
    path = request.path
    text = (unquote_to_bytes(path) if 0x25 in path else path).decode("latin-1")  # 0x25: "%"
    host = ctx.proxy.routing_host(request.headers) if peer_trusted else ""
    return ctx.router.match(host or (request.host or b"").decode("latin-1"), text)


def mount_environ(ctx: ServerContext, environ: dict[str, Any]) -> None:
    """Multi-site: a site mounted at a prefix sees it in SCRIPT_NAME (after a proxy's X-Forwarded-Prefix)."""
    mount = ctx.mount
    if mount:
        environ["SCRIPT_NAME"] += mount
        environ["PATH_INFO"] = environ["PATH_INFO"][len(mount) :]
