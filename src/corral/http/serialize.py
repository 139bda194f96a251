"""Response heads and body framing as bytes; status lines are built once."""

from __future__ import annotations

import re

from .date import date_cache

# RFC 9110 token characters: what a header name may contain.
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")

_status_lines: dict[tuple[str, str], bytes] = {}
_valid_names: set[str] = set()


class UnsafeHeader(ValueError):
    """An app-set header that would corrupt or split the response."""


def status_line(version: str, status: str) -> bytes:
    key = (version, status)
    line = _status_lines.get(key)
    if line is None:
        if _FORBIDDEN_IN_VALUE.search(status) or not re.match(r"[1-9][0-9]{2} ", status + " "):
            raise UnsafeHeader(f"invalid status {status!r}")
        line = f"HTTP/{version} {status}\r\n".encode("latin-1")
        if len(_status_lines) < 1024:  # apps with odd reason phrases can't grow it forever
            _status_lines[key] = line
    return line


def check_header(name: str, value: str) -> None:
    """Raise UnsafeHeader for names that are not tokens and values with CR/LF/NUL."""
    if name not in _valid_names:
        if not _TOKEN_RE.match(name):
            raise UnsafeHeader(f"invalid header name {name!r}")
        if len(_valid_names) < 4096:
            _valid_names.add(name)
    if _FORBIDDEN_IN_VALUE.search(value):
        raise UnsafeHeader(f"header {name!r} has a value with CR, LF or NUL")


def build_head(status_bytes: bytes, header_lines: list[str], server: bytes) -> bytes:
    """Join the status line, Date, Server and the given `Name: value` lines."""
    return b"".join(
        (
            status_bytes,
            date_cache.header(),
            server,
            "".join(header_lines).encode("latin-1"),
            b"\r\n",
        )
    )


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
