"""One HTTP/2 connection: frames in, streams out, each stream one exchange.

How this works: the sans-I/O connection state (http/h2_connection_state.py: frames,
HPACK, stream states and flow control) reads the bytes and calls this protocol back as
its H2Events: a request's header list, its body, a reset, a window that reopened. Each
request becomes a stream (h2_stream.py) and runs as an `Exchange` on the same runners as
HTTP/1 (inline on the loop, or on the app threads). A request body is spooled as it
arrives (the state refills its window), bounded by --max-body-size and --body-timeout
per stream; the app runs once the stream ends. Every response waits in its stream until
the client's windows let `send` pass it on, and the frames go to the socket once per
loop pass (`schedule_flush`) or at the end of data_received. Costly frames without
requests are counted (http/h2_guard.py FloodGuard): past a bound the state ends the
connection with GOAWAY ENHANCE_YOUR_CALM. On a graceful stop a GOAWAY names the last
stream we take; the streams before it finish, then the connection closes.

The worker imports this module only once an HTTP/2 connection arrives.
"""

from __future__ import annotations

import logging
from typing import Any, BinaryIO, Final

from ..http import h2_frames, h2_guard
from ..http.errors import BadRequest, ContentTooLarge, HTTPError, RequestTimeout
from ..http.h2_connection_state import H2ConnectionState, StreamClosed
from ..http.h2_frames import CANCEL, ENHANCE_YOUR_CALM, INTERNAL_ERROR, NO_ERROR, PROTOCOL_ERROR, REFUSED_STREAM
from ..http.h2_messages import build_request
from ..http.request import Request
from ..wsgi.input import EMPTY_INPUT, SpooledBody
from . import inline, threaded
from .context import Connection, ServerContext
from .exchange import Exchange, account, close_result
from .h2_stream import BODY, RUNNING, SEND, H2Stream
from .handoff import send_connection
from .peer import mount_environ, peer_request_environ, request_site, transport_environ
from .registry import Registry

log = logging.getLogger("corral.error")

_WRITE_HIGH_WATER: Final = 256 * 1024  # socket buffer above which every stream pauses


class H2Connection:
    """The asyncio protocol of one HTTP/2 connection (by its methods, as HTTPConnection)."""

    def __init__(
        self,
        ctx: ServerContext,
        registry: Registry[Connection],
        initial: bytes = b"",
        peername: Any = None,
        inherited: tuple[dict[str, Any], str, bool] | None = None,
        upgrade: tuple[bytes, Request] | None = None,
        route_first: bool = False,
    ) -> None:
        self.ctx = ctx
        self.registry = registry  # the worker's: its open connections, requests served, draining
        self._initial = initial  # bytes already read: the preface, when HTTP/1 switched to h2c
        self._peername = peername
        # An HTTP/1 connection switching to h2c hands over its environ, peer and trust.
        self._inherited = inherited
        # `Upgrade: h2c` (RFC 7540 3.2): the client's HTTP2-Settings, and the request that
        # asked for it, answered on stream 1 once our preface is out.
        self._upgrade = upgrade
        # Multi-site: every byte read, and nothing written, until the first stream is routed;
        # if it belongs to another site the connection is handed there whole (handoff.py).
        self._held: bytearray | None = bytearray() if route_first else None
        self.transport: Any = None
        self.guard = h2_guard.FloodGuard()
        self._list_size = h2_guard.header_list_size(ctx.limits)
        self.h2 = H2ConnectionState(
            self,
            self.guard,
            self._list_size,
            h2_guard.MAX_CONCURRENT_STREAMS,
            h2_guard.INITIAL_WINDOW_SIZE,
            h2_guard.CONNECTION_WINDOW,
        )
        self.streams: dict[int, H2Stream] = {}
        self.closed = False
        self.transport_paused = False
        self._flush_scheduled = False
        self._in_events = False  # inside data_received: it flushes once at the end
        self._now = 0.0  # the loop's time when data_received began (one clock read a pass)
        self._goaway = False  # sent our GOAWAY (graceful stop): streams above _last_stream are refused
        self._last_stream = 0
        self._peer_gone = False  # the client sent GOAWAY: no new streams will come
        self._base_environ: dict[str, Any] = {}
        self.peer = ""
        self._peer_trusted = False
        self.deadline = 0.0  # the connection's own: the first stream, or idle keep-alive
        self._seen_stream = False
        self._paused_since = 0.0

    # -- asyncio.Protocol --------------------------------------------------------

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        ctx = self.ctx
        self.transport = transport
        if self._inherited is None:
            if not self.registry.add(self):
                transport.close()  # (no HTTP/2 way to say 503 before the preface)
                return
            ctx.stats.opened()
            self._base_environ, self.peer, self._peer_trusted = transport_environ(ctx, transport, self._peername)
        else:
            self._base_environ, self.peer, self._peer_trusted = self._inherited
            self.registry.add(self)  # the HTTP/1 connection it replaces was counted and has left
        transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)
        self.deadline = ctx.loop.time() + ctx.timeouts.header
        settings = [
            (h2_frames.MAX_CONCURRENT_STREAMS, h2_guard.MAX_CONCURRENT_STREAMS),
            (h2_frames.MAX_HEADER_LIST_SIZE, self._list_size),
            (h2_frames.INITIAL_WINDOW_SIZE, h2_guard.INITIAL_WINDOW_SIZE),
            (h2_frames.ENABLE_PUSH, 0),
        ]
        upgrade = self._upgrade
        held = self._held is not None
        try:
            self.h2.start(settings, None if upgrade is None else upgrade[0], open_window=not held)
        except ValueError as exc:
            log.info("Bad HTTP2-Settings from %s: %s", self.peer or "client", exc)
            self._end(PROTOCOL_ERROR, "bad HTTP2-Settings")
            return
        if held:
            # Clients wait for the server's SETTINGS before their first request: those go out
            # now. If another site's worker takes the connection, it sends its own SETTINGS
            # (a second one is allowed) and its window update; ours waits for the routing.
            transport.write(self.h2.take_output())
        else:
            self._flush()
        if upgrade is not None:
            self._upgrade = None
            self._seen_stream = True
            request = upgrade[1]
            request.complete = True
            stream = self.streams[1] = H2Stream(self, 1, request)
            self._start(stream)
        if self._initial:
            initial, self._initial = self._initial, b""
            self.data_received(initial)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if self._held is not None:
            self._held += data
        h2conn = self.h2
        self._now = now = self.ctx.loop.time()
        self._in_events = True
        try:
            h2conn.receive(data, now)
        finally:
            self._in_events = False
        if self.closed:
            return  # handed to another site's worker
        if h2conn.error:
            self._ended_by_error()
        else:
            self._flush()

    def eof_received(self) -> bool:
        self._peer_gone = True
        if not self.streams:
            self.close()
            return False
        return True  # half-closed: finish the streams, then close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.registry.discard(self)
        for stream in list(self.streams.values()):
            self._drop(stream)
        self.streams.clear()

    def pause_writing(self) -> None:
        self.transport_paused = True
        self._paused_since = self.ctx.loop.time()
        for stream in self.streams.values():
            stream.write_paused = True

    def resume_writing(self) -> None:
        self.transport_paused = False
        for stream in list(self.streams.values()):
            self.send(stream, resume=True)
        self._flush()

    # -- frames in (H2Events, called by the connection state) ---------------------

    def on_request(self, stream_id: int, headers: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        self._seen_stream = True
        if self._goaway and stream_id > self._last_stream:
            self._refuse(stream_id)  # after our GOAWAY: the client retries it elsewhere
            return
        if len(self.streams) >= h2_guard.MAX_CONCURRENT_STREAMS and (
            sum(1 for s in self.streams.values() if s.deadline_kind != BODY) >= h2_guard.MAX_CONCURRENT_STREAMS
        ):
            # Reset streams whose app call still runs count here: that is what bounds the
            # work a rapid-reset client can leave behind (CVE-2023-44487).
            self._refuse(stream_id)
            return
        try:
            request = build_request(headers, self.ctx.limits)
        except HTTPError as error:
            self._release()
            stream = H2Stream(self, stream_id, Request())
            self.streams[stream_id] = stream
            self._send_error(stream, error)
            return
        if self.ctx.router is not None and not self._route(stream_id, request):
            return
        stream = H2Stream(self, stream_id, request)
        self.streams[stream_id] = stream
        if end_stream:
            self._body_complete(stream)
        else:
            stream.deadline_kind = BODY
            stream.deadline = self._clock() + self.ctx.timeouts.body

    def on_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        stream = self.streams.get(stream_id)
        if stream is None or stream.deadline_kind != BODY or stream.exchange is not None:
            return  # refused or answered already: its data only refilled the window
        if data:
            request = stream.request
            request.received += len(data)
            limits = self.ctx.limits
            if request.received > limits.max_body_size or (
                request.content_length is not None and request.received > request.content_length
            ):
                self._send_error(stream, ContentTooLarge(f"body larger than {limits.max_body_size} bytes"))
                return
            if stream.body is None:
                stream.body = SpooledBody(limits.body_buffer_size)
            stream.body.write(data)
            stream.deadline = self._clock() + self.ctx.timeouts.body
        if end_stream:
            self._body_complete(stream)

    def on_end(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)  # (its trailer fields are dropped, as HTTP/1's are)
        if stream is not None and stream.exchange is None and stream.deadline_kind == BODY:
            self._body_complete(stream)

    def on_reset(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None:
            self._close_stream(stream)

    def on_window(self, stream_id: int) -> None:
        if stream_id == 0:
            for stream in list(self.streams.values()):
                self.send(stream, resume=True)
        else:
            one = self.streams.get(stream_id)
            if one is not None:
                self.send(one, resume=True)

    def on_goaway(self) -> None:
        self._peer_gone = True
        if not self.streams:
            self.close()

    def _route(self, stream_id: int, request: Request) -> bool:
        """Multi-site: True when this site serves the stream; else it is handed on or answered.

        Only the connection's first stream can move it (nothing was sent yet); a later one
        for another site is answered 421 (RFC 9110 15.5.20): the client retries it on a new
        connection, which is routed by itself.
        """
        index = request_site(self.ctx, request, self._peer_trusted)
        if index == self.ctx.site_index:
            self._release()
            return True
        held = self._held
        if held is not None and index is not None and self._hand_off(index, bytes(held)):
            return False
        self._release()
        stream = H2Stream(self, stream_id, request)
        self.streams[stream_id] = stream
        if index is None:
            self._answer(stream, 404, "Not Found", "No site is configured for this host and path.")
        elif held is not None:
            self._answer(stream, 503, "Service Unavailable", "The site is not available.")
        else:
            self._answer(stream, 421, "Misdirected Request", "This connection serves another site.")
        return False

    def _release(self) -> None:
        """Multi-site: the connection stays here; what was held goes out with our window update."""
        if self._held is not None:
            self._held = None
            self.h2.open_window()

    def _hand_off(self, index: int, data: bytes) -> bool:
        """Pass the socket and every byte read to site `index`'s workers; False if it cannot take it."""
        ctx = self.ctx
        assert ctx.router is not None
        sock = self.transport.get_extra_info("socket")
        try:
            send_connection(ctx.handoff[index], sock.fileno(), data, self._peername)
        except OSError as exc:  # (BlockingIOError: its queue is full)
            log.warning("Site %r cannot take an HTTP/2 connection (%s); answering 503", ctx.router.name(index), exc)
            return False
        self.h2.fail(NO_ERROR, "handed to another site")  # reads no further frames; nothing is sent
        self.closed = True
        self.registry.discard(self)
        self.transport.abort()  # our reference only: the other worker owns the connection now
        return True

    def _body_complete(self, stream: H2Stream) -> None:
        request = stream.request
        if request.content_length is not None and request.received != request.content_length:
            self._send_error(stream, BadRequest("body shorter than its Content-Length"))
            return
        if stream.body is not None:
            stream.body.finish()
            request.body = stream.body
        request.complete = True
        self._start(stream)

    # -- running a request ---------------------------------------------------------

    def environ_of(self, request: Request, stream: BinaryIO | None) -> dict[str, Any]:
        body: Any = EMPTY_INPUT if stream is None else stream  # (EmptyInput is a BinaryIO by its methods)
        return peer_request_environ(self.ctx, self._base_environ, request, body, self._peer_trusted)

    def _start(self, stream: H2Stream) -> None:
        ctx = self.ctx
        stream.deadline_kind = RUNNING
        request = stream.request
        body = stream.body
        static = ctx.static
        if static is not None and ctx.router is None and static.serve(stream, request, self._base_environ):
            return
        environ = self.environ_of(request, body.stream if body is not None else None)
        mount_environ(ctx, environ)  # (multi-site: routed in on_request)
        if ctx.pre_request is not None:
            ctx.pre_request(environ)
        ex = stream.begin(request, environ)
        if ctx.executor is not None:
            ctx.executor.submit(threaded.run_threaded, ex)
        else:
            inline.run_inline(ex)

    def complete(self, ex: Exchange) -> None:
        """The on-complete callback of every stream's exchange (HTTPConnection.complete's twin)."""
        account(ex, self.registry, True)
        body = ex.request.body
        if type(body) is SpooledBody:
            body.close()
        stream = self.streams.get(_stream_id(ex))
        if stream is not None and stream.exchange is ex:
            stream.exchange = None
            if stream.closed:
                self._forget(stream)

    # -- frames out ----------------------------------------------------------------

    def send(self, stream: H2Stream, resume: bool = False) -> None:
        """Pass what the windows allow of `stream`'s response to h2; pause or resume its exchange."""
        if stream.closed or self.closed:
            return
        h2conn = self.h2
        sid = stream.id
        try:
            if stream.head is not None:
                end = stream.ended and not stream.out and not stream.truncated
                h2conn.send_block(sid, stream.head, end)
                stream.head = None
                if end:
                    self._ended(stream)
                    return
            out = stream.out
            sent = False
            while out and not self.transport_paused:
                size = min(h2conn.window(sid), h2conn.max_send_frame, len(out))
                if size <= 0:
                    break
                chunk = bytes(out[:size]) if size < len(out) else bytes(out)
                del out[:size]
                end = stream.ended and not out and not stream.truncated
                h2conn.send_data(sid, chunk, end_stream=end)
                sent = True
                if end:
                    self._ended(stream)
                    return
            if stream.ended and not out and stream.head_done:
                if stream.truncated:
                    self.reset(stream, INTERNAL_ERROR)
                else:
                    h2conn.end_stream(sid)
                    self._ended(stream)
                return
        except StreamClosed:
            self._close_stream(stream)  # the client reset it meanwhile
            return
        self.schedule_flush()
        if out and stream.deadline_kind != SEND:
            stream.deadline_kind = SEND  # the peer's window, not the app, holds it now
            stream.deadline = self._clock() + self.ctx.timeouts.send
        elif sent and out:
            stream.deadline = self._clock() + self.ctx.timeouts.send  # progress: the window moved
        paused = len(out) > h2_guard.STREAM_HIGH_WATER or self.transport_paused
        was_paused = stream.write_paused
        stream.write_paused = paused
        if was_paused and not paused and resume:
            ex = stream.exchange
            if ex is not None:
                if ex.permits is not None:
                    threaded.resume(ex)
                else:
                    inline.resume(ex)

    def _ended(self, stream: H2Stream) -> None:
        stream.closed = True
        self.schedule_flush()
        if stream.exchange is None:
            self._forget(stream)

    def reset(self, stream: H2Stream, code: int = INTERNAL_ERROR) -> None:
        """End a stream abruptly (the app failed mid-body, a stall, a short body)."""
        if not stream.closed and not self.closed:
            self.h2.reset_stream(stream.id, code)
            self.schedule_flush()
        self._close_stream(stream)

    def _close_stream(self, stream: H2Stream) -> None:
        self._drop(stream)
        self._forget(stream)

    def _forget(self, stream: H2Stream) -> None:
        if self.streams.get(stream.id) is stream:
            del self.streams[stream.id]
        if not self.streams and not self.closed:
            self.deadline = self._clock() + self.ctx.timeouts.keepalive
            if self._goaway or self._peer_gone:
                self.close()

    def _drop(self, stream: H2Stream) -> None:
        """The stream ends without its response (reset, stalled, or the connection lost)."""
        stream.closed = True
        stream.out.clear()
        ex = stream.exchange
        if ex is not None:
            stream.exchange = None
            if not ex.aborted:
                ex.aborted = True
                if ex.permits is not None:
                    threaded.wake(ex)  # the app thread sees `aborted` and stops
                else:
                    close_result(ex)  # inline: nobody else will close it
        elif stream.body is not None:
            stream.body.close()  # never handed to an app

    def _send_error(self, stream: H2Stream, error: HTTPError) -> None:
        """Answer a refused request on its stream; the rest of its body is not read."""
        log.info("Rejected HTTP/2 request from %s: %d %s", self.peer or "client", error.status, error.detail)
        ctx = self.ctx
        ctx.stats.record_h2(ctx.site_name, stream.request.method, error.status, 0.0, 0, 0)
        if ctx.access_log is not None:
            ctx.access_log(None, error=error, peer=self.peer)
        self._answer(stream, error.status, error.reason, error.detail)

    def _answer(self, stream: H2Stream, status: int, reason: str, detail: str) -> None:
        """A short plain-text response in place of the app's, then the stream is done."""
        body = f"{status} {reason}\n{detail}\n".encode("latin-1", "replace")
        headers = [
            (b":status", str(status).encode()),
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        stream.deadline_kind = RUNNING
        try:
            self.h2.send_headers(stream.id, headers)
            if self.h2.window(stream.id) >= len(body):
                self.h2.send_data(stream.id, body, end_stream=True)
                self.h2.reset_stream(stream.id, NO_ERROR)  # (RFC 9113 8.1: stop its upload)
            else:
                self.h2.reset_stream(stream.id, REFUSED_STREAM)
        except StreamClosed:
            pass
        self.schedule_flush()
        self._close_stream(stream)

    def _refuse(self, stream_id: int) -> None:
        self.h2.reset_stream(stream_id, REFUSED_STREAM)
        self.schedule_flush()

    def _clock(self) -> float:
        return self._now if self._in_events else self.ctx.loop.time()

    def schedule_flush(self) -> None:
        if not self._in_events and not self._flush_scheduled and not self.closed:
            self._flush_scheduled = True
            self.ctx.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.closed or self._held is not None:
            return
        if self.h2.out:
            self.transport.write(self.h2.take_output())

    # -- ending the connection -----------------------------------------------------

    def _ended_by_error(self) -> None:
        """The connection state sent GOAWAY with an error (a broken frame, a flood): close."""
        h2conn = self.h2
        if h2conn.error_code == ENHANCE_YOUR_CALM:
            log.warning("Closing HTTP/2 connection from %s: %s", self.peer or "client", h2conn.error)
        else:
            log.info("HTTP/2 protocol error from %s: %s", self.peer or "client", h2conn.error)
        self._end(h2conn.error_code, h2conn.error)

    def _end(self, code: int, why: str) -> None:
        """GOAWAY with an error, then close: no stream of this connection goes on."""
        if self.closed:
            return
        self._held = None  # (never routed: what was held goes out with the GOAWAY)
        self.h2.fail(code, why)
        self._flush()
        for stream in list(self.streams.values()):
            self._drop(stream)
        self.streams.clear()
        self.close()

    def _send_goaway(self) -> None:
        """A graceful GOAWAY: streams up to the last one received finish; later ones are refused."""
        self._goaway = True
        self._held = None
        self._last_stream = self.h2.highest_stream
        self.h2.goaway(self._last_stream)
        self._flush()

    def shutdown(self, now: float, patient: bool = False) -> None:
        """Graceful stop: GOAWAY once; close when the streams it let through are done."""
        if self.closed:
            return
        if not self._goaway:
            self._send_goaway()
        if not self.streams:
            self.close()

    def check_deadline(self, now: float) -> None:
        """Called by the worker's sweeper about once a second."""
        if self.closed:
            return
        timeouts = self.ctx.timeouts
        if self.transport_paused and now - self._paused_since > timeouts.send:
            log.info("Closing HTTP/2 connection to %s: the client stopped reading", self.peer)
            self.abort()
            return
        if not self.streams:
            if now >= self.deadline:
                self._end(NO_ERROR, "idle")
            return
        for stream in list(self.streams.values()):
            if now < stream.deadline or stream.closed:
                continue
            if stream.deadline_kind == BODY:
                self._send_error(stream, RequestTimeout("request body stalled"))
            elif stream.deadline_kind == SEND:
                log.info("Resetting HTTP/2 stream %d of %s: the client's window stayed shut", stream.id, self.peer)
                self.reset(stream, CANCEL)
        self._flush()

    def running(self) -> list[Exchange]:
        """The watchdog's and the heartbeat's view: the exchange of every running stream."""
        return [stream.exchange for stream in self.streams.values() if stream.exchange is not None]

    def time_out(self, ex: Exchange) -> None:
        """`ex`'s app thread is hung (watchdog.py): 504 on its stream if no head went out, else
        a reset; the connection's other streams go on (the worker recycles meanwhile)."""
        stream = self.streams.get(_stream_id(ex))
        if stream is None or stream.exchange is not ex or stream.closed or self.closed:
            return
        ctx = self.ctx
        ctx.stats.record_h2(ctx.site_name, ex.request.method, 504, ctx.clock() - ex.started, 0, 0)
        # The stream is dropped with its exchange still on it: `_drop` marks it aborted and
        # wakes its thread, which then stops at its next write (as HTTP/1's lost connection).
        if ex.headers_sent:
            self.reset(stream, INTERNAL_ERROR)
        else:
            self._answer(stream, 504, "Gateway Timeout", "The application did not answer in time.")
        self._flush()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._flush()
            self.closed = True
            self.transport.close()
        self.closed = True


def _stream_id(ex: Exchange) -> int:
    sink = ex.sink
    return sink.id if isinstance(sink, H2Stream) else -1
