"""The state of one HTTP/1 connection: request sequencing, keep-alive, deadlines. Sans-I/O.

How this works: an HTTP/1 connection answers one request at a time, in order. `H1State`
holds what decides what comes next; the asyncio protocol (server/connection.py) reports
each event (part of a request arrived, an exchange began or completed, writing paused or
resumed, the client's EOF, a deadline passed) and does what the answer says. No sockets,
no asyncio, no clock of its own: the caller passes `now`. The rules:

1. One exchange at a time; requests pipelined behind it wait in the parser's queue.
2. A protocol error is answered only after every request parsed before it; nothing
   after it runs, and the connection closes (table _NEXT).
3. The client's EOF closes the connection once the requests before it are answered (_NEXT).
4. A completed response is followed by the next request only if it announced keep-alive,
   its request body was read whole (else the rest of it is still on the wire) and the
   connection is still open (`completed`).
5. One deadline at a time, its kind following the state: waiting for a request (IDLE,
   --keepalive-timeout), part of a head in (HEAD, --header-timeout, counted from the
   head's first bytes), part of a body in (BODY, --body-timeout, restarted by each piece:
   it bounds a stall), an exchange running (NONE: the app, not a timer, decides) (_ARRIVING).
6. While writing is paused the deadline is SEND (--send-timeout), whatever happens
   meanwhile (the exchange finishes into the buffer, the next pipelined one starts): bytes
   the client does not take must not wait under the keep-alive timeout, or under none.
7. An expired deadline's action is in _EXPIRED; bytes still buffered when an IDLE deadline
   passes (or when a closed connection waits for them) get the send timeout first, since
   closing cannot free a transport that still holds them.
"""

from __future__ import annotations

from typing import Final

# Deadline kinds: what expires when the deadline passes.
IDLE: Final = 0
HEAD: Final = 1
BODY: Final = 2
SEND: Final = 3
NONE: Final = 4

# What the connection does next when no exchange runs (`next_step`).
START: Final = 0  # start the oldest ready request
ANSWER_ERROR: Final = 1  # answer the protocol error, then close
CLOSE: Final = 2  # close the connection
WAIT: Final = 3  # wait for the client: resume reading, the idle deadline runs
STOP: Final = 4  # nothing more on this connection (closing, closed) or an exchange runs

# What an expired deadline asks of the connection (`expired`).
NOTHING: Final = 0  # not expired, or its kind has no timer (NONE), or it was extended
SHUT: Final = 1  # close gracefully (nothing of a request was lost)
ABORT: Final = 2  # cut the connection: the client stopped reading the response
REJECT_HEAD: Final = 3  # answer 408 (the head did not arrive in time), then close
REJECT_BODY: Final = 4  # answer 408 (the body stalled), then close
FAIL_BODY: Final = 5  # the running exchange's streaming body stalled: fail its reads

DRAIN_IDLE_GRACE = 0.5  # seconds of quiet before a draining worker closes an idle connection

# Rules 1-3: no exchange running -> what next, indexed by
# _NEXT[4 * request ready + 2 * protocol error pending + client sent EOF]
# (flat, of ints: compiled, it is one array read on the per-request path).
_NEXT: Final[tuple[int, ...]] = (
    WAIT, CLOSE,  # nothing ready, no error: wait for the client (or its EOF: close)
    ANSWER_ERROR, ANSWER_ERROR,  # nothing ready before the error: answer it
    START, START,  # a request ready: start it
    START, START,  # a request ready before the error: it goes first
)

# Rule 5: part of a request arrived (writing not paused) -> (deadline kind, when to restart
# it), indexed by _ARRIVING[exchange running][what arrived]. What arrived: 0 part of a
# head, 1 part of a body for no running exchange (it waits to be whole), 2 part of a body
# the running exchange reads as it streams (100-continue), 3 anything else while an
# exchange runs (a pipelined request: the exchange's own deadline stands).
KEEP: Final = 0  # when to restart the deadline: never,
RESTART: Final = 1  # at every piece,
ON_CHANGE: Final = 2  # or when its kind changes
HEAD_PART: Final = 0
BODY_PART: Final = 1
STREAMED_PART: Final = 2
OTHER_PART: Final = 3
_ARRIVING: Final = (
    ((HEAD, ON_CHANGE), (BODY, RESTART), (BODY, RESTART), (BODY, RESTART)),  # no exchange
    ((NONE, KEEP), (NONE, KEEP), (BODY, RESTART), (NONE, KEEP)),  # an exchange runs
)

# Rule 7: an expired deadline -> action, indexed by _EXPIRED[kind][detail]; detail: for
# HEAD, part of a request is in (else the client never began one); for BODY, the running
# exchange streams the stalled body (else the body waits for no exchange yet).
_EXPIRED: Final = (
    (SHUT, SHUT),  # IDLE
    (SHUT, REJECT_HEAD),  # HEAD
    (REJECT_BODY, FAIL_BODY),  # BODY
    (ABORT, ABORT),  # SEND
    (NOTHING, NOTHING),  # NONE
)


class H1State:
    """One connection's HTTP/1 state; the caller does the I/O each answer asks for."""

    def __init__(self, keepalive: float, header: float, body: float, send: float) -> None:
        self.keepalive_timeout = keepalive
        self.header_timeout = header
        self.body_timeout = body
        self.send_timeout = send
        self.kind = HEAD  # which deadline runs
        self.deadline = 0.0  # when it expires (the caller's clock)
        self.responding = False  # an exchange runs (rule 1)
        self.write_paused = False  # the client does not read fast enough (rule 6)
        self.error_pending = False  # a protocol error waits for the requests before it
        self.eof = False  # the client will send nothing more
        self.done = False  # closing or aborted: no further request starts
        self.closed = False  # the connection is gone (or handed to another worker)

    # -- events that move a deadline (rules 5-7) ----------------------------------

    def opened(self, now: float) -> None:
        """The connection is accepted: its first head has --header-timeout to arrive."""
        self.kind = HEAD
        self.deadline = now + self.header_timeout

    def arriving(self, now: float, part: int) -> None:
        """Part of a request arrived and the rest is awaited (`part`: HEAD_PART, ...)."""
        if self.write_paused:
            return  # rule 6: a response is stuck on the client, the send deadline stands
        kind, restart = _ARRIVING[self.responding][part]
        if restart == RESTART or (restart == ON_CHANGE and self.kind != kind):
            self.kind = kind
            self.deadline = now + self._timeout(kind)

    def began(self) -> None:
        """An exchange starts: the app, not a timer, decides now (unless writing is paused)."""
        self.responding = True
        if not self.write_paused:
            self.kind = NONE

    def waiting(self, now: float, mid_request: bool) -> None:
        """Nothing to do until the client sends more: the keep-alive deadline runs."""
        if not mid_request and not self.write_paused:
            self.kind = IDLE
            self.deadline = now + self.keepalive_timeout

    def paused(self, now: float) -> None:
        """The transport's buffer passed its high-water mark."""
        self.write_paused = True
        self.kind = SEND
        self.deadline = now + self.send_timeout

    def resumed(self) -> None:
        """The client caught up; the caller then says what the connection waits for."""
        self.write_paused = False
        self.kind = NONE

    def expired(self, now: float, detail: bool, buffered: bool, closing: bool) -> int:
        """What the deadline asks for at `now` (NOTHING before it passes); see _EXPIRED.

        `buffered`: response bytes the client has not taken; `closing`: the transport closes.
        """
        if now < self.deadline or self.closed:
            return NOTHING
        kind = self.kind
        if kind != SEND and (kind == IDLE or closing) and buffered:
            self.kind = SEND  # rule 7: --send-timeout frees it, counted from now
            self.deadline = now + self.send_timeout
            return NOTHING
        action: int = _EXPIRED[kind][detail]
        if action == FAIL_BODY:
            self.kind = NONE  # the exchange answers the failed read itself
        return action

    # -- sequencing (rules 1-4) ------------------------------------------------------

    def next_step(self, ready: bool) -> int:
        """What the connection does next; `ready`: a parsed request waits in the queue."""
        if self.responding or self.done or self.closed:
            return STOP
        return _NEXT[ready * 4 + self.error_pending * 2 + self.eof]

    def completed(self, keep_alive: bool, body_read: bool) -> bool:
        """The exchange handed over its whole response: True if the connection goes on.

        `keep_alive`: what the response announced (one that went out as keep-alive before
        the worker began draining must not be followed by a close: the client's next
        request would be reset); `body_read`: the request's body was read to its end.
        """
        self.responding = False
        return keep_alive and body_read and not self.closed

    def failed(self) -> None:
        """The parser found a protocol error: it is answered after the requests before it."""
        self.error_pending = True

    def eof_received(self, ready: bool) -> bool:
        """The client's EOF: True when the connection may close now (nothing left to answer)."""
        self.eof = True
        return not self.responding and not ready

    def closing(self) -> None:
        self.done = True

    def lost(self) -> None:
        self.closed = True
        self.responding = False

    # -- draining ------------------------------------------------------------------------

    def drain_closes(self, now: float, patient: bool) -> bool:
        """Draining, with no request in or running: True when the connection should close.

        An idle keep-alive connection closes only once it has been quiet for
        DRAIN_IDLE_GRACE (patient: at its own idle deadline): closing it the instant we
        stop would race a request the client is sending right then. One whose first
        request never came within --header-timeout closes at that deadline.
        """
        if self.kind == IDLE:
            idle_for = now - (self.deadline - self.keepalive_timeout)
            return now >= self.deadline or (not patient and idle_for >= DRAIN_IDLE_GRACE)
        return now >= self.deadline

    def _timeout(self, kind: int) -> float:
        if kind == HEAD:
            return self.header_timeout
        if kind == BODY:
            return self.body_timeout
        if kind == SEND:
            return self.send_timeout
        return self.keepalive_timeout
