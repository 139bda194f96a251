"""dev/output.py: color rules (NO_COLOR, FORCE_COLOR, terminals), log and access lines, change summaries."""

from __future__ import annotations

import io
import logging
import re
import time
from types import SimpleNamespace
from typing import Any

import pytest

from corral.dev.output import (
    BOLD,
    CYAN,
    DIM,
    GREEN,
    RED,
    RESET,
    YELLOW,
    DevAccessLog,
    DevFormatter,
    Painter,
    configure_logging,
    format_changes,
    status_color,
    use_color,
)
from corral.http.errors import ContentTooLarge

CLOCK = r"\d\d:\d\d:\d\d"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("stream", "environ", "expected"), [
    (Terminal(), {}, True),
    (io.StringIO(), {}, False),  # a pipe or a file: no codes in it
    (Terminal(), {"NO_COLOR": "1"}, False),
    (Terminal(), {"NO_COLOR": ""}, True),  # no-color.org: only a non-empty value counts
    (io.StringIO(), {"FORCE_COLOR": "1"}, True),
    (Terminal(), {"NO_COLOR": "1", "FORCE_COLOR": "1"}, False),  # NO_COLOR wins
    (object(), {}, False),  # not even a stream
])
def test_use_color(stream: Any, environ: dict[str, str], expected: bool) -> None:
    assert use_color(stream, environ) is expected


def test_use_color_on_a_closed_stream() -> None:
    closed = io.StringIO()
    closed.close()  # isatty() raises ValueError
    assert use_color(closed, {}) is False


def test_painter() -> None:
    assert Painter(True)("x", RED) == f"{RED}x{RESET}"
    assert Painter(True)("x", BOLD, RED) == f"{BOLD}{RED}x{RESET}"
    assert Painter(True)("x") == "x"
    assert Painter(False)("x", RED) == "x"


@pytest.mark.parametrize(("status", "color"), [(200, GREEN), (204, GREEN), (301, CYAN), (304, CYAN),
                                               (404, YELLOW), (499, YELLOW), (500, RED), (503, RED)])
def test_status_color(status: int, color: str) -> None:
    assert status_color(status) == color


def record(level: int, message: str, *args: object, exc_info: Any = None) -> logging.LogRecord:
    return logging.LogRecord("corral", level, __file__, 1, message, args, exc_info)


def test_formatter_plain() -> None:
    line = DevFormatter(color=False).format(record(logging.WARNING, "worker %d exited", 7))
    assert re.fullmatch(rf"{CLOCK} WARNING worker 7 exited", line), line


def test_formatter_colors_the_level_and_dims_the_time() -> None:
    line = DevFormatter(color=True).format(record(logging.ERROR, "boom"))
    assert re.fullmatch(rf"{re.escape(DIM)}{CLOCK}{re.escape(RESET)} {re.escape(RED)}ERROR  {re.escape(RESET)} boom",
                        line), repr(line)


def test_formatter_appends_the_exception() -> None:
    try:
        raise KeyError("missing")
    except KeyError:
        import sys

        line = DevFormatter(color=False).format(record(logging.ERROR, "failed", exc_info=sys.exc_info()))
    assert line.splitlines()[0].endswith("ERROR   failed")
    assert "Traceback (most recent call last):" in line and line.endswith("KeyError: 'missing'")


def test_configure_logging_replaces_handlers_and_stops_propagation() -> None:
    logger = logging.getLogger("corral")
    saved = logger.handlers[:], logger.level, logger.propagate
    stream = io.StringIO()
    try:
        configure_logging("debug", stream)
        configure_logging("info", stream)  # twice: still one handler, so one line per message
        assert len(logger.handlers) == 1 and logger.level == logging.INFO and logger.propagate is False
        logging.getLogger("corral.test").debug("hidden")
        logging.getLogger("corral.test").info("shown %s", "once")
        assert re.fullmatch(rf"{CLOCK} INFO    shown once\n", stream.getvalue()), stream.getvalue()
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


def exchange(method: str = "GET", target: bytes = b"/polls/?page=2", code: int | None = 200,
             bytes_out: int = 1234, took: float = 0.003) -> Any:
    return SimpleNamespace(request=SimpleNamespace(method=method, target=target),
                           response=SimpleNamespace(code=code), bytes_out=bytes_out, started=time.monotonic() - took)


def test_access_line() -> None:
    stream = io.StringIO()
    DevAccessLog(stream)(exchange())
    assert re.fullmatch(rf"{CLOCK} GET /polls/\?page=2 200 1\.2kB \d+ms\n", stream.getvalue()), stream.getvalue()


@pytest.mark.parametrize(("count", "shown"), [(0, "0B"), (999, "999B"), (1000, "1.0kB"), (1500, "1.5kB"),
                                              (2_500_000, "2.5MB")])
def test_access_line_sizes(count: int, shown: str) -> None:
    stream = io.StringIO()
    DevAccessLog(stream)(exchange(bytes_out=count))
    assert f" 200 {shown} " in stream.getvalue()


def test_access_line_without_a_status_and_with_latin1_target() -> None:
    stream = io.StringIO()
    DevAccessLog(stream)(exchange(code=None, target="/caf\xe9".encode("latin-1")))
    assert " GET /caf\xe9 - " in stream.getvalue()


def test_access_line_for_a_bad_request() -> None:
    stream = io.StringIO()
    log = DevAccessLog(stream)
    log(None, ContentTooLarge("body over 1 MB"), peer="10.0.0.7")
    log(None)
    first, second = stream.getvalue().splitlines()
    assert re.fullmatch(rf"{CLOCK} 413 bad request from 10\.0\.0\.7 \(body over 1 MB\)", first), first
    assert re.fullmatch(rf"{CLOCK} 400 bad request from -", second), second


def test_access_line_in_color_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    stream = Terminal()
    DevAccessLog(stream)(exchange(code=404))
    assert f"{BOLD}GET{RESET}" in stream.getvalue() and f"{YELLOW}404{RESET}" in stream.getvalue()


def test_access_log_survives_a_closed_stream() -> None:
    stream = io.StringIO()
    log = DevAccessLog(stream)
    stream.close()
    log(exchange())  # the developer closed the pipe: the server goes on


def test_format_changes(tmp_path: Any) -> None:
    root = str(tmp_path)
    assert format_changes([f"{root}/mysite/views.py"], root) == "mysite/views.py"
    assert format_changes([f"{root}/views.py", f"{root}/a.py", f"{root}/b.py"], root) == "views.py and 2 more"
    assert format_changes(["/elsewhere/settings.py"], root) == "/elsewhere/settings.py"  # outside: shown whole
