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

Listeners without the PROXY protocol never see this module: their factory makes
the HTTPConnection directly, as before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from ..proxy.protocol import ProxyHeaderError, ProxyHeaderReader
from ..proxy.trust import TrustedProxies

log = logging.getLogger("corral.error")

# Seconds for the PROXY header to arrive. A proxy writes it at once, in the connection's
# first segment, so it comes with the connection; the spec asks for at least 3 s to cover
# a TCP retransmit, and 5 s covers two (RTO 1 s, then 2 s). Capped by --header-timeout, so
# a stricter slowloris guard is stricter here too.
PROXY_HEADER_TIMEOUT = 5.0


def header_deadline(header_timeout: float) -> float:
    return min(PROXY_HEADER_TIMEOUT, header_timeout)


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
        peer = transport.get_extra_info("peername")
        host = peer[0] if isinstance(peer, tuple) else None  # None: a Unix-socket peer
        if not self._trusted.trusts(host):
            self._refuse("the peer is not a trusted proxy (see --trusted-proxies)")
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
        self._refuse("the connection ended before the PROXY header was complete")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()

    def pause_writing(self) -> None:  # we write nothing; asyncio may still call these
        pass

    def resume_writing(self) -> None:
        pass

    def _time_out(self) -> None:
        self._timer = None
        self._refuse(f"no complete PROXY header within {self._timeout:g} s")

    def _refuse(self, reason: str) -> None:
        if self._done:
            return
        self._finish()
        self._rejections(_describe(self._transport.get_extra_info("peername")), reason)
        self._transport.close()

    def _finish(self) -> None:
        self._done = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _describe(peer: Any) -> str:
    if isinstance(peer, tuple):
        host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
        return f"{host}:{peer[1]}"
    return "a Unix-socket peer"
