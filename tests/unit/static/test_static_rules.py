"""The sans-I/O rules of file responses: preconditions, ranges, encodings, types, caching."""

from __future__ import annotations

import pytest

from corral.static import rules
from corral.static.rules import NOT_MODIFIED, PRECONDITION_FAILED, UNSATISFIABLE

ETAG = '"1000-abc"'
MTIME = 784111777  # Sun, 06 Nov 1994 08:49:37 GMT
DATE = "Sun, 06 Nov 1994 08:49:37 GMT"
EARLIER = "Sun, 06 Nov 1994 08:49:36 GMT"


def decide(method: str = "GET", **headers: str) -> int | None:
    return rules.evaluate_preconditions(
        method,
        ETAG,
        MTIME,
        headers.get("if_match"),
        headers.get("if_unmodified_since"),
        headers.get("if_none_match"),
        headers.get("if_modified_since"),
    )


def test_http_dates_in_all_three_formats() -> None:
    assert rules.parse_http_date(DATE) == MTIME
    assert rules.parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == MTIME  # RFC 850
    assert rules.parse_http_date("Sun Nov  6 08:49:37 1994") == MTIME  # asctime
    assert rules.parse_http_date("yesterday") is None
    assert rules.http_date(MTIME) == DATE


def test_if_none_match_gives_304_and_wins_over_if_modified_since() -> None:
    assert decide(if_none_match=ETAG) == NOT_MODIFIED
    assert decide(if_none_match=f'"other", {ETAG}') == NOT_MODIFIED
    assert decide(if_none_match=f"W/{ETAG}") == NOT_MODIFIED  # weak comparison
    assert decide(if_none_match="*") == NOT_MODIFIED
    assert decide("HEAD", if_none_match=ETAG) == NOT_MODIFIED
    # RFC 9110 13.2.2: with If-None-Match present, If-Modified-Since is not evaluated.
    assert decide(if_none_match='"other"', if_modified_since=DATE) is None


def test_if_modified_since() -> None:
    assert decide(if_modified_since=DATE) == NOT_MODIFIED
    assert decide(if_modified_since="Mon, 07 Nov 1994 00:00:00 GMT") == NOT_MODIFIED
    assert decide(if_modified_since=EARLIER) is None
    assert decide(if_modified_since="not a date") is None


def test_if_match_and_if_unmodified_since_give_412() -> None:
    assert decide(if_match='"other"') == PRECONDITION_FAILED
    assert decide(if_match=f"W/{ETAG}") == PRECONDITION_FAILED  # strong comparison
    assert decide(if_match=ETAG) is None
    assert decide(if_unmodified_since=EARLIER) == PRECONDITION_FAILED
    assert decide(if_unmodified_since=DATE) is None
    # If-Match present: If-Unmodified-Since is ignored.
    assert decide(if_match=ETAG, if_unmodified_since=EARLIER) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bytes=0-9", (0, 9)),
        ("bytes=10-", (10, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=-1000", (0, 99)),
        ("bytes=90-1000", (90, 99)),
        ("bytes=99-99", (99, 99)),
        ("bytes=100-", UNSATISFIABLE),
        ("bytes=-0", UNSATISFIABLE),
        ("bytes=5-1", None),  # invalid: ignored
        ("bytes=0-1,5-6", None),  # several ranges: the whole file
        ("items=0-1", None),
        ("bytes=a-b", None),
        ("bytes=-", None),
        ("bytes=+1-2", None),
        ("bytes=١-2", None),  # non-ASCII digits are not HTTP digits
        (" BYTES = 0-0", (0, 0)),
    ],
)
def test_ranges(value: str, expected: tuple[int, int] | None) -> None:
    assert rules.parse_range(value, 100) == expected


def test_range_of_an_empty_file_is_unsatisfiable() -> None:
    assert rules.parse_range("bytes=0-", 0) == UNSATISFIABLE
    assert rules.parse_range("bytes=-5", 0) == UNSATISFIABLE


def test_if_range() -> None:
    assert rules.if_range_holds(ETAG, ETAG, MTIME)
    assert not rules.if_range_holds('"other"', ETAG, MTIME)
    assert not rules.if_range_holds(f"W/{ETAG}", ETAG, MTIME)  # weak validators never match
    assert rules.if_range_holds(DATE, ETAG, MTIME)
    assert not rules.if_range_holds(EARLIER, ETAG, MTIME)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("gzip, deflate, br", "br"),
        ("gzip", "gzip"),
        ("x-gzip", "gzip"),
        ("br;q=0.5, gzip;q=0.9", "gzip"),
        ("br;q=0, gzip", "gzip"),
        ("br;q=0, gzip;q=0", ""),
        ("*", "br"),
        ("*;q=0.1, br;q=0", "gzip"),
        ("identity", ""),
        ("", ""),
        (None, ""),
        ("gzip;q=oops", ""),
    ],
)
def test_encoding_choice(accept: str | None, expected: str) -> None:
    assert rules.select_encoding(accept, ("br", "gzip")) == expected


def test_encoding_choice_is_limited_to_the_siblings_on_disk() -> None:
    assert rules.select_encoding("br, gzip", ("gzip",)) == "gzip"
    assert rules.select_encoding("br", ("gzip",)) == ""


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("app.css", "text/css; charset=utf-8"),
        ("app.JS", "text/javascript; charset=utf-8"),
        ("data.json", "application/json; charset=utf-8"),
        ("logo.svg", "image/svg+xml; charset=utf-8"),
        ("photo.png", "image/png"),
        ("archive.tar.gz", "application/gzip"),
        ("README", "application/octet-stream"),
        ("dir.d/README", "application/octet-stream"),
    ],
)
def test_content_types(name: str, expected: str) -> None:
    assert rules.content_type(name).replace("application/javascript", "text/javascript") == expected


def test_hashed_names_are_immutable() -> None:
    assert rules.is_hashed("css/app.3f2a1b9c8d7e.css")
    assert rules.is_hashed("admin/js/core.0123456789ab.js")
    assert not rules.is_hashed("css/app.css")
    assert not rules.is_hashed("css/app.3f2a1b9c8d7.css")  # 11 digits
    assert not rules.is_hashed("css/app.3F2A1B9C8D7E.css")  # Django writes lower case
    assert rules.cache_control("app.3f2a1b9c8d7e.css", "max-age=60", False) == rules.IMMUTABLE
    assert rules.cache_control("app.css", "max-age=60", False) == "max-age=60"
    assert rules.cache_control("app.css", "max-age=60", True) == rules.PRIVATE
    assert rules.cache_control("app.3f2a1b9c8d7e.css", "", True).startswith("private,")


def test_etags_differ_by_encoding() -> None:
    assert rules.make_etag(10, 20) != rules.make_etag(10, 20, "gzip")
    assert rules.make_etag(10, 20) != rules.make_etag(10, 21)
