"""Dispatch to several WSGI apps by path prefix, with PEP 3333 SCRIPT_NAME/PATH_INFO."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

WSGIApp = Callable[..., Iterable[bytes]]


class MountDispatcher:
    """`/api/users` with a mount at `/api`: the api app sees SCRIPT_NAME += '/api', PATH_INFO='/users'.

    Prefixes are whole path segments (`/api` does not capture `/apiary`); the longest wins;
    everything else goes to `default`.
    """

    def __init__(self, default: WSGIApp, mounts: Mapping[str, WSGIApp]) -> None:
        self.default = default
        # Longest first, so /api/v2 wins over /api.
        self.mounts = sorted(((prefix.rstrip("/"), app) for prefix, app in mounts.items()), key=lambda m: -len(m[0]))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        for prefix, app in self.mounts:
            if path == prefix or path.startswith(prefix) and path[len(prefix)] == "/":
                environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
                environ["PATH_INFO"] = path[len(prefix) :]
                return app(environ, start_response)
        return self.default(environ, start_response)
