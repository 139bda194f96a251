"""The start of a connection on a PROXY-protocol listener: the header, then HTTP.

How this works: such a listener's protocol factory makes a `ProxyProtocolReader`
instead of an HTTPConnection. Its peer must be a trusted proxy: the spec forbids
guessing whether a header is present, so on this port a peer that may not speak
for a client may not speak at all, and is closed at once. Otherwise bytes go to
the sans-I/O header reader against a short deadline of its own; once the header
is complete the reader makes the HTTPConnection, with the client's address from
the header and the bytes that followed it, swaps it in as the transport's
protocol, and is done. A malformed, truncated or late header is closed without
an answer (there is no HTTP yet to answer in) and logged in one line, at most a
few lines a minute however many arrive.

A TLS listener reads the header itself, from the raw socket before the handshake
(tls_listener.py): `take_header` consumes the header's bytes and not one more, so
the TLS records behind it stay in the socket for the TLS transport. Both paths use
the same trust check, deadline, refusal reasons and rejection log (`ProxyIntake`).

Listeners without the PROXY protocol never see this module: their factory makes
the HTTPConnection directly, as before.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..proxy.protocol import V2_MAX, ProxyHeader, ProxyHeaderError, ProxyHeaderReader, parse_header
from ..proxy.trust import TrustedProxies

log = logging.getLogger("corral.error")

# Seconds for the PROXY header to arrive. A proxy writes it at once, in the connection's
# first segment, so it comes with the connection; the spec asks for at least 3 s to cover
# a TCP retransmit, and 5 s covers two (RTO 1 s, then 2 s). Capped by --header-timeout, so
# a stricter slowloris guard is stricter here too.
PROXY_HEADER_TIMEOUT = 5.0


def header_deadline(header_timeout: float) -> float:
    return min(PROXY_HEADER_TIMEOUT, header_timeout)


# Why a connection was refused, in the same words whichever listener refused it.
NOT_TRUSTED = "the peer is not a trusted proxy (see --trusted-proxies)"
ENDED_EARLY = "the connection ended before the PROXY header was complete"


def too_late(timeout: float) -> str:
    return f"no complete PROXY header within {timeout:g} s"


class RejectionLog:
    """One warning line per refused connection, at most `burst` lines per `window` seconds.

    A flood of bad connections (a misconfigured proxy, a scanner) would otherwise write a
    line each; the excess is counted and reported in one line when the next window opens.
    """

    def __init__(self, burst: int = 10, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.window = window
        self.clock = clock
        self._window_end = 0.0
        self._logged = 0
        self._suppressed = 0

    def __call__(self, peer: str, reason: str) -> None:
        now = self.clock()
        if now >= self._window_end:
            if self._suppressed:
                log.warning(
                    "PROXY protocol: %d more connections refused without a log line each", self._suppressed
                )
            self._window_end = now + self.window
            self._logged = self._suppressed = 0
        if self._logged < self.burst:
            self._logged += 1
            log.warning("PROXY protocol: refused a connection from %s: %s", peer, reason)
        else:
            self._suppressed += 1


@dataclass(frozen=True)
class ProxyIntake:
    """What a PROXY-protocol listener needs: whom to believe, how long to wait, where to log."""

    trusted: TrustedProxies
    timeout: float  # for the header alone (header_deadline)
    rejections: RejectionLog

    def admits(self, peer: Any) -> bool:
        """Whether `peer` (a peername) may send a header at all; logs the refusal if not."""
        if self.trusted.trusts(peer_host(peer)):
            return True
        self.rejections(describe_peer(peer), NOT_TRUSTED)
        return False


def take_header(conn: socket.socket, consumed: bytes) -> tuple[ProxyHeader | None, bytes]:
    """Read the PROXY header from a non-blocking raw socket, and not one byte past it.

    `consumed` is what earlier calls took. Returns (the header, b"") once complete, or
    (None, all consumed so far) to wait for more. The bytes waiting in the socket are
    peeked, parsed, and only those that are header taken: an incomplete header means every
    byte seen so far belongs to it. Raises ProxyHeaderError when the bytes cannot be a
    header or the connection ends first.
    """
    try:
        peeked = conn.recv(V2_MAX - len(consumed), socket.MSG_PEEK)
    except (BlockingIOError, InterruptedError):
        return None, consumed  # woken for nothing
    except OSError:
        peeked = b""  # reset: as good as closed
    if not peeked:
        raise ProxyHeaderError(ENDED_EARLY)
    header = parse_header(consumed + peeked)
    wanted = header.length - len(consumed) if header is not None else len(peeked)
    taken = conn.recv(wanted)  # already queued (just peeked), so it all comes at once
    if len(taken) != wanted:
        raise ProxyHeaderError(ENDED_EARLY)
    return (header, b"") if header is not None else (None, consumed + taken)


# make_connection(initial bytes, client address or None) -> the HTTP protocol to swap in.
MakeConnection = Callable[[bytes, Any], Any]


class ProxyProtocolReader:
    """The asyncio protocol of a PROXY-protocol connection until its header is read."""

    def __init__(
        self,
        make_connection: MakeConnection,
        trusted: TrustedProxies,
        timeout: float,
        loop: asyncio.AbstractEventLoop,
        rejections: RejectionLog,
    ) -> None:
        self._make_connection = make_connection
        self._trusted = trusted
        self._timeout = timeout
        self._loop = loop
        self._rejections = rejections
        self._header = ProxyHeaderReader()
        self._transport: Any = None
        self._timer: asyncio.TimerHandle | None = None
        self._done = False

    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        if not self._trusted.trusts(peer_host(transport.get_extra_info("peername"))):
            self._refuse(NOT_TRUSTED)
            return
        self._timer = self._loop.call_later(self._timeout, self._time_out)

    def data_received(self, data: bytes) -> None:
        if self._done:
            return
        try:
            result = self._header.feed(data)
        except ProxyHeaderError as exc:
            self._refuse(str(exc))
            return
        if result is None:
            return
        header, rest = result
        self._finish()
        connection = self._make_connection(rest, header.source)
        self._transport.set_protocol(connection)
        connection.connection_made(self._transport)

    def eof_received(self) -> bool:
        self._refuse(ENDED_EARLY)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()

    def pause_writing(self) -> None:  # we write nothing; asyncio may still call these
        pass

    def resume_writing(self) -> None:
        pass

    def _time_out(self) -> None:
        self._timer = None
        self._refuse(too_late(self._timeout))

    def _refuse(self, reason: str) -> None:
        if self._done:
            return
        self._finish()
        self._rejections(describe_peer(self._transport.get_extra_info("peername")), reason)
        self._transport.close()

    def _finish(self) -> None:
        self._done = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def peer_host(peer: Any) -> str | None:
    """The host of a peername, as TrustedProxies judges it; None: a Unix-socket peer."""
    return str(peer[0]) if isinstance(peer, tuple) else None


def describe_peer(peer: Any) -> str:
    if isinstance(peer, tuple):
        host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
        return f"{host}:{peer[1]}"
    return "a Unix-socket peer"
