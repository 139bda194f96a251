"""Readable output for `corral dev`: short log lines and an access log a human scans.

Color only when the stream is a terminal, never when NO_COLOR is set (any
non-empty value, see no-color.org); FORCE_COLOR turns it on for pipes.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from ..http.errors import HTTPError
    from ..server.exchange import Exchange

RESET = "\033[0m"
DIM = "\033[2m"
BOLD = "\033[1m"
RED = "\033[31m"
GREEN = "\033[32m"
YELLOW = "\033[33m"
CYAN = "\033[36m"

_LEVEL_COLORS = {
    logging.DEBUG: DIM,
    logging.INFO: GREEN,
    logging.WARNING: YELLOW,
    logging.ERROR: RED,
    logging.CRITICAL: BOLD + RED,
}


def use_color(stream: IO[str], environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    if environ.get("NO_COLOR"):
        return False
    if environ.get("FORCE_COLOR"):
        return True
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Painter:
    """Wraps text in ANSI codes, or leaves it alone when color is off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, *codes: str) -> str:
        if not self.enabled or not codes:
            return text
        return "".join(codes) + text + RESET


class DevFormatter(logging.Formatter):
    """`12:03:44 INFO  message`: no date, no pid; the level colored by severity."""

    def __init__(self, color: bool) -> None:
        super().__init__()
        self.paint = Painter(color)

    def format(self, record: logging.LogRecord) -> str:
        when = time.strftime("%H:%M:%S", time.localtime(record.created))
        level = self.paint(f"{record.levelname:<7}", _LEVEL_COLORS.get(record.levelno, ""))
        text = f"{self.paint(when, DIM)} {level} {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure_logging(level: str, stream: IO[str] | None = None) -> None:
    """The `corral` logger, as observe.logs configures it for serve, in the dev format."""
    stream = stream or sys.stderr
    logger = logging.getLogger("corral")
    logger.handlers.clear()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(DevFormatter(use_color(stream)))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False


def status_color(status: int) -> str:
    if status >= 500:
        return RED
    if status >= 400:
        return YELLOW
    if status >= 300:
        return CYAN
    return GREEN


class DevAccessLog:
    """`12:03:45 GET /polls/?page=2 200 1.2kB 3ms`, one line per response."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stdout
        self.paint = Painter(use_color(self._stream))

    def __call__(self, ex: Exchange | None, error: HTTPError | None = None, peer: str = "") -> None:
        paint = self.paint
        when = paint(time.strftime("%H:%M:%S"), DIM)
        if ex is None:
            status = error.status if error is not None else 400
            reason = f" ({error})" if error is not None else ""
            line = f"{when} {paint(str(status), status_color(status))} bad request from {peer or '-'}{reason}\n"
        else:
            request = ex.request
            status = ex.response.code or 0
            target = request.target.decode("latin-1")
            millis = (time.monotonic() - ex.started) * 1000
            line = (
                f"{when} {paint(request.method, BOLD)} {target} "
                f"{paint(str(status or '-'), status_color(status))} {_size(ex.bytes_out)} {millis:.0f}ms\n"
            )
        try:
            self._stream.write(line)
            self._stream.flush()  # a developer watches this live, often through a pipe
        except (OSError, ValueError):
            pass


def _size(count: int) -> str:
    if count < 1000:
        return f"{count}B"
    if count < 1_000_000:
        return f"{count / 1000:.1f}kB"
    return f"{count / 1_000_000:.1f}MB"


def format_changes(paths: list[str], root: str) -> str:
    """`mysite/views.py` or `views.py and 2 more` (the first path named), relative to `root`."""
    shown = [_relative(path, root) for path in paths]
    if len(shown) == 1:
        return shown[0]
    return f"{shown[0]} and {len(shown) - 1} more"


def _relative(path: str, root: str) -> str:
    try:
        relative = os.path.relpath(path, root)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative
