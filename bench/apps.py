"""WSGI applications served by the benchmark (``bench/run.py``).

Every server under test loads one of these by ``apps:NAME`` with ``bench/`` on ``PYTHONPATH``:

``hello``
    A fixed 13-byte body with a Content-Length: measures the server's per-request overhead.
``stream``
    1 MiB sent as sixteen 64 KiB chunks from a generator, *without* Content-Length, so the
    server must stream it (chunked transfer encoding on HTTP/1.1).
``echo``
    Reads the whole request body from ``wsgi.input`` and answers with its length in bytes;
    used with a 1 MiB POST to measure request-body handling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

StartResponse = Callable[..., Any]
Environ = dict[str, Any]

HELLO_BODY = b"Hello, World!"
STREAM_CHUNK = 64 * 1024
STREAM_CHUNKS = 16  # 16 x 64 KiB = 1 MiB


def hello(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Answer every request with ``Hello, World!`` and an explicit Content-Length."""
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO_BODY)))],
    )
    return [HELLO_BODY]


def _chunks() -> Iterator[bytes]:
    chunk = b"x" * STREAM_CHUNK
    for _ in range(STREAM_CHUNKS):
        yield chunk


def stream(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Stream 1 MiB in 64 KiB chunks without announcing its length."""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return _chunks()


def echo(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Read the full request body (CONTENT_LENGTH bytes) and answer with its size in bytes."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream_in = environ["wsgi.input"]
    size = len(stream_in.read(length) if length else stream_in.read())
    body = str(size).encode("ascii")
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]


application = hello


def soak(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """``bench/soak.py``'s app: a POST is read in full (``echo``), anything else is ``hello``."""
    if environ["REQUEST_METHOD"] == "POST":
        return echo(environ, start_response)
    return hello(environ, start_response)
