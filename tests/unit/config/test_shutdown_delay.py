"""--shutdown-delay: seconds where 0 (the default) is a valid "off"."""

from __future__ import annotations

import pytest

from corral.cli import UsageError, build_parser, plan_from_args
from corral.config import values


def delay(argv: list[str]) -> float:
    return plan_from_args(build_parser().parse_args(["serve", *argv]), {}).server.shutdown_delay


def test_default_is_off_and_zero_is_accepted(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert delay([]) == 0.0
    assert delay(["--shutdown-delay", "0"]) == 0.0
    assert delay(["--shutdown-delay", "5"]) == 5.0
    assert delay(["--shutdown-delay", "2.5"]) == 2.5


def test_from_corral_toml(tmp_path, monkeypatch) -> None:
    (tmp_path / "corral.toml").write_text("shutdown-delay = 5\n")
    monkeypatch.chdir(tmp_path)
    assert delay([]) == 5.0


@pytest.mark.parametrize("bad", ["-1", "soon", "nan", "inf"])
def test_bad_values_are_usage_errors(tmp_path, monkeypatch, bad: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=r"--shutdown-delay: expected"):
        delay(["--shutdown-delay", bad])


def test_parser_refuses_booleans() -> None:
    with pytest.raises(values.ValueProblem):
        values.parse_nonnegative_seconds(True)
    assert values.parse_nonnegative_seconds(0) == 0.0
