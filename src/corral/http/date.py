"""The Date header, formatted once a second instead of once a request."""

from __future__ import annotations

import time
from email.utils import formatdate


class DateCache:
    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def header(self) -> bytes:
        """Return b"Date: <IMF-fixdate>\\r\\n" for the current second."""
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = b"Date: " + formatdate(now, usegmt=True).encode("ascii") + b"\r\n"
        return self._value


date_cache = DateCache()
