"""`corral init`: reading a Django project without running it, and the file it writes."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from corral.commands.init import InitError, init, inspect_project, settings_from_manage

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


def test_plain_startproject_layout(tmp_path) -> None:
    project(tmp_path, "mysite.settings", {
        "mysite/__init__.py": "",
        "mysite/settings.py": 'WSGI_APPLICATION = "mysite.wsgi.application"\n',
        "mysite/wsgi.py": "",
    })
    found = inspect_project(str(tmp_path))
    assert (found.settings, found.dev_settings, found.prod_settings) == ("mysite.settings",) * 3
    assert found.wsgi_application == "mysite.wsgi.application" and found.wsgi_module == "mysite.wsgi"


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


def test_init_writes_a_loadable_file_with_two_profiles(tmp_path, capsys) -> None:
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
    assert data["profile"]["prod"]["workers"] >= 2 and data["profile"]["prod"]["bind"] == ["0.0.0.0:8000"]


def test_init_never_overwrites_without_force(tmp_path, capsys) -> None:
    project(tmp_path, "m.settings", {"m/__init__.py": "", "m/settings.py": ""})
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
