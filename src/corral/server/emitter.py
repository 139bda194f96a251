"""The one pull loop: the app's response iterable -> framed bytes, for both runners.

`emit` takes blocks from `ex.iterator`, frames them (head with the first non-empty block,
chunked or Content-Length capped, nothing after the head of a HEAD/204/304) and hands
them to an `Output`. After each block the output says whether to go on: the inline
runner stops while the socket is paused and is called again on resume_writing (the
iterator stays on the exchange, so `emit` resumes where it stopped); the threaded runner
batches and waits for the loop instead. The app's exceptions propagate to the runner.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from .exchange import Exchange, check_chunk

_COPY_LIMIT = 16384  # smaller chunks are joined with their framing; larger go out as pieces


class Output(Protocol):
    def write(self, data: bytes) -> None: ...

    def writelines(self, pieces: tuple[bytes, ...]) -> None: ...

    def block_sent(self, ex: Exchange) -> bool:
        """A block went out: True to stop pulling for now."""


def emit(ex: Exchange, iterator: Iterator[Any], out: Output) -> bytes | None:
    """Pull until the iterable ends or `out` says stop: the response's last bytes, or None."""
    response = ex
    write = out.write
    for data in iterator:
        data = check_chunk(data)
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
                out.writelines((head, *response.frame_parts(data)))
        elif len(data) < _COPY_LIMIT:
            write(response.frame(data))
        else:
            out.writelines(response.frame_parts(data))  # big chunks: framed without a copy
        ex.bytes_out += len(data)
        if response.overflow:
            break  # (frame() cut the excess and length_broken() logged it)
        if out.block_sent(ex):
            return None
    head = b"" if response.headers_sent else response.head()
    return head + response.end()
