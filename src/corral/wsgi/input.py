"""Request bodies as `wsgi.input` streams.

`SpooledBody` collects a body that arrives before the app runs: in memory up to
`body_buffer_size`, then in an anonymous temporary file, so a large upload costs
disk, not RAM. `StreamingBody` serves `Expect: 100-continue` requests, where the
app runs first and its first read is what asks the client for the body: the
event loop feeds it, an app thread blocks on it.
"""

from __future__ import annotations

import io
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import BinaryIO

EMPTY = b""


class EmptyInput:
    """wsgi.input for requests without a body: always at end, shared, read-only."""

    __slots__ = ()

    def read(self, size: int | None = -1) -> bytes:
        return EMPTY

    def readline(self, size: int | None = -1) -> bytes:
        return EMPTY

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return []

    def __iter__(self) -> Iterator[bytes]:
        return iter(())


EMPTY_INPUT = EmptyInput()


class SpooledBody:
    """A body sink that stays in memory up to `limit` bytes, then spills to disk.

    In memory the chunks are joined once, into bytes that BytesIO shares rather than
    copies (and whose full read() returns them as they are): one copy of the body, not three.
    """

    __slots__ = ("_limit", "_chunks", "_size", "_file", "stream")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._chunks: list[bytes] = []
        self._size = 0
        self._file: BinaryIO | None = None
        self.stream: BinaryIO | None = None

    def write(self, data: bytes) -> None:
        if self._file is not None:
            self._file.write(data)
            return
        self._chunks.append(data)
        self._size += len(data)
        if self._size > self._limit:
            import tempfile  # at the first spill: most workers never need it (shutil, random)

            self._file = tempfile.TemporaryFile(prefix="corral-body-")
            self._file.writelines(self._chunks)
            self._chunks = []

    def finish(self) -> None:
        if self._file is not None:
            self._file.seek(0)
            self.stream = self._file
        else:
            chunks = self._chunks
            self.stream = io.BytesIO(chunks[0] if len(chunks) == 1 else b"".join(chunks))
            self._chunks = []

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class BodyError(OSError):
    """wsgi.input could not deliver the body; `cause` says why (an HTTPError carries its status)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"request body not received: {cause}")
        self.cause = cause


class StreamingBody(io.RawIOBase):
    """A blocking reader for a body that arrives while the app runs (100-continue).

    `on_first_read` runs once, from the reading thread, before it waits: the
    connection uses it to send `100 Continue`. `on_drained` tells the loop it may
    resume reading the socket after it paused for a full buffer.
    """

    def __init__(self, on_first_read: Callable[[], None], high_water: int) -> None:
        super().__init__()
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._done = False
        self._failed: BaseException | None = None
        self._cond = threading.Condition()
        self._on_first_read: Callable[[], None] | None = on_first_read
        self._high_water = high_water
        self.on_drained: Callable[[], None] | None = None

    # -- loop side ----------------------------------------------------------------
    def write(self, data: bytes) -> int:  # type: ignore[override]
        with self._cond:
            self._chunks.append(bytes(data))
            self._buffered += len(data)
            self._cond.notify_all()
        return len(data)

    @property
    def full(self) -> bool:
        return self._buffered > self._high_water

    def finish(self) -> None:
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def fail(self, error: BaseException) -> None:
        with self._cond:
            self._failed = error
            self._cond.notify_all()

    @property
    def done(self) -> bool:
        return self._done

    # -- app side -----------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def _next_chunk(self, timeout: float | None = None) -> bytes:
        if self._on_first_read is not None:
            callback, self._on_first_read = self._on_first_read, None
            callback()
        with self._cond:
            while not self._chunks and not self._done and self._failed is None:
                self._cond.wait(timeout)
            if self._failed is not None and not self._chunks:
                raise BodyError(self._failed)
            if not self._chunks:
                return EMPTY
            chunk = self._chunks.popleft()
            self._buffered -= len(chunk)
            was_full = self._buffered + len(chunk) > self._high_water
        if was_full and self.on_drained is not None:
            self.on_drained()
        return chunk

    def _unread(self, data: bytes) -> None:
        if data:
            with self._cond:
                self._chunks.appendleft(data)
                self._buffered += len(data)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while chunk := self._next_chunk():
                parts.append(chunk)
            return b"".join(parts)
        if size == 0:
            return EMPTY
        chunk = self._next_chunk()
        if len(chunk) > size:
            self._unread(chunk[size:])
            chunk = chunk[:size]
        return chunk

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        parts: list[bytes] = []
        total = 0
        while size is None or size < 0 or total < size:
            chunk = self._next_chunk()
            if not chunk:
                break
            end = chunk.find(b"\n") + 1
            limit = (size - total) if size is not None and size >= 0 else len(chunk)
            cut = min(end or len(chunk), limit)
            parts.append(chunk[:cut])
            total += cut
            self._unread(chunk[cut:])
            if end and end <= cut:
                break
        return b"".join(parts)

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return list(self)
