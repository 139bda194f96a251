"""Micro-benchmark of RequestParser: a hello-world GET and a 10-header browser GET.

Runs the parser alone (no sockets), best of N rounds, and prints microseconds per
request. Run it with the interpreter of a compiled install (`python -m corral --version`
says "(compiled)") to measure what users run:

    python bench/parser_micro.py [--rounds 7] [--requests 20000]
"""

from __future__ import annotations

import argparse
import time

from corral.http.limits import Limits
from corral.http.parser import RequestParser

HELLO = b"GET / HTTP/1.1\r\nHost: localhost:8000\r\n\r\n"
BROWSER = (
    b"GET /articles/2024/some-page?ref=home HTTP/1.1\r\n"
    b"Host: www.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Referer: https://www.example.com/\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: sessionid=abcdef0123456789; csrftoken=0123456789abcdef0123456789abcdef\r\n"
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"Sec-Fetch-Dest: document\r\n"
    b"\r\n"
)


def per_request(raw: bytes, requests: int) -> float:
    """Seconds per request: one keep-alive connection's parser, one feed per request."""
    parser = RequestParser(Limits(), lambda request: None)  # type: ignore[arg-type,return-value]
    ready = parser.ready
    start = time.perf_counter()
    for _ in range(requests):
        parser.feed(raw)
        ready.popleft()
    return (time.perf_counter() - start) / requests


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--rounds", type=int, default=7)
    args.add_argument("--requests", type=int, default=20000)
    options = args.parse_args()
    import corral.http.parser as module

    print(f"parser: {module.__file__}")
    for name, raw in (("hello GET", HELLO), ("browser GET (10 headers)", BROWSER)):
        best = min(per_request(raw, options.requests) for _ in range(options.rounds))
        print(f"{name:28s} {best * 1e6:6.2f} us/request (best of {options.rounds} x {options.requests})")


if __name__ == "__main__":
    main()
