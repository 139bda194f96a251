"""Accepting TLS connections: a first look at each one, then the handshake.

How this works: the worker accepts on a TLS listener itself (rather than through
loop.create_server) so that it can look at a connection before TLS begins. When
the connection's first byte arrives (peeked, so it stays unread): 0x16, a TLS
handshake record, hands the socket to the loop's TLS transport
(connect_accepted_socket), which runs the handshake and then drives an ordinary
HTTPConnection; anything else is plain HTTP sent to an HTTPS port, answered with a
plain-text 400 as nginx does, then closed. Waiting for that byte and the handshake
together get --header-timeout. Connections in either stage are counted in
ctx.handshaking, so a draining worker serves them too instead of dropping them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

from ..wsgi.response import error_response
from .context import ServerContext

log = logging.getLogger("corral.error")

_TLS_HANDSHAKE = 0x16  # the content type byte of a TLS record that starts a handshake
_ACCEPT_BATCH = 64  # connections accepted per wake-up: other work gets its turn
# After the 400, what the client still sends is read and dropped for up to this long:
# closing with unread input makes the kernel send a reset, which can destroy the 400.
_LINGER = 1.0
_LINGER_BYTES = 65536
PLAIN_HTTP_REPLY = error_response(400, "Bad Request", "The plain HTTP request was sent to an HTTPS port.")


class TLSServer(asyncio.AbstractServer):
    """One TLS listening socket of a worker; close() stops accepting (see Worker._drain)."""

    def __init__(
        self,
        ctx: ServerContext,
        sock: socket.socket,
        context: ssl.SSLContext,
        protocol_factory: Callable[[], Any],
        timeout: float,
    ) -> None:
        self._ctx = ctx
        self._loop = ctx.loop
        self._sock = sock
        self._context = context
        self._factory = protocol_factory
        self._timeout = timeout
        self._serving = False
        self._closed = asyncio.Event()
        self._handshakes: set[asyncio.Task[None]] = set()  # referenced: the loop keeps only weak ones

    def start(self) -> TLSServer:
        self._sock.setblocking(False)
        self._loop.add_reader(self._sock.fileno(), self._accept)
        self._serving = True
        return self

    # -- asyncio.AbstractServer ----------------------------------------------------

    def close(self) -> None:
        if self._serving:
            self._serving = False
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()  # our copy: the master and the other workers keep theirs
            self._closed.set()

    def is_serving(self) -> bool:
        return self._serving

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    async def start_serving(self) -> None:
        return None  # serving since start()

    async def serve_forever(self) -> None:
        await self._closed.wait()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    # -- one connection ------------------------------------------------------------

    def _accept(self) -> None:
        ctx = self._ctx
        for _ in range(_ACCEPT_BATCH):
            try:
                conn, _address = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors, or the peer gave up at once
                log.debug("accept() failed: %s", exc)
                return
            if ctx.handshaking + len(ctx.connections) >= ctx.max_connections:
                conn.close()  # no 503 here: before a handshake the client could not read one
                continue
            conn.setblocking(False)
            if conn.family != socket.AF_UNIX:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            ctx.handshaking += 1
            deadline = self._loop.time() + self._timeout
            timer = self._loop.call_at(deadline, self._no_first_byte, conn)
            self._loop.add_reader(conn.fileno(), self._first_byte, conn, timer, deadline)

    def _no_first_byte(self, conn: socket.socket) -> None:
        self._loop.remove_reader(conn.fileno())
        self._done(conn)

    def _first_byte(self, conn: socket.socket, timer: asyncio.TimerHandle, deadline: float) -> None:
        try:
            first = conn.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return  # woken for nothing: keep waiting
        except OSError:
            first = b""
        self._loop.remove_reader(conn.fileno())
        timer.cancel()
        if not first:
            self._done(conn)  # closed (or reset) before saying anything
        elif first[0] == _TLS_HANDSHAKE:
            task = self._loop.create_task(self._handshake(conn, deadline))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)
        else:
            self._refuse_plain_http(conn)

    async def _handshake(self, conn: socket.socket, deadline: float) -> None:
        peer = _peer(conn)
        remaining = max(deadline - self._loop.time(), 0.001)
        try:
            # From here the loop owns the socket: it closes it, also when the handshake fails.
            await self._loop.connect_accepted_socket(
                self._factory, conn, ssl=self._context, ssl_handshake_timeout=remaining
            )
        except OSError as exc:  # ssl.SSLError and TimeoutError are OSErrors
            log.debug("TLS handshake with %s failed: %s", peer, exc)
        finally:
            self._ctx.handshaking -= 1

    def _refuse_plain_http(self, conn: socket.socket) -> None:
        ctx = self._ctx
        log.info("Rejected connection from %s: plain HTTP sent to an HTTPS port", _peer(conn))
        ctx.stats.record(ctx.site_name, "", 400, 0.0, 0, 0)
        try:
            conn.send(PLAIN_HTTP_REPLY)  # a few hundred bytes: an empty send buffer takes them whole
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            self._done(conn)
            return
        timer = self._loop.call_later(_LINGER, self._stop_lingering, conn)
        self._loop.add_reader(conn.fileno(), self._linger, conn, timer, [0])

    def _linger(self, conn: socket.socket, timer: asyncio.TimerHandle, dropped: list[int]) -> None:
        try:
            data = conn.recv(16384)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        dropped[0] += len(data)
        if not data or dropped[0] > _LINGER_BYTES:
            timer.cancel()
            self._stop_lingering(conn)

    def _stop_lingering(self, conn: socket.socket) -> None:
        self._loop.remove_reader(conn.fileno())
        self._done(conn)

    def _done(self, conn: socket.socket) -> None:
        conn.close()
        self._ctx.handshaking -= 1


def _peer(conn: socket.socket) -> str:
    try:
        address = conn.getpeername()
    except OSError:
        return "client"
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) else "unix"
