"""Apps with observable side effects for the HTTP rejection and framing tests.

`app` records every request it is called for; `GET /__hits__` returns (and clears)
that record as JSON, so a test can prove a request never reached the app.
"""

import json
import os
import threading
import time

_hits: list[str] = []
_lock = threading.Lock()


def _reply(start_response, body: bytes, status: str = "200 OK", content_type: str = "text/plain"):
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/__hits__":
        with _lock:
            hits = list(_hits)
            _hits.clear()
        return _reply(start_response, json.dumps(hits).encode(), content_type="application/json")
    if path == "/__pid__":
        return _reply(start_response, str(os.getpid()).encode())
    body = environ["wsgi.input"].read()
    with _lock:
        _hits.append(environ["REQUEST_METHOD"] + " " + environ.get("RAW_URI", path))
    if path.startswith("/slow"):
        time.sleep(float(environ.get("QUERY_STRING") or "1"))
    return _reply(start_response, b"%s %s %d" % (environ["REQUEST_METHOD"].encode(), path.encode("latin-1"), len(body)))


def header_injection(environ, start_response):
    """Puts CR/LF where the query string says: a response-splitting attempt."""
    where = environ.get("QUERY_STRING", "value")
    headers = [("Content-Type", "text/plain"), ("Content-Length", "2")]
    status = "200 OK"
    if where == "value":
        headers.append(("X-Bad", "a\r\nX-Injected: yes"))
    elif where == "lf":
        headers.append(("X-Bad", "a\nX-Injected: yes"))
    elif where == "name":
        headers.append(("X-Bad\r\nX-Injected", "yes"))
    elif where == "status":
        status = "200 OK\r\nX-Injected: yes"
    start_response(status, headers)
    return [b"ok"]


def no_length(environ, start_response):
    """A streamed body with no Content-Length (chunked on 1.1, close-delimited on 1.0)."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return iter([b"first,", b"second,", b"third"])


def ignore_body(environ, start_response):
    """Answers without touching wsgi.input: a 100-continue client must not get a 100."""
    return _reply(start_response, b"not reading", status="403 Forbidden")
