"""Replay the raw request corpus whole, line by line, byte by byte and in random
chunks: every cut must give the same result, and that result is the sidecar's."""

from __future__ import annotations

import pytest
from corpus import CHUNKINGS, Case, load, replay

VALID = load("valid")
INVALID = load("invalid")
_REQUEST_KEYS = ("method", "path", "query", "version", "headers", "body")


def _ids(cases: list[Case]) -> list[str]:
    return [case.name for case in cases]


def _marks(case: Case) -> list[pytest.MarkDecorator]:
    reason = case.meta.get("xfail")
    return [pytest.mark.xfail(reason=reason, strict=True)] if reason else []


def test_corpus_is_not_empty() -> None:
    assert len(VALID) >= 30 and len(INVALID) >= 100
    statuses = {case.meta["status"] for case in INVALID}
    assert statuses == {400, 413, 414, 431, 501, 505}


@pytest.mark.parametrize("case", [pytest.param(c, marks=_marks(c)) for c in VALID], ids=_ids(VALID))
def test_valid(case: Case) -> None:
    reference = replay(case.raw, case.limits)
    assert reference.status is None, f"rejected: {reference.status} {reference.detail}"
    assert not reference.mid_request, "bytes left over: a request was not complete"
    expected = case.meta["requests"]
    assert len(reference.requests) == len(expected)
    for got, want in zip(reference.requests, expected, strict=True):
        assert got["complete"] and got["body_finished"]
        for key in _REQUEST_KEYS:
            assert got[key] == want[key], key
        for key in set(want) - set(_REQUEST_KEYS):  # optional expectations: host, keep_alive, ...
            assert got[key] == want[key], key
    for chunking in CHUNKINGS:
        assert replay(case.raw, case.limits, chunking(case.raw)) == reference, chunking.__name__


@pytest.mark.parametrize("case", [pytest.param(c, marks=_marks(c)) for c in INVALID], ids=_ids(INVALID))
def test_invalid(case: Case) -> None:
    reference = replay(case.raw, case.limits)
    assert (reference.status, len(reference.requests)) == (case.meta["status"], case.meta.get("before", 0)), (
        reference.detail
    )
    for chunking in CHUNKINGS:
        assert replay(case.raw, case.limits, chunking(case.raw)) == reference, chunking.__name__
