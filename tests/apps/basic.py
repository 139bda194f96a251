"""Small WSGI apps the integration tests serve."""

import json
import os
import time


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [b"Hello, World!"]


application = hello


def environ_dump(environ, start_response):
    safe = {k: v for k, v in environ.items() if isinstance(v, (str, int, bool, tuple))}
    safe["wsgi.input.read"] = environ["wsgi.input"].read().decode("latin-1")
    body = json.dumps(safe).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def echo(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
    return [body]


def stream(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    for i in range(5):
        yield b"chunk %d\n" % i


def pid(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def slow(environ, start_response):
    time.sleep(float(environ.get("QUERY_STRING") or "1"))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4")])
    return [b"done"]


def boom(environ, start_response):
    raise RuntimeError("boom from the app")


def create_app(greeting="hi", suffix="!"):
    body = (greeting + suffix).encode()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    return app
