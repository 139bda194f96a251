"""HTTP rules of file responses, sans-I/O: validators, conditions, ranges, encodings, types.

Everything here takes header values and file facts and returns decisions; nothing reads a
file or a socket, so every rule is unit-tested on its own (tests/unit/static).

Conditional requests follow RFC 9110 13.2.2: If-Match (412), else If-Unmodified-Since
(412); then If-None-Match (304 for GET/HEAD), else If-Modified-Since (304); Range and
If-Range only after those. A Range is honoured for GET only (RFC 9110 14.2), single ranges
only: a multi-range request gets the whole file (which RFC 9110 allows), not multipart.
"""

from __future__ import annotations

import mimetypes
import re
from email.utils import formatdate, parsedate_tz

# Django's ManifestStaticFilesStorage names: "app.3f2a1b9c8d7e.css" (12 hex digits of MD5).
_HASHED_RE = re.compile(r"\.[0-9a-f]{12}\.[^./]+(\.(gz|br))?\Z")
IMMUTABLE = "public, max-age=31536000, immutable"
PRIVATE_IMMUTABLE = "private, max-age=31536000, immutable"
PRIVATE = "private, no-cache"  # guarded files: browsers keep them, shared caches never do
_TEXT_TYPES = frozenset(("application/javascript", "application/json", "application/xml", "image/svg+xml"))
# Precompressed siblings, best first when the client likes them equally: brotli is smaller.
ENCODINGS = (("br", b".br"), ("gzip", b".gz"))
_DATE_CACHE_LIMIT = 256  # distinct If-Modified-Since values remembered; clients choose them
_TYPE_CACHE_LIMIT = 1024  # distinct file extensions
_parsed_dates: dict[str, int | None] = {}
_types: dict[str, str] = {}

NOT_MODIFIED = 304
PRECONDITION_FAILED = 412


def http_date(seconds: int) -> str:
    return formatdate(seconds, usegmt=True)


def parse_http_date(text: str) -> int | None:
    """Seconds since the epoch from an IMF-fixdate, RFC 850 or asctime date; None if invalid."""
    if text in _parsed_dates:
        return _parsed_dates[text]
    parts = parsedate_tz(text)
    value = None
    if parts is not None:
        import calendar

        year = parts[0]
        if year < 100:  # RFC 850's two-digit years (RFC 9110 5.6.7: within 50 years)
            year += 2000 if year < 70 else 1900
        value = calendar.timegm((year, *parts[1:6])) - (parts[9] or 0)
    if len(_parsed_dates) < _DATE_CACHE_LIMIT:
        _parsed_dates[text] = value
    return value


def make_etag(size: int, mtime_ns: int, encoding: str = "") -> str:
    """A strong validator from size and modification time; each encoding has its own."""
    suffix = f"-{encoding}" if encoding else ""
    return f'"{size:x}-{mtime_ns:x}{suffix}"'


def _etags(value: str) -> list[str]:
    return [tag.strip() for tag in value.split(",") if tag.strip()]


def _weak_match(value: str, etag: str) -> bool:
    if value.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.removeprefix("W/") == bare for tag in _etags(value))


def _strong_match(value: str, etag: str) -> bool:
    if value.strip() == "*":
        return True
    return not etag.startswith("W/") and etag in _etags(value)


def evaluate_preconditions(
    method: str,
    etag: str,
    mtime: int,
    if_match: str | None,
    if_unmodified_since: str | None,
    if_none_match: str | None,
    if_modified_since: str | None,
) -> int | None:
    """304 or 412 when a precondition decides the answer, else None (RFC 9110 13.2.2)."""
    if if_match is not None:
        if not _strong_match(if_match, etag):
            return PRECONDITION_FAILED
    elif if_unmodified_since is not None:
        since = parse_http_date(if_unmodified_since)
        if since is not None and mtime > since:
            return PRECONDITION_FAILED
    if if_none_match is not None:
        if _weak_match(if_none_match, etag):
            return NOT_MODIFIED if method in ("GET", "HEAD") else PRECONDITION_FAILED
    elif if_modified_since is not None and method in ("GET", "HEAD"):
        since = parse_http_date(if_modified_since)
        if since is not None and mtime <= since:
            return NOT_MODIFIED
    return None


UNSATISFIABLE = (-1, -1)


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single `bytes=` range; UNSATISFIABLE; or None to send it all.

    None covers what a server may ignore: another unit, bad syntax, several ranges.
    """
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash or not (first_text.isdigit() or first_text == "") or not (last_text.isdigit() or last_text == ""):
        return None
    if not first_text.isascii() or not last_text.isascii():
        return None
    if first_text == "":
        if last_text == "":
            return None
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return max(0, size - suffix), size - 1
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None  # invalid range-spec: ignored (RFC 9110 14.1.1)
    if first >= size:
        return UNSATISFIABLE
    return first, min(int(last_text), size - 1) if last_text else size - 1


def if_range_holds(value: str, etag: str, mtime: int) -> bool:
    """If-Range: the range applies only to the representation the client already has part of."""
    value = value.strip()
    if value.startswith('"') or value.startswith("W/"):
        return not value.startswith("W/") and value == etag  # strong comparison only
    date = parse_http_date(value)
    return date is not None and date == mtime


def select_encoding(accept_encoding: str | None, available: tuple[str, ...]) -> str:
    """The precompressed encoding to send ("" for the file itself), by the client's q-values.

    q=0 refuses a coding; `*` stands for codings not named; x-gzip is gzip.
    """
    if not accept_encoding or not available:
        return ""
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, _, params = item.partition(";")
        name = name.strip().lower()
        if not name:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, number = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(number.strip())
                except ValueError:
                    q = 0.0
        weights["gzip" if name == "x-gzip" else name] = q
    star = weights.get("*", 0.0)
    best, best_q = "", 0.0
    for encoding in available:  # in ENCODINGS order: ties go to the smaller
        q = weights.get(encoding, star)
        if q > best_q:
            best, best_q = encoding, q
    return best  # any acceptable (q > 0) coding beats identity: the bytes are the same, fewer


def content_type(name: str) -> str:
    """Content-Type by file name; text types say charset=utf-8 (what collectstatic writes)."""
    dot = name.rfind(".")
    extension = name[dot:].lower() if dot > name.rfind("/") else ""
    cached = _types.get(extension)
    if cached is not None:
        return cached
    kind, encoding = mimetypes.guess_type("file" + extension, strict=False)
    if encoding is not None:
        kind = {"gzip": "application/gzip", "br": "application/x-brotli"}.get(encoding, "application/octet-stream")
    elif kind is None:
        kind = "application/octet-stream"
    elif kind.startswith("text/") or kind in _TEXT_TYPES:
        kind += "; charset=utf-8"
    if len(_types) < _TYPE_CACHE_LIMIT:
        _types[extension] = kind
    return kind


def is_hashed(name: str) -> bool:
    return _HASHED_RE.search(name) is not None


def cache_control(name: str, default: str, private: bool) -> str:
    """Hashed names never change: cache for a year. Others get the configured default;
    guarded files are never stored by shared caches."""
    if is_hashed(name):
        return PRIVATE_IMMUTABLE if private else IMMUTABLE
    return PRIVATE if private else default
