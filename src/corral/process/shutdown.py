"""How the master stops: serving -> delaying -> draining -> killing, as state and a clock.

How this works: a graceful stop of a server that said it was ready first
*delays* (--shutdown-delay): /readyz fails while the workers serve on, so load
balancers move away before anything is refused. Then it *drains*: workers are
told to finish their in-flight requests within --graceful-timeout; past that
(plus a margin) the stragglers are killed. An immediate stop drains with no
time at all. `Shutdown` holds where the master is in this and when the next
step is due; the arbiter signals the workers and logs.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from .heartbeats import KILL_MARGIN

_MAX_WAIT = 1.0  # seconds the loop sleeps at most: it also checks heartbeats and respawns


@dataclass
class Shutdown:
    delay: float  # --shutdown-delay
    graceful_timeout: float  # --graceful-timeout
    stopping: bool = False  # draining (or killing): no new connections, no respawns
    deadline: float = 0.0  # stopping: stragglers get SIGKILL from then
    delay_until: float = 0.0  # delaying: serving on until then, /readyz already failing
    stragglers_killed: bool = False

    @property
    def delaying(self) -> bool:
        return bool(self.delay_until)

    def should_delay(self, graceful: bool, announced: bool) -> bool:
        """Whether a stop asked for now waits --shutdown-delay first."""
        # A server that never said it was ready has no traffic to wait for: no delay.
        return graceful and self.delay > 0 and announced and not self.stopping and not self.delaying

    def start_delay(self, now: float) -> None:
        self.delay_until = now + self.delay

    def delay_over(self, now: float) -> bool:
        return self.delaying and now >= self.delay_until

    def begin(self, graceful: bool, now: float) -> bool:
        """Start draining (ends any delay); True the first time, when the deadline is set."""
        self.delay_until = 0.0
        if self.stopping:
            return False
        self.stopping = True
        self.deadline = now + (self.graceful_timeout + KILL_MARGIN if graceful else 0.0)
        self.stragglers_killed = not graceful  # an immediate stop kills by design: no warning
        return True

    def past_deadline(self, now: float) -> bool:
        return self.stopping and now >= self.deadline

    def first_kill(self) -> bool:
        """True once: the moment stragglers are killed for outliving the graceful timeout."""
        first = not self.stragglers_killed
        self.stragglers_killed = True
        return first

    def wait(self, now: float) -> float:
        """How long the loop may sleep before this sequence's next step is due."""
        if self.stopping:
            return max(0.0, min(_MAX_WAIT, self.deadline - now))
        if self.delaying:
            return max(0.0, min(_MAX_WAIT, self.delay_until - now))
        return _MAX_WAIT


def stop_listening(sockets: list[socket.socket]) -> None:
    """Refuse new connections from now on.

    The kernel completes handshakes into the backlog for as long as any process
    holds the listening socket, and the master holds it until the end: without
    this a draining server accepts connections nobody will answer. shutdown()
    (unlike close()) acts on the socket every worker shares and leaves our fd valid.
    """
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass  # not listening (already shut down) or not a socket the kernel can shut
