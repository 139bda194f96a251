"""A short run of each coverage-guided fuzzer (tests/fuzz/) on every change.

The long runs are documented in docs/http.md ("How we test it"); here each fuzzer gets a
few seconds from the request corpus and must finish without a finding. A finding leaves
its input in the temporary directory and fails with the fuzzer's report.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

FUZZ = Path(__file__).resolve().parents[1] / "fuzz"
SEEDS = Path(__file__).resolve().parents[1] / "data" / "requests"
SECONDS = 4


def run_fuzzer(name: str, tmp_path: Path, seeds: list[Path]) -> int:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for seed in seeds:
        shutil.copy(seed, corpus / f"{seed.parent.name}-{seed.name}")
    result = subprocess.run(
        [sys.executable, str(FUZZ / name), f"-max_total_time={SECONDS}", f"-artifact_prefix={tmp_path}/",
         "-print_final_stats=1", str(corpus)],
        capture_output=True, text=True, timeout=SECONDS + 60,
    )
    report = result.stderr[-4000:]
    assert result.returncode == 0, f"{name} found a problem:\n{report}"
    runs = re.search(r"stat::number_of_executed_units:\s+(\d+)", result.stderr)
    assert runs, report
    return int(runs.group(1))


def test_parser_fuzzer_finds_nothing(tmp_path: Path) -> None:
    runs = run_fuzzer("fuzz_parser.py", tmp_path, sorted(SEEDS.glob("*/*.http")))
    assert runs > 1000  # it really ran (about 20k inputs a second here)


def test_connection_fuzzer_finds_nothing(tmp_path: Path) -> None:
    runs = run_fuzzer("fuzz_connection.py", tmp_path, [])
    assert runs > 100


def test_http2_fuzzer_finds_nothing(tmp_path: Path) -> None:
    runs = run_fuzzer("fuzz_h2.py", tmp_path, [])
    assert runs > 100
