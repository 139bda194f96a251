"""The built-in app served when no APP is given: proof that the server runs."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from typing import Any

from . import __version__

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Corral {version}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}}
code{{background:#f3f3f3;padding:.1em .3em;border-radius:3px}}</style></head>
<body><h1>Corral {version} is running</h1>
<p>This is Corral's built-in welcome page. Serve your own WSGI application with
<code>corral serve mypackage.wsgi:application</code>, or a Django project with
<code>corral serve --settings mysite.settings</code>.</p>
<p>You asked for <code>{path}</code>.</p></body></html>
"""


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = html.escape(environ.get("PATH_INFO", "/"))
    body = _PAGE.format(version=__version__, path=path).encode("utf-8")
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]
