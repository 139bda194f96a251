"""wsgi.file_wrapper: lets the connection send a real file with os.sendfile."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any


class FileWrapper:
    """Iterable over a file-like object; the server sends it zero-copy when it can."""

    def __init__(self, filelike: Any, blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while data := read(self.blksize):
            yield data

    def sendfile_range(self) -> tuple[int, int, int] | None:
        """(fd, offset, count) when the file is a regular OS file, else None."""
        try:
            fd = self.filelike.fileno()
            offset = self.filelike.tell()
            size = os.fstat(fd).st_size
        except (AttributeError, OSError, ValueError):
            return None
        if not isinstance(fd, int) or size <= offset:
            return None
        return fd, offset, size - offset
