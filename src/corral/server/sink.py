"""What an exchange may do with the connection that carries it: the response sink.

An `Exchange` (exchange.py) runs the app and frames its response; it never sees the
connection behind it. It gets a sink for the response bytes and flow-control state, and an
on-complete callback it calls once the whole response has been handed over (the
connection then accounts for it and goes on with the next request). HTTP/1's sink is
the HTTPConnection itself (connection.py); an HTTP/2 stream will be another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .exchange import Exchange


class ResponseSink(Protocol):
    # True while the peer does not read fast enough: the exchange stops pulling the app's
    # iterable and waits for resume_writing (the connection tells the exchange's runner).
    write_paused: bool

    def write(self, data: bytes) -> None:
        """Response bytes, head and body as the exchange framed them, in order."""

    def writelines(self, pieces: tuple[bytes, ...]) -> None:
        """Like write(b"".join(pieces)), without the copy (large body chunks)."""

    def finish(self, data: bytes) -> None:
        """The last bytes of the response (may be empty); then the exchange calls on_complete."""

    def flush(self) -> None:
        """Send what is held now: the app may block before its next block (PEP 3333)."""

    def is_closing(self) -> bool:
        """The peer is gone or the connection is closing: stop producing."""

    def can_sendfile(self) -> bool:
        """Whether sendfile() may be tried now (a plain socket, nothing else buffered)."""

    def sendfile(self, ex: Exchange, head: bytes, fd: int, offset: int, count: int) -> bool:
        """Send head and file zero-copy, calling ex.sendfile_done(ok, sent) at the end.

        False when this sink cannot (TLS): nothing was sent, the caller writes the file.
        """

    def abort(self) -> None:
        """The response cannot be completed (the app failed mid-body): cut the connection."""
