"""Reports which interpreter and environment a site's worker runs in, and what it can import."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

import corral


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    try:
        import corral_venv_only  # installed only in the per-site virtualenv test's venv

        imported = corral_venv_only.WHERE
    except ImportError as exc:
        imported = f"{type(exc).__name__}: {exc}"
    body = json.dumps(
        {
            "site": os.environ.get("SITE_NAME"),
            "executable": sys.executable,
            "prefix": sys.prefix,
            "corral": corral.__file__,
            "imported": imported,
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
