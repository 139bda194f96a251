"""Bounds on what an HTTP/2 peer may make the server do, and the rate counters behind them.

How this works: each HTTP/2 connection has one `FloodGuard`. The connection reports the
frames that cost the server work but carry no request (a stream the client resets, a
PING, a SETTINGS frame, an empty DATA frame) and the guard counts them in one-second
windows; past a bound, `note` returns False and the connection ends with GOAWAY
ENHANCE_YOUR_CALM. These are the attacks RFC 9113 10.5 names and their CVEs:
rapid reset (CVE-2023-44487), SETTINGS and PING floods (CVE-2019-9515, -9512), empty
frames (CVE-2019-9518). The limits that the h2 library enforces for us are set here too.
"""

from __future__ import annotations

from typing import Final

from .limits import Limits

# Streams one connection may have open at once (advertised in SETTINGS); RFC 9113
# recommends no fewer than 100, and browsers open about that many.
MAX_CONCURRENT_STREAMS: Final = 100
# The decoded header list a stream may carry is --max-header-size plus HPACK's 32 bytes
# per field and room for the pseudo-headers (SETTINGS_MAX_HEADER_LIST_SIZE): enforced while
# HPACK decodes, so a small block that expands hugely (the HPACK bomb) is cut early.
_PSEUDO_ROOM: Final = 4096


def header_list_size(limits: Limits) -> int:
    return limits.max_header_size + 32 * limits.max_headers + limits.max_request_line + _PSEUDO_ROOM

# Per-stream receive window: an upload may be this far ahead of the app; bodies are
# spooled (memory, then a file) and acknowledged as they arrive.
INITIAL_WINDOW_SIZE: Final = 1 << 20
# The connection's receive window, raised at once from RFC 9113's 65,535 so that many
# uploading streams are not serialised behind each other.
CONNECTION_WINDOW: Final = 16 << 20
# Response bytes held per stream before its exchange stops pulling the app (write_paused).
STREAM_HIGH_WATER: Final = 65536
# Per second, on one connection. A browser resets a handful of streams (navigation, a
# cancelled fetch); thousands a second is the rapid reset attack.
MAX_RESETS_PER_SECOND: Final = 200
# PING and SETTINGS frames: a client sends a few; each one makes us write an ACK.
MAX_CONTROL_PER_SECOND: Final = 100
# DATA frames without data (and without END_STREAM), HEADERS-less PRIORITY frames.
MAX_EMPTY_PER_SECOND: Final = 200

RESET: Final = 0
CONTROL: Final = 1
EMPTY: Final = 2
_BOUNDS: Final = (MAX_RESETS_PER_SECOND, MAX_CONTROL_PER_SECOND, MAX_EMPTY_PER_SECOND)
_NAMES: Final = ("reset streams", "PING/SETTINGS frames", "empty frames")


class FloodGuard:
    """Counts costly frames per one-second window; False from note() when one kind exceeds its bound."""

    __slots__ = ("_window", "_counts", "exceeded")

    def __init__(self) -> None:
        self._window = 0.0
        self._counts = [0, 0, 0]
        self.exceeded = ""  # what went over its bound, for the log

    def note(self, kind: int, now: float) -> bool:
        if now - self._window >= 1.0:
            self._window = now
            self._counts = [0, 0, 0]
        counts = self._counts
        counts[kind] += 1
        if counts[kind] > _BOUNDS[kind]:
            self.exceeded = f"more than {_BOUNDS[kind]} {_NAMES[kind]} a second"
            return False
        return True
