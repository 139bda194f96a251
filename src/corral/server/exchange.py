"""Running the app for one request and streaming its response.

Two ways, one contract:

* inline (`--threads 1`): the app runs on the loop thread. The response
  iterable is pulled only while the transport accepts more (`pump`); when the
  transport pauses writing, pulling stops and `resume_writing` continues it.
* threaded: the app runs on a pool thread. Output is handed to the loop in
  batches with `call_soon_threadsafe`; a semaphore of two permits, held while
  the transport is paused, keeps a fast app from racing ahead of a slow client.

Either way the head goes out with the first non-empty chunk, `close()` is
always called, an exception before the head gives a 500, and one after it
aborts the connection rather than faking a complete response.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from asyncio import _get_running_loop, _set_running_loop
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..http.errors import HTTPError
from ..http.request import Request
from ..wsgi.file_wrapper import FileWrapper
from ..wsgi.input import BodyError, StreamingBody
from ..wsgi.response import AppError, Response, error_response

if TYPE_CHECKING:
    from .connection import HTTPConnection

log = logging.getLogger("corral.error")

_BATCH = 65536  # threaded mode: bytes gathered before one hand-off to the loop
_COPY_LIMIT = 16384  # smaller chunks are joined with their framing; larger go out as pieces
_PLAIN_ITERATORS: tuple[type, ...] = (type(iter([])), type(iter(())))
_INTERNAL_ERROR = error_response(500, "Internal Server Error", "The application failed.")


class ConnectionGone(Exception):
    """The client went away while the app was still producing the response."""


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
    sendfile: Any = None
    thread_ident: int | None = None  # the app thread running it (threaded mode)
    timed_out = False

    def __init__(self, conn: HTTPConnection, request: Request, environ: dict[str, Any]) -> None:
        self.conn = conn
        self.request = request
        self.environ = environ
        self.version = request.version
        self.head_only = self.no_body = request.method == "HEAD"
        self.keep_alive = request.keep_alive and not conn.ctx.stopping  # draining: tell the client to reconnect
        self.started = self.active_since = time.monotonic()

    @property
    def response(self) -> Response:
        return self  # (a property, not an attribute: a self-reference would need the GC)

    def write(self, data: bytes) -> None:  # type: ignore[override]
        """PEP 3333's write() callable on the loop thread; the threaded path replaces it."""
        data = _check_chunk(data)
        if not data:
            return
        transport = self.conn.transport
        if not self.headers_sent:
            transport.write(self.head())
        transport.write(self.frame(data))
        transport.flush()  # the app goes on running: the block must not wait for it
        self.bytes_out += len(data)

    def close_result(self) -> None:
        result, self.result = self.result, None
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                log.exception(
                    "Error closing the response iterable of %s (app %s)", self.describe(), self.conn.ctx.app_name
                )

    def length_broken(self, too_long: bool) -> None:
        name = self.conn.ctx.app_name
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
        name = self.conn.ctx.app_name
        if isinstance(exc_info[1], AppError):  # our words say what the app did; the traceback, where
            log.error("Error handling request %s: app %s broke the WSGI contract: %s",
                      self.describe(), name, exc_info[1], exc_info=exc_info)
        else:
            log.error("Error handling request %s: app %s raised", self.describe(), name, exc_info=exc_info)


def _check_chunk(data: Any) -> bytes:
    if type(data) is bytes:
        return data
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise AppError(f"yielded {type(data).__name__}, not bytes")


def _iterate(result: Any) -> Any:
    """iter(result), with an error that says what the app returned when it is not iterable."""
    try:
        return iter(result)
    except TypeError:
        raise AppError(f"returned {type(result).__name__}, not an iterable") from None


# -- inline --------------------------------------------------------------------


_R = TypeVar("_R")


def loop_hidden(step: Callable[[Exchange], _R]) -> Callable[[Exchange], _R]:
    """Run `step` (app code on the loop thread) with the running loop hidden, when needed.

    The app is plain synchronous code even though it runs on the loop's thread: code that
    refuses blocking work "in an async context" (Django's ORM, asgiref) must not see the loop.
    Switched once per entry, never nested: each switch costs a getpid() system call on 3.11.
    """

    def run(ex: Exchange) -> _R:
        ctx = ex.conn.ctx
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


def _run_inline(ex: Exchange) -> bool:
    """Run the app on the loop thread. True when the exchange is already complete."""
    conn = ex.conn
    response = ex
    ctx = conn.ctx
    ctx.outbox.before_app_call(ex.started)
    try:
        result = ctx.app(ex.environ, response.start_response)
        if type(result) is list and len(result) <= 1:  # the common fast path; lists have no close()
            body = _check_chunk(result[0]) if result else b""
            head = b"" if response.headers_sent else response.head()
            conn.transport.write(head + response.frame(body) + response.end() if body else head + response.end())
            ex.bytes_out = len(body)
            return conn.complete(ex)
        ex.result = result
        if isinstance(result, FileWrapper) and start_sendfile(ex, result):
            return False
        ex.iterator = _iterate(result)
    except BaseException:  # sys.exit() in an app is its bug, not a reason to hang or die
        return fail(ex, sys.exc_info())
    return _pump(ex)


def _pump(ex: Exchange) -> bool:
    """Pull the iterable while the transport accepts data; resume_writing calls again."""
    conn = ex.conn
    response = ex
    transport = conn.transport
    write = transport.write
    writelines = transport.writelines
    is_closing = transport.is_closing
    # Pulling the next block may run app code that blocks (a generator waiting on
    # something): what was written must leave first. A list's or tuple's iterator
    # (Django's HttpResponse) runs none, so its blocks may wait for the end of the pass.
    may_block = type(ex.iterator) not in _PLAIN_ITERATORS
    try:
        for data in ex.iterator:
            data = _check_chunk(data)
            if not data:
                continue
            if not response.headers_sent:
                head = response.head()
                if response.no_body:
                    write(head)
                    break  # HEAD, 204, 304: the head is all there is
                if len(data) < _COPY_LIMIT:
                    write(head + response.frame(data))
                else:
                    writelines((head, *response.frame_parts(data)))
            elif len(data) < _COPY_LIMIT:
                write(response.frame(data))
            else:
                writelines(response.frame_parts(data))  # big chunks: framed without a copy
            ex.bytes_out += len(data)
            if response.overflow:
                break  # (frame() cut the excess and length_broken() logged it)
            if ex.aborted or is_closing():
                # A failed write closes the transport at once, but connection_lost runs only
                # after we return: without this check an endless iterable spins the loop forever.
                ex.close_result()
                return False
            if conn.write_paused:
                return False
            if may_block:
                transport.flush()
        if not response.headers_sent:
            write(response.head())
        tail = response.end()
        if tail:
            write(tail)
    except BaseException:  # sys.exit() in an app is its bug, not a reason to hang or die
        return fail(ex, sys.exc_info())
    return conn.complete(ex)


run_inline = loop_hidden(_run_inline)
pump = loop_hidden(_pump)
close_result = loop_hidden(Exchange.close_result)  # close() is app code too


def fail(ex: Exchange, exc_info: Any) -> bool:
    """The app raised: a 500 if nothing was sent yet, else abort the connection."""
    ex.log_app_error(exc_info)
    conn = ex.conn
    ex.close_result()
    if ex.headers_sent:
        conn.abort()
        return False
    ex.keep_alive = False
    ex.code = 500
    conn.transport.write(_INTERNAL_ERROR)
    return conn.complete(ex)


def start_sendfile(ex: Exchange, wrapper: FileWrapper) -> bool:
    """Send a FileWrapper with os.sendfile if possible; False to fall back to iteration."""
    response = ex
    conn = ex.conn
    span = wrapper.sendfile_range()
    if span is None or response.headers_sent or conn.transport.get_write_buffer_size() or conn.ctx.tls:
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
    return conn.sendfile(ex, head, fd, offset, count)


# -- threaded ------------------------------------------------------------------


def run_threaded(ex: Exchange) -> None:
    """Body of a pool thread: run the app, hand the output to the loop in batches."""
    conn = ex.conn
    loop = conn.ctx.loop
    response = ex
    ex.thread_ident = threading.get_ident()
    ex.permits = threading.Semaphore(2)
    batch: list[bytes] = []
    pending = 0

    def flush() -> None:
        nonlocal pending
        if not batch:
            return
        data = b"".join(batch)
        batch.clear()
        pending = 0
        _acquire(ex)
        loop.call_soon_threadsafe(conn.write_from_thread, ex, data)

    def write(data: bytes) -> None:
        nonlocal pending
        data = _check_chunk(data)
        if data:
            if not response.headers_sent:
                batch.append(_head(ex))
            batch.append(response.frame(data))
            ex.bytes_out += len(data)
            flush()

    def start_response(status: Any, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        response.start_response(status, headers, exc_info)
        return write  # the thread's own write(); not stored on the exchange (a reference cycle)

    try:
        ex.result = result = conn.ctx.app(ex.environ, start_response)
        if isinstance(result, FileWrapper) and not batch and not response.headers_sent:
            loop.call_soon_threadsafe(conn.sendfile_from_thread, ex, _detach(ex, result))
            return
        in_memory = type(result) is list or type(result) is tuple
        for data in _iterate(result):
            data = _check_chunk(data)
            if not data:
                continue
            if not response.headers_sent:
                batch.append(_head(ex))
                if response.no_body:
                    break
            batch.append(response.frame(data))
            ex.bytes_out += len(data)
            pending += len(data)
            if response.overflow:
                break  # (frame() cut the excess and length_broken() logged it)
            # A list is already in memory: batch it. Anything else may block before its
            # next item (streaming, long polling), so what it gave must go out now.
            if pending >= _BATCH or not in_memory:
                flush()
        if not response.headers_sent:
            batch.append(_head(ex))
        batch.append(response.end())
    except ConnectionGone:
        ex.close_result()
        return
    except BaseException as exc:  # sys.exit() in an app is its bug, not a reason to hang or die
        exc_info = sys.exc_info()
        refused = _refusal(exc)
        if refused is None:
            ex.log_app_error(exc_info)
        ex.close_result()
        if response.headers_sent:
            loop.call_soon_threadsafe(conn.finish_from_thread, ex, b"", True)
            return
        response.keep_alive = False
        if refused is not None:  # the body broke the protocol: answer that, not a 500
            response.code = refused.status
            batch[:] = [error_response(refused.status, refused.reason, refused.detail)]
        else:
            response.code = 500
            batch[:] = [_INTERNAL_ERROR]
    else:
        ex.close_result()
    loop.call_soon_threadsafe(conn.finish_from_thread, ex, b"".join(batch))


def _head(ex: Exchange) -> bytes:
    """The head, saying Connection: close when a 100-continue body was left unread on the wire."""
    request = ex.request
    if not request.complete and type(request.body) is StreamingBody:
        ex.keep_alive = False
    return ex.head()


def _refusal(exc: BaseException) -> HTTPError | None:
    """The protocol error behind a failed wsgi.input read (bad chunk, too large), if that is what it was."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, BodyError) and isinstance(current.cause, HTTPError):
            return current.cause
        current = current.__cause__ or current.__context__
    return None


def _detach(ex: Exchange, wrapper: FileWrapper) -> FileWrapper:
    """Close the app's response here, in its own thread, keeping a private copy of the file.

    The loop sends the file later; closing the response is the app's business and
    belongs on the thread that ran it (Django closes its database connections in
    close(), per thread).
    """
    span = wrapper.sendfile_range()
    if span is None:
        return wrapper  # not an OS file: the loop reads it and closes it afterwards
    private = FileWrapper(os.fdopen(os.dup(span[0]), "rb"), wrapper.blksize)
    ex.close_result()
    ex.result = private
    return private


def _acquire(ex: Exchange) -> None:
    """Wait until the client has taken enough of the response to send more (flow control)."""
    permits = ex.permits
    assert permits is not None
    while not permits.acquire(timeout=1.0):
        if ex.aborted:
            break
    if ex.aborted:
        raise ConnectionGone()
    # Time spent waiting on a slow client is not the app hanging (--timeout): that is
    # --send-timeout's business. The app's clock restarts now.
    ex.active_since = time.monotonic()

