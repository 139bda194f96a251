"""Apps for the operations tests (tests/integration/test_operations.py).

`hangs`: /hang sleeps in a function whose name the stack dump must show,
/nap?SECONDS sleeps that long; every path answers the worker's pid.
`hoards`: every request keeps another 20 MiB alive, so RSS climbs until
--max-worker-memory recycles the worker.
"""

import os
import sys
import time

HOARD: list[bytes] = []
HOARD_STEP = 20 * 1024 * 1024


def _answer(start_response, body: bytes):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def deeply_asleep() -> None:
    # The test waits for this line before it starts its client loop: from here on this
    # worker's loop (inline) or thread (threaded) is stuck and accepts nothing.
    sys.stderr.write(f"deeply asleep in {os.getpid()}\n")
    sys.stderr.flush()
    time.sleep(30)  # far past any --timeout the tests use


def hangs(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/hang":
        deeply_asleep()
    elif path == "/nap":
        time.sleep(float(environ.get("QUERY_STRING") or "1"))
    return _answer(start_response, str(os.getpid()).encode())


def hoards(environ, start_response):
    HOARD.append(b"\x01" * HOARD_STEP)  # written pages: they count in RSS at once (calloc'd zeros may not)
    return _answer(start_response, str(os.getpid()).encode())


def download(environ, start_response):
    """/?PATH: the file at PATH through wsgi.file_wrapper (sent with sendfile by the loop)."""
    path = environ["QUERY_STRING"]
    size = os.path.getsize(path)
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))])
    return environ["wsgi.file_wrapper"](open(path, "rb"))  # noqa: SIM115 - closed by the server


def trickle(environ, start_response):
    """/?N: N chunks of 64 KiB from a generator: the app thread waits on a slow client."""
    count = int(environ.get("QUERY_STRING") or "128")
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(count * 65536))])
    chunk = b"x" * 65536
    for _ in range(count):
        yield chunk
