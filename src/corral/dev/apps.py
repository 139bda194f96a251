"""What the dev child serves besides the user's app: static files and the "broken app" page."""

from __future__ import annotations

import html
import logging
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

from .files import is_project_file

log = logging.getLogger("corral.error")

WSGIApp = Callable[..., Any]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>App failed to load - Corral</title>
<style>body{{font:15px/1.5 system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#222}}
h1{{color:#b00020;font-size:1.4em}}pre{{background:#f6f6f6;border-left:3px solid #b00020;padding:1em;overflow:auto}}
.hint{{color:#555}}</style></head>
<body><h1>The app failed to load</h1>
<pre>{message}</pre>
{traceback}
<p class="hint">Corral reloads as soon as you save a fix; this page is all it serves until then.</p>
</body></html>
"""


def broken_app(message: str, user_traceback: str | None) -> WSGIApp:
    """A WSGI app answering every request with 500 and the load error, as runserver shows it."""
    details = f"<pre>{html.escape(user_traceback)}</pre>" if user_traceback else ""
    page = _PAGE.format(message=html.escape(message), traceback=details).encode("utf-8")
    text = f"The app failed to load: {message}\n\n{user_traceback or ''}".rstrip().encode("utf-8") + b"\n"

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        wants_html = "html" in environ.get("HTTP_ACCEPT", "text/html")
        body, content_type = (page, "text/html; charset=utf-8") if wants_html else (text, "text/plain; charset=utf-8")
        start_response(
            "500 Internal Server Error",
            [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")],
        )
        return [body]

    return application


def with_static_files(app: WSGIApp) -> WSGIApp:
    """Wrap a Django app with StaticFilesHandler when runserver would (staticfiles installed, DEBUG on).

    Only when Django was set up while loading the app: a non-Django app, or one
    that merely has Django installed, is returned as it is.
    """
    if "django.apps" not in sys.modules:
        return app
    from django.apps import apps

    if not apps.ready or not apps.is_installed("django.contrib.staticfiles"):
        return app
    from django.conf import settings

    if not settings.DEBUG:
        return app
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.exceptions import ImproperlyConfigured

    try:
        return StaticFilesHandler(app)  # type: ignore[no-untyped-call]
    except ImproperlyConfigured as exc:
        log.warning("Not serving static files: %s", exc)
        return app


def django_template_dirs() -> set[str]:
    """The project's Django template directories, which runserver watches too.

    Since Django 4.1 the cached template loader is on even with DEBUG, so an edited
    template is only seen after a restart: these directories are watched like --watch.
    """
    if "django.apps" not in sys.modules:
        return set()
    from django.apps import apps

    if not apps.ready:
        return set()
    try:
        from django.template.autoreload import get_template_directories

        found = get_template_directories()  # type: ignore[no-untyped-call]
    except Exception:  # an unusual TEMPLATES setting must not stop the app from serving
        log.debug("Could not list Django template directories", exc_info=True)
        return set()
    paths = {os.path.realpath(path) for path in found}
    return {path for path in paths if is_project_file(path) and os.path.isdir(path)}
