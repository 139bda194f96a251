"""Guards on the Django settings a loaded app really runs with.

Run where the app is loaded (each worker, `corral dev`'s app process, `corral
check`'s child), right after loading, they catch three ways of serving with
settings nobody chose:

- The app's own code replaces the settings module Corral was given. A `wsgi.py`
  doing `os.environ["DJANGO_SETTINGS_MODULE"] = "mysite.settings"` runs after
  Corral set `--settings mysite.prod`, so Django would silently use the
  development settings. That refuses to start, naming the file and line.
  (`os.environ.setdefault(...)`, as Django generates it, changes nothing and
  stays silent.)
- Django configured with another module than the environment names
  (`settings.configure()`, or an import that set Django up first).
- `DEBUG = True` in settings served by a `prod` profile or beyond loopback: a
  warning, since Django's debug page shows settings and source to anyone.

How the assignment is found: while the app is imported, the class of the one
`os.environ` object is swapped for a subclass whose `__setitem__` and
`__delitem__` note the first change to DJANGO_SETTINGS_MODULE with the file and
line that made it. Swapping the class rather than rebinding `os.environ` also
catches code that did `from os import environ`; other keys cost one comparison,
and the class is restored the moment the import ends. (A trace function would
slow the whole import; an audit hook on os.putenv can never be removed and sees
putenv, not os.environ; comparing values afterwards tells *that* it changed but
not *where*.)
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import TypeVar

from .config.plan import Plan
from .loading import AppLoadError, user_traceback
from .server.environment import app_environment

KEY = "DJANGO_SETTINGS_MODULE"
T = TypeVar("T")
# Frames inside these files are the mapping machinery (setdefault, update), not the caller.
_MAPPING_FILES = frozenset(
    os.path.abspath(path)
    for path in (os.__file__, sys.modules["_collections_abc"].__file__ or "")
    if path
)


@dataclass(frozen=True)
class Override:
    """The first change the app's code made to DJANGO_SETTINGS_MODULE."""

    filename: str
    lineno: int
    old: str | None
    new: str | None  # None: deleted

    def where(self) -> str:
        path = self.filename
        try:
            relative = os.path.relpath(path)
        except ValueError:
            relative = path
        return f"{path if relative.startswith('..') else relative}, line {self.lineno}"


class SettingsWatch:
    """What happened to DJANGO_SETTINGS_MODULE during one import (see the module docstring)."""

    def __init__(self) -> None:
        self.before = os.environ.get(KEY)
        self.override: Override | None = None

    def note(self, old: str | None, new: str | None) -> None:
        if self.override is not None or old == new:
            return
        frame: FrameType | None = sys._getframe(2)
        while frame is not None and os.path.abspath(frame.f_code.co_filename) in _MAPPING_FILES:
            frame = frame.f_back
        if frame is not None:
            self.override = Override(frame.f_code.co_filename, frame.f_lineno, old, new)
        else:  # pragma: no cover - there is always a caller outside os.py
            self.override = Override("<unknown>", 0, old, new)


_active: SettingsWatch | None = None


class _WatchedEnviron(os._Environ):  # type: ignore[type-arg]
    def __setitem__(self, key: str, value: str) -> None:
        if key == KEY and _active is not None:
            _active.note(self.get(KEY), value)
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        if key == KEY and _active is not None and key in self:
            _active.note(self.get(KEY), None)
        super().__delitem__(key)


@contextmanager
def watching() -> Iterator[SettingsWatch]:
    """Note changes to DJANGO_SETTINGS_MODULE made inside the block (the app's import)."""
    global _active
    watch = SettingsWatch()
    original = os.environ.__class__
    _active = watch
    os.environ.__class__ = _WatchedEnviron
    try:
        yield watch
    finally:
        os.environ.__class__ = original
        _active = None


def guarded_load(load: Callable[[], T], source: str) -> T:
    """`load()` the app, then refuse it if its code replaced the settings module (see `verify`)."""
    with watching() as watch:
        app = load()
    verify(watch, source)
    return app


def told_by(config_settings: str | None, applied: dict[str, str]) -> str:
    """Who set DJANGO_SETTINGS_MODULE before the import, in words for the error."""
    if config_settings:
        return "--settings or the config's settings"
    if KEY in applied:
        return "the env file or --env"
    return "the environment Corral was started in"


def verify(watch: SettingsWatch, source: str) -> None:
    """Refuse an app whose code replaced the settings module it was given (see module docstring)."""
    told = watch.before
    if told is None:
        return  # nothing chosen: the app's own default (setdefault) is the choice
    now = os.environ.get(KEY)
    override = watch.override
    if override is not None and now != told:
        change = f"sets {KEY} to {now!r}" if now is not None else f"deletes {KEY}"
        raise AppLoadError(
            f"{override.where()} {change}, overriding {told!r} (from {source}): Django would run on the wrong "
            f"settings. Use os.environ.setdefault({KEY!r}, ...) there, or remove the line"
        )
    used = django_settings_module()
    if used is not None and used != (told,):
        shown = repr(used[0]) if used[0] else "settings.configure()"
        raise AppLoadError(
            f"Django is configured with {shown}, not {told!r} (from {source}): "
            "the app's code set Django up with other settings"
        )


def django_settings_module() -> tuple[str | None] | None:
    """(module,) Django was configured with; (None,) after settings.configure(); None if not set up."""
    if "django.conf" not in sys.modules:
        return None
    from django.conf import settings

    if not settings.configured:
        return None
    return (getattr(settings, "SETTINGS_MODULE", None),)


def debug_warning(exposure: str | None) -> str | None:
    """A warning when Django runs with DEBUG = True while `exposure` says production."""
    if exposure is None or django_settings_module() is None:
        return None
    from django.conf import settings

    try:
        debug = bool(settings.DEBUG)
    except Exception:  # settings that cannot be read were reported by the load itself
        return None
    if not debug:
        return None
    module = getattr(settings, "SETTINGS_MODULE", None) or "settings.configure()"
    return (
        f"DEBUG = True in Django settings {module}, yet {exposure}: Django's debug pages show your "
        "settings, source code and environment to anyone who reaches them. Select production settings "
        "(settings in corral.toml, or --settings)"
    )


Bind = tuple[int, str, str]  # family, host (or path), as shown


def exposure(profile: str | None, binds: list[Bind]) -> str | None:
    """Why this server counts as production: a `prod` profile, or an address beyond loopback."""
    if profile and "prod" in profile.lower():
        return f"the profile is {profile!r}"
    public = [shown for family, host, shown in binds if not _is_loopback(family, host)]
    if public:
        return f"the server listens beyond loopback ({', '.join(public)})"
    return None


def socket_binds(sockets: list[socket.socket]) -> list[Bind]:
    """Each listening socket, as `exposure` takes them."""
    found = []
    for sock in sockets:
        try:
            name = sock.getsockname()
        except OSError:
            continue
        if isinstance(name, str):
            found.append((int(sock.family), name, f"unix:{name}"))
        else:
            host = str(name[0])
            shown = f"[{host}]:{name[1]}" if sock.family == socket.AF_INET6 else f"{host}:{name[1]}"
            found.append((int(sock.family), host, shown))
    return found


def _is_loopback(family: int, host: str) -> bool:
    if family == socket.AF_UNIX:
        return True
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def startup_warnings(plan: Plan, environ: Mapping[str, str]) -> list[str]:
    """DJANGO_SETTINGS_MODULE given in two places that disagree: say which one is used.

    Told before anything is loaded (serve, check): the shell's or the service
    manager's variable, an env file's and the `settings` in the config. (Sites of
    a multi-site server never inherit the variable: see `not_inherited_warning`.)
    """
    inherited = environ.get(KEY)
    warnings = []
    for site in plan.sites:
        where = f"site {site.name!r}: " if plan.multi_site else ""
        settings = site.config.settings
        if not settings:
            continue
        if inherited and inherited != settings and not plan.multi_site:
            warnings.append(
                f"{KEY}={inherited} in the environment Corral was started in is ignored: "
                f"settings {settings!r} from the configuration is used"
            )
        try:
            from_file = app_environment(dataclasses.replace(site.config, settings=None)).get(KEY)
        except AppLoadError:
            continue  # an unreadable env file is reported where the app is loaded
        if from_file and from_file != settings:
            warnings.append(
                f"{where}{KEY}={from_file} in the env file or --env is ignored: "
                f"settings {settings!r} from the configuration is used"
            )
    return warnings


def not_inherited_warning(dropped: str | None) -> str | None:
    """A site runs Django on other settings than the DJANGO_SETTINGS_MODULE it was not given.

    Sites never inherit the variable from the master's environment; when one
    then runs Django with another module (its wsgi.py's default, say), the
    exported value someone expected to apply did not.
    """
    used = django_settings_module()
    if dropped is None or used is None or used == (dropped,):
        return None
    shown = repr(used[0]) if used[0] else "settings.configure()"
    return (
        f"runs Django settings {shown}; {KEY}={dropped} in the environment Corral was started in is not "
        "passed to sites (name the module in the site's settings)"
    )


def import_urlconf() -> None:
    """Import Django's root URLconf (and so the views it imports), as runserver's checks do.

    Django imports it lazily, on the first request, where an error in urls.py or
    a view is a 500 whose own error page fails too. The development server and
    `corral check` call this after loading, so such an error is a load error
    with one traceback. Does nothing when the app is not a configured Django.
    """
    if django_settings_module() is None or "django.apps" not in sys.modules:
        return
    from django.apps import apps

    if not apps.ready:
        return
    from django.conf import settings

    if not getattr(settings, "ROOT_URLCONF", None):
        return
    from django.urls import get_resolver

    resolver = get_resolver()
    try:
        resolver.url_patterns  # noqa: B018 - the property imports the URLconf and what it includes
    except SyntaxError as exc:
        raise _urlconf_error(f"syntax error in {exc.filename}, line {exc.lineno}: {exc.msg}", exc) from None
    except Exception as exc:
        raise _urlconf_error(f"importing it raised {type(exc).__name__}: {exc}", exc) from None


def _urlconf_error(what: str, exc: BaseException) -> AppLoadError:
    import django
    from django.conf import settings

    django_dir = os.path.dirname(os.path.abspath(django.__file__ or ""))  # its URL resolver: not the user's frames
    return AppLoadError(
        f"URLconf {settings.ROOT_URLCONF!r} does not load: {what}", user_traceback(exc, hide=(django_dir,))
    )
