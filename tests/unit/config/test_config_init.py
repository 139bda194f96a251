"""`corral init`: reading a Django project without running it, and the file it writes."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from corral.commands import init as init_module
from corral.commands.init import Choices, InitError, init, inspect_project, required_variables, settings_from_manage

MANAGE = """#!/usr/bin/env python
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{settings}")
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)
"""


def project(root: Path, settings: str, files: dict[str, str]) -> Path:
    (root / "manage.py").write_text(MANAGE.format(settings=settings))
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture(autouse=True)
def loaded_checks(monkeypatch) -> list[str]:
    """Loading the written profiles' apps is tested for real in tests/integration; here, record the call."""
    calls: list[str] = []

    def check(path: str) -> int:
        calls.append(path)
        return 0

    monkeypatch.setattr(init_module, "_check_profiles", check)
    return calls


def test_plain_startproject_layout_has_no_production_settings(tmp_path) -> None:
    project(tmp_path, "mysite.settings", {
        "mysite/__init__.py": "",
        "mysite/settings.py": 'WSGI_APPLICATION = "mysite.wsgi.application"\n',
        "mysite/wsgi.py": "",
    })
    with pytest.raises(InitError) as info:
        inspect_project(str(tmp_path))
    assert str(info.value) == (
        "no production settings module beside mysite.settings (looked for mysite/settings_prod.py, "
        "mysite/settings_production.py, mysite/prod.py, mysite/production.py); production must not run on the "
        "development settings. Write one (DEBUG = False, ALLOWED_HOSTS, secrets from the environment; see "
        "docs/django.md) or name yours: corral init --prod-settings MODULE"
    )
    (tmp_path / "mysite" / "live.py").write_text("from .settings import *\n")
    found = inspect_project(str(tmp_path), "mysite.live")
    assert (found.settings, found.dev_settings, found.prod_settings) == ("mysite.settings",) * 2 + ("mysite.live",)
    assert found.wsgi_application == "mysite.wsgi.application" and found.wsgi_module == "mysite.wsgi"


def test_prod_module_beside_a_plain_settings_module(tmp_path) -> None:
    project(tmp_path, "mysite.settings", {"mysite/__init__.py": "", "mysite/settings.py": "", "mysite/prod.py": ""})
    assert inspect_project(str(tmp_path)).prod_settings == "mysite.prod"


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("mysite/prod.py", "--prod-settings 'mysite/prod.py' is not a module path such as mysite.settings_prod"),
        ("mysite.gone", "--prod-settings mysite.gone: no such module in {dir}"),
    ],
)
def test_bad_prod_settings_flag(tmp_path, flag: str, message: str) -> None:
    project(tmp_path, "mysite.settings", {"mysite/__init__.py": "", "mysite/settings.py": ""})
    with pytest.raises(InitError) as info:
        inspect_project(str(tmp_path), flag)
    assert str(info.value) == message.format(dir=tmp_path)


def test_settings_package_with_dev_and_prod_modules(tmp_path) -> None:
    project(tmp_path, "conf.settings.development", {
        "conf/__init__.py": "",
        "conf/settings/__init__.py": "",
        "conf/settings/base.py": "",
        "conf/settings/development.py": "from .base import *\n",
        "conf/settings/production.py": "from .base import *\n",
        "conf/wsgi.py": "",
    })
    found = inspect_project(str(tmp_path))
    assert found.dev_settings == "conf.settings.development"
    assert found.prod_settings == "conf.settings.production"
    assert found.wsgi_application is None and found.wsgi_module == "conf.wsgi"


def test_settings_modules_beside_the_main_one(tmp_path) -> None:
    project(tmp_path, "mysite.settings", {
        "mysite/__init__.py": "",
        "mysite/settings.py": "",
        "mysite/settings_prod.py": "from .settings import *\n",
    })
    found = inspect_project(str(tmp_path))
    assert (found.dev_settings, found.prod_settings) == ("mysite.settings", "mysite.settings_prod")
    assert found.wsgi_module is None


def test_init_writes_a_loadable_file_with_two_profiles(tmp_path, capsys, loaded_checks: list[str]) -> None:
    project(tmp_path, "app.settings", {
        "app/__init__.py": "",
        "app/settings/__init__.py": "",
        "app/settings/dev.py": "",
        "app/settings/prod.py": "",
        "app/wsgi.py": "",
    })
    assert init(str(tmp_path)) == 0
    written = (tmp_path / "corral.toml").read_text()
    assert written in capsys.readouterr().out
    data = tomllib.loads(written)
    assert data["settings"] == "app.settings" and data["app"] == "app.wsgi:application"
    assert data["chdir"] == "."
    assert data["profile"]["dev"]["settings"] == "app.settings.dev"
    assert data["profile"]["prod"]["settings"] == "app.settings.prod"
    assert data["profile"]["prod"]["workers"] >= 2 and data["profile"]["prod"]["bind"] == ["127.0.0.1:8000"]
    assert "env-file" not in data["profile"]["prod"]  # prod.py reads no required variable
    assert loaded_checks == [str(tmp_path / "corral.toml")]


PROD = """from .settings import *
import os
DEBUG = False
SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
ALLOWED_HOSTS = os.environ["DJANGO_ALLOWED_HOSTS"].split(",")
DATABASE_URL = os.environ["DATABASE_URL"]
OPTIONAL = os.environ.get("OPTIONAL", "")
"""


def test_required_variables_are_the_subscripted_reads(tmp_path) -> None:
    (tmp_path / "prod.py").write_text(PROD)
    expected = ("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL")
    assert required_variables(str(tmp_path / "prod.py")) == expected
    assert required_variables(None) == ()


def test_init_writes_an_env_file_the_prod_profile_needs(tmp_path, capsys) -> None:
    project(tmp_path, "mysite.settings", {"mysite/__init__.py": "", "mysite/settings.py": "", "mysite/prod.py": PROD})
    assert init(str(tmp_path), choices=Choices(bind=("0.0.0.0:8000",))) == 0
    data = tomllib.loads((tmp_path / "corral.toml").read_text())
    assert data["profile"]["prod"]["env-file"] == "prod.env"
    assert data["profile"]["prod"]["bind"] == ["0.0.0.0:8000"]
    env = tmp_path / "prod.env"
    assert env.stat().st_mode & 0o777 == 0o600
    lines = dict(line.split("=", 1) for line in env.read_text().splitlines() if not line.startswith("#"))
    assert lines["DJANGO_SETTINGS_MODULE"] == "mysite.prod"
    assert len(lines["DJANGO_SECRET_KEY"]) >= 50 and lines["DJANGO_ALLOWED_HOSTS"] == "localhost,127.0.0.1"
    assert lines["DATABASE_URL"] == "" and "OPTIONAL" not in lines
    assert f"Wrote {env} (mode 600)" in capsys.readouterr().out
    # A second run keeps the file (its secret may be in use) and points at it again.
    before = env.read_text()
    assert init(str(tmp_path), force=True) == 0
    assert env.read_text() == before
    assert tomllib.loads((tmp_path / "corral.toml").read_text())["profile"]["prod"]["env-file"] == "prod.env"


def test_init_takes_an_env_file_and_refuses_bad_flags(tmp_path, capsys) -> None:
    project(tmp_path, "mysite.settings", {"mysite/__init__.py": "", "mysite/settings.py": "", "mysite/prod.py": PROD})
    mine = tmp_path / "secrets.env"
    mine.write_text("DJANGO_SECRET_KEY=x\n")
    assert init(str(tmp_path), choices=Choices(env_file=str(mine))) == 0
    assert tomllib.loads((tmp_path / "corral.toml").read_text())["profile"]["prod"]["env-file"] == str(mine)
    assert not (tmp_path / "prod.env").exists()
    capsys.readouterr()
    assert init(str(tmp_path), force=True, choices=Choices(env_file=str(tmp_path / "nope.env"))) == 1
    assert capsys.readouterr().err == f"corral: error: --env-file {tmp_path / 'nope.env'}: no such file\n"
    assert init(str(tmp_path), force=True, choices=Choices(bind=("nowhere",))) == 1
    assert capsys.readouterr().err.startswith("corral: error: ")


def test_init_never_overwrites_without_force(tmp_path, capsys) -> None:
    project(tmp_path, "m.settings", {"m/__init__.py": "", "m/settings.py": "", "m/settings_prod.py": ""})
    (tmp_path / "corral.toml").write_text("# mine\n")
    assert init(str(tmp_path)) == 1
    assert "corral.toml already exists; use --force to overwrite it" in capsys.readouterr().err
    assert (tmp_path / "corral.toml").read_text() == "# mine\n"
    assert init(str(tmp_path), force=True) == 0
    assert 'settings = "m.settings"' in (tmp_path / "corral.toml").read_text()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("none", "no manage.py in {dir}: run corral init in a Django project's directory"),
        (
            "no-default",
            "{dir}/manage.py does not set a default DJANGO_SETTINGS_MODULE; cannot tell the settings module",
        ),
        ("missing", "{dir}/manage.py names settings 'gone.settings', but no such module is in {dir}"),
    ],
)
def test_init_errors(tmp_path, setup: str, message: str) -> None:
    if setup == "no-default":
        (tmp_path / "manage.py").write_text("import os\n")
    elif setup == "missing":
        project(tmp_path, "gone.settings", {})
    with pytest.raises(InitError) as info:
        inspect_project(str(tmp_path))
    assert str(info.value) == message.format(dir=tmp_path)
    assert not (tmp_path / "corral.toml").exists()


def test_settings_from_manage_ignores_other_setdefaults(tmp_path) -> None:
    path = tmp_path / "manage.py"
    path.write_text(
        'import os\nos.environ.setdefault("OTHER", "x")\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", "a.b")\n'
    )
    assert settings_from_manage(str(path)) == "a.b"
    path.write_text("this is not python (")
    assert settings_from_manage(str(path)) is None
