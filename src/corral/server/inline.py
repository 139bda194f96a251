"""The inline runner (`--threads 1`): the app runs on the loop thread.

The response iterable is pulled only while the sink accepts more (`pump`); when the
sink pauses writing, pulling stops and the connection's resume_writing calls `resume`.
A one-block list (most responses) skips the emitter: head, body and end in one write.
"""

from __future__ import annotations

import sys

from ..wsgi.file_wrapper import FileWrapper
from .emitter import emit
from .exchange import Exchange, check_chunk, fail, iterate, loop_hidden, start_sendfile
from .sink import ResponseSink

_PLAIN_ITERATORS: tuple[type, ...] = (type(iter([])), type(iter(())))


def _run(ex: Exchange) -> None:
    """Run the app on the loop thread; the exchange completes now or on a later resume."""
    response = ex
    ctx = ex.ctx
    ctx.outbox.before_app_call(ex.started)
    try:
        result = ctx.app(ex.environ, response.start_response)
        if type(result) is list and len(result) <= 1:  # the common fast path; lists have no close()
            body = check_chunk(result[0]) if result else b""
            head = b"" if response.headers_sent else response.head()
            ex.bytes_out = len(body)
            ex.finish(head + response.frame(body) + response.end() if body else head + response.end())
            return
        ex.result = result
        if isinstance(result, FileWrapper) and start_sendfile(ex, result):
            return
        ex.iterator = iterate(result)
    except BaseException:  # sys.exit() in an app is its bug, not a reason to hang or die
        fail(ex, sys.exc_info())
        return
    _pump(ex)


class _SinkOutput:
    """The emitter's output on the loop thread: the sink itself, checked after each block."""

    def __init__(self, sink: ResponseSink, may_block: bool) -> None:
        self.sink = sink
        self.may_block = may_block

    def write(self, data: bytes) -> None:
        self.sink.write(data)

    def writelines(self, pieces: tuple[bytes, ...]) -> None:
        self.sink.writelines(pieces)

    def block_sent(self, ex: Exchange) -> bool:
        sink = self.sink
        if ex.aborted or sink.is_closing():
            # A failed write closes the transport at once, but connection_lost runs only
            # after we return: without this check an endless iterable spins the loop forever.
            ex.close_result()
            return True
        if sink.write_paused:
            return True
        if self.may_block:
            sink.flush()
        return False


def _pump(ex: Exchange) -> None:
    """Pull the iterable while the sink accepts data; `resume` calls again."""
    # Pulling the next block may run app code that blocks (a generator waiting on
    # something): what was written must leave first. A list's or tuple's iterator
    # (Django's HttpResponse) runs none, so its blocks may wait for the end of the pass.
    may_block = type(ex.iterator) not in _PLAIN_ITERATORS
    try:
        tail = emit(ex, ex.iterator, _SinkOutput(ex.sink, may_block))
    except BaseException:  # sys.exit() in an app is its bug, not a reason to hang or die
        fail(ex, sys.exc_info())
        return
    if tail is not None:
        ex.finish(tail)


run_inline = loop_hidden(_run)
pump = loop_hidden(_pump)


def resume(ex: Exchange) -> None:
    """The sink drained: pull more, unless a sendfile (not the iterable) is sending."""
    if ex.iterator is not None and ex.sendfile is None:
        pump(ex)
