"""Zero-copy sending of a file response with os.sendfile.

The transport owns the socket, so we write through a duplicate of its file
descriptor, and only when the transport's own buffer is empty (otherwise the
bytes would interleave). The head goes first, then the file, each write retried
when the socket is writable again: a slow reader costs no thread and no memory.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

_MAX_SLICE = 1 << 20  # per sendfile() call: keeps one fast client from hogging the loop


class SendfileJob:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        socket_fd: int,
        head: bytes,
        file_fd: int,
        offset: int,
        count: int,
        on_done: Callable[[bool], None],
    ) -> None:
        self._loop = loop
        self._fd = os.dup(socket_fd)
        self._head = memoryview(head)
        self._file_fd = file_fd
        self._offset = offset
        self._remaining = count
        self._on_done = on_done
        self._active = True
        self.sent = 0

    def start(self) -> None:
        self._step()
        if self._active:
            self._loop.add_writer(self._fd, self._step)

    def cancel(self) -> None:
        if self._active:
            self._stop()

    def _step(self) -> None:
        try:
            while self._head:
                n = os.write(self._fd, self._head)
                self._head = self._head[n:]
            while self._remaining > 0:
                n = os.sendfile(self._fd, self._file_fd, self._offset, min(self._remaining, _MAX_SLICE))
                if n == 0:  # the file shrank under us: the response is short
                    self._finish(False)
                    return
                self._offset += n
                self._remaining -= n
                self.sent += n
        except BlockingIOError:
            return
        except OSError:
            self._finish(False)
            return
        self._finish(True)

    def _stop(self) -> None:
        self._active = False
        self._loop.remove_writer(self._fd)
        os.close(self._fd)

    def _finish(self, ok: bool) -> None:
        if self._active:
            self._stop()
            self._on_done(ok)
