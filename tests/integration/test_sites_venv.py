"""A site with its own virtualenv runs under that environment's interpreter and packages.

The test builds a real virtualenv in a temporary directory (`python -m venv`),
pip-installs Corral into it from this checkout (copied first, so the build leaves
nothing in the working tree) and a tiny local package, `corral_venv_only`, that
exists nowhere else. Nothing is cached between runs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from corral import install_command
from helpers import Server, read_response

REPO = Path(__file__).resolve().parents[2]  # the checkout these tests belong to
# pip's words when the package index cannot be reached: outside our control, so a skip.
_OFFLINE = re.compile(
    r"No matching distribution found|Could not find a version|NewConnectionError|Temporary failure in name "
    r"resolution|Network is unreachable|ConnectTimeout|ProxyError"
)

LOCAL_PACKAGE = """
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "corral-venv-only"
version = "1.0"

[tool.setuptools]
py-modules = ["corral_venv_only"]
"""

SITES = """
bind = ["127.0.0.1:0"]

[sites.isolated]
app = "site_imports:app"
hosts = ["venv.test"]
virtualenv = "venv"
env = { SITE_NAME = "isolated" }

[sites.plain]
app = "site_imports:app"
hosts = ["plain.test"]
env = { SITE_NAME = "plain" }
"""

BROKEN_VENVS = """
bind = ["127.0.0.1:0"]

[sites.good]
app = "site_probe:app"
hosts = ["good.test"]

[sites.missing]
app = "site_probe:app"
hosts = ["missing.test"]
virtualenv = "nowhere"

[sites.bare]
app = "site_probe:app"
hosts = ["bare.test"]
virtualenv = "bare"
"""


def run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def get_json(server: Server, host: str) -> tuple[int, Any]:
    with server.connect(10) as sock:
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        status, _, body = read_response(sock, 10)
    return status, json.loads(body) if status == 200 else body


@pytest.fixture(scope="module")
def venv_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with Corral and corral_venv_only installed; skips if one cannot be made here."""
    root = tmp_path_factory.mktemp("venv-site")
    made = run([sys.executable, "-m", "venv", str(root / "venv")])
    if made.returncode != 0:
        pytest.skip(f"python -m venv does not work here: {made.stderr.strip()[-300:]}")
    source = root / "corral-src"
    source.mkdir()
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    package = root / "pkg"
    package.mkdir()
    (package / "pyproject.toml").write_text(LOCAL_PACKAGE)
    (package / "corral_venv_only.py").write_text('WHERE = "the site\'s own virtualenv"\n')
    python = str(root / "venv" / "bin" / "python")
    installed = run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(source), str(package)])
    if installed.returncode != 0:
        output = installed.stdout + installed.stderr
        if _OFFLINE.search(output):
            pytest.skip(f"pip cannot reach a package index: {output.strip()[-300:]}")
        pytest.fail(f"pip install into the test virtualenv failed:\n{output}")
    (root / "corral.toml").write_text(SITES)
    return root


def test_a_package_in_a_sites_virtualenv_is_importable_by_that_site_only(venv_root: Path) -> None:
    with Server(["--config", str(venv_root / "corral.toml")], timeout=30) as server:
        assert server.wait_for(r"Corral ready: isolated 1x1, plain 1x1\s*$", 1), server.log()
        status, isolated = get_json(server, "venv.test")
        assert status == 200, isolated
        venv = venv_root / "venv"
        assert isolated["site"] == "isolated"
        assert isolated["imported"] == "the site's own virtualenv"
        # The worker is that environment's interpreter, running that environment's Corral.
        assert isolated["executable"] == str(venv / "bin" / "python")
        assert isolated["prefix"] == str(venv)
        assert isolated["corral"].startswith(str(venv / "lib"))
        status, plain = get_json(server, "plain.test")
        assert status == 200, plain
        assert plain["site"] == "plain"
        assert plain["imported"] == "ModuleNotFoundError: No module named 'corral_venv_only'"
        assert plain["executable"] == sys.executable


# -- virtualenvs that cannot run a site ------------------------------------------------------


@pytest.fixture(scope="module")
def broken_venvs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    root = tmp_path_factory.mktemp("broken-venvs")
    made = run([sys.executable, "-m", "venv", "--without-pip", str(root / "bare")])  # no Corral in it
    if made.returncode != 0:
        pytest.skip(f"python -m venv does not work here: {made.stderr.strip()[-300:]}")
    (root / "corral.toml").write_text(BROKEN_VENVS)
    server = Server(["--config", str(root / "corral.toml")], timeout=30)
    try:
        yield server, root
    finally:
        server.stop()


def test_a_missing_virtualenv_is_an_error_naming_the_site(broken_venvs_server: tuple[Server, Path]) -> None:
    server, root = broken_venvs_server
    assert server.wait_for(r"Corral ready: good 1x1 \(down: missing, bare\)", 1), server.log()
    line = server.wait_for(r"Site 'missing' ", 1)
    assert line is not None, server.log()
    assert f"virtualenv '{root / 'nowhere'}' has no bin/python" in line
    status, _ = get_json(server, "missing.test")
    assert status == 503
    status, data = get_json(server, "good.test")
    assert status == 200 and data["path_info"] == "/"


def test_a_virtualenv_without_corral_is_an_error_naming_the_site(broken_venvs_server: tuple[Server, Path]) -> None:
    server, root = broken_venvs_server
    assert server.wait_for(r"Corral ready: good 1x1 \(down: missing, bare\)", 1), server.log()
    status, _ = get_json(server, "bare.test")
    assert status == 503
    python = root / "bare" / "bin" / "python"
    hint = install_command(str(python))
    expected = f"Corral is not installed in virtualenv {root / 'bare'} (install it there: {hint})"
    line = server.wait_for(r"[Ss]ite 'bare'.*Corral is not installed", 1)
    assert line is not None and expected in line, server.log()
