"""A real Django project, from `startproject` to a logged-in admin, served by `corral serve`.

The project is created once per module (startproject, migrate, createsuperuser);
each test starts its own server on port 0 and talks to it with httpx, so the
CSRF cookie, the session cookie and the redirects are the real ones.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from django_project import ADMIN_PASSWORD, ADMIN_USER, create_django_project
from helpers import APPS, Server

pytest.importorskip("django")

ServeFn = Callable[..., Server]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return create_django_project(tmp_path_factory.mktemp("django") / "site")


def admin_login(server: Server) -> list[httpx.Response]:
    """Log in to the admin as a browser does; return every response along the way."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        page = client.get("/admin/login/", params={"next": "/admin/"})
        assert page.status_code == 200, page.text
        assert "csrftoken" in client.cookies
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert match, page.text
        form = {"username": ADMIN_USER, "password": ADMIN_PASSWORD, "next": "/admin/"}

        # Without the form token Django's CSRF check must refuse: the check is really running.
        refused = client.post("/admin/login/?next=/admin/", data=form)
        assert refused.status_code == 403
        assert "CSRF" in refused.text

        logged_in = client.post("/admin/login/?next=/admin/", data={**form, "csrfmiddlewaretoken": match.group(1)})
        assert logged_in.status_code == 302, logged_in.text
        assert logged_in.headers["location"] == "/admin/"
        assert "sessionid" in client.cookies

        index = client.get(logged_in.headers["location"])
        assert index.status_code == 200
        assert "Site administration" in index.text
        assert re.search(rf"Welcome,\s*<strong>{ADMIN_USER}</strong>", index.text)
        return [page, refused, logged_in, index]


def get_text(server: Server, path: str) -> str:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        response = client.get(path)
        assert response.status_code == 200, response.text
        return response.text


# -- the admin login flow -------------------------------------------------------


def test_admin_login_with_defaults(serve: ServeFn, project: Path) -> None:
    # The README command with default options: one worker, the app called on the loop thread.
    # Django's ORM refuses to run (SynchronousOnlyOperation) if it sees a running asyncio loop
    # in its thread, so this also proves the inline mode hides the loop from the app.
    server = serve("--settings", "mysite.settings", "--chdir", str(project))
    admin_login(server)


def test_admin_login_with_workers_and_threads(serve: ServeFn, project: Path) -> None:
    # Production-like: two workers share the SQLite session store; views run on app threads.
    server = serve("--settings", "mysite.settings", "--chdir", str(project), "--workers", "2", "--threads", "4")
    admin_login(server)
    assert get_text(server, "/flavor/") == "default mysite.settings"


def test_wsgi_application_middleware_is_used_and_login_works_through_it(serve: ServeFn, project: Path) -> None:
    server = serve("--settings", "mysite.settings_wrapped", "--chdir", str(project), "--threads", "2")
    for response in admin_login(server):
        assert response.headers["x-wrapped-by"] == "mysite.middleware"
    assert get_text(server, "/flavor/") == "wrapped mysite.settings_wrapped"


@pytest.mark.parametrize("threads", ["1", "4"])
def test_file_response_is_closed_where_django_can_close_its_connections(
        serve: ServeFn, project: Path, threads: str) -> None:
    # A FileResponse goes out through wsgi.file_wrapper (os.sendfile). Afterwards the server calls
    # response.close(), which sends request_finished, where Django closes the request's database
    # connections. That must happen in the thread that ran the view (connections are per thread)
    # and with no asyncio loop visible (else Django looks in its async-context storage, finds no
    # connection, and the real one stays open).
    server = serve("--settings", "mysite.settings", "--chdir", str(project), "--threads", threads)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(2):
            response = client.get("/download/")
            assert response.status_code == 200
            assert response.headers["x-users"] == "1"
            assert response.content == (project / "download.bin").read_bytes()
        finished = client.get("/finished/").json()["finished"]
    assert finished == [{"view_thread": True, "loop_visible": False}] * 2


# -- which settings module is live ------------------------------------------------


def test_settings_flag_wins_over_wsgi_py_setdefault_and_inherited_env(serve: ServeFn, project: Path) -> None:
    # wsgi.py does os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings"), and the
    # shell that started Corral exported it too: --settings must still win.
    server = serve("mysite.wsgi:application", "--settings", "mysite.settings_alt", "--chdir", str(project),
                   env={"DJANGO_SETTINGS_MODULE": "mysite.settings"})
    assert get_text(server, "/flavor/") == "alt mysite.settings_alt"


def test_settings_alone_loads_its_wsgi_application(serve: ServeFn, project: Path) -> None:
    server = serve("--settings", "mysite.settings_alt", "--chdir", str(project))
    assert get_text(server, "/flavor/") == "alt mysite.settings_alt"


@pytest.mark.parametrize("args", [
    ["mysite.wsgi:application"],
    ["mysite.wsgi"],
    ["mysite.wsgi.application"],
    ["--settings", "mysite.settings"],
], ids=["module:attr", "module", "django-dotted", "settings-only"])
def test_app_forms(serve: ServeFn, project: Path, args: list[str]) -> None:
    server = serve(*args, "--chdir", str(project))
    assert get_text(server, "/flavor/") == "default mysite.settings"
    assert "csrfmiddlewaretoken" in get_text(server, "/admin/login/")


def test_env_and_env_file_reach_django_views(serve: ServeFn, project: Path, tmp_path: Path) -> None:
    env_file = tmp_path / "prod.env"
    env_file.write_text('# deploy secrets\nexport FROM_FILE=yes\nGREETING=from-file\nQUOTED="a b # kept"\n')
    server = serve("--settings", "mysite.settings", "--chdir", str(project),
                   "--env-file", str(env_file), "--env", "GREETING=from-flag", "--env", "EMPTY=")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        seen = {name: client.get(f"/env/{name}/").json()["value"]
                for name in ("FROM_FILE", "GREETING", "QUOTED", "EMPTY", "NOT_SET")}
    assert seen == {"FROM_FILE": "yes", "GREETING": "from-flag", "QUOTED": "a b # kept", "EMPTY": "", "NOT_SET": None}


def test_dev_and_prod_profiles_select_settings_modules(serve: ServeFn, project: Path, tmp_path: Path) -> None:
    # corral.toml (docs/configuration.md) found in the working directory; --profile or CORRAL_PROFILE picks one.
    (tmp_path / "corral.toml").write_text(
        f'chdir = "{project}"\n\n'
        '[profile.dev]\nsettings = "mysite.settings"\n\n'
        '[profile.prod]\nsettings = "mysite.settings_alt"\nworkers = 2\nthreads = 4\n'
    )
    prod = serve("--profile", "prod", cwd=tmp_path)
    dev = serve(cwd=tmp_path, env={"CORRAL_PROFILE": "dev"})
    assert get_text(prod, "/flavor/") == "alt mysite.settings_alt"
    assert get_text(dev, "/flavor/") == "default mysite.settings"
    assert prod.wait_for(r"Corral ready: 2 worker\(s\) x 4 thread\(s\)", 5)


# -- the production setup of docs/django.md ---------------------------------------


def test_production_settings_static_files_and_proxy_headers(serve: ServeFn, project: Path, tmp_path: Path) -> None:
    pytest.importorskip("whitenoise")
    env_file = tmp_path / "corral.env"
    env_file.write_text("DJANGO_SECRET_KEY=not-the-dev-key-0123456789abcdefghijklmnopqrstuvwxyz\n"
                        "DJANGO_ALLOWED_HOSTS=www.example.com\n")
    collect = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0", "--settings", "mysite.settings_prod"],
        cwd=project, capture_output=True, text=True, timeout=60,
        env={**os.environ, "DJANGO_SECRET_KEY": "x", "DJANGO_ALLOWED_HOSTS": "x"},
    )
    assert collect.returncode == 0, collect.stderr
    server = serve("--settings", "mysite.settings_prod", "--chdir", str(project), "--env-file", str(env_file),
                   "--workers", "2", "--threads", "4")
    # What nginx sends with the proxy_set_header lines of the guide.
    proxied = {"Host": "www.example.com", "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        css = client.get("/static/admin/css/base.css", headers=proxied)
        assert css.status_code == 200
        assert css.headers["content-type"].startswith("text/css")
        assert css.content == (project / "staticfiles" / "admin" / "css" / "base.css").read_bytes()

        assert client.get("/scheme/", headers=proxied).text == "https www.example.com True"
        assert client.get("/flavor/", headers=proxied).text == "prod mysite.settings_prod"

        # DEBUG is off and the host is checked: no debug page for a host that is not allowed.
        refused = client.get("/flavor/", headers={"Host": "attacker.example"})
        assert refused.status_code == 400
        assert "DisallowedHost" not in refused.text


# -- load errors: one clear line, the user's traceback, non-zero exit ---------------

_LOG_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d [\d:]+ [+-]\d{4}\] \[\d+\] \[[A-Z]+\] ")


def run_corral_failing(project: Path, *args: str) -> list[str]:
    """Run `corral serve` that must fail at boot; return stderr minus the INFO log lines."""
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONPATH"] = os.pathsep.join([str(APPS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    result = subprocess.run(
        [sys.executable, "-m", "corral", "serve", *args, "--chdir", str(project), "--bind", "127.0.0.1:0"],
        env=env, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    logged = [line for line in result.stderr.splitlines() if _LOG_LINE.match(line)]
    # No "[ERROR] Worker crashed" with Corral's own traceback, and no "Graceful timeout: killing
    # N worker(s) still busy": the worker failed to load, nothing was busy. (Unrelated warnings,
    # such as another test's server holding the default control socket, are allowed.)
    assert not [line for line in logged if "[ERROR]" in line or "[CRITICAL]" in line], result.stderr
    assert not [line for line in logged if "Graceful timeout" in line], result.stderr
    return [line for line in result.stderr.splitlines() if not _LOG_LINE.match(line)]


def test_missing_settings_module(project: Path) -> None:
    lines = run_corral_failing(project, "--settings", "mysite.nope")
    assert len(lines) == 1, lines
    assert re.fullmatch(
        re.escape(f"corral: error: cannot load app 'mysite.nope': settings module 'mysite.nope' not found "
                  f"(sys.path starts {project}, ") + r".*\)", lines[0]), lines


def test_settings_that_raise_show_the_users_traceback(project: Path) -> None:
    lines = run_corral_failing(project, "--settings", "mysite.settings_broken")
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-2] == "RuntimeError: SECRET_KEY_FILE is not readable"
    assert lines[-1] == ("corral: error: cannot load app 'mysite.settings_broken': importing 'mysite.settings_broken' "
                         "raised RuntimeError: SECRET_KEY_FILE is not readable")
    settings_file = project / "mysite" / "settings_broken.py"
    assert f'  File "{settings_file}", line 8, in <module>' in lines
    assert f'  File "{settings_file}", line 5, in read_secret' in lines


def test_settings_traceback_has_only_the_users_frames(project: Path) -> None:
    # loading.py promises "the traceback without frames from importlib or Corral itself".
    lines = run_corral_failing(project, "--settings", "mysite.settings_broken")
    frames = [line for line in lines if line.startswith('  File "')]
    assert frames == [
        f'  File "{project / "mysite" / "settings_broken.py"}", line 8, in <module>',
        f'  File "{project / "mysite" / "settings_broken.py"}", line 5, in read_secret',
    ], lines


def test_wsgi_application_module_that_does_not_exist(project: Path) -> None:
    lines = run_corral_failing(project, "--settings", "mysite.settings_nowhere")
    assert len(lines) == 1, lines
    assert re.fullmatch(
        re.escape("corral: error: WSGI_APPLICATION = 'mysite.nowhere.application' in mysite.settings_nowhere: "
                  "cannot load app 'mysite.nowhere.application': module 'mysite.nowhere' not found "
                  f"(sys.path starts {project}, ") + r".*\)", lines[0]), lines


def test_wsgi_application_attribute_that_does_not_exist(project: Path) -> None:
    lines = run_corral_failing(project, "--settings", "mysite.settings_noattr")
    assert lines == [
        "corral: error: WSGI_APPLICATION = 'mysite.wsgi.missing' in mysite.settings_noattr: "
        "cannot load app 'mysite.wsgi.missing': module 'mysite.wsgi' has no attribute 'missing'"
    ]
