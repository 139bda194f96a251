"""Apps that misbehave on purpose, and a plain one to load, for tests/integration/test_faults.py.

One dispatching `app`: the first path segment names the misbehaviour.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


class RaisesInClose:
    def __iter__(self) -> Iterator[bytes]:
        yield b"body"

    def close(self) -> None:
        raise RuntimeError("close() of fault_apps.RaisesInClose failed")


def _mid_body() -> Iterator[bytes]:
    yield b"first part "
    raise RuntimeError("fault_apps: the iterable failed mid-body")


def app(environ: Environ, start_response: StartResponse) -> Any:
    route = environ["PATH_INFO"].strip("/")
    text = [("Content-Type", "text/plain")]
    if route == "ok":
        start_response("200 OK", text + [("Content-Length", "2")])
        return [b"ok"]
    if route == "pid":
        body = str(os.getpid()).encode()
        start_response("200 OK", text + [("Content-Length", str(len(body)))])
        return [body]
    if route == "slow-pid":  # keeps requests in flight long enough to be caught by a SIGKILL
        time.sleep(0.02)
        body = str(os.getpid()).encode()
        start_response("200 OK", text + [("Content-Length", str(len(body)))])
        return [body]
    if route == "upload":
        size = len(environ["wsgi.input"].read())
        body = str(size).encode()
        start_response("200 OK", text + [("Content-Length", str(len(body)))])
        return [body]
    if route == "big":
        start_response("200 OK", text + [("Content-Length", str(4 * 1024 * 1024))])
        return [b"x" * (1024 * 1024)] * 4
    if route == "256k":  # more than the socket buffers hold: the worker is mid-write for a while
        start_response("200 OK", text + [("Content-Length", str(256 * 1024))])
        return [b"y" * (64 * 1024)] * 4
    if route == "2m":  # in 64 KiB blocks: a paused writer holds one block beyond its buffer limit
        start_response("200 OK", text + [("Content-Length", str(2 * 1024 * 1024))])
        return (b"z" * (64 * 1024) for _ in range(32))
    if route == "raise-mid-body":
        start_response("200 OK", text)
        return _mid_body()
    if route == "raise-in-close":
        start_response("200 OK", text + [("Content-Length", "4")])
        return RaisesInClose()
    if route == "not-iterable":
        start_response("200 OK", text)
        return 42
    if route == "start-response-twice":
        start_response("200 OK", text)
        start_response("500 Oops", text)  # no exc_info: PEP 3333 says this is an error
        return [b"never"]
    if route == "header-crlf":
        start_response("200 OK", [("X-Injected", "a\r\nSet-Cookie: evil=1")])
        return [b"never"]
    if route == "bad-status":
        start_response("200OK", text)
        return [b"never"]
    if route == "more-than-length":
        start_response("200 OK", text + [("Content-Length", "3")])
        return [b"too long"]
    if route == "less-than-length":
        start_response("200 OK", text + [("Content-Length", "100")])
        return [b"short"]
    start_response("404 Not Found", text + [("Content-Length", "0")])
    return []
