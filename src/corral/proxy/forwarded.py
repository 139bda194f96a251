"""Forwarded (RFC 7239) and X-Forwarded-*: what trusted proxies say about the client.

How this works: each proxy that forwards a request adds one *hop* saying what it knows about
the connection it received: the client's address (`for`), and the scheme, host, port and path
prefix that client used. Several proxies make a chain, oldest on the left:

    Forwarded: for=203.0.113.7;proto=https;host=example.com, for=10.0.0.2
    X-Forwarded-For: 203.0.113.7, 10.0.0.2     X-Forwarded-Proto: https, http

Only the right end can be believed at first: our peer, a trusted proxy, wrote it. So the chain
is walked from the right. A hop whose address is itself a trusted proxy is passed (that proxy
wrote the hop on its left); the first hop that is not names the client. The scheme, host, port
and prefix come from that same hop, or, where it says nothing, from the nearest hop on its
right (all written by trusted proxies). X-Forwarded-* lists are separate headers: their
elements are lined up from the right (the last element of each is the last proxy's).

Nothing here raises on bad input: a value that does not parse is not believed, and an element
that does not parse ends the walk (nothing on its left can be checked). Sans-I/O: environ
strings in, environ keys out; the connection decides once whether its peer is trusted.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

from ..wsgi.environ import header_key
from .trust import DEFAULT_TRUSTED, TrustedProxies

FORWARDED = "HTTP_FORWARDED"
X_FOR = "HTTP_X_FORWARDED_FOR"
X_PROTO = "HTTP_X_FORWARDED_PROTO"
X_HOST = "HTTP_X_FORWARDED_HOST"
X_PORT = "HTTP_X_FORWARDED_PORT"
X_PREFIX = "HTTP_X_FORWARDED_PREFIX"
X_KEYS = (X_FOR, X_PROTO, X_HOST, X_PORT, X_PREFIX)
# Never read by Corral, but apps and frameworks are often told to believe them (X-Real-IP for
# the address, X-Forwarded-Ssl / -Scheme for https): removed from untrusted peers all the same.
ALSO_REMOVED = ("HTTP_X_REAL_IP", "HTTP_X_FORWARDED_SSL", "HTTP_X_FORWARDED_SCHEME")
PROXY_KEYS = (FORWARDED, *X_KEYS, *ALSO_REMOVED)
KINDS = ("forwarded", "x-forwarded", "both", "none")
ORIGINAL = "corral.original"  # environ key: {key: value before the rewrite} for each key changed

_DEFAULT_PORTS = {"http": "80", "https": "443"}
_CACHE_LIMIT = 4096  # distinct addresses remembered (clients choose them)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]+")
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(?::([0-9]{1,5}))?")
_MAX_HOST = 255  # a DNS name is at most 253 characters; a longer "host" is not one
_addresses: dict[str, str] = {}


class Hop:
    """What one proxy said; "" (None for the prefix, where "" is the root) when it said nothing.

    `addr` is the client address `for` named, normalised; "" for `unknown`, an obfuscated
    identifier, a malformed value, or no `for` at all (`said_for` tells those apart).
    """

    def __init__(self) -> None:
        self.said_for = False
        self.addr = ""
        self.port = ""
        self.proto = ""
        self.host = ""
        self.server_port = ""
        self.prefix: str | None = None

    # A claim is shared by every request with the same headers (ProxyHeaders caches it): it
    # must not change once walk() and fill_from() have made it.

    def fill_from(self, other: Hop) -> None:
        """Take from `other` what this hop does not say (Forwarded wins over X-Forwarded-*)."""
        if not self.said_for:
            self.said_for, self.addr, self.port = other.said_for, other.addr, other.port
        self.proto = self.proto or other.proto
        self.host = self.host or other.host
        self.server_port = self.server_port or other.server_port
        if self.prefix is None:
            self.prefix = other.prefix

    def __repr__(self) -> str:
        fields = (("for", self.addr), ("port", self.port), ("proto", self.proto), ("host", self.host),
                  ("server_port", self.server_port), ("prefix", self.prefix))
        return "<Hop " + " ".join(f"{k}={v!r}" for k, v in fields if v) + ">"


# -- values ----------------------------------------------------------------------------------


def address(text: str) -> str:
    """An IPv4 or IPv6 address (no brackets) in its normal form, or "" when it is not one."""
    known = _addresses.get(text)
    if known is None:
        try:
            known = str(ipaddress.ip_address(text))
        except ValueError:
            known = ""
        if len(_addresses) < _CACHE_LIMIT:
            _addresses[text] = known
    return known


def port(text: str) -> str:
    """A TCP port 1-65535 written in ASCII digits, normalised; "" otherwise (int() would take
    "+1", "1_000" and non-ASCII digits, which are no port)."""
    if not 0 < len(text) <= 5 or not text.isascii() or not text.isdigit():
        return ""
    number = int(text)
    return str(number) if 0 < number <= 65535 else ""


def node(text: str) -> tuple[str, str]:
    """RFC 7239 node (`for`): (address, port). Obfuscated (`_x`), `unknown` and malformed
    nodes give no address; an obfuscated or invalid port is dropped. Bare IPv6 and IPv4:port
    are accepted too (X-Forwarded-For writes them so)."""
    if text.startswith("["):
        end = text.find("]")
        ip = address(text[1:end]) if end > 0 else ""
        if ":" not in ip:
            return "", ""  # brackets hold an IPv6 address, nothing else
        rest = text[end + 1 :]
        if not rest:
            return ip, ""
        return (ip, port(rest[1:])) if rest.startswith(":") else ("", "")
    ip = address(text)
    if ip or text.count(":") != 1:
        return ip, ""
    host, _, given = text.partition(":")
    ip = address(host)
    return (ip, port(given)) if ip else ("", "")


def host(text: str) -> str:
    """A Host value (name, IPv4 or [IPv6], optional port) as given; "" when it is not one."""
    match = _HOST.fullmatch(text)
    if match is None or len(text) > _MAX_HOST:
        return ""
    name, given = match.group(1), match.group(2)
    if name.startswith("[") and ":" not in address(name[1:-1]):
        return ""
    if given is not None and not port(given):
        return ""
    return text


def split_host(text: str) -> tuple[str, str]:
    """A valid Host value -> (name, port or "")."""
    if text.endswith("]"):
        return text, ""
    name, sep, given = text.rpartition(":")
    return (name, given) if sep else (text, "")


def proto(text: str) -> str:
    scheme = text.lower()
    return scheme if scheme in _DEFAULT_PORTS else ""


def prefix(text: str) -> str | None:
    """X-Forwarded-Prefix -> SCRIPT_NAME (decoded as PATH_INFO is; "/" is the root, "")."""
    if not text.startswith("/") or any(ord(c) < 0x21 or ord(c) == 0x7F or c in "?#" for c in text):
        return None
    decoded = unquote_to_bytes(text).decode("latin-1") if "%" in text else text
    return decoded.rstrip("/")


# -- the two header kinds --------------------------------------------------------------------


def split_outside_quotes(text: str, separator: str) -> list[str]:
    """Split on `separator` where it is not inside a quoted string (which keeps its quotes);
    an unterminated quote runs to the end (the value then fails to parse)."""
    if '"' not in text:
        return text.split(separator)
    parts: list[str] = []
    start = 0
    quoted = False
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted:
            if char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == separator:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def unquote(text: str) -> str | None:
    """A token or an RFC 9110 quoted-string -> its value; None when it is neither."""
    if not text.startswith('"'):
        return None if not text or '"' in text or any(c.isspace() for c in text) else text
    if len(text) < 2 or not text.endswith('"'):
        return None
    out: list[str] = []
    escaped = False
    for char in text[1:-1]:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return None  # a quote inside: `"a"b"`
        else:
            out.append(char)
    return None if escaped else "".join(out)


def forwarded_element(text: str) -> Hop:
    """One forwarded-element (`for=...;proto=...;host=...`). A malformed one says "someone is
    here" (`said_for`, no address), so the walk stops at it and believes none of it."""
    hop = Hop()
    seen: list[str] = []
    for pair in split_outside_quotes(text, ";"):
        pair = pair.strip()
        if not pair:
            continue
        name, equals, raw = pair.partition("=")
        name = name.strip().lower()
        value = unquote(raw.strip()) if equals else None
        if value is None or _TOKEN.fullmatch(name) is None or name in seen:
            bad = Hop()  # RFC 7239 section 4: each parameter at most once per element
            bad.said_for = True
            return bad
        seen.append(name)
        if name == "for":
            hop.said_for = True
            hop.addr, hop.port = node(value)
        elif name == "proto":
            hop.proto = proto(value)
        elif name == "host":
            hop.host = host(value)
        # `by` and extensions: nothing for Corral to act on
    return hop


def parse_forwarded(value: str) -> list[Hop]:
    """A Forwarded header (several lines joined with ",") -> its hops, oldest first."""
    return [forwarded_element(element) for element in split_outside_quotes(value, ",") if element.strip()]


def items(value: str | None) -> list[str]:
    """A comma-separated list, empty elements skipped (RFC 9110 5.6.1), quotes removed."""
    if not value:
        return []
    out = []
    for item in value.split(","):
        item = item.strip()
        if len(item) >= 2 and item[0] == item[-1] == '"':
            item = item[1:-1].strip()
        if item:
            out.append(item)
    return out


def parse_x_forwarded(values: Mapping[str, str]) -> list[Hop]:
    """X-Forwarded-For/-Proto/-Host/-Port/-Prefix -> hops, each list lined up from the right."""
    fors = items(values.get(X_FOR))
    protos = items(values.get(X_PROTO))
    hosts = items(values.get(X_HOST))
    ports = items(values.get(X_PORT))
    prefixes = items(values.get(X_PREFIX))
    count = max(len(fors), len(protos), len(hosts), len(ports), len(prefixes))
    hops = [Hop() for _ in range(count)]
    for index, item in enumerate(fors):
        hop = hops[count - len(fors) + index]
        hop.said_for = True
        hop.addr, hop.port = node(item)
    for index, item in enumerate(protos):
        hops[count - len(protos) + index].proto = proto(item)
    for index, item in enumerate(hosts):
        hops[count - len(hosts) + index].host = host(item)
    for index, item in enumerate(ports):
        hops[count - len(ports) + index].server_port = port(item)
    for index, item in enumerate(prefixes):
        hops[count - len(prefixes) + index].prefix = prefix(item)
    return hops


# -- the walk ---------------------------------------------------------------------------------


def walk(hops: list[Hop], trusted: TrustedProxies) -> Hop:
    """What the chain says, as far as trust reaches (the peer that sent it is trusted)."""
    claim = Hop()
    if not hops:
        return claim
    chosen = 0
    for index in range(len(hops) - 1, -1, -1):
        addr = hops[index].addr
        if index == 0 or not addr or not trusted.trusts(addr):
            chosen = index
            break
    hop = hops[chosen]
    claim.said_for = any(h.said_for for h in hops)
    if hop.addr:
        claim.addr, claim.port = hop.addr, hop.port
    elif chosen + 1 < len(hops):
        # The client is unknown or hidden: the last address we can vouch for is the proxy's
        # that said so (a trusted one: the walk passed it).
        claim.addr = hops[chosen + 1].addr
    for later in hops[chosen:]:
        claim.proto = claim.proto or later.proto
        claim.host = claim.host or later.host
        claim.server_port = claim.server_port or later.server_port
        if claim.prefix is None:
            claim.prefix = later.prefix
    return claim


class ProxyHeaders:
    """The worker's policy: which peers are trusted and which header kinds they speak."""

    def __init__(self, trusted: TrustedProxies | None = None, kinds: str = "both") -> None:
        if kinds not in KINDS:
            raise ValueError(f"unknown proxy header kind {kinds!r}; expected one of {', '.join(KINDS)}")
        self.trusted = trusted if trusted is not None else TrustedProxies(DEFAULT_TRUSTED)
        self.forwarded = kinds in ("forwarded", "both")
        self.x_forwarded = kinds in ("x-forwarded", "both")
        # A kind the proxy does not speak may be the client's own header passed through.
        unspoken: list[str] = []
        if not self.forwarded:
            unspoken.append(FORWARDED)
        if not self.x_forwarded:
            unspoken.extend(X_KEYS)
        self.unspoken = tuple(unspoken)
        # Claims by the headers' values: behind one proxy they repeat (a client's keep-alive
        # requests, or every client when only proto and host are sent). Cleared when full.
        self._claims: dict[tuple[str | None, ...], Hop | None] = {}

    def trusts_peer(self, host: str | None) -> bool:
        """Decided once per connection; None is a Unix-socket (local) peer."""
        return self.trusted.trusts(host)

    def claim(self, values: Mapping[str, str]) -> Hop | None:
        """What the spoken headers in `values` (environ keys) say; None when they are absent."""
        get = values.get
        key = (get(FORWARDED), get(X_FOR), get(X_PROTO), get(X_HOST), get(X_PORT), get(X_PREFIX))
        claims = self._claims
        if key in claims:
            return claims[key]
        claim = self._claim(values)
        if len(claims) >= _CACHE_LIMIT:
            claims.clear()
        claims[key] = claim
        return claim

    def _claim(self, values: Mapping[str, str]) -> Hop | None:
        result: Hop | None = None
        if self.forwarded and FORWARDED in values:
            result = walk(parse_forwarded(values[FORWARDED]), self.trusted)
        if self.x_forwarded and any(key in values for key in X_KEYS):
            claim = walk(parse_x_forwarded(values), self.trusted)
            if result is None:
                return claim
            result.fill_from(claim)
        return result

    def apply(self, environ: dict[str, Any], peer_trusted: bool) -> None:
        """Called only for a request that carries one of PROXY_KEYS."""
        if not peer_trusted:
            for key in PROXY_KEYS:
                environ.pop(key, None)
            return
        for key in self.unspoken:
            environ.pop(key, None)
        claim = self.claim(environ)
        if claim is not None:
            rewrite(environ, claim)

    def routing_host(self, headers: list[tuple[bytes, bytes]]) -> str:
        """The host a trusted peer says the client asked for, from raw headers (multi-site
        routing happens before the environ exists); "" when it says none."""
        values: dict[str, str] = {}
        for name, raw in headers:
            key = header_key(name)
            if key is not None and key in PROXY_KEYS:
                text = raw.decode("latin-1")
                values[key] = values[key] + "," + text if key in values else text
        claim = self.claim(values) if values else None
        return claim.host if claim is not None else ""


def rewrite(environ: dict[str, Any], claim: Hop) -> None:
    """Apply a claim; each key changed keeps its former value under corral.original."""
    original: dict[str, Any] = {}
    if claim.port or claim.addr and claim.addr != environ.get("REMOTE_ADDR"):
        change(environ, original, "REMOTE_ADDR", claim.addr)
        change(environ, original, "REMOTE_PORT", claim.port or "0")  # the proxy's port says nothing of the client's
    scheme = claim.proto or str(environ.get("wsgi.url_scheme", "http"))
    if claim.proto:
        change(environ, original, "wsgi.url_scheme", scheme)
        if scheme == "https":
            change(environ, original, "HTTPS", "on")
        elif "HTTPS" in environ:
            original.setdefault("HTTPS", environ.pop("HTTPS"))
    server_port = claim.server_port
    if claim.host:
        name, given = split_host(claim.host)
        http_host = claim.host
        if given:
            server_port = given
        elif server_port and server_port != _DEFAULT_PORTS.get(scheme):
            http_host = f"{name}:{server_port}"
        change(environ, original, "HTTP_HOST", http_host)
        change(environ, original, "SERVER_NAME", name)
    if not server_port and (claim.proto or claim.host):
        server_port = _DEFAULT_PORTS.get(scheme, "")
    if server_port:
        change(environ, original, "SERVER_PORT", server_port)
    if claim.prefix is not None:
        change(environ, original, "SCRIPT_NAME", claim.prefix)
    if original:
        environ[ORIGINAL] = original


def change(environ: dict[str, Any], original: dict[str, Any], key: str, value: str) -> None:
    before = environ.get(key)
    if before != value:
        original.setdefault(key, before)
        environ[key] = value
