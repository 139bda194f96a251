"""What a worker tracks across its connections: the open ones, handshakes, requests, draining.

The worker owns one Registry and hands it to each connection it makes (and to its TLS
listeners); a connection adds itself when it is made and leaves when it is lost or
handed on. The settings every connection reads stay in the ServerContext; what changes
while the worker runs is here, so the context holds no connection and imports none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

Conn = TypeVar("Conn")


def _no_recycle(reason: str) -> None:
    pass


class Registry(Generic[Conn]):
    def __init__(
        self, max_connections: int = 1000, recycle_at: int = 0, recycle: Callable[[str], None] = _no_recycle
    ) -> None:
        self.open: set[Conn] = set()
        self.max_connections = max_connections
        # TLS connections accepted but not yet connections (tls_listener.py): they count
        # against --max-connections, and a draining worker waits for them too.
        self.handshaking = 0
        self.stopping = False  # draining: responses say "Connection: close"
        self.requests_served = 0  # counted by HTTPConnection.complete (inline: the per-request path)
        # Recycle (graceful stop, then replacement) when requests_served reaches this; 0: never.
        self.recycle_at = recycle_at
        self.recycle = recycle

    def add(self, conn: Conn) -> bool:
        """Count a new connection in; False when it is one too many (it should be refused)."""
        self.open.add(conn)
        return len(self.open) <= self.max_connections

    def discard(self, conn: Conn) -> None:
        self.open.discard(conn)

    def full(self) -> bool:
        """Whether one more accepted connection would pass --max-connections (handshakes too)."""
        return self.handshaking + len(self.open) >= self.max_connections

    def __len__(self) -> int:
        return len(self.open)

    def __iter__(self) -> Iterator[Conn]:
        """A snapshot: connections may close while the caller walks it."""
        return iter(list(self.open))
