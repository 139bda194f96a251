"""corral.toml end to end: `corral check` and `corral serve --config` with profiles, flags and env.

Each test writes its own config (and small app modules) into a temporary directory;
the servers are real subprocesses answering real HTTP requests.
"""
# ruff: noqa: E501  (expected messages are kept whole, as the user sees them)

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from corral import install_command
from helpers import APPS, Server

# An app that answers with the variables the profiles set, read from the worker's os.environ.
STAGE_APP = """
import json
import os


def app(environ, start_response):
    keys = ("STAGE", "FROM_FLAG", "DJANGO_SETTINGS_MODULE")
    body = json.dumps({key: os.environ.get(key) for key in keys}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
"""

PROFILES = """
app = "stage:app"
pythonpath = ["lib"]
env = { STAGE = "top" }

[profile.dev]
env = { STAGE = "dev" }
threads = 2

[profile.prod]
env = { STAGE = "prod" }
workers = 2
"""


def clean_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(APPS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    for key in ("DJANGO_SETTINGS_MODULE", "CORRAL_PROFILE"):
        env.pop(key, None)
    env.update(extra)
    return env


def corral(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corral", *args],
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "stage.py").write_text(STAGE_APP)
    (tmp_path / "corral.toml").write_text(PROFILES)
    return tmp_path


def get_json(server: Server) -> dict[str, str | None]:
    raw = server.request(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), raw
    return json.loads(body)  # type: ignore[no-any-return]


# -- corral serve ------------------------------------------------------------------------


def test_two_profiles_serve_different_environments(serve, project: Path) -> None:
    dev = serve("--profile", "dev", cwd=project)
    prod = serve("--config", str(project / "corral.toml"), "--profile", "prod", cwd="/")
    assert get_json(dev)["STAGE"] == "dev"
    assert get_json(prod)["STAGE"] == "prod"  # relative pythonpath found from another directory
    assert dev.wait_for(r"Corral ready: 1 worker\(s\) x 2 thread\(s\)", 1)
    assert prod.wait_for(r"Corral ready: 2 worker\(s\) x 1 thread\(s\)", 1)


def test_no_profile_uses_the_top_level(serve, project: Path) -> None:
    assert get_json(serve(cwd=project))["STAGE"] == "top"


def test_corral_profile_environment_variable(serve, project: Path) -> None:
    server = serve(cwd=project, env={"CORRAL_PROFILE": "prod"})
    assert get_json(server)["STAGE"] == "prod"


def test_flags_override_the_file(serve, project: Path) -> None:
    server = serve("--profile", "prod", "--env", "STAGE=flag", "--env", "FROM_FLAG=1", "--workers", "1", cwd=project)
    assert get_json(server) == {"STAGE": "flag", "FROM_FLAG": "1", "DJANGO_SETTINGS_MODULE": None}
    assert server.wait_for(r"Corral ready: 1 worker\(s\)", 1)


def test_corral_variables_between_the_profile_and_the_flags(serve, project: Path) -> None:
    env = {"CORRAL_THREADS": "3", "CORRAL_WORKERS": "3", "CORRAL_MAX_HEADERS": "3"}
    server = serve("--profile", "dev", "--workers", "1", cwd=project, env=env)
    # threads: the variable over the profile's 2; workers: the flag over the variable
    assert server.wait_for(r"Corral ready: 1 worker\(s\) x 3 thread\(s\)", 1), server.log()
    assert get_json(server)["STAGE"] == "dev"  # 2 header fields: within CORRAL_MAX_HEADERS
    raw = server.request(b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 431 "), raw


def test_a_bad_corral_variable_stops_serve_naming_it(project: Path) -> None:
    result = corral("serve", "--bind", "127.0.0.1:0", cwd=project, env=clean_env(CORRAL_BODY_TIMEOUT="soon"))
    assert result.returncode == 2
    assert result.stderr == "corral: error: environment variable CORRAL_BODY_TIMEOUT='soon': expected a number of seconds, got 'soon'\n"


def test_a_positional_app_overrides_the_files_app(serve, project: Path) -> None:
    server = serve("basic:hello", "--profile", "dev", cwd=project)
    assert server.request(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").endswith(b"Hello, World!")


def test_config_errors_stop_serve_before_binding(project: Path) -> None:
    (project / "corral.toml").write_text(PROFILES + "\n[profile.broken]\nworker = 3\n")
    result = corral("serve", "--profile", "nope", cwd=project)
    assert result.returncode == 2
    toml = project / "corral.toml"
    assert result.stderr.splitlines() == [
        f"corral: error: {toml}: no profile 'nope'; available profiles: broken, dev, prod",
        f'corral: error: {toml}: [profile.broken] worker: unknown key (did you mean "workers"?)',
    ]
    result = corral("serve", cwd=project, env=clean_env(CORRAL_PROFILE="staging"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"corral: error: {toml}: no profile 'staging'; available profiles: broken, dev, prod",
        f'corral: error: {toml}: [profile.broken] worker: unknown key (did you mean "workers"?)',
        "corral: error: (the profile was chosen by CORRAL_PROFILE=staging)",
    ]


def test_unknown_profile_lists_the_available_ones(project: Path) -> None:
    result = corral("serve", "--profile", "staging", cwd=project)
    assert result.returncode == 2
    assert (
        result.stderr
        == f"corral: error: {project / 'corral.toml'}: no profile 'staging'; available profiles: dev, prod\n"
    )


def test_dev_refuses_a_multi_site_config(tmp_path: Path) -> None:
    (tmp_path / "corral.toml").write_text('[sites.a]\napp = "basic:hello"\ndefault = true\n')
    result = corral("dev", cwd=tmp_path)
    assert result.returncode == 2
    assert "defines [sites]; corral dev serves one app (use corral serve)" in result.stderr


# -- corral check ------------------------------------------------------------------------


def test_check_prints_the_resolved_profile(project: Path) -> None:
    result = corral("check", "--profile", "prod", cwd=project)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"Config file: {project / 'corral.toml'} (profile prod)" in out
    assert "  workers              2\n" in out
    assert "  env                  STAGE=prod\n" in out
    assert "Site default: loaded app stage.app" in out
    assert out.endswith("OK\n")
    assert out.count("Resolved configuration:") == 1  # the child does not repeat the parent's output


def test_check_fails_on_a_missing_module(project: Path) -> None:
    result = corral("check", "nowhere_to_be_found:app", cwd=project)
    assert result.returncode == 1
    assert (
        "corral: error: site 'default': cannot load app 'nowhere_to_be_found:app': module 'nowhere_to_be_found' not found"
        in result.stderr
    )
    assert result.stdout.endswith("FAILED\n")


def test_check_fails_on_a_bad_bind(project: Path) -> None:
    result = corral("check", "--bind", "nonsense:port", cwd=project)
    assert result.returncode == 1 and result.stdout.endswith("FAILED\n")
    assert "corral: error:" in result.stderr


def test_check_config_errors_exit_nonzero(tmp_path: Path) -> None:
    (tmp_path / "corral.toml").write_text('workers = "4"\n')
    result = corral("check", cwd=tmp_path)
    assert result.returncode == 2
    assert (
        result.stderr
        == f"corral: error: {tmp_path / 'corral.toml'}: workers: expected a whole number, got string '4'\n"
    )


SITES = """
bind = ["127.0.0.1:0"]
workers = 2

[sites.alpha]
app = "siteapp:app"
pythonpath = ["alpha"]
hosts = ["alpha.test", "*.alpha.test"]
env = { SITE = "alpha", SECRET = "alpha-secret-value" }
processes = 3
threads = 4
mounts = { "/api" = "basic:hello" }
middleware = [{ use = "mw:Tag", tag = "outer" }, { use = "mw:Tag", tag = "inner" }]
user = "{user}"

[sites.beta]
app = "siteapp:app"
pythonpath = ["beta"]
default = true
mount = "/beta"
env = { SITE = "beta" }
"""

# Both sites import a module named `siteapp` from their own directory, and refuse to load
# with another site's environment: only per-site children can load both.
SITE_APP = """
import os

assert os.environ.get("SITE") == "{name}", os.environ.get("SITE")
assert "DJANGO_SETTINGS_MODULE" not in os.environ, "inherited DJANGO_SETTINGS_MODULE"


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"{name}"]
"""

MIDDLEWARE = """
class Tag:
    def __init__(self, app, tag):
        self.app, self.tag = app, tag

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)
"""


@pytest.fixture
def sites_project(tmp_path: Path) -> Path:
    import pwd

    user = pwd.getpwuid(os.getuid()).pw_name
    for name in ("alpha", "beta"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "siteapp.py").write_text(SITE_APP.replace("{name}", name))
    (tmp_path / "alpha" / "mw.py").write_text(MIDDLEWARE)
    (tmp_path / "corral.toml").write_text(SITES.replace("{user}", user))
    return tmp_path


def test_check_prints_the_site_table_and_loads_each_site_in_its_own_environment(sites_project: Path) -> None:
    # The master's DJANGO_SETTINGS_MODULE must not leak into the sites.
    result = corral("check", cwd=sites_project, env=clean_env(DJANGO_SETTINGS_MODULE="leaked.settings"))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith(("  alpha ", "  beta "))}
    assert "alpha.test, *.alpha.test" in rows["alpha"] and "/api -> basic:hello" in rows["alpha"]
    assert "3 x 4" in rows["alpha"] and "SECRET, SITE" in rows["alpha"]
    assert "(default)" in rows["beta"] and "/beta" in rows["beta"] and "2 x 1" in rows["beta"]
    assert "alpha-secret-value" not in out  # env keys only, never values
    assert "alpha: middleware 1: mw:Tag(tag='outer')" in out
    assert "Site alpha: loaded app siteapp.app, /api -> basic.hello, 2 middleware" in out
    assert "Site beta: loaded app siteapp.app" in out
    assert out.endswith("OK\n")


def test_check_reports_a_broken_site_and_still_checks_the_others(sites_project: Path) -> None:
    (sites_project / "beta" / "siteapp.py").write_text("raise RuntimeError('beta is broken')\n")
    result = corral("check", cwd=sites_project)
    assert result.returncode == 1
    assert "Site alpha: loaded app siteapp.app" in result.stdout
    assert (
        "corral: error: site 'beta': cannot load app 'siteapp:app': importing 'siteapp' raised RuntimeError: beta is broken"
        in result.stderr
    )
    assert result.stdout.endswith("FAILED\n")


def test_check_reports_unknown_users_and_missing_virtualenvs(sites_project: Path) -> None:
    toml = sites_project / "corral.toml"
    text = toml.read_text()
    text = text.replace('user = "', 'user = "no-such-user-corral"\n# ').replace(
        'mount = "/beta"', 'mount = "/beta"\nvirtualenv = "venvs/none"'
    )
    toml.write_text(text)
    result = corral("check", cwd=sites_project)
    assert result.returncode == 1
    assert "corral: error: site 'alpha': user 'no-such-user-corral' does not exist on this machine" in result.stderr
    assert f"corral: error: site 'beta': virtualenv {sites_project / 'venvs' / 'none'} does not exist" in result.stderr


def make_venv(path: Path, with_corral: bool) -> Path:
    """A fresh virtualenv (no pip: fast); Corral made visible through a .pth when asked."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=60)
    (site_packages,) = path.glob("lib/python*/site-packages")
    if with_corral:
        import site

        ours = [p for p in site.getsitepackages() if os.path.isdir(p)]
        lines = "".join(f"import site; site.addsitedir({p!r})\n" for p in ours)
        (site_packages / "corral_from_parent.pth").write_text(lines)
    return site_packages


def test_check_loads_a_virtualenv_site_with_its_own_interpreter(sites_project: Path) -> None:
    site_packages = make_venv(sites_project / "venv", with_corral=True)
    (site_packages / "only_in_venv.py").write_text("VALUE = 'from the venv'\n")
    siteapp = sites_project / "beta" / "siteapp.py"
    siteapp.write_text("import sys\nimport only_in_venv\nprint('beta runs on', sys.executable)\n" + siteapp.read_text())
    toml = sites_project / "corral.toml"
    toml.write_text(toml.read_text().replace('mount = "/beta"', 'mount = "/beta"\nvirtualenv = "venv"'))
    result = corral("check", cwd=sites_project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"beta runs on {sites_project / 'venv' / 'bin' / 'python'}" in result.stdout
    assert "Site beta: loaded app siteapp.app" in result.stdout
    # the same module is not importable by a site without that virtualenv
    (sites_project / "alpha" / "siteapp.py").write_text("import only_in_venv\n")
    result = corral("check", cwd=sites_project)
    assert result.returncode == 1
    assert (
        "site 'alpha': cannot load app 'siteapp:app': importing 'siteapp' failed: no module named 'only_in_venv'"
        in result.stderr
    )


def test_check_names_a_virtualenv_without_corral(sites_project: Path) -> None:
    make_venv(sites_project / "bare", with_corral=False)
    toml = sites_project / "corral.toml"
    toml.write_text(toml.read_text().replace('mount = "/beta"', 'mount = "/beta"\nvirtualenv = "bare"'))
    result = corral("check", cwd=sites_project)
    assert result.returncode == 1
    python = sites_project / "bare" / "bin" / "python"
    expected = f"corral: error: site 'beta': Corral is not installed in virtualenv {sites_project / 'bare'} "
    assert f"{expected}(install it there: {install_command(str(python))})" in result.stderr


def test_check_rejects_overlapping_sites(sites_project: Path) -> None:
    toml = sites_project / "corral.toml"
    toml.write_text(toml.read_text() + '\n[sites.gamma]\napp = "basic:hello"\nhosts = ["ALPHA.test"]\n')
    result = corral("check", cwd=sites_project)
    assert result.returncode == 2
    assert (
        result.stderr
        == f"corral: error: {toml}: [sites.gamma] hosts: 'alpha.test' at mount '/' is already claimed by site 'alpha'\n"
    )


# -- corral init -----------------------------------------------------------------------


PROD_SETTINGS = """
import os

from .settings import *  # noqa: F403

DEBUG = False
SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
ALLOWED_HOSTS = os.environ["DJANGO_ALLOWED_HOSTS"].split(",")
"""


def startproject(tmp_path: Path) -> Path:
    django_admin = Path(sys.executable).with_name("django-admin")
    subprocess.run(
        [str(django_admin), "startproject", "mysite", str(tmp_path)], check=True, timeout=60, env=clean_env()
    )
    return tmp_path


def test_init_in_a_startproject_then_check_and_serve_both_profiles(serve, tmp_path: Path) -> None:
    startproject(tmp_path)
    bare = corral("init", cwd=tmp_path)  # no production settings: refuse, never write prod on settings.py
    assert bare.returncode == 1 and "no production settings module beside mysite.settings" in bare.stderr
    assert "corral init --prod-settings MODULE" in bare.stderr and not (tmp_path / "corral.toml").exists()
    (tmp_path / "mysite" / "prod.py").write_text(PROD_SETTINGS)
    first = corral("init", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"Wrote {tmp_path / 'corral.toml'}" in first.stdout
    assert "Checking profile dev:" in first.stdout and "Checking profile prod:" in first.stdout
    assert first.stdout.count("Site default: loaded app django.core.handlers.wsgi.WSGIHandler") == 2
    written = (tmp_path / "corral.toml").read_text()
    assert 'settings = "mysite.prod"' in written and 'env-file = "prod.env"' in written
    assert 'bind = ["127.0.0.1:8000"]' in written
    assert "DJANGO_SECRET_KEY=" in (tmp_path / "prod.env").read_text()
    again = corral("init", cwd=tmp_path)
    assert again.returncode == 1 and "already exists; use --force" in again.stderr
    assert corral("init", "--force", cwd=tmp_path).returncode == 0
    for profile, settings in (("dev", "mysite.settings"), ("prod", "mysite.prod")):
        result = corral("check", "--profile", profile, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"settings {settings}" in result.stdout
    assert "DEBUG" not in corral("check", "--profile", "prod", cwd=tmp_path).stderr
    server = serve("--profile", "prod", "--workers", "1", "--bind", "127.0.0.1:0", cwd=tmp_path)
    raw = server.request(b"GET /admin/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", timeout=15)
    assert raw.startswith(b"HTTP/1.1 200 "), raw[:300]
    assert b"csrfmiddlewaretoken" in raw
    # DEBUG is off: a host outside ALLOWED_HOSTS gets Django's plain 400, not the debug page.
    raw = server.request(b"GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n", timeout=15)
    assert raw.startswith(b"HTTP/1.1 400 "), raw[:300]
    assert b"DisallowedHost" not in raw and b"settings" not in raw.lower()


def test_init_fails_when_a_profile_does_not_load(tmp_path: Path) -> None:
    startproject(tmp_path)
    (tmp_path / "mysite" / "live.py").write_text("from .settings import *  # noqa: F403\nimport not_installed_here\n")
    result = corral("init", "--prod-settings", "mysite.live", "--bind", "0.0.0.0:8000", cwd=tmp_path)
    assert result.returncode == 1
    assert "No module named 'not_installed_here'" in result.stderr
    assert result.stderr.endswith(
        "corral: error: profile prod does not load (see above); fix it and run corral check --profile prod\n"
    )
    assert 'bind = ["0.0.0.0:8000"]' in (tmp_path / "corral.toml").read_text()


def test_init_outside_a_django_project(tmp_path: Path) -> None:
    result = corral("init", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        result.stderr == f"corral: error: no manage.py in {tmp_path}: run corral init in a Django project's directory\n"
    )
    assert not (tmp_path / "corral.toml").exists()


def test_help_lists_config_flags() -> None:
    result = corral("serve", "--help", cwd=Path("/"))
    assert "--config FILE" in result.stdout and "--profile NAME" in result.stdout
    assert "CORRAL_PROFILE" in result.stdout
