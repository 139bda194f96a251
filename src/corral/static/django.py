"""A Django site's own STATIC_URL -> STATIC_ROOT (and MEDIA_URL -> MEDIA_ROOT) as static routes.

Read in the site's worker after its app has loaded, so the settings are the site's own,
whatever module, environment and profile chose them. A root that does not exist is left
out with a warning (the app keeps those URLs, as before); an empty STATIC_ROOT is served
but warned about: collectstatic has not filled it yet.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import urlsplit

from ..config.static import StaticRoute
from ..config.values import ValueProblem

_SETTINGS = {"static": ("STATIC_URL", "STATIC_ROOT"), "media": ("MEDIA_URL", "MEDIA_ROOT")}


def django_settings_loaded() -> bool:
    """Whether this process runs a Django project whose settings are (or can be) loaded."""
    if "django.conf" not in sys.modules:
        return False
    from django.conf import settings

    return bool(settings.configured or os.environ.get("DJANGO_SETTINGS_MODULE"))


def django_routes(kinds: tuple[str, ...], mount: str = "") -> tuple[list[StaticRoute], list[str]]:
    """(routes, warnings) for the kinds asked for ("static", "media"), from the live settings."""
    if "none" in kinds or not django_settings_loaded():
        return [], []
    from django.conf import settings

    from ..config.sites import normalize_prefix

    routes: list[StaticRoute] = []
    warnings: list[str] = []
    for kind in dict.fromkeys(kinds):
        url_name, root_name = _SETTINGS[kind]
        try:
            url = getattr(settings, url_name, None)
            root = getattr(settings, root_name, None)
        except Exception as exc:  # ImproperlyConfigured and whatever the settings module raises
            warnings.append(f"cannot read {url_name}/{root_name} from the Django settings: {exc}")
            continue
        if not url or not root:
            if kind == "static" and url:
                warnings.append(f"{root_name} is not set: static files under {url} are left to the app")
            continue
        parts = urlsplit(str(url))
        if parts.scheme or parts.netloc:
            continue  # served elsewhere (a CDN): nothing for us to map
        path = parts.path if parts.path.startswith("/") else "/" + parts.path
        if mount and (path == mount or path.startswith(mount + "/")):
            path = path[len(mount):]  # an absolute URL that already names the site's mount
        try:
            prefix = normalize_prefix(path)
        except ValueProblem as exc:
            warnings.append(f"{url_name} {url!r} cannot be mapped: {exc}")
            continue
        if not prefix:
            warnings.append(f"{url_name} {url!r} is the site's root: not mapped")
            continue
        directory = os.path.abspath(os.fspath(root))
        if not os.path.isdir(directory):
            hint = " (run manage.py collectstatic)" if kind == "static" else ""
            warnings.append(f"{root_name} {directory} does not exist{hint}: {prefix} is left to the app")
            continue
        with os.scandir(directory) as entries:
            empty = next(entries, None) is None
        if kind == "static" and empty:
            warnings.append(f"{root_name} {directory} is empty: run manage.py collectstatic")
        routes.append(StaticRoute(prefix, directory, origin=root_name))
    return routes, warnings
