"""Which Django settings really serve: the settings clash (issue 10) and DEBUG in production (issue 15).

A real `startproject` (tests/django_project.py). The app's own code may not replace
the settings module Corral was told (refused, naming the file and line, by serve and
check); a `setdefault` is fine; DEBUG = True under a prod profile or beyond loopback
is a loud warning; disagreeing DJANGO_SETTINGS_MODULE sources are reported; and in
`corral dev` an error in urls.py is a load error with one traceback and an error page.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from django_project import create_django_project
from helpers import Server

pytest.importorskip("django")

FORCED = """import os

from django.core.wsgi import get_wsgi_application

os.environ["DJANGO_SETTINGS_MODULE"] = "mysite.settings"
application = get_wsgi_application()
"""
FORCED_LINE = 5

DEBUG_WARNING = "DEBUG = True in Django settings mysite.settings, yet "


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = create_django_project(tmp_path_factory.mktemp("django") / "site")
    (root / "mysite" / "wsgi_forced.py").write_text(FORCED)
    (root / "corral.toml").write_text(
        'app = "mysite.wsgi:application"\nsettings = "mysite.settings"\n\n[profile.prod]\nworkers = 1\n'
    )
    return root


def corral(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    from test_cli_config import clean_env

    return subprocess.run([sys.executable, "-m", "corral", *args], cwd=cwd, env=clean_env(**(env or {})),
                          capture_output=True, text=True, timeout=60, check=False)


def forced_message(project: Path) -> str:
    return (
        f"mysite/wsgi_forced.py, line {FORCED_LINE} sets DJANGO_SETTINGS_MODULE to 'mysite.settings', "
        "overriding 'mysite.settings_alt' (from --settings or the config's settings): Django would run on the "
        "wrong settings. Use os.environ.setdefault('DJANGO_SETTINGS_MODULE', ...) there, or remove the line"
    )


def test_serve_refuses_a_wsgi_py_that_forces_the_settings(project: Path) -> None:
    server = Server(["mysite.wsgi_forced", "--settings", "mysite.settings_alt", "--workers", "1",
                     "--config", "/dev/null"], cwd=project, ready="")
    try:
        assert server.wait(30) != 0
    finally:
        server.stop()
    log = server.log()
    assert forced_message(project) in log, log
    assert "Listening at" not in log  # never announced before the load error


def test_check_says_the_same_and_setdefault_is_silent(project: Path) -> None:
    result = corral("check", "mysite.wsgi_forced", "--settings", "mysite.settings_alt", cwd=project)
    assert result.returncode == 1 and forced_message(project) in result.stderr
    assert result.stdout.rstrip().endswith("FAILED")
    fine = corral("check", "mysite.wsgi", "--settings", "mysite.settings_alt", cwd=project)
    assert fine.returncode == 0, fine.stderr
    assert fine.stderr == "" and fine.stdout.rstrip().endswith("OK")


@pytest.mark.parametrize(("args", "why"), [
    (["--profile", "prod"], "the profile is 'prod'"),
    (["--bind", "0.0.0.0:8000"], "the server listens beyond loopback (0.0.0.0:8000)"),
])
def test_check_warns_on_debug_in_production(project: Path, args: list[str], why: str) -> None:
    result = corral("check", *args, cwd=project)
    assert result.returncode == 0, result.stderr
    assert f"corral: warning: site 'default': {DEBUG_WARNING}{why}" in result.stderr
    assert "OK, with 1 warning(s)" in result.stdout
    quiet = corral("check", "--settings", "mysite.settings_prod", *args, cwd=project,
                   env={"DJANGO_SECRET_KEY": "k" * 50, "DJANGO_ALLOWED_HOSTS": "localhost"})
    assert quiet.returncode == 0 and "DEBUG" not in quiet.stderr, quiet.stderr
    on_loopback = corral("check", "--bind", "127.0.0.1:8000", cwd=project)
    assert "DEBUG" not in on_loopback.stderr


def test_serve_warns_on_debug_under_a_prod_profile(serve: Callable[..., Server], project: Path) -> None:
    server = serve("--profile", "prod", cwd=project)
    assert server.wait_for(DEBUG_WARNING + "the profile is 'prod'", 10), server.log()
    assert server.request(b"GET /flavor/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").endswith(
        b"default mysite.settings"
    )


def test_an_inherited_settings_module_that_the_config_overrides_is_reported(project: Path) -> None:
    result = corral("check", cwd=project, env={"DJANGO_SETTINGS_MODULE": "mysite.settings_alt"})
    assert result.returncode == 0
    assert (
        "corral: warning: DJANGO_SETTINGS_MODULE=mysite.settings_alt in the environment Corral was started in is "
        "ignored: settings 'mysite.settings' from the configuration is used"
    ) in result.stderr


def test_dev_shows_an_error_in_urls_py_as_a_load_error(tmp_path: Path) -> None:
    pytest.importorskip("watchfiles")
    root = create_django_project(tmp_path / "site")
    urls = root / "mysite" / "urls.py"
    good = urls.read_text()
    urls.write_text(good + "\nurlpatterns += [path('broken/', (]\n")
    server = Server(["mysite.wsgi", "--settings", "mysite.settings"], cwd=root, command="dev",
                    ready="Waiting for a change")
    try:
        log = server.log()
        assert "Corral ready" not in log
        assert "URLconf 'mysite.urls' does not load: syntax error in" in log and "urls.py, line" in log
        assert log.count("Traceback (most recent call last)") == 1 and len(log.splitlines()) < 40, log
        raw = server.request(b"GET /admin/ HTTP/1.1\r\nHost: localhost\r\nAccept: text/html\r\n"
                             b"Connection: close\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 500 ") and b"The app failed to load" in raw and b"urls.py" in raw
        urls.write_text(good)  # the fix brings the site back
        assert server.wait_for("Corral ready", 15), server.log()
    finally:
        server.stop()
