"""What proxy-header handling costs per request: the environ build with and without it.

    python bench/proxy_headers.py [--iterations N] [--repeats R]

Times, per request, in microseconds (the best of R runs of N requests each, so a busy machine
shows up as noise in the other runs, not in the figure):

- ``baseline``: request_environ alone, from a connection environ without ``corral.peer``
  (what the server did before proxy headers were handled);
- ``no proxy header``: what HTTPConnection._start does now for a request without one (the
  environ, one more connection key copied, the proxy_headers_in check). The difference to
  the baseline is the fast path's cost, which must stay under 1 us;
- ``nginx headers, trusted``: X-Forwarded-For/-Proto/-Host as docs/proxies.md's nginx sends
  them, walked and applied;
- ``Forwarded, trusted``: a two-hop RFC 7239 header;
- ``spoofed, untrusted``: the same nginx headers from an untrusted peer, removed.

Which build runs (pure Python or mypyc-compiled) is printed first: run it with the
interpreter of the install you want to measure.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from typing import Any

from corral import __version__
from corral.http.limits import Limits
from corral.http.parser import RequestParser
from corral.http.request import Request
from corral.proxy.forwarded import ProxyHeaders
from corral.proxy.trust import TrustedProxies
from corral.wsgi import environ as environ_module
from corral.wsgi.environ import connection_environ, proxy_headers_in, request_environ
from corral.wsgi.input import SpooledBody

BROWSER_HEADERS = (
    "Host: www.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: en-GB,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Cookie: sessionid=0123456789abcdef; csrftoken=abcdef0123456789\r\n"
)
NGINX = "X-Forwarded-For: 203.0.113.9, 127.0.0.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: www.example.com\r\n"
FORWARDED = 'Forwarded: for=203.0.113.9;proto=https;host=www.example.com, for="[fd00::2]:4711"\r\n'


def parse(extra: str) -> Request:
    parser = RequestParser(Limits(), lambda request: SpooledBody(1 << 20))
    parser.feed(f"GET /shop/cart?item=3 HTTP/1.1\r\n{BROWSER_HEADERS}{extra}\r\n".encode())
    return parser.ready[0]


def base(peer: bool) -> dict[str, Any]:
    environ = connection_environ(server_name="127.0.0.1", server_port="8000", remote_addr="127.0.0.1",
                                 remote_port="51234", url_scheme="http", multithread=False, multiprocess=True)
    if peer:
        environ["corral.peer"] = "127.0.0.1:51234"
    return environ


def timed(run: Callable[[int], None], iterations: int, repeats: int) -> float:
    """Best microseconds per request over `repeats` runs."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        run(iterations)
        best = min(best, (time.perf_counter_ns() - start) / iterations / 1000)
    return best


def baseline(request: Request) -> Callable[[int], None]:
    connection, body = base(peer=False), io.BytesIO()

    def run(n: int) -> None:
        for _ in range(n):
            request_environ(connection, request, body)

    return run


def served(request: Request, proxy: ProxyHeaders, trusted: bool) -> Callable[[int], None]:
    connection, body = base(peer=True), io.BytesIO()

    def run(n: int) -> None:
        for _ in range(n):
            environ = request_environ(connection, request, body)
            if proxy_headers_in(environ):
                proxy.apply(environ, trusted)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    compiled = environ_module.__file__ is not None and not environ_module.__file__.endswith(".py")
    print(f"corral {__version__} ({'compiled' if compiled else 'pure Python'}), "
          f"{args.iterations} requests x {args.repeats} runs, best run:")
    proxy = ProxyHeaders(TrustedProxies(["127.0.0.1", "::1", "unix", "fd00::/8"]))
    plain = parse("")
    cases = [
        ("baseline", baseline(plain)),
        ("no proxy header", served(plain, proxy, True)),
        ("nginx headers, trusted", served(parse(NGINX), proxy, True)),
        ("Forwarded, trusted", served(parse(FORWARDED), proxy, True)),
        ("spoofed, untrusted", served(parse(NGINX), proxy, False)),
    ]
    figures = {name: timed(run, args.iterations, args.repeats) for name, run in cases}
    for name, figure in figures.items():
        print(f"  {name:<24} {figure:6.3f} us/request")
    print(f"  fast-path cost           {figures['no proxy header'] - figures['baseline']:+6.3f} us/request")


if __name__ == "__main__":
    main()
