"""One request/response cycle, whichever connection carries it and wherever the app runs.

An `Exchange` is built by its connection with a response sink (sink.py: where the bytes
go, and whether the peer keeps up) and an on-complete callback; it never sees the
connection itself, so an HTTP/2 stream can carry one as well as an HTTP/1 connection.
Two runners call the app: inline.py on the loop thread (`--threads 1`), threaded.py on a
pool thread; both pull the response through the one emitter (emitter.py). The rules they
share are here: the head goes out with the first non-empty chunk, `close()` is always
called, an exception before the head gives a 500, and one after it aborts the connection
rather than faking a complete response.
"""

from __future__ import annotations

import logging
import threading
from asyncio import _get_running_loop, _set_running_loop
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..http.request import Request
from ..wsgi.file_wrapper import FileWrapper
from ..wsgi.input import StreamingBody
from ..wsgi.response import AppError, Response, error_response

if TYPE_CHECKING:
    from .context import ServerContext
    from .registry import Registry
    from .sink import ResponseSink

log = logging.getLogger("corral.error")

INTERNAL_ERROR = error_response(500, "Internal Server Error", "The application failed.")


class Exchange(Response):
    """One request/response cycle on a connection.

    It *is* its Response (start_response, framing) rather than holding one: one object
    per request instead of two on the hot path; `ex.response` is the same object.
    """

    # Class-level defaults keep construction cheap on the hot path.
    result: Any = None
    iterator: Any = None
    aborted = False
    bytes_out = 0
    permits: threading.Semaphore | None = None
    held_permits = 0  # threaded: permits kept back while the sink is paused (threaded.py)
    sendfile: Any = None
    thread_ident: int | None = None  # the app thread running it (threaded mode)
    timed_out = False

    def __init__(
        self,
        sink: ResponseSink,
        request: Request,
        environ: dict[str, Any],
        ctx: ServerContext,
        on_complete: Callable[[Exchange], None],
    ) -> None:
        self.sink = sink
        self.request = request
        self.environ = environ
        self.ctx = ctx
        self.on_complete = on_complete
        self.version = request.version
        self.head_only = self.no_body = request.method == "HEAD"
        self.keep_alive = request.keep_alive  # (a draining HTTP/1 connection says close: its begin())
        self.started = self.active_since = ctx.clock()

    @property
    def response(self) -> Response:
        return self  # (a property, not an attribute: a self-reference would need the GC)

    def head(self) -> bytes:
        request = self.request
        if not request.complete and type(request.body) is StreamingBody:
            self.keep_alive = False  # a 100-continue body left unread on the wire: only closing ends it
        return Response.head(self)

    def write(self, data: bytes) -> None:  # type: ignore[override]
        """PEP 3333's write() callable on the loop thread; the threaded runner has its own."""
        data = check_chunk(data)
        if not data:
            return
        sink = self.sink
        if not self.headers_sent:
            sink.write(self.head())
        sink.write(self.frame(data))
        sink.flush()  # the app goes on running: the block must not wait for it
        self.bytes_out += len(data)

    def finish(self, data: bytes) -> None:
        """The response ends with `data`: hand it over and tell the connection."""
        self.sink.finish(data)
        self.on_complete(self)

    def sendfile_done(self, ok: bool, sent: int) -> None:
        """The sink's sendfile ended: complete, or cut when the file could not be sent whole."""
        self.sendfile = None
        self.bytes_out += sent
        if not ok:
            self.close_result()
            self.sink.abort()
            return
        self.on_complete(self)

    def close_result(self) -> None:
        result, self.result = self.result, None
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                log.exception(
                    "Error closing the response iterable of %s (app %s)", self.describe(), self.ctx.app_name
                )

    def length_broken(self, too_long: bool) -> None:
        name = self.ctx.app_name
        if too_long:
            log.error("%s: app %s sent more than its Content-Length of %s; the excess was dropped",
                      self.describe(), name, self.content_length)
        else:
            log.error("%s: app %s sent %d bytes of its Content-Length of %s; the connection was closed",
                      self.describe(), name, self.sent, self.content_length)

    def describe(self) -> str:
        request = self.request
        return f"{request.method} {request.target.decode('latin-1')}"

    def log_app_error(self, exc_info: Any) -> None:
        name = self.ctx.app_name
        if isinstance(exc_info[1], AppError):  # our words say what the app did; the traceback, where
            log.error("Error handling request %s: app %s broke the WSGI contract: %s",
                      self.describe(), name, exc_info[1], exc_info=exc_info)
        else:
            log.error("Error handling request %s: app %s raised", self.describe(), name, exc_info=exc_info)


def check_chunk(data: Any) -> bytes:
    if type(data) is bytes:
        return data
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise AppError(f"yielded {type(data).__name__}, not bytes")


def iterate(result: Any) -> Any:
    """iter(result), with an error that says what the app returned when it is not iterable."""
    try:
        return iter(result)
    except TypeError:
        raise AppError(f"returned {type(result).__name__}, not an iterable") from None


_R = TypeVar("_R")


def loop_hidden(step: Callable[[Exchange], _R]) -> Callable[[Exchange], _R]:
    """Run `step` (app code on the loop thread) with the running loop hidden, when needed.

    The app is plain synchronous code even though it runs on the loop's thread: code that
    refuses blocking work "in an async context" (Django's ORM, asgiref) must not see the loop.
    Switched once per entry, never nested: each switch costs a getpid() system call on 3.11.
    """

    def run(ex: Exchange) -> _R:
        ctx = ex.ctx
        if not ctx.hide_loop or ctx.loop_hidden:
            return step(ex)
        running = _get_running_loop()
        _set_running_loop(None)
        ctx.loop_hidden = True
        try:
            return step(ex)
        finally:
            ctx.loop_hidden = False
            _set_running_loop(running)

    run.__doc__ = step.__doc__
    return run


close_result = loop_hidden(Exchange.close_result)  # close() is app code too


def account(ex: Exchange, registry: Registry[Any], h2: bool) -> None:
    """What a finished exchange is counted for, whichever protocol carried it: the app's
    close(), the outbox's pacing, the metrics, --max-requests, the access log, post_request."""
    ctx = ex.ctx
    if ex.result is not None:
        close_result(ex)
    request = ex.request
    duration = ctx.clock() - ex.started
    ctx.outbox.after_app_call(duration)
    if h2:
        ctx.stats.record_h2(ctx.site_name, request.method, ex.code, duration, request.received, ex.bytes_out)
    else:
        ctx.stats.record(ctx.site_name, request.method, ex.code, duration, request.received, ex.bytes_out)
    registry.requests_served += 1
    if registry.requests_served == registry.recycle_at:
        registry.recycle("max-requests")
    if ctx.access_log is not None:
        ctx.access_log(ex)
    if ctx.post_request is not None:
        ctx.post_request(ex.environ, ex.code, duration)


def fail(ex: Exchange, exc_info: Any) -> None:
    """The app raised on the loop thread: a 500 if nothing was sent yet, else abort."""
    ex.log_app_error(exc_info)
    ex.close_result()
    if ex.headers_sent:
        ex.sink.abort()
        return
    ex.keep_alive = False
    ex.code = 500
    ex.finish(INTERNAL_ERROR)


def start_sendfile(ex: Exchange, wrapper: FileWrapper) -> bool:
    """Send a FileWrapper with os.sendfile if possible; False to fall back to iteration."""
    response = ex
    sink = ex.sink
    span = wrapper.sendfile_range()
    if span is None or response.headers_sent or not sink.can_sendfile():
        return False  # (over TLS the file must pass through the transport's encryption)
    fd, offset, size = span
    if response.content_length is None and not any(
        name.lower() == "content-length" for name, _ in response.headers
    ):
        response.headers.append(("Content-Length", str(size)))
    head = response.head()
    count = 0 if response.no_body else min(size, response.content_length or 0)
    if count < (response.content_length or 0) and not response.no_body:
        response.keep_alive = False  # the file is shorter than declared: only closing tells the client
    return sink.sendfile(ex, head, fd, offset, count)
