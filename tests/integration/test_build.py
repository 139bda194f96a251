"""Installing Corral: the hot path compiles with mypyc, or the install falls back to pure Python.

Each test builds a wheel from a copy of the project (pip builds a local directory in
place; the copy keeps the checkout's build/ out of it) with the test environment's
setuptools and mypy (--no-build-isolation: no download).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def build_wheel(tmp_path: Path, **env: str) -> tuple[list[str], str]:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info"))
    out = tmp_path / "dist"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation", "-w", str(out), str(project)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("corral-*.whl")
    return zipfile.ZipFile(wheel).namelist(), result.stdout + result.stderr


def compiled(names: list[str]) -> list[str]:
    return [name for name in names if name.endswith((".so", ".pyd"))]


pytest.importorskip("mypyc.build", reason="mypy (the [test] extra) brings mypyc")


def test_the_hot_path_is_compiled_and_its_sources_ship_too(tmp_path: Path) -> None:
    names, _ = build_wheel(tmp_path)
    modules = compiled(names)
    assert any(name.startswith("corral/http/parser.") for name in modules), modules
    assert any("__mypyc" in name for name in modules), "the library the compiled modules share"
    assert "corral/http/parser.py" in names


def test_a_failing_compiler_leaves_a_working_pure_python_install(tmp_path: Path) -> None:
    names, output = build_wheel(tmp_path, CC="false")
    assert "compiling the hot path failed" in output
    assert compiled(names) == [], "no partial set of compiled modules"
    assert "corral/http/parser.py" in names


def test_corral_no_extensions_skips_the_compiler(tmp_path: Path) -> None:
    names, _ = build_wheel(tmp_path, CORRAL_NO_EXTENSIONS="1")
    assert compiled(names) == []
    assert "corral/http/parser.py" in names and "corral/server/outbox.py" in names
