"""`corral init`: write a corral.toml for the Django project in a directory.

Reads manage.py (without running it) for the DJANGO_SETTINGS_MODULE it sets by
default, looks for dev/prod settings modules beside it (or takes the production
one from --prod-settings: it never lets production run on the default settings),
and for the WSGI app (WSGI_APPLICATION in the settings, else the project's
wsgi.py). The prod profile binds to loopback unless --bind says otherwise, and
gets an env file when its settings read required variables: the one given, one
found beside manage.py, or one written there. Then both profiles are loaded as
`corral check` loads them. Never overwrites an existing corral.toml unless told to.
"""

from __future__ import annotations

import ast
import json
import os
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from ..config.files import CONFIG_FILE
from ..config.plan import load_plan
from ..config.problems import ConfigError
from ..server.listeners import BindError, parse_bind

DEV_NAMES = ("dev", "development", "local")
PROD_NAMES = ("prod", "production")
# Env files looked for beside manage.py for the prod profile, in this order.
ENV_FILE_NAMES = ("prod.env", ".env.prod", "production.env", ".env.production")
WRITTEN_ENV_FILE = "prod.env"
DEFAULT_BIND = "127.0.0.1:8000"  # loopback: a proxy in front, or --bind to say otherwise


@dataclass(frozen=True)
class DjangoProject:
    settings: str  # what manage.py sets by default
    dev_settings: str
    prod_settings: str
    wsgi_application: str | None  # WSGI_APPLICATION as written in the settings
    wsgi_module: str | None  # pkg.wsgi, when pkg/wsgi.py exists
    prod_variables: tuple[str, ...] = ()  # os.environ["NAME"] the production settings require


@dataclass(frozen=True)
class Choices:
    """What the command line chose: the prod profile's settings, addresses and env file."""

    prod_settings: str | None = None
    bind: tuple[str, ...] = ()
    env_file: str | None = None


class InitError(Exception):
    pass


def init(directory: str, force: bool = False, choices: Choices | None = None) -> int:
    choices = choices or Choices()
    path = os.path.join(directory, CONFIG_FILE)
    try:
        if os.path.exists(path) and not force:
            raise InitError(f"{path} already exists; use --force to overwrite it")
        for text in choices.bind:
            try:
                parse_bind(text)
            except BindError as exc:
                raise InitError(str(exc)) from None
        project = inspect_project(directory, choices.prod_settings)
        env_file, wrote_env = _env_file(directory, project, choices.env_file)
        text = render(project, choices.bind or (DEFAULT_BIND,), env_file)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except InitError as exc:
        sys.stderr.write(f"corral: error: {exc}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"corral: error: cannot write {exc.filename or path}: {exc.strerror}\n")
        return 1
    print(f"Wrote {path}:\n")
    print(text)
    if wrote_env:
        print(f"Wrote {wrote_env} (mode 600) with the variables {project.prod_settings} requires; edit its values, "
              "and keep it out of version control.\n")
    return _check_profiles(path)


def _check_profiles(path: str) -> int:
    """Load both profiles' apps as `corral check` does; what we wrote must really start."""
    from .check import load_apps

    failed = []
    for profile in ("dev", "prod"):
        try:
            plan = load_plan(path, profile)
        except ConfigError as exc:  # a bug here is ours, not the user's
            sys.stderr.write(f"corral: error: the written file does not load: {exc}\n")
            return 1
        print(f"Checking profile {profile}:")
        sys.stdout.flush()
        if not load_apps(plan):
            failed.append(profile)
    if failed:
        shown = " and ".join(failed)
        sys.stderr.write(
            f"corral: error: profile {shown} does not load (see above); fix it and run "
            f"corral check --profile {failed[0]}\n"
        )
        return 1
    print("\nNext: corral dev --profile dev; in production, corral check --profile prod, then "
          "corral serve --profile prod (or CORRAL_PROFILE=prod).")
    return 0


def inspect_project(directory: str, prod_settings: str | None = None) -> DjangoProject:
    manage = os.path.join(directory, "manage.py")
    if not os.path.isfile(manage):
        raise InitError(f"no manage.py in {directory}: run corral init in a Django project's directory")
    settings = settings_from_manage(manage)
    if settings is None:
        raise InitError(f"{manage} does not set a default DJANGO_SETTINGS_MODULE; cannot tell the settings module")
    if _module_file(directory, settings) is None:
        raise InitError(f"{manage} names settings {settings!r}, but no such module is in {directory}")
    dev = _variant(directory, settings, DEV_NAMES)
    if prod_settings is not None:
        if not all(part.isidentifier() for part in prod_settings.split(".")):
            raise InitError(f"--prod-settings {prod_settings!r} is not a module path such as mysite.settings_prod")
        if _module_file(directory, prod_settings) is None:
            raise InitError(f"--prod-settings {prod_settings}: no such module in {directory}")
        prod = prod_settings
    else:
        found = _variant(directory, settings, PROD_NAMES)
        if found is None:
            looked = ", ".join(_relative_file(c) for c in _candidates(directory, settings, PROD_NAMES))
            raise InitError(
                f"no production settings module beside {settings} (looked for {looked}); production must not run on "
                f"the development settings. Write one (DEBUG = False, ALLOWED_HOSTS, secrets from the environment; "
                "see docs/django.md) or name yours: corral init --prod-settings MODULE"
            )
        prod = found
    wsgi_application = None
    for module in (dev or settings, settings, prod):
        wsgi_application = wsgi_application or _assigned_string(_module_file(directory, module), "WSGI_APPLICATION")
    top = settings.partition(".")[0]
    wsgi_module = f"{top}.wsgi" if _module_file(directory, f"{top}.wsgi") else None
    variables = required_variables(_module_file(directory, prod))
    return DjangoProject(settings, dev or settings, prod, wsgi_application, wsgi_module, variables)


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


def render(project: DjangoProject, bind: Sequence[str] = (DEFAULT_BIND,), env_file: str | None = None) -> str:
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
    ]
    if env_file:
        lines.append(f"env-file = {_toml(env_file)}  # secrets and hosts for the production settings")
    loopback = all(text.startswith(("127.", "[::1]", "localhost:", "unix:")) for text in bind)
    if loopback:
        lines.append("# Loopback only: put nginx in front (docs/django.md), or bind beyond it with care.")
    lines += [
        f"bind = [{', '.join(_toml(text) for text in bind)}]",
        f"workers = {max(2, cores)}  # worker processes: about one per CPU core ({cores} here)",
        "threads = 4  # app threads per worker, so requests waiting on the database overlap",
        "",
    ]
    return "\n".join(lines)


def required_variables(path: str | None) -> tuple[str, ...]:
    """Names a settings file reads as `os.environ["NAME"]` (required: a KeyError without them)."""
    if path is None:
        return ()
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError, ValueError):
        return ()
    found: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "environ"
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
            and isinstance(node.ctx, ast.Load)
        ):
            found.append((node.lineno, node.col_offset, node.slice.value))
    return tuple(dict.fromkeys(name for _, _, name in sorted(found)))  # in the file's order, once each


def _env_file(directory: str, project: DjangoProject, given: str | None) -> tuple[str | None, str | None]:
    """(the prod profile's env-file value, the path of a file written for it, if one was)."""
    if given is not None:
        if not os.path.isfile(given):
            raise InitError(f"--env-file {given}: no such file")
        return os.path.abspath(given), None
    for name in ENV_FILE_NAMES:
        if os.path.isfile(os.path.join(directory, name)):
            return name, None
    if not project.prod_variables:
        return None, None
    path = os.path.join(directory, WRITTEN_ENV_FILE)
    text = render_env_file(project)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # secrets: readable by the owner only
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return WRITTEN_ENV_FILE, path


def render_env_file(project: DjangoProject) -> str:
    """Values that let the prod profile load on this machine: a fresh secret, loopback hosts."""
    lines = [
        f"# {WRITTEN_ENV_FILE}: written by `corral init` for [profile.prod] ({project.prod_settings}).",
        "# Secrets: keep this file out of version control. In production, move it beside the",
        "# service (/etc/corral/mysite.env, mode 600) and point env-file at it.",
        f"DJANGO_SETTINGS_MODULE={project.prod_settings}",
    ]
    for name in project.prod_variables:
        upper = name.upper()
        if "SECRET" in upper or upper.endswith("_KEY"):
            value = secrets.token_urlsafe(50)
        elif "HOSTS" in upper:
            lines.append("# The host names the site answers to, comma-separated (ALLOWED_HOSTS).")
            value = "localhost,127.0.0.1"
        else:
            lines.append(f"# {name}: set it to what production needs.")
            value = ""
        lines.append(f"{name}={value}")
    return "\n".join(lines) + "\n"


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
    `mysite.settings.prod`. A plain module `mysite.settings`: `mysite.settings_prod` beside it,
    else `mysite.prod`.
    """
    return next((c for c in _candidates(directory, settings, names) if _module_file(directory, c)), None)


def _candidates(directory: str, settings: str, names: tuple[str, ...]) -> list[str]:
    """The modules `_variant` tries, in order."""
    package, _, leaf = settings.rpartition(".")
    if _is_package(directory, settings):
        return [f"{settings}.{name}" for name in names]
    if package.rpartition(".")[2].startswith("settings"):
        return [f"{package}.{name}" for name in names]
    if leaf.startswith("settings"):
        beside = [f"{package}.{name}" if package else name for name in names]  # mysite/prod.py
        return [f"{settings}_{name}" for name in names] + beside
    return []


def _relative_file(module: str) -> str:
    return os.path.join(*module.split(".")) + ".py"


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
