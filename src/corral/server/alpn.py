"""The protocol a TLS connection speaks, chosen by ALPN once its handshake is done.

The TLS listener (tls_listener.py) must name a protocol before the handshake, when ALPN
has not been negotiated yet; `ALPNChoice` stands in until asyncio calls connection_made
(after the handshake), then hands the transport to an H2Connection when the client chose
"h2", to an HTTPConnection otherwise (HTTP/1.1, or a client that offered no ALPN), and
steps aside with transport.set_protocol, so it costs nothing after the first call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class ALPNChoice:
    def __init__(self, http1: Callable[[], Any], http2: Callable[[], Any]) -> None:
        self._http1 = http1
        self._http2 = http2

    def connection_made(self, transport: Any) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        chosen = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        protocol = self._http2() if chosen == "h2" else self._http1()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)

    # Nothing arrives before connection_made hands over; these keep asyncio's contract.
    def data_received(self, data: bytes) -> None:  # pragma: no cover
        raise RuntimeError("ALPNChoice received data before choosing a protocol")

    def eof_received(self) -> bool:  # pragma: no cover
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        pass

    def pause_writing(self) -> None:  # pragma: no cover
        pass

    def resume_writing(self) -> None:  # pragma: no cover
        pass
