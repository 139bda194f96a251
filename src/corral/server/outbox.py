"""Responses leave once per loop pass: each connection's writes are held, then sent together.

Why: writing a response wakes the client (or proxy) that sleeps waiting for it. On a busy
worker that wake-up, paid once per response between two app calls, cost more kernel time
than the write itself (a Django view: about 20 us of 155 us per request, measured with
perf on loopback; see docs/benchmarks.md). Holding each response until the loop has served every
connection that was ready, then writing them back to back, wakes a waiting peer once per
batch, as C servers such as bjoern do by writing from the loop's writable callback.
Pipelined responses on one connection also leave in one system call.

Bounds: the held bytes are sent by a callback that runs before the loop next waits for
I/O, and before any app call that starts more than HOLD_TIME after the first of them was
held, and at once after an app call that took longer than HOLD_TIME (so a burst of quick
requests is batched, a slow app's responses are not held, and a quick response waits at
most for one unexpectedly slow app call). Past HOLD_LIMIT bytes a connection's writes go
straight through, so back-pressure still works. Whatever must see the socket's true state (close, abort, a
handoff, sendfile, the buffer size) sends the held bytes first, and so does the exchange
before it pulls a block from an app iterable that may block (PEP 3333: no block may wait
for the next one).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

# Bytes held per connection before writes go straight to the transport: small responses
# gain from holding, big ones gain nothing and must meet back-pressure at once.
HOLD_LIMIT = 64 * 1024
# Seconds of app work after which held responses are sent before the next app call.
HOLD_TIME = 0.001


class Outbox:
    """The worker's connections with held bytes, sent by one loop callback per pass."""

    __slots__ = ("_loop", "_clock", "_waiting", "_since")

    def __init__(self, loop: asyncio.AbstractEventLoop, clock: Callable[[], float] = time.monotonic) -> None:
        self._loop = loop
        self._clock = clock  # the exchanges' clock: before_app_call is given its readings
        self._waiting: list[HeldTransport] = []
        self._since = 0.0  # clock() when the first of the waiting was held

    def add(self, transport: HeldTransport) -> None:
        if not self._waiting:
            # (An earlier send_all may have emptied the list before its callback ran: then
            # two callbacks are pending, and the later one finds little or nothing to do.)
            self._loop.call_soon(self.send_all)
            self._since = self._clock()
        self._waiting.append(transport)

    def before_app_call(self, now: float) -> None:
        """An app call is about to run on the loop thread: send what has waited too long."""
        if self._waiting and now - self._since > HOLD_TIME:
            self.send_all()

    def after_app_call(self, duration: float) -> None:
        """A response is complete: if its app call was slow, send everything now.

        The app's next call would likely hold this response as long again, and one wake-up
        of the client per slow response costs nothing next to it.
        """
        if duration > HOLD_TIME and self._waiting:
            self.send_all()

    def send_all(self) -> None:
        waiting, self._waiting = self._waiting, []
        for transport in waiting:
            transport.flush()


class HeldTransport:
    """The asyncio transport of one connection, with its writes held until the pass ends.

    Only what HTTPConnection and the exchange code use is offered, so a new use of the
    transport has to decide here whether it needs the held bytes sent first.
    """

    __slots__ = ("transport", "_outbox", "_held", "_held_size")

    def __init__(self, transport: Any, outbox: Outbox) -> None:
        self.transport = transport
        self._outbox = outbox
        self._held: list[bytes] = []
        self._held_size = 0

    def write(self, data: bytes) -> None:
        held = self._held
        size = self._held_size + len(data)
        if size < HOLD_LIMIT:
            if not held:
                self._outbox.add(self)
            held.append(data)
            self._held_size = size
            return
        if held:
            held.append(data)
            self.flush()
        else:
            self.transport.write(data)

    def writelines(self, pieces: tuple[bytes, ...] | list[bytes]) -> None:
        if self._held:
            self.flush()
        self.transport.writelines(pieces)

    def flush(self) -> None:
        """Send the held bytes now (a no-op when nothing is held)."""
        held = self._held
        if not held:
            return
        self._held = []
        self._held_size = 0
        transport = self.transport
        if transport.is_closing():
            return  # aborted or lost meanwhile: the bytes have nowhere to go
        if len(held) == 1:
            transport.write(held[0])
        else:
            transport.writelines(held)

    # -- uses that must see the socket as the client will ---------------------------

    def get_write_buffer_size(self) -> int:
        self.flush()
        return self.transport.get_write_buffer_size()  # type: ignore[no-any-return]

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        self.flush()  # what the app was told went out goes as far as the socket takes it
        self.transport.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            self.flush()  # the socket is about to be used directly (sendfile, handoff)
        return self.transport.get_extra_info(name, default)

    # -- plain delegation ---------------------------------------------------------------

    def is_closing(self) -> bool:
        return self.transport.is_closing()  # type: ignore[no-any-return]

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.transport.set_write_buffer_limits(high=high, low=low)
