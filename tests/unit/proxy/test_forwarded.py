"""proxy/forwarded.py: Forwarded and X-Forwarded-* parsed, walked from the right, applied.

Requests go through the real parser and request_environ, so several header lines, the `_`
variants and the comma joining are the server's own.
"""

from __future__ import annotations

import io
import random
from typing import Any

import pytest

from corral.http.limits import Limits
from corral.http.parser import RequestParser
from corral.observe.access import AccessLog
from corral.proxy.forwarded import (
    ALSO_REMOVED,
    ORIGINAL,
    PROXY_KEYS,
    X_KEYS,
    ProxyHeaders,
    node,
    parse_forwarded,
    parse_x_forwarded,
    walk,
)
from corral.proxy.trust import DEFAULT_TRUSTED, TrustedProxies
from corral.wsgi.environ import connection_environ, header_key, proxy_headers_in, request_environ
from corral.wsgi.input import SpooledBody

PEER = "127.0.0.1"
TRUSTED = TrustedProxies([*DEFAULT_TRUSTED, "10.0.0.0/8", "fd00::/8"])


def request(*headers: str, target: str = "/x", peer: str = PEER) -> dict[str, Any]:
    """The environ an app would see: a request with these header lines from `peer`."""
    raw = f"GET {target} HTTP/1.1\r\nHost: backend:8000\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n"
    parser = RequestParser(Limits(), lambda r: SpooledBody(1 << 20))
    parser.feed(raw.encode("latin-1"))
    base = connection_environ(server_name="127.0.0.1", server_port="8000", remote_addr=peer, remote_port="5555",
                              url_scheme="http", multithread=False, multiprocess=False)
    return request_environ(base, parser.ready[0], io.BytesIO())


def seen(*headers: str, kinds: str = "both", peer: str = PEER, trusted: TrustedProxies = TRUSTED,
         target: str = "/x") -> dict[str, Any]:
    environ = request(*headers, target=target, peer=peer)
    if proxy_headers_in(environ):
        policy = ProxyHeaders(trusted, kinds)
        policy.apply(environ, policy.trusts_peer(peer))
    return environ


def client(environ: dict[str, Any]) -> tuple[str, str, str, str, str, str]:
    return (environ["REMOTE_ADDR"], environ["REMOTE_PORT"], environ["wsgi.url_scheme"], environ.get("HTTP_HOST", ""),
            environ["SERVER_PORT"], environ["SCRIPT_NAME"])


UNCHANGED = (PEER, "5555", "http", "backend:8000", "8000", "")


# -- RFC 7239's own examples and the value forms ------------------------------------------------


@pytest.mark.parametrize(("header", "addr", "port"), [
    ('Forwarded: for="_gazonk"', PEER, "5555"),  # obfuscated: our peer said it, and hides the client
    ('Forwarded: For="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17", "4711"),
    ("Forwarded: for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60", "0"),
    ("Forwarded: for=192.0.2.43, for=198.51.100.17", "198.51.100.17", "0"),  # rightmost untrusted wins
    ('Forwarded: for="192.0.2.43:8080"', "192.0.2.43", "8080"),
    ("Forwarded: for=192.0.2.43:8080", "192.0.2.43", "8080"),  # unquoted: not RFC, still plain
    ('Forwarded: for="[2001:DB8::0:1]"', "2001:db8::1", "0"),  # normalised
    ('Forwarded: for="[2001:db8::1]:_port"', "2001:db8::1", "0"),  # obfuscated port dropped
    ('Forwarded: for="1.2.3.4:99999"', "1.2.3.4", "0"),  # port out of range dropped
    ('Forwarded: for="1.2.3.4:0"', "1.2.3.4", "0"),
    ("Forwarded: for=unknown", PEER, "5555"),
    ("Forwarded: for=UNKNOWN;proto=https", PEER, "5555"),
])
def test_forwarded_for_forms(header: str, addr: str, port: str) -> None:
    environ = seen(header)
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == (addr, port)


def test_parameters_are_case_insensitive_and_quoted_strings_unescaped() -> None:
    environ = seen('Forwarded: FOR=203.0.113.5;PROTO="HTTPS";Host="ex\\ample.com:8443"')
    assert client(environ) == ("203.0.113.5", "0", "https", "example.com:8443", "8443", "")
    assert environ["SERVER_NAME"] == "example.com" and environ["HTTPS"] == "on"


def test_several_forwarded_lines_are_one_list() -> None:
    environ = seen("Forwarded: for=198.51.100.1;proto=https;host=shop.example", "Forwarded: for=10.0.0.3")
    assert client(environ) == ("198.51.100.1", "0", "https", "shop.example", "443", "")


@pytest.mark.parametrize("node_text", ["[::1]", "[1.2.3.4]", "[2001:db8::1", "1.2.3", "example.com", "1.2.3.4:80:1",
                                       "::1]", "_", "", "1.2.3.4 5"])
def test_nodes_that_are_not_addresses(node_text: str) -> None:
    addr, _port = node(node_text)
    assert addr in ("", "::1")  # [::1] is one; the rest are not
    assert (addr == "::1") == (node_text == "[::1]")


# -- the chain walk -----------------------------------------------------------------------------


def test_walk_passes_trusted_hops_and_takes_the_client_hops_values() -> None:
    # client -> CDN edge (10.1.1.1, trusted) -> lb (10.2.2.2, trusted) -> us
    environ = seen("Forwarded: for=203.0.113.9;proto=https;host=www.example.com,"
                   " for=10.1.1.1;proto=http;host=lb.internal, for=10.2.2.2;proto=http;host=backend")
    assert client(environ) == ("203.0.113.9", "0", "https", "www.example.com", "443", "")


def test_walk_stops_at_the_first_untrusted_hop_not_the_leftmost() -> None:
    # The leftmost entry is the client's own claim: anyone can prepend one.
    environ = seen("X-Forwarded-For: 1.1.1.1, 203.0.113.9, 10.1.1.1, 127.0.0.1")
    assert environ["REMOTE_ADDR"] == "203.0.113.9"


def test_every_hop_trusted_gives_the_leftmost() -> None:
    environ = seen("X-Forwarded-For: 10.9.9.9, 10.1.1.1")
    assert environ["REMOTE_ADDR"] == "10.9.9.9"


def test_unknown_client_behind_trusted_hops_is_the_proxy_that_said_so() -> None:
    environ = seen("Forwarded: for=unknown;proto=https, for=10.1.1.1")
    assert client(environ)[:3] == ("10.1.1.1", "0", "https")
    environ = seen('Forwarded: for="_hidden", for=10.1.1.1;proto=http')
    assert client(environ)[:3] == ("10.1.1.1", "0", "http")


def test_values_missing_from_the_client_hop_come_from_the_nearest_on_its_right() -> None:
    environ = seen("Forwarded: for=203.0.113.9, for=10.1.1.1;proto=https;host=www.example.com")
    assert client(environ) == ("203.0.113.9", "0", "https", "www.example.com", "443", "")


def test_ipv6_chain() -> None:
    environ = seen('Forwarded: for="[2001:db8::7]:4711";proto=https, for="[fd00::2]"')
    assert client(environ)[:3] == ("2001:db8::7", "4711", "https")
    environ = seen("X-Forwarded-For: 2001:db8::7, fd00::2, ::1")
    assert environ["REMOTE_ADDR"] == "2001:db8::7"
    environ = seen("X-Forwarded-For: [2001:db8::7]:4711, [fd00::2]")
    assert client(environ)[:2] == ("2001:db8::7", "4711")


def test_x_forwarded_lists_are_lined_up_per_hop() -> None:
    # The client reached the edge over https; the edge reached the lb over http.
    environ = seen("X-Forwarded-For: 203.0.113.9, 10.1.1.1", "X-Forwarded-Proto: https, http",
                   "X-Forwarded-Host: www.example.com, lb.internal", "X-Forwarded-Port: 8443, 80")
    assert client(environ) == ("203.0.113.9", "0", "https", "www.example.com:8443", "8443", "")
    # Only the last proxy's values (the usual nginx config): they apply to the client found.
    environ = seen("X-Forwarded-For: 203.0.113.9, 10.1.1.1", "X-Forwarded-Proto: https")
    assert client(environ)[:3] == ("203.0.113.9", "0", "https")
    # A list with no addresses: our peer's own (rightmost) value.
    environ = seen("X-Forwarded-Proto: https, http")
    assert client(environ) == (PEER, "5555", "http", "backend:8000", "80", "")


def test_x_forwarded_host_port_and_prefix() -> None:
    environ = seen("X-Forwarded-For: 203.0.113.9", "X-Forwarded-Proto: https", "X-Forwarded-Host: www.example.com",
                   "X-Forwarded-Port: 443", "X-Forwarded-Prefix: /shop/")
    assert client(environ) == ("203.0.113.9", "0", "https", "www.example.com", "443", "/shop")
    assert environ["SERVER_NAME"] == "www.example.com" and environ["PATH_INFO"] == "/x"
    environ = seen("X-Forwarded-Host: www.example.com", "X-Forwarded-Port: 8080")
    assert client(environ)[2:] == ("http", "www.example.com:8080", "8080", "")
    environ = seen("X-Forwarded-Prefix: /", "X-Forwarded-Port: 8080")  # the root; no host: Host kept
    assert client(environ)[3:] == ("backend:8000", "8080", "")
    environ = seen("X-Forwarded-Prefix: /caf%C3%A9")
    assert environ["SCRIPT_NAME"] == "/caf\xc3\xa9"  # decoded as PATH_INFO is (latin-1 of the bytes)
    environ = seen("X-Forwarded-Host: [2001:db8::1]:8443")
    assert (environ["HTTP_HOST"], environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("[2001:db8::1]:8443",
                                                                                      "[2001:db8::1]", "8443")


def test_forwarded_wins_where_both_speak_and_x_forwarded_fills_the_rest() -> None:
    environ = seen("Forwarded: for=198.51.100.7;proto=https", "X-Forwarded-For: 203.0.113.9",
                   "X-Forwarded-Proto: http", "X-Forwarded-Host: www.example.com", "X-Forwarded-Prefix: /app")
    assert client(environ) == ("198.51.100.7", "0", "https", "www.example.com", "443", "/app")
    # Forwarded without `for` says nothing of the address: X-Forwarded-For does.
    environ = seen("Forwarded: proto=https", "X-Forwarded-For: 203.0.113.9")
    assert client(environ)[:3] == ("203.0.113.9", "0", "https")
    # for=unknown is a statement: it wins over X-Forwarded-For.
    environ = seen("Forwarded: for=unknown", "X-Forwarded-For: 203.0.113.9")
    assert environ["REMOTE_ADDR"] == PEER


def test_originals_are_kept_for_logging() -> None:
    environ = seen("X-Forwarded-For: 203.0.113.9", "X-Forwarded-Proto: https", "X-Forwarded-Host: www.example.com")
    assert environ[ORIGINAL] == {"REMOTE_ADDR": PEER, "REMOTE_PORT": "5555", "wsgi.url_scheme": "http",
                                 "HTTPS": None, "HTTP_HOST": "backend:8000", "SERVER_NAME": "127.0.0.1",
                                 "SERVER_PORT": "8000"}
    environ = seen("X-Forwarded-For: 127.0.0.1", "X-Forwarded-Proto: http")
    assert environ[ORIGINAL] == {"SERVER_PORT": "8000"} and client(environ) == (*UNCHANGED[:4], "80", "")
    assert ORIGINAL not in seen("X-Forwarded-For: 127.0.0.1")  # nothing changed: no record


# -- malformed values: never believed, never an error -------------------------------------------


@pytest.mark.parametrize("header", [
    'Forwarded: for="203.0.113.9',  # unterminated quote
    'Forwarded: for="203.0.113.9"x',  # text after the closing quote
    'Forwarded: for=203."0".113.9',
    "Forwarded: for=203.0.113.9;for=198.51.100.1",  # a parameter twice in one element
    "Forwarded: for",  # no "="
    "Forwarded: f@r=203.0.113.9",  # not a token
    "Forwarded: for=",
    'Forwarded: for="a\\"',  # the escape eats the closing quote
])
def test_a_malformed_last_element_is_not_believed(header: str) -> None:
    assert client(seen(header)) == UNCHANGED


def test_a_malformed_element_ends_the_walk_at_the_proxy_that_sent_it() -> None:
    environ = seen("Forwarded: for=198.51.100.1, for=1.2.3.4;for=5.6.7.8, for=10.1.1.1;proto=https")
    assert client(environ)[:3] == ("10.1.1.1", "0", "https")  # nothing left of the bad element is believed
    # An unterminated quote runs to the end: the last element is the bad one.
    assert client(seen('Forwarded: for=198.51.100.1;proto=https, for="bad, for=10.1.1.1')) == UNCHANGED


@pytest.mark.parametrize("header", [
    "X-Forwarded-Proto: ftp", "X-Forwarded-Proto: https http", "Forwarded: proto=javascript",
    "X-Forwarded-Host: evil.com/path", "X-Forwarded-Host: a b", "X-Forwarded-Host: host:99999",
    "X-Forwarded-Host: [not-v6]", "Forwarded: host=\"x@y\"", "X-Forwarded-Host: " + "a" * 300,
    "X-Forwarded-Port: 0", "X-Forwarded-Port: 65536", "X-Forwarded-Port: +80", "X-Forwarded-Port: 8_0",
    "X-Forwarded-Port: 8\xb2",  # str.isdigit() says yes to "²"
    "X-Forwarded-Prefix: shop", "X-Forwarded-Prefix: /a?b", "X-Forwarded-Prefix: /a\tb",
    "X-Forwarded-For: garbage", "X-Forwarded-For: 1.2.3.4.5", "X-Forwarded-For: ,,", "X-Forwarded-For: \"\"",
])
def test_garbage_values_are_ignored(header: str) -> None:
    environ = seen(header)
    assert client(environ) == UNCHANGED, header


def test_random_bytes_never_raise() -> None:
    rng = random.Random(7239)
    alphabet = 'for=proto;host,"[]:\\_unknown0123456789abcdef.:%/ \t'
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(40)))
        values = {key: text for key in PROXY_KEYS}
        for hops in (parse_forwarded(text), parse_x_forwarded(values)):
            walk(hops, TRUSTED)
        environ = request()
        environ.update(values)
        ProxyHeaders(TRUSTED).apply(environ, True)
        assert isinstance(environ["REMOTE_ADDR"], str) and isinstance(environ["SERVER_PORT"], str)


# -- who may speak, and what is removed ---------------------------------------------------------


SPOOFED = ["Forwarded: for=6.6.6.6;proto=https;host=evil.example", "X-Forwarded-For: 6.6.6.6",
           "X-Forwarded-Proto: https", "X-Forwarded-Host: evil.example", "X-Forwarded-Port: 443",
           "X-Forwarded-Prefix: /evil", "X-Real-IP: 6.6.6.6", "X-Forwarded-Ssl: on", "X-Forwarded-Scheme: https"]


def test_an_untrusted_peer_says_nothing_and_its_headers_are_removed() -> None:
    environ = seen(*SPOOFED, peer="198.51.100.50")
    assert client(environ) == ("198.51.100.50", "5555", "http", "backend:8000", "8000", "")
    assert not [key for key in PROXY_KEYS if key in environ]
    assert ORIGINAL not in environ


@pytest.mark.parametrize("line", SPOOFED)
def test_each_header_alone_is_removed_from_an_untrusted_peer(line: str) -> None:
    environ = seen(line, peer="198.51.100.50")
    assert not [key for key in environ if key.startswith("HTTP_") and key != "HTTP_HOST"]


@pytest.mark.parametrize("line", SPOOFED)
def test_underscore_variants_never_reach_the_app(line: str) -> None:
    name, _, value = line.partition(": ")
    variant = name.replace("-", "_")
    if "_" not in variant:
        variant = name[:1] + "_" + name[1:]  # Forwarded has no "-": F_orwarded maps to HTTP_F_ORWARDED, dropped too
    assert header_key(variant.encode()) is None
    for peer in (PEER, "198.51.100.50"):  # trusted or not: dropped before anyone reads it
        environ = seen(f"{variant}: {value}", peer=peer)
        assert client(environ) == (peer, *UNCHANGED[1:])
        assert not [key for key in environ if key.startswith("HTTP_") and key != "HTTP_HOST"], environ


def test_a_trusted_peers_headers_stay_for_the_app() -> None:
    environ = seen("X-Forwarded-Proto: https", "X-Real-IP: 203.0.113.9")
    assert environ["HTTP_X_FORWARDED_PROTO"] == "https"  # Django's SECURE_PROXY_SSL_HEADER reads it
    assert environ["HTTP_X_REAL_IP"] == "203.0.113.9"


def test_a_kind_not_spoken_is_removed_even_from_a_trusted_peer() -> None:
    environ = seen("Forwarded: for=198.51.100.7", "X-Forwarded-For: 203.0.113.9", "X-Forwarded-Proto: https",
                   kinds="forwarded")
    assert client(environ)[:3] == ("198.51.100.7", "0", "http")
    assert not [key for key in X_KEYS if key in environ] and "HTTP_FORWARDED" in environ
    environ = seen("Forwarded: for=198.51.100.7", "X-Forwarded-For: 203.0.113.9", kinds="x-forwarded")
    assert environ["REMOTE_ADDR"] == "203.0.113.9" and "HTTP_FORWARDED" not in environ
    environ = seen(*SPOOFED, kinds="none")
    assert client(environ) == UNCHANGED
    assert [key for key in PROXY_KEYS if key in environ] == list(ALSO_REMOVED)  # not Corral's to judge


def test_unix_socket_peers_follow_the_unix_entry() -> None:
    assert ProxyHeaders(TrustedProxies(["unix"])).trusts_peer(None)
    assert not ProxyHeaders(TrustedProxies(["127.0.0.1"])).trusts_peer(None)
    with pytest.raises(ValueError, match="unknown proxy header kind"):
        ProxyHeaders(TRUSTED, "all")


def test_the_fast_check_knows_every_proxy_key() -> None:
    assert not proxy_headers_in(request("Accept: */*", "Cookie: a=1", "X-Forwarded: no", "Forwarded-For: no"))
    for key in PROXY_KEYS:
        assert proxy_headers_in({key: "x"}), key


def test_routing_host_reads_raw_headers() -> None:
    policy = ProxyHeaders(TRUSTED)
    headers = [(b"Host", b"backend"), (b"x-forwarded-host", b"shop.example"), (b"X-Forwarded-For", b"203.0.113.9")]
    assert policy.routing_host(headers) == "shop.example"
    assert policy.routing_host([(b"Forwarded", b"for=1.2.3.4;host=blog.example"), *headers]) == "blog.example"
    assert policy.routing_host([(b"Host", b"backend")]) == ""
    assert ProxyHeaders(TRUSTED, "none").routing_host(headers) == ""


# -- the access log's choice -------------------------------------------------------------------


@pytest.mark.parametrize(("which", "expected"), [("client", "203.0.113.9"), ("peer", PEER)])
def test_access_log_prints_the_chosen_address(tmp_path: Any, which: str, expected: str) -> None:
    from types import SimpleNamespace

    from corral.http.request import Request

    environ = seen("X-Forwarded-For: 203.0.113.9")
    path = tmp_path / "access.log"
    log = AccessLog(str(path), "combined", client=which)
    try:
        ex = SimpleNamespace(environ=environ, request=Request(), response=SimpleNamespace(code=200), bytes_out=1,
                             started=0.0)
        log(ex)  # type: ignore[arg-type]
        assert log.address(seen()) == PEER  # nothing rewritten: both choices agree
    finally:
        log.close()
    assert path.read_text().split()[0] == expected
    with pytest.raises(ValueError, match="access log client"):
        AccessLog(str(path), client="proxy")
