"""One client connection: bytes in, parser, exchanges, bytes out, deadlines.

How this works: `data_received` feeds the sans-I/O parser; each ready request
becomes an `Exchange` run inline or on a thread (see exchange.py). Requests
pipelined behind a running one wait in the parser's queue (reading pauses when
too many wait). The HTTP/1 rules (one exchange at a time, an error answered after
the requests before it, keep-alive or close, which deadline runs) are sans-I/O, in
http/connection_state.py: this protocol reports each event to its `H1State` and
does the I/O the answer asks for. Each connection carries one deadline whose meaning
follows that state (idle, reading a head, reading a body, blocked on a slow reader);
the worker's sweeper checks them once a second, so the hot path costs one clock read
per request instead of timer churn.
"""

from __future__ import annotations

import logging
from typing import Any

from ..http.connection_state import (
    ABORT,
    ANSWER_ERROR,
    BODY_PART,
    CLOSE,
    FAIL_BODY,
    HEAD_PART,
    OTHER_PART,
    REJECT_BODY,
    REJECT_HEAD,
    SHUT,
    START,
    STREAMED_PART,
    WAIT,
    H1State,
)
from ..http.connection_state import BODY as BODY  # the deadline kinds, for tests and the sweeper
from ..http.connection_state import HEAD as HEAD
from ..http.connection_state import IDLE as IDLE
from ..http.connection_state import NONE as NONE
from ..http.connection_state import SEND as SEND
from ..http.errors import HTTP2Preface, HTTPError, RequestTimeout
from ..http.h2_messages import preface_bytes, upgrade_settings, upgraded_request
from ..http.parser import RequestParser
from ..http.request import BodySink, Request
from ..wsgi.input import EMPTY_INPUT, SpooledBody, StreamingBody
from ..wsgi.response import error_response
from . import inline, threaded
from .context import Connection, ServerContext
from .exchange import Exchange, account, close_result
from .handoff import request_bytes, send_connection
from .outbox import HeldTransport
from .peer import mount_environ, peer_request_environ, request_site, transport_environ
from .registry import Registry
from .sendfile import SendfileJob

log = logging.getLogger("corral.error")

# Pipelined requests parsed ahead of the one being answered; more pauses reading.
_MAX_QUEUED = 16
_WRITE_HIGH_WATER = 256 * 1024
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_SWITCHING_TO_H2C = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
_HANDOFF_RECHECK = 0.002  # seconds between checks that a response has left before a handoff


class HTTPConnection:
    """The asyncio protocol of one client connection (by its methods, not by inheritance:
    that keeps it a native class when setup.py compiles this module)."""

    def __init__(
        self, ctx: ServerContext, registry: Registry[Connection], initial: bytes = b"", peername: Any = None
    ) -> None:
        self.ctx = ctx
        self.registry = registry  # the worker's: its open connections, requests served, draining
        # The client's address when something before HTTP said it (the PROXY protocol): a
        # (host, port) tuple, or "" for a local peer; None: the transport's own peer.
        self._peername = peername
        # Bytes read by another site's worker before it handed us this connection: parsed
        # first, in connection_made, before the loop delivers anything newer from the socket.
        self._initial = initial
        self._handoff_deadline = 0.0
        self.transport: Any = None
        self.parser = RequestParser(ctx.limits, self._body_sink)
        self.exchange: Exchange | None = None
        timeouts = ctx.timeouts
        self.state = H1State(timeouts.keepalive, timeouts.header, timeouts.body, timeouts.send)
        self.write_paused = False  # the sink's flag (sink.py); the state keeps its own for its rules
        self._reading_paused = False
        self._error: HTTPError | None = None  # the protocol error to answer, once it is its turn
        self._advancing = False  # inside _next: a completion need not call it again
        self._base_environ: dict[str, Any] = {}
        self.peer = ""
        # Whether the peer may say who the client is (Forwarded, X-Forwarded-*): decided once,
        # in transport_environ (peer.py), so a request without those headers pays nothing for it.
        self._peer_trusted = False
        # Multi-site: the bytes read before the first request was routed (handed on if it isn't ours).
        self._raw: bytearray | None = bytearray() if ctx.router is not None else None
        self._reroute_to: int | None = None
        self._routed: Request | None = None  # the first request, already routed here

    # -- asyncio.Protocol --------------------------------------------------------

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        ctx = self.ctx
        self.transport = HeldTransport(transport, ctx.outbox)
        # (A connection accepted just as we began draining is still served: the client
        # already counts on it. Its response says Connection: close.)
        if not self.registry.add(self):
            transport.write(error_response(503, "Service Unavailable", "Too many connections."))
            transport.close()
            return
        transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)
        ctx.stats.opened()
        self._base_environ, self.peer, self._peer_trusted = transport_environ(ctx, transport, self._peername)
        self.state.opened(ctx.loop.time())
        if self._initial:
            initial, self._initial = self._initial, b""
            self.data_received(initial)

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if self._raw is not None:
            self._raw += data  # multi-site: kept until the first request is routed
        try:
            parser.feed(data)
        except HTTPError as error:
            if type(error) is HTTP2Preface and self.ctx.h2c and self._switch_to_h2c(data):
                return
            self._error = error
            self.state.failed()
            self._pause_reading()
        if self._raw is not None:
            self._route_first()
        exchange = self.exchange
        if exchange is None:
            self._next()
            exchange = self.exchange
        else:
            if len(parser.ready) >= _MAX_QUEUED:
                self._pause_reading()
            body = exchange.request.body
            if type(body) is StreamingBody and body.full:
                self._pause_reading()
        if parser.mid_request and self._error is None:
            self._track_partial_request(exchange)
        elif self._reroute_to is not None:
            self._try_handoff()

    def _switch_to_h2c(self, data: bytes) -> bool:
        """--http2: the HTTP/2 preface on a connection with nothing pending becomes an H2Connection."""
        if self.exchange is not None or self.parser.ready:
            return False
        initial = preface_bytes(data)
        if initial is None:
            return False
        # Multi-site (_raw kept: nothing routed yet): the H2Connection routes its first stream.
        self._hand_to_h2(initial, None, route_first=self._raw is not None)
        return True

    def _upgrade_to_h2c(self, request: Request) -> bool:
        """--http2: `Upgrade: h2c` (RFC 7540 3.2) is answered 101, then on HTTP/2's stream 1."""
        if self.parser.ready or self._raw is not None:
            return False
        settings = upgrade_settings(request)
        if settings is None:
            return False  # answered over HTTP/1.1, then closed, as any other Upgrade request
        held = self.transport
        held.flush()  # earlier responses on this connection leave before the 101
        held.transport.write(_SWITCHING_TO_H2C)
        self._hand_to_h2(b"", (settings, upgraded_request(request)))
        return True

    def _hand_to_h2(self, initial: bytes, upgrade: tuple[bytes, Request] | None, route_first: bool = False) -> None:
        from .h2_connection import H2Connection  # only now: HTTP/1-only servers never import h2

        self.state.closing()  # this protocol is done with the transport: the H2Connection has it
        self.state.lost()
        self.registry.discard(self)
        transport = self.transport.transport
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        inherited = (self._base_environ, self.peer, self._peer_trusted)
        h2c = H2Connection(self.ctx, self.registry, initial, self._peername, inherited, upgrade, route_first)
        transport.set_protocol(h2c)
        h2c.connection_made(transport)

    def _track_partial_request(self, exchange: Exchange | None) -> None:
        """Part of a request has arrived: its head or body now runs against a deadline."""
        if exchange is None:
            part = HEAD_PART if self.parser.awaiting_head else BODY_PART
        elif type(exchange.request.body) is StreamingBody:
            part = STREAMED_PART
        else:
            part = OTHER_PART
        self.state.arriving(self.ctx.loop.time(), part)

    def eof_received(self) -> bool:
        pending = self.parser.receiving_body
        if pending is not None and type(pending.body) is StreamingBody:
            pending.body.fail(ConnectionError("the client closed the connection mid-body"))
        if self.state.eof_received(bool(self.parser.ready)):
            self.close()
            return False
        return True  # half-closed: answer what was asked, then close

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.lost()
        self.registry.discard(self)
        ex = self.exchange
        if ex is not None:
            ex.aborted = True
            body = ex.request.body
            if isinstance(body, StreamingBody):
                body.fail(ConnectionError("client disconnected"))
            if ex.sendfile is not None:
                ex.sendfile.cancel()
                ex.close_result()
            if ex.permits is not None:
                threaded.wake(ex)  # the app thread sees `aborted`
            else:
                close_result(ex)  # inline and paused: nobody else will close it
            self.exchange = None
        self._discard_bodies()

    # While writing is paused the deadline is SEND, whatever the exchange does meanwhile
    # (rule 6 of connection_state.py).
    def pause_writing(self) -> None:
        self.write_paused = True
        self.state.paused(self.ctx.loop.time())

    def resume_writing(self) -> None:
        self.write_paused = False
        self.state.resumed()
        ex = self.exchange
        if ex is None:
            self._after_send()
            return
        if ex.permits is not None:
            threaded.resume(ex)
        else:
            inline.resume(ex)

    # -- request flow ------------------------------------------------------------

    def _next(self) -> None:
        """Start queued requests until one is still running or none is left.

        An exchange that completes while this runs (the inline fast path) only returns
        here; one that completes later (a thread, a resumed pump) calls it from complete().
        """
        if self._advancing:
            return
        self._advancing = True
        try:
            self._advance()
        finally:
            self._advancing = False

    def _advance(self) -> None:
        parser = self.parser
        ready = parser.ready
        state = self.state
        while True:
            step = state.next_step(bool(ready))
            if step == START:
                if self._reroute_to is not None:
                    return  # handed on with the rest once the handoff goes through
                request = ready.popleft()
                if parser.upgraded and self.ctx.h2c_upgrade and self._upgrade_to_h2c(request):
                    return  # this protocol is done: the request runs as HTTP/2's stream 1
                self._start(request)
            elif step == WAIT:
                # Not on draining: this response may have gone out as keep-alive, and the
                # client may be sending its next request already; shutdown() closes idle
                # connections once they have been quiet for DRAIN_IDLE_GRACE.
                if self._reading_paused:
                    self._reading_paused = False
                    self.transport.resume_reading()
                state.waiting(self.ctx.loop.time(), parser.mid_request)
                return
            elif step == ANSWER_ERROR:
                assert self._error is not None
                self._send_error(self._error)
                return
            elif step == CLOSE:
                self.close()
                return
            else:
                return

    def _after_send(self) -> None:
        """The response finished earlier has left our buffer: the connection's own deadline again."""
        if self.parser.mid_request:
            self._track_partial_request(None)
        else:
            self._next()

    def _start(self, request: Request) -> None:
        """Begin an exchange: it completes now (inline fast path) or later."""
        ctx = self.ctx
        body = request.body
        if body is None:
            stream: Any = EMPTY_INPUT
        elif type(body) is SpooledBody:
            stream = body.stream
        else:
            stream = body
        static = ctx.static
        if static is not None and ctx.router is None:  # files under a static prefix: no environ, no app
            if static.serve(self, request, self._base_environ):
                return
        environ = peer_request_environ(ctx, self._base_environ, request, stream, self._peer_trusted)
        if ctx.router is not None:
            if not self._route(request, environ):
                return
            if static is not None and static.serve(self, request, environ):
                return
        if ctx.pre_request is not None:
            ctx.pre_request(environ)
        ex = self.begin(request, environ)
        if stream is body:  # a 100-continue body arrives while the app runs: it needs a thread
            ctx.streaming_pool().submit(threaded.run_threaded, ex)
        elif ctx.executor is not None:
            ctx.executor.submit(threaded.run_threaded, ex)
        else:
            inline.run_inline(ex)

    def begin(self, request: Request, environ: dict[str, Any]) -> Exchange:
        """The exchange of `request`, this connection's current one (also for the static map)."""
        ex = self.exchange = Exchange(self, request, environ, self.ctx, self.complete)
        if self.registry.stopping:
            ex.keep_alive = False  # draining: tell the client to reconnect
        self.state.began()
        return ex

    # -- multi-site routing ------------------------------------------------------

    def _route(self, request: Request, environ: dict[str, Any]) -> bool:
        """True when this site serves the request; otherwise it is answered or handed on."""
        ctx = self.ctx
        assert ctx.router is not None
        path = environ["PATH_INFO"]
        index: int | None
        if request is self._routed:
            index = ctx.site_index
            self._routed = None
        else:
            index = ctx.router.match(environ.get("HTTP_HOST", ""), path)
        if index == ctx.site_index:
            self._raw = None
            mount_environ(ctx, environ)
            return True
        if index is None:
            self._raw = None
            self.transport.write(error_response(404, "Not Found", "No site is configured for this host and path."))
            self.close()
            return False
        self.parser.ready.appendleft(request)  # handed on with the rest, in order
        self._reroute_to = index
        self._try_handoff()
        return False

    def _route_first(self) -> None:
        """Route a connection's first request as soon as its head is in, before its body."""
        parser = self.parser
        request = parser.ready[0] if parser.ready else parser.receiving_body
        if request is None or self._error is not None:
            return
        index = request_site(self.ctx, request, self._peer_trusted)
        if index == self.ctx.site_index:
            self._raw = None
            self._routed = request  # _start need not route it again
            return
        if index is None:
            self._raw = None  # a 404 that _start answers
            return
        self._reroute_to = index
        self._try_handoff()

    def _try_handoff(self) -> None:
        """Pass the connection to the routed site once no request is half-received."""
        index = self._reroute_to
        if index is None or self.state.closed:
            return
        if self._raw is not None:
            data = bytes(self._raw)  # nothing served yet: the raw bytes say it all
        elif self.parser.mid_request:
            return  # wait for the request boundary; data_received calls again
        else:
            try:
                data = b"".join(request_bytes(request) for request in self.parser.ready)
            except ValueError:
                self.transport.write(error_response(421, "Misdirected Request", "Retry on a new connection."))
                self.close()
                return
        if self.transport.get_write_buffer_size():
            # Our last response is still leaving: handing the socket on now would lose its tail.
            self._pause_reading()
            self.ctx.loop.call_later(_HANDOFF_RECHECK, self._try_handoff)
            return
        sock = self.transport.get_extra_info("socket")
        self._pause_reading()
        try:
            send_connection(self.ctx.handoff[index], sock.fileno(), data, self._peername)
        except BlockingIOError:
            # The site's queue is full (a burst, or its workers are busy): wait, within the
            # head timeout, rather than refuse what the site will take in a moment.
            now = self.ctx.loop.time()
            if not self._handoff_deadline:
                self._handoff_deadline = now + self.ctx.timeouts.header
            if now < self._handoff_deadline:
                self.ctx.loop.call_later(_HANDOFF_RECHECK, self._try_handoff)
                return
            self._refuse_handoff(index, "its queue stayed full")
            return
        except OSError as exc:
            self._refuse_handoff(index, str(exc))
            return
        self._reroute_to = None
        self._discard_bodies()
        self.state.lost()
        self.registry.discard(self)
        self.transport.abort()  # our reference only: the other worker owns the connection now

    def _refuse_handoff(self, index: int, why: str) -> None:
        self._reroute_to = None
        assert self.ctx.router is not None
        log.warning("Site %r cannot take a connection (%s); answering 503", self.ctx.router.name(index), why)
        self.transport.write(error_response(503, "Service Unavailable", "The site is not available."))
        self.close()

    def complete(self, ex: Exchange) -> None:
        """The exchange's on-complete callback: the response is fully handed to the transport."""
        account(ex, self.registry, False)
        self.exchange = None
        request = ex.request
        body = request.body
        body_read = True
        if body is not None:
            if type(body) is SpooledBody:
                body.close()
            else:
                body_read = request.complete  # False: a 100-continue body still on the wire
        if not self.state.completed(ex.keep_alive, body_read):  # rule 4
            self.close()
        elif not self._advancing:
            self._next()

    def running(self) -> list[Exchange]:
        """The watchdog's and the heartbeat's view: this connection's one exchange, if any."""
        ex = self.exchange
        return [] if ex is None else [ex]

    def time_out(self, ex: Exchange) -> None:
        """The app thread is hung (see watchdog.py): answer 504 if we still can, and close."""
        if ex is not self.exchange or self.state.closed:
            return
        self.ctx.stats.record(self.ctx.site_name, ex.request.method, 504, self.ctx.clock() - ex.started, 0, 0)
        if not ex.headers_sent:
            self.transport.write(error_response(504, "Gateway Timeout", "The application did not answer in time."))
            self.close()
        else:
            self.abort()

    def abort(self) -> None:
        self.state.closing()
        if self.transport is not None and not self.state.closed:
            self.transport.abort()

    def close(self) -> None:
        self.state.closing()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def send_continue(self) -> None:
        ex = self.exchange
        if ex is not None and not ex.headers_sent and not self.state.closed:
            self.transport.write(_CONTINUE)

    # -- the response sink of its exchange (sink.py) ----------------------------------

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def writelines(self, pieces: tuple[bytes, ...]) -> None:
        self.transport.writelines(pieces)

    def finish(self, data: bytes) -> None:
        if data:
            self.transport.write(data)

    def flush(self) -> None:
        self.transport.flush()

    def is_closing(self) -> bool:
        return self.state.closed or bool(self.transport.is_closing())

    def can_sendfile(self) -> bool:
        # (Over TLS the file must pass through the transport's encryption; with bytes still
        # buffered in the transport, the file would overtake them.)
        return not self.ctx.tls and not self.transport.get_write_buffer_size()

    def sendfile(self, ex: Exchange, head: bytes, fd: int, offset: int, count: int) -> bool:
        """Send head and file with os.sendfile; False when the transport has no plain socket (TLS)."""
        sock = self.transport.get_extra_info("socket")
        if sock is None or self.transport.get_extra_info("sslcontext") is not None:
            return False

        def done(ok: bool) -> None:
            ex.sendfile_done(ok, job.sent)

        job = SendfileJob(self.ctx.loop, sock.fileno(), head, fd, offset, count, done)
        ex.sendfile = job
        job.start()
        return True

    # -- for the static map (static/serve.py) --------------------------------------

    @property
    def logs_access(self) -> bool:
        return self.ctx.access_log is not None

    def static_environ(self, request: Request) -> dict[str, Any]:
        """The environ a static request needs for the access log or a credentials check.

        A trusted proxy's headers are applied, so a guard sees the client's scheme and address.
        """
        return peer_request_environ(self.ctx, self._base_environ, request, EMPTY_INPUT, self._peer_trusted)

    # -- helpers -----------------------------------------------------------------

    def _body_sink(self, request: Request) -> BodySink:
        if request.expect_continue:
            body = StreamingBody(self._continue_threadsafe, self.ctx.limits.body_buffer_size)
            body.on_drained = self._resume_threadsafe
            return body
        return SpooledBody(self.ctx.limits.body_buffer_size)

    def _continue_threadsafe(self) -> None:
        self.ctx.loop.call_soon_threadsafe(self.send_continue)

    def _resume_threadsafe(self) -> None:
        self.ctx.loop.call_soon_threadsafe(self._resume_reading_if_idle)

    def _resume_reading_if_idle(self) -> None:
        if self._reading_paused and not self.state.closed and len(self.parser.ready) < _MAX_QUEUED:
            self._reading_paused = False
            self.transport.resume_reading()

    def _pause_reading(self) -> None:
        if not self._reading_paused and not self.state.closed:
            self._reading_paused = True
            self.transport.pause_reading()

    def _send_error(self, error: HTTPError) -> None:
        log.info("Rejected request from %s: %d %s", self.peer or "client", error.status, error.detail)
        self.ctx.stats.record(self.ctx.site_name, "", error.status, 0.0, 0, 0)
        if self.ctx.access_log is not None:
            self.ctx.access_log(None, error=error, peer=self.peer)
        self.transport.write(error_response(error.status, error.reason, error.detail))
        self.close()

    def _discard_bodies(self) -> None:
        for request in self.parser.ready:
            if isinstance(request.body, SpooledBody):
                request.body.close()
        self.parser.ready.clear()

    def check_deadline(self, now: float) -> None:
        """Called by the worker's sweeper about once a second."""
        state = self.state
        if now < state.deadline:
            return
        transport = self.transport
        ex = self.exchange
        if state.kind == HEAD:
            detail = self.parser.mid_request
        else:
            detail = ex is not None and isinstance(ex.request.body, StreamingBody)
        action = state.expired(now, detail, bool(transport.get_write_buffer_size()), bool(transport.is_closing()))
        if action == SHUT:
            self.close()
        elif action == REJECT_HEAD:
            self._send_error(RequestTimeout("request head not received in time"))
        elif action == REJECT_BODY:
            self._send_error(RequestTimeout("request body stalled"))
        elif action == FAIL_BODY:
            assert ex is not None and isinstance(ex.request.body, StreamingBody)
            ex.request.body.fail(TimeoutError("request body stalled"))
        elif action == ABORT:
            log.info("Closing connection to %s: the client stopped reading the response", self.peer)
            self.abort()

    def shutdown(self, now: float, patient: bool = False) -> None:
        """Graceful stop: busy connections close after their response ("Connection: close").

        An idle connection closes when connection_state.py's drain rule says so.
        """
        ex = self.exchange
        if ex is None and not self.parser.mid_request and not self.parser.ready:
            if self.state.drain_closes(now, patient):
                self.close()
        elif ex is not None and not ex.headers_sent:
            ex.keep_alive = False  # say "Connection: close", so no client reuses it

    # -- the deadline, as the sweeper and tests see it ------------------------------------

    @property
    def deadline(self) -> float:
        return self.state.deadline

    @property
    def deadline_kind(self) -> int:
        return self.state.kind
