"""The threaded runner: the app runs on a pool thread, its output is written by the loop.

The thread pulls the response through the emitter into a batch, handed to the loop with
`call_soon_threadsafe` (`_deliver`) when it reaches _BATCH bytes, or after every block
when the iterable may block between blocks (a generator: what it gave must go out now).
A semaphore of two permits paces the thread: each hand-off takes one, the loop gives it
back once the bytes are written, or keeps it while the sink is paused (`resume` gives
back what was kept), so a fast app never races ahead of a slow client by more than two
batches. A FileWrapper goes to the loop whole (sendfile, or read there, paced by the
socket): from then on the loop owns the response and the thread is free.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from ..http.errors import HTTPError
from ..wsgi.file_wrapper import FileWrapper
from ..wsgi.input import BodyError
from ..wsgi.response import error_response
from .emitter import emit
from .exchange import INTERNAL_ERROR, Exchange, check_chunk, iterate, start_sendfile
from .inline import pump

_BATCH = 65536  # bytes gathered before one hand-off to the loop
_PERMITS = 2  # hand-offs in flight between the thread and the loop
_WAIT_SLICE = 1.0  # seconds between checks that the client is still there while paced


class ConnectionGone(Exception):
    """The client went away while the app was still producing the response."""


class _Batch:
    """The emitter's output on the app thread: bytes gathered, then handed to the loop."""

    def __init__(self, ex: Exchange, in_memory: bool) -> None:
        self.ex = ex
        self.pieces: list[bytes] = []
        self.in_memory = in_memory
        self.flushed_at = 0  # ex.bytes_out at the last hand-off

    def write(self, data: bytes) -> None:
        self.pieces.append(data)

    def writelines(self, pieces: tuple[bytes, ...]) -> None:
        self.pieces.extend(pieces)

    def block_sent(self, ex: Exchange) -> bool:
        # A list is already in memory: batch it. Anything else may block before its
        # next item (streaming, long polling), so what it gave must go out now.
        if ex.bytes_out - self.flushed_at >= _BATCH or not self.in_memory:
            self.flush()
        return False

    def flush(self) -> None:
        pieces = self.pieces
        if not pieces:
            return
        data = b"".join(pieces)
        pieces.clear()
        ex = self.ex
        self.flushed_at = ex.bytes_out
        _acquire(ex)
        ex.ctx.loop.call_soon_threadsafe(_deliver, ex, data)


def run_threaded(ex: Exchange) -> None:
    """Body of a pool thread: run the app, hand the output to the loop in batches."""
    loop = ex.ctx.loop
    response = ex
    ex.thread_ident = threading.get_ident()
    ex.permits = threading.Semaphore(_PERMITS)
    batch = _Batch(ex, True)

    def write(data: bytes) -> None:
        data = check_chunk(data)
        if data:
            if not response.headers_sent:
                batch.write(response.head())
            batch.write(response.frame(data))
            ex.bytes_out += len(data)
            batch.flush()

    def start_response(status: Any, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        response.start_response(status, headers, exc_info)
        return write  # the thread's own write(); not stored on the exchange (a reference cycle)

    tail = b""
    try:
        ex.result = result = ex.ctx.app(ex.environ, start_response)
        if isinstance(result, FileWrapper) and not batch.pieces and not response.headers_sent:
            loop.call_soon_threadsafe(_sendfile, ex, _detach(ex, result))
            return
        batch.in_memory = type(result) is list or type(result) is tuple
        # (Not kept on ex.iterator: the watchdog tells an exchange the loop sends by it.)
        tail = emit(ex, iterate(result), batch) or b""
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
            loop.call_soon_threadsafe(_finish, ex, b"", True)
            return
        response.keep_alive = False
        if refused is not None:  # the body broke the protocol: answer that, not a 500
            response.code = refused.status
            tail = error_response(refused.status, refused.reason, refused.detail)
        else:
            response.code = 500
            tail = INTERNAL_ERROR
        batch.pieces.clear()
    else:
        ex.close_result()
    batch.pieces.append(tail)
    loop.call_soon_threadsafe(_finish, ex, b"".join(batch.pieces))


# -- on the loop thread ------------------------------------------------------------


def _deliver(ex: Exchange, data: bytes) -> None:
    if ex.aborted or ex.timed_out:
        return
    sink = ex.sink
    sink.write(data)
    permits = ex.permits
    assert permits is not None
    if sink.write_paused:
        ex.held_permits += 1  # given back by resume()
    else:
        permits.release()


def _finish(ex: Exchange, data: bytes, abort: bool = False) -> None:
    if ex.aborted or ex.timed_out:
        return
    if abort:
        ex.sink.abort()
        return
    ex.finish(data)


def _sendfile(ex: Exchange, wrapper: FileWrapper) -> None:
    ex.permits = None  # the loop owns the response now: no thread to pace
    if ex.aborted:
        ex.close_result()
        return
    if not start_sendfile(ex, wrapper):
        ex.iterator = iter(wrapper)  # not a plain file (or TLS): read it here, paced by the socket
        pump(ex)


def resume(ex: Exchange) -> None:
    """The sink drained: give the thread back the permits kept while it was paused."""
    permits = ex.permits
    assert permits is not None
    for _ in range(ex.held_permits):
        permits.release()
    ex.held_permits = 0


def wake(ex: Exchange) -> None:
    """The client is gone (ex.aborted is set): let a waiting thread see it at once."""
    permits = ex.permits
    assert permits is not None
    for _ in range(ex.held_permits + _PERMITS):
        permits.release()
    ex.held_permits = 0


# -- on the app thread -------------------------------------------------------------


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
    while not permits.acquire(timeout=_WAIT_SLICE):
        if ex.aborted:
            break
    if ex.aborted:
        raise ConnectionGone()
    # Time spent waiting on a slow client is not the app hanging (--timeout): that is
    # --send-timeout's business. The app's clock restarts now.
    ex.active_since = ex.ctx.clock()
