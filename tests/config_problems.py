"""What load_plan reports for a bad configuration: shared by the config tests."""

from __future__ import annotations

import pytest

from corral.config import ConfigError, load_plan


def problems_of(path: str, profile: str | None = None, cli: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_plan(path, profile, cli)
    return info.value.problems


def only_problem(path: str, profile: str | None = None, cli: dict | None = None) -> str:
    problems = problems_of(path, profile, cli)
    assert len(problems) == 1, problems
    return problems[0]
