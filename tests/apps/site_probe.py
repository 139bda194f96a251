"""Apps and middleware for the multi-site tests: each answers with what its process sees."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

CHAIN_KEY = "corral.test.chain"  # middleware names, in the order the request passed them


def _json(start_response: Callable[..., Any], data: dict[str, Any], status: str = "200 OK") -> list[bytes]:
    body = json.dumps(data).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Where the request landed: the process, its environment and the PEP 3333 path split."""
    return _json(
        start_response,
        {
            "site": os.environ.get("SITE_NAME"),
            "pid": os.getpid(),
            "script_name": environ.get("SCRIPT_NAME"),
            "path_info": environ.get("PATH_INFO"),
            "host": environ.get("HTTP_HOST"),
            "django_settings_module": os.environ.get("DJANGO_SETTINGS_MODULE"),
            "chain": environ.get(CHAIN_KEY, []),
        },
    )


def big(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """4 MiB in one chunk: far more than the socket buffers, so much of it waits in the transport."""
    body = bytes(range(256)) * (16 * 1024)
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
    return [body]


class Append:
    """Records its `value` in the environ on the way in and appends it to X-Chain on the way out."""

    def __init__(self, app: Callable[..., Iterable[bytes]], value: str) -> None:
        self.app = app
        self.value = value

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ[CHAIN_KEY] = [*environ.get(CHAIN_KEY, []), self.value]

        def chained(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            previous = [v for k, v in headers if k.lower() == "x-chain"]
            rest = [(k, v) for k, v in headers if k.lower() != "x-chain"]
            value = ",".join([*previous, self.value])
            return start_response(status, [*rest, ("X-Chain", value)], exc_info)

        return self.app(environ, chained)
