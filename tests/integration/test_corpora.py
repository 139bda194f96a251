"""Other projects' request corpora (gunicorn, llhttp) replayed against a running Corral.

Each case is sent whole, one byte at a time and in random chunks; all three must get the
same answer, and that answer must agree with the corpus unless the difference is listed,
with its reason, in tests/data/corpora/differences.toml (and explained in docs/http.md).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

import corpora
import corpora_replay
from corpora_replay import MODES, replay, verdict
from helpers import Server

DIFFERENCES_FILE = corpora.CORPORA / "differences.toml"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "http.md"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    # --workers 1: every case meets the same worker; the echo app tells what was parsed.
    srv = Server(["corpus_echo:app", "--workers", "1", "--header-timeout", "5"])
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def outcomes(server: Server) -> dict[str, dict[str, str]]:
    """For every case run with gunicorn's defaults: {mode: verdict} ('' = agrees)."""
    address = ("127.0.0.1", server.port)
    results = {}
    for case in corpora.all_cases():
        if case.settings:
            continue  # gunicorn ran it with a non-default setting: not comparable
        case = case.with_host()
        results[case.id] = {mode: verdict(case, replay(address, case, mode)) for mode in MODES}
    return results


def documented() -> dict[str, dict[str, str]]:
    with open(DIFFERENCES_FILE, "rb") as f:
        return tomllib.load(f)


def test_the_corpora_are_all_there() -> None:
    cases = corpora.all_cases()
    assert sum(c.id.startswith("gunicorn/") for c in cases) == 137
    assert sum(c.id.startswith("llhttp/") for c in cases) >= 120
    assert len({c.id for c in cases}) == len(cases)


def test_whole_bytewise_and_random_chunks_get_the_same_answer(outcomes: dict[str, dict[str, str]]) -> None:
    differing = {case_id: by_mode for case_id, by_mode in outcomes.items() if len(set(by_mode.values())) > 1}
    assert not differing


def test_every_difference_from_the_corpora_is_documented(outcomes: dict[str, dict[str, str]]) -> None:
    found = {case_id: by_mode["whole"] for case_id, by_mode in outcomes.items() if by_mode["whole"]}
    listed = documented()
    undocumented = {case_id: found[case_id] for case_id in found.keys() - listed.keys()}
    gone = sorted(listed.keys() - found.keys())
    assert not undocumented, "differences not in differences.toml (a bug, or document them)"
    assert not gone, "documented differences that no longer happen: remove them from differences.toml"
    wrong = {
        case_id: (entry["corral"], found[case_id])
        for case_id, entry in listed.items()
        if entry["corral"] not in found[case_id]
    }
    assert not wrong, "Corral's answer changed for documented differences"


def test_each_documented_difference_is_in_docs_http_md() -> None:
    text = DOCS.read_text()
    missing = [case_id for case_id in documented() if f"`{case_id}`" not in text and case_id not in text]
    assert not missing


def test_the_replay_can_tell_a_disagreement(server: Server) -> None:
    """A valid case whose body is cut short does not agree: the verdict is not blind."""
    valid = next(c for c in corpora.gunicorn_cases() if c.id == "gunicorn/valid/001")
    broken = corpora.Case(valid.id, valid.data[:-3], True, valid.requests)
    outcome = corpora_replay.replay(("127.0.0.1", server.port), broken, "whole")
    assert corpora_replay.verdict(broken, outcome) == "0 of 1 requests answered 2xx (no answer)"
    assert corpora_replay.verdict(valid, corpora_replay.replay(("127.0.0.1", server.port), valid, "whole")) == ""
