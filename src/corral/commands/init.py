"""`corral init`: write a corral.toml for the Django project in a directory.

Reads manage.py (without running it) for the DJANGO_SETTINGS_MODULE it sets by
default, looks for dev/prod settings modules beside it, and for the WSGI app
(WSGI_APPLICATION in the settings, else the project's wsgi.py). Never overwrites
an existing corral.toml unless told to.
"""

from __future__ import annotations

import ast
import json
import os
import sys
from dataclasses import dataclass

from ..config.files import CONFIG_FILE
from ..config.plan import load_plan
from ..config.problems import ConfigError

DEV_NAMES = ("dev", "development", "local")
PROD_NAMES = ("prod", "production")


@dataclass(frozen=True)
class DjangoProject:
    settings: str  # what manage.py sets by default
    dev_settings: str
    prod_settings: str
    wsgi_application: str | None  # WSGI_APPLICATION as written in the settings
    wsgi_module: str | None  # pkg.wsgi, when pkg/wsgi.py exists


class InitError(Exception):
    pass


def init(directory: str, force: bool = False) -> int:
    path = os.path.join(directory, CONFIG_FILE)
    try:
        if os.path.exists(path) and not force:
            raise InitError(f"{path} already exists; use --force to overwrite it")
        project = inspect_project(directory)
        text = render(project)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except InitError as exc:
        sys.stderr.write(f"corral: error: {exc}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"corral: error: cannot write {path}: {exc.strerror}\n")
        return 1
    print(f"Wrote {path}:\n")
    print(text)
    for profile in ("dev", "prod"):  # what we wrote must load; a bug here is ours, not the user's
        try:
            load_plan(path, profile)
        except ConfigError as exc:
            sys.stderr.write(f"corral: error: the written file does not load: {exc}\n")
            return 1
    print("Next: corral check --profile dev, then corral serve --profile prod (or CORRAL_PROFILE=prod).")
    return 0


def inspect_project(directory: str) -> DjangoProject:
    manage = os.path.join(directory, "manage.py")
    if not os.path.isfile(manage):
        raise InitError(f"no manage.py in {directory}: run corral init in a Django project's directory")
    settings = settings_from_manage(manage)
    if settings is None:
        raise InitError(f"{manage} does not set a default DJANGO_SETTINGS_MODULE; cannot tell the settings module")
    if _module_file(directory, settings) is None:
        raise InitError(f"{manage} names settings {settings!r}, but no such module is in {directory}")
    dev = _variant(directory, settings, DEV_NAMES)
    prod = _variant(directory, settings, PROD_NAMES)
    wsgi_application = None
    for module in (dev or settings, settings, prod or settings):
        wsgi_application = wsgi_application or _assigned_string(_module_file(directory, module), "WSGI_APPLICATION")
    top = settings.partition(".")[0]
    wsgi_module = f"{top}.wsgi" if _module_file(directory, f"{top}.wsgi") else None
    return DjangoProject(settings, dev or settings, prod or settings, wsgi_application, wsgi_module)


def settings_from_manage(path: str) -> str | None:
    """The value in `os.environ.setdefault("DJANGO_SETTINGS_MODULE", "...")`, read, not run."""
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "setdefault"
            and len(node.args) == 2
            and all(isinstance(arg, ast.Constant) and isinstance(arg.value, str) for arg in node.args)
            and node.args[0].value == "DJANGO_SETTINGS_MODULE"  # type: ignore[attr-defined]
        ):
            return node.args[1].value  # type: ignore[attr-defined, no-any-return]
    return None


def render(project: DjangoProject) -> str:
    cores = os.cpu_count() or 2
    lines = [
        f"# {CONFIG_FILE}: written by `corral init` for the Django project in this directory.",
        "# Top-level keys apply to every profile; a [profile.NAME] table overrides them, and",
        "# command-line flags override both. Pick a profile with --profile NAME or CORRAL_PROFILE.",
        "#   corral dev --profile dev        development server with autoreload",
        "#   corral check --profile prod     resolve everything and import the app; serve nothing",
        "#   corral serve --profile prod     production",
        "",
        "# Relative paths are relative to this file, so --config works from any directory.",
        'chdir = "."',
        f"settings = {_toml(project.settings)}",
    ]
    if project.wsgi_application:
        lines.insert(-1, f"# The app is the settings' WSGI_APPLICATION ({project.wsgi_application}).")
    elif project.wsgi_module:
        lines.append(f"app = {_toml(project.wsgi_module + ':application')}")
    lines += [
        "",
        "[profile.dev]",
        f"settings = {_toml(project.dev_settings)}",
        'bind = ["127.0.0.1:8000"]',
        'access-log = "-"',
        'log-level = "debug"',
        "",
        "[profile.prod]",
        f"settings = {_toml(project.prod_settings)}",
        'bind = ["0.0.0.0:8000"]',
        f"workers = {max(2, cores)}  # worker processes: about one per CPU core ({cores} here)",
        "threads = 4  # app threads per worker, so requests waiting on the database overlap",
        "",
    ]
    return "\n".join(lines)


def _toml(text: str) -> str:
    return json.dumps(text)  # a JSON string of printable text is a valid TOML basic string


def _module_file(directory: str, module: str) -> str | None:
    base = os.path.join(directory, *module.split("."))
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    return None


def _is_package(directory: str, module: str) -> bool:
    return os.path.isfile(os.path.join(directory, *module.split("."), "__init__.py"))


def _variant(directory: str, settings: str, names: tuple[str, ...]) -> str | None:
    """A dev or prod flavour of the settings, in one of the usual layouts.

    A package (`mysite.settings/` with `prod.py`, or manage.py naming `mysite.settings.dev`):
    `mysite.settings.prod`. A plain module `mysite.settings`: `mysite.settings_prod` beside it.
    """
    package, _, leaf = settings.rpartition(".")
    if _is_package(directory, settings):
        candidates = [f"{settings}.{name}" for name in names]
    elif package.rpartition(".")[2].startswith("settings"):
        candidates = [f"{package}.{name}" for name in names]
    elif leaf.startswith("settings"):
        candidates = [f"{settings}_{name}" for name in names]
    else:
        candidates = []
    return next((c for c in candidates if _module_file(directory, c)), None)


def _assigned_string(path: str | None, name: str) -> str | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    return None
