from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def toml(tmp_path: Path) -> Callable[[str], str]:
    """toml('workers = 2') writes corral.toml in a temporary directory and returns its path."""

    def write(text: str, name: str = "corral.toml") -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return str(path)

    return write
