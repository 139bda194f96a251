"""PEP 3333 environ from a parsed request.

The per-connection keys (server and remote addresses, wsgi.* constants) are
built once per connection; each request copies that dict and adds its own.
Header names containing `_` are dropped: `X_Auth` would otherwise land on the
same HTTP_X_AUTH key as `X-Auth` and could shadow a header set by a proxy.
"""

from __future__ import annotations

import sys
from typing import Any, BinaryIO
from urllib.parse import unquote_to_bytes

from .. import __version__
from ..http.request import Request
from .file_wrapper import FileWrapper

_key_cache: dict[bytes, str | None] = {}
_MISSING = ""  # no environ key is empty: marks a header name not cached yet
_PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0", "2": "HTTP/2"}
_JOIN = {"HTTP_COOKIE": "; "}


def header_key(name: bytes) -> str | None:
    """Map a header name to its environ key, or None when it must be dropped."""
    key = _key_cache.get(name, False)
    if key is False:
        if b"_" in name:
            key = None
        else:
            upper = name.decode("latin-1").upper().replace("-", "_")
            key = upper if upper in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + upper
        if len(_key_cache) < 4096:  # bounded: clients choose header names
            _key_cache[name] = key
    return key  # type: ignore[return-value]


class ErrorStream:
    """wsgi.errors: text written by the app goes to the server's stderr log."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def writelines(self, lines: list[str]) -> None:
        sys.stderr.writelines(lines)

    def flush(self) -> None:
        sys.stderr.flush()


ERRORS = ErrorStream()


def connection_environ(
    *,
    server_name: str,
    server_port: str,
    remote_addr: str,
    remote_port: str,
    url_scheme: str,
    multithread: bool,
    multiprocess: bool,
) -> dict[str, Any]:
    return {
        "SERVER_NAME": server_name,
        "SERVER_PORT": server_port,
        "REMOTE_ADDR": remote_addr,
        "REMOTE_PORT": remote_port,
        "SCRIPT_NAME": "",
        "SERVER_SOFTWARE": f"corral/{__version__}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": url_scheme,
        "wsgi.errors": ERRORS,
        "wsgi.multithread": multithread,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        # The connection recognises its own class and sends the file with os.sendfile.
        "wsgi.file_wrapper": FileWrapper,
    }


def proxy_headers_in(environ: dict[str, Any]) -> bool:
    """Whether a request carries a header only a trusted proxy may send (proxy/forwarded.py
    PROXY_KEYS, checked there). Most requests carry none: a few dict probes, then nothing more."""
    return (
        "HTTP_X_FORWARDED_FOR" in environ
        or "HTTP_X_FORWARDED_PROTO" in environ
        or "HTTP_FORWARDED" in environ
        or "HTTP_X_FORWARDED_HOST" in environ
        or "HTTP_X_FORWARDED_PORT" in environ
        or "HTTP_X_FORWARDED_PREFIX" in environ
        or "HTTP_X_REAL_IP" in environ
        or "HTTP_X_FORWARDED_SSL" in environ
        or "HTTP_X_FORWARDED_SCHEME" in environ
    )


def request_environ(base: dict[str, Any], request: Request, body: BinaryIO) -> dict[str, Any]:
    environ = base.copy()
    path = request.path
    environ["REQUEST_METHOD"] = request.method
    # 0x25 is "%": an int is a memchr; b"%" in path first fails to read b"%" as an int.
    environ["PATH_INFO"] = (unquote_to_bytes(path) if 0x25 in path else path).decode("latin-1")
    environ["QUERY_STRING"] = request.query.decode("latin-1")
    environ["RAW_URI"] = request.target.decode("latin-1")
    environ["SERVER_PROTOCOL"] = _PROTOCOLS[request.version]
    environ["wsgi.input"] = body
    for name, value in request.headers:
        key = _key_cache.get(name, _MISSING)
        if key is _MISSING:
            key = header_key(name)
        if key is None:
            continue
        text = value.decode("latin-1")
        if key in environ and key.startswith("HTTP_"):
            environ[key] += _JOIN.get(key, ",") + text
        else:
            environ[key] = text
    if request.chunked:
        environ.pop("CONTENT_LENGTH", None)
    if request.absolute_form:
        environ["HTTP_HOST"] = request.host.decode("latin-1")  # type: ignore[union-attr]  # the target's authority wins
    return environ
