"""Accepting TLS connections: a first look at each one, then the handshake.

How this works: the worker accepts on a TLS listener itself (rather than through
loop.create_server) so that it can look at a connection before TLS begins. When
the connection's first byte arrives (peeked, so it stays unread): 0x16, a TLS
handshake record, hands the socket to the loop's TLS transport
(connect_accepted_socket), which runs the handshake and then drives an ordinary
HTTPConnection; anything else is plain HTTP sent to an HTTPS port, answered with a
plain-text 400 as nginx does, then closed. Waiting for that byte and the handshake
together get --header-timeout. Connections in either stage are counted in the
worker's registry (`handshaking`), so a draining worker serves them too instead of
dropping them, and --max-connections counts them.

On a PROXY-protocol listener (a load balancer passing TLS through, with a PROXY
header in front) a stage comes first: the peer must be a trusted proxy, then the
header is read from the raw socket (proxy_reader.take_header leaves the TLS bytes
behind it unread) within its own deadline, refused and logged as on a plain PROXY
listener; the client it names is the connection's peer from then on.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from ..proxy.protocol import ProxyHeaderError
from ..wsgi.response import error_response
from .context import ServerContext
from .proxy_reader import MakeConnection, ProxyIntake, describe_peer, take_header, too_late
from .registry import Registry

log = logging.getLogger("corral.error")

_TLS_HANDSHAKE = 0x16  # the content type byte of a TLS record that starts a handshake
_ACCEPT_BATCH = 64  # connections accepted per wake-up: other work gets its turn
# After the 400, what the client still sends is read and dropped for up to this long:
# closing with unread input makes the kernel send a reset, which can destroy the 400.
_LINGER = 1.0
_LINGER_BYTES = 65536
PLAIN_HTTP_REPLY = error_response(400, "Bad Request", "The plain HTTP request was sent to an HTTPS port.")


@dataclass(slots=True)
class _Arrival:
    """A connection before its handshake: when it must be done, and who the client is."""

    conn: socket.socket
    deadline: float  # for the PROXY header, the first byte and the handshake together
    peername: Any  # the accepted peer
    client: Any = None  # the client a PROXY header named, or None: the peer itself
    consumed: bytes = b""  # the part of a PROXY header read so far

    def shown(self) -> str:
        return describe_peer(self.client if isinstance(self.client, tuple) else self.peername)


class TLSServer(asyncio.AbstractServer):
    """One TLS listening socket of a worker; close() stops accepting (see Worker._drain)."""

    def __init__(
        self,
        ctx: ServerContext,
        registry: Registry[Any],
        sock: socket.socket,
        context: ssl.SSLContext,
        make_connection: MakeConnection,
        timeout: float,
        proxy: ProxyIntake | None = None,
    ) -> None:
        self._ctx = ctx
        self._registry = registry
        self._loop = ctx.loop
        self._sock = sock
        self._context = context
        self._make_connection = make_connection
        self._timeout = timeout
        self._proxy = proxy  # None: no PROXY header on this listener
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
        registry = self._registry
        proxy = self._proxy
        for _ in range(_ACCEPT_BATCH):
            try:
                conn, peername = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors, or the peer gave up at once
                log.debug("accept() failed: %s", exc)
                return
            if registry.full():
                conn.close()  # no 503 here: before a handshake the client could not read one
                continue
            if proxy is not None and not proxy.admits(peername):
                conn.close()  # not a byte back: this port speaks only to trusted proxies
                continue
            conn.setblocking(False)
            if conn.family != socket.AF_UNIX:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            registry.handshaking += 1
            arrival = _Arrival(conn, self._loop.time() + self._timeout, peername)
            if proxy is not None:
                late = min(self._loop.time() + proxy.timeout, arrival.deadline)
                timer = self._loop.call_at(late, self._no_proxy_header, arrival)
                self._loop.add_reader(conn.fileno(), self._proxy_header, arrival, timer)
            else:
                self._await_first_byte(arrival)

    # -- a PROXY header first (PROXY-protocol listeners only) --------------------------

    def _proxy_header(self, arrival: _Arrival, timer: asyncio.TimerHandle) -> None:
        assert self._proxy is not None
        try:
            header, arrival.consumed = take_header(arrival.conn, arrival.consumed)
        except ProxyHeaderError as exc:
            timer.cancel()
            self._refuse_proxy(arrival, str(exc))
            return
        if header is None:
            return  # more to come
        self._loop.remove_reader(arrival.conn.fileno())
        timer.cancel()
        arrival.client = header.source
        self._await_first_byte(arrival)

    def _no_proxy_header(self, arrival: _Arrival) -> None:
        assert self._proxy is not None
        self._refuse_proxy(arrival, too_late(self._proxy.timeout))

    def _refuse_proxy(self, arrival: _Arrival, reason: str) -> None:
        assert self._proxy is not None
        self._loop.remove_reader(arrival.conn.fileno())
        self._proxy.rejections(describe_peer(arrival.peername), reason)
        self._done(arrival.conn)

    # -- the first byte of TLS, then the handshake -------------------------------------

    def _await_first_byte(self, arrival: _Arrival) -> None:
        timer = self._loop.call_at(arrival.deadline, self._no_first_byte, arrival.conn)
        self._loop.add_reader(arrival.conn.fileno(), self._first_byte, arrival, timer)

    def _no_first_byte(self, conn: socket.socket) -> None:
        self._loop.remove_reader(conn.fileno())
        self._done(conn)

    def _first_byte(self, arrival: _Arrival, timer: asyncio.TimerHandle) -> None:
        conn = arrival.conn
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
            task = self._loop.create_task(self._handshake(arrival))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)
        else:
            self._refuse_plain_http(conn, arrival.shown())

    async def _handshake(self, arrival: _Arrival) -> None:
        remaining = max(arrival.deadline - self._loop.time(), 0.001)
        client = arrival.client
        try:
            # From here the loop owns the socket: it closes it, also when the handshake fails.
            await self._loop.connect_accepted_socket(
                lambda: self._make_connection(b"", client),
                arrival.conn,
                ssl=self._context,
                ssl_handshake_timeout=remaining,
            )
        except OSError as exc:  # ssl.SSLError and TimeoutError are OSErrors
            log.debug("TLS handshake with %s failed: %s", arrival.shown(), exc)
        finally:
            self._registry.handshaking -= 1

    def _refuse_plain_http(self, conn: socket.socket, shown: str) -> None:
        ctx = self._ctx
        log.info("Rejected connection from %s: plain HTTP sent to an HTTPS port", shown)
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
        self._registry.handshaking -= 1

