"""WSGI apps for the PEP 3333, flow-control and process-model tests.

One dispatching `app` (route = PATH_INFO, arguments in the query string) so a
single server process can be reused by many tests; `validated` is the same app
wrapped in wsgiref.validate.validator. Side effects the tests must observe
from outside (an iterable's close(), a request reaching the app) are written
as one line to wsgi.errors, which the server logs on its stderr: the test waits
for that line instead of sleeping.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.validate import validator

Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], None]]
TEXT = [("Content-Type", "text/plain")]

# Bytes the /big generator has produced so far (one worker, one slow client at a time).
PULLED = {"bytes": 0, "total": 0}

NOT_CALLABLE = 42  # `wsgi_apps:NOT_CALLABLE` is a bad APP


def _args(environ: Environ) -> dict[str, str]:
    return dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))


def _note(environ: Environ, text: str) -> None:
    errors = environ["wsgi.errors"]
    errors.write(f"wsgi_apps: {text}\n")
    errors.flush()


def _plain(start_response: StartResponse, body: bytes, status: str = "200 OK") -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _read_all(stream: Any) -> bytes:
    parts = []
    while chunk := stream.read(65536):  # read(n): the validator insists on a size
        parts.append(chunk)
    return b"".join(parts)


# -- routes --------------------------------------------------------------------------


def environ_route(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """Every key with its type name, plain values where JSON can carry them."""
    dump: dict[str, Any] = {}
    for key, value in environ.items():
        entry: dict[str, Any] = {"type": type(value).__name__}
        if isinstance(value, (str, int, bool, tuple)):
            entry["value"] = value
        dump[key] = entry
    errors = environ["wsgi.errors"]
    stream = environ["wsgi.input"]
    dump["@errors_api"] = all(callable(getattr(errors, m, None)) for m in ("write", "writelines", "flush"))
    dump["@input_api"] = all(callable(getattr(stream, m, None)) for m in ("read", "readline", "readlines", "__iter__"))
    dump["@body"] = _read_all(stream).decode("latin-1")
    wrapper = environ.get("wsgi.file_wrapper")
    dump["@file_wrapper_callable"] = callable(wrapper)
    body = json.dumps(dump).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def echo(environ: Environ, start_response: StartResponse) -> list[bytes]:
    stream = environ["wsgi.input"]
    body = _read_all(stream)
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(len(body))),
            ("X-Input-Type", type(stream).__name__),
            ("X-Input-Fileno", str(_has_fileno(stream))),
        ],
    )
    return [body]


def _has_fileno(stream: Any) -> bool:
    try:
        stream.fileno()
    except Exception:
        return False
    return True


def pid(environ: Environ, start_response: StartResponse) -> list[bytes]:
    return _plain(start_response, str(os.getpid()).encode())


def sleep(environ: Environ, start_response: StartResponse) -> list[bytes]:
    seconds = float(_args(environ).get("s", "1"))
    _note(environ, f"sleeping {os.getpid()} {_args(environ).get('tag', '')}")
    time.sleep(seconds)
    return _plain(start_response, str(os.getpid()).encode())


def exc_before(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """start_response twice: the second, with exc_info, replaces the first before anything is sent."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "yes")])
    try:
        raise ValueError("caught by the app")
    except ValueError:
        body = b"replaced"
        start_response(
            "503 Service Unavailable",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            sys.exc_info(),
        )
    return [body]


def exc_after(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    """start_response with exc_info after the head went out: it re-raises, the server aborts."""
    start_response("200 OK", TEXT.copy())
    yield b"partial-" * 16
    try:
        raise ValueError("late failure")
    except ValueError:
        start_response("500 Internal Server Error", TEXT.copy(), sys.exc_info())
    yield b"never sent"


def write_only(environ: Environ, start_response: StartResponse) -> list[bytes]:
    write = start_response("200 OK", TEXT.copy())
    write(b"wri")
    write(b"")
    write(b"tten")
    return []


def write_mixed(environ: Environ, start_response: StartResponse) -> list[bytes]:
    write = start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "16")])
    write(b"written-")
    return [b"iter", b"ated"]


class Closing:
    """An iterable whose close() announces itself on wsgi.errors."""

    def __init__(self, environ: Environ, mode: str, tag: str) -> None:
        self.environ = environ
        self.mode = mode
        self.tag = tag

    def __iter__(self) -> Iterator[bytes]:
        yield b"first;"
        if self.mode == "raise":
            raise RuntimeError(f"failure mid-iteration {self.tag}")
        if self.mode == "forever":
            block = b"x" * 65536
            while True:
                yield block
        yield b"last"

    def close(self) -> None:
        _note(self.environ, f"closed {self.tag}")


def closing(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    args = _args(environ)
    start_response("200 OK", TEXT.copy())
    return Closing(environ, args.get("mode", "ok"), args.get("tag", ""))


def short(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "10")])
    return [b"12", b"345"]


def long(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    if _args(environ).get("one"):
        return [b"1234567890"]  # the single-chunk fast path
    return [b"123", b"4567890", b"more"]


def boom_before(environ: Environ, start_response: StartResponse) -> list[bytes]:
    raise RuntimeError("boom before headers " + _args(environ).get("tag", ""))


def boom_after(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", TEXT.copy())
    yield b"y" * 100
    raise RuntimeError("boom after headers " + _args(environ).get("tag", ""))


def sys_exit(environ: Environ, start_response: StartResponse) -> list[bytes]:
    sys.exit(3)  # a broken app; the worker must survive it


def crash(environ: Environ, start_response: StartResponse) -> list[bytes]:
    os._exit(7)  # kills the worker process: the master must replace it


def file(environ: Environ, start_response: StartResponse) -> Any:
    args = _args(environ)
    path = args["path"]
    size = os.path.getsize(path)
    headers = [("Content-Type", "application/octet-stream")]
    if "extra" in args:  # declare more than the file holds: a short response
        headers.append(("Content-Length", str(size + int(args["extra"]))))
    elif "cl" in args:
        headers.append(("Content-Length", args["cl"]))
    start_response("200 OK", headers)
    handle = open(path, "rb")  # noqa: SIM115 - closed through the wrapper's close()
    if "offset" in args:
        handle.seek(int(args["offset"]))
    return environ["wsgi.file_wrapper"](handle, 32768)


def lazy(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    """A generator: start_response runs only when the server first pulls it."""
    start_response("201 Created", [("Content-Type", "text/plain"), ("X-Lazy", "1")])
    yield b""
    yield b"lazy "
    yield b"body"


def big(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    args = _args(environ)
    chunks, size = int(args.get("chunks", "16")), int(args.get("size", "65536"))
    PULLED["bytes"] = 0
    PULLED["total"] = chunks * size
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(chunks * size))])
    block = b"z" * size
    for _ in range(chunks):
        PULLED["bytes"] += size
        yield block


def big_write(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """Like /big, through the write() callable."""
    args = _args(environ)
    chunks, size = int(args.get("chunks", "16")), int(args.get("size", "65536"))
    PULLED["bytes"] = 0
    PULLED["total"] = chunks * size
    headers = [("Content-Type", "application/octet-stream"), ("Content-Length", str(chunks * size))]
    write = start_response("200 OK", headers)
    block = b"w" * size
    for _ in range(chunks):
        PULLED["bytes"] += size
        write(block)
    return []


def pulled(environ: Environ, start_response: StartResponse) -> list[bytes]:
    return _plain(start_response, json.dumps(PULLED).encode())


def rss(environ: Environ, start_response: StartResponse) -> list[bytes]:
    with open("/proc/self/status") as status:
        kib = next(line.split()[1] for line in status if line.startswith("VmRSS:"))
    return _plain(start_response, kib.encode())


def pause(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    """One block, then a pause: the server must send the first block before the pause ends."""
    start_response("200 OK", TEXT.copy())
    yield b"first-block;"
    time.sleep(float(_args(environ).get("s", "2")))
    yield b"second-block"


ROUTES: dict[str, Callable[[Environ, StartResponse], Iterable[bytes]]] = {
    "/environ": environ_route,
    "/echo": echo,
    "/pid": pid,
    "/sleep": sleep,
    "/exc-before": exc_before,
    "/exc-after": exc_after,
    "/write": write_only,
    "/write-mixed": write_mixed,
    "/closing": closing,
    "/short": short,
    "/long": long,
    "/boom-before": boom_before,
    "/boom-after": boom_after,
    "/sys-exit": sys_exit,
    "/crash": crash,
    "/file": file,
    "/lazy": lazy,
    "/big": big,
    "/big-write": big_write,
    "/pulled": pulled,
    "/rss": rss,
    "/pause": pause,
}


def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    # Routed by the first path segment, so /environ/caf%C3%A9 still reaches the environ dump.
    route = ROUTES.get("/" + environ["PATH_INFO"].lstrip("/").partition("/")[0])
    if route is None:
        return _plain(start_response, b"no such route\n", "404 Not Found")
    return route(environ, start_response)


application = app
validated = validator(app)


def crash_on_request(environ: Environ, start_response: StartResponse) -> list[bytes]:
    os._exit(7)  # every request kills the worker: a crash loop
