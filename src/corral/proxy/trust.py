"""The set of peers allowed to speak for a client (--trusted-proxies).

Only a trusted peer may tell Corral who the client is (Forwarded, X-Forwarded-*, the
PROXY protocol). Entries are addresses or CIDR networks, IPv4 or IPv6, and the word
`unix` for any peer on a Unix socket (that peer is a local process: a proxy on the same
host). An IPv4-mapped IPv6 peer (`::ffff:10.0.0.1`) is judged by its IPv4 address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

UNIX = "unix"
DEFAULT_TRUSTED = ("127.0.0.1", "::1", UNIX)
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_CACHE_LIMIT = 4096  # distinct peer addresses remembered per worker (clients choose them)


def parse_trusted_proxy(text: str) -> str:
    """One --trusted-proxies entry, normalised; ValueError says what was expected."""
    if not isinstance(text, str):
        raise ValueError(f"expected a string, got {type(text).__name__}")
    entry = text.strip()
    if entry.lower() == UNIX:
        return UNIX
    try:
        ipaddress.ip_network(entry, strict=False)
    except ValueError:
        raise ValueError(f"expected an address, a CIDR network (10.0.0.0/8, fd00::/8) or unix, got {text!r}") from None
    return entry


class TrustedProxies:
    def __init__(self, entries: Iterable[str]) -> None:
        self.unix = False
        networks: list[_Network] = []
        for entry in entries:
            if parse_trusted_proxy(entry) == UNIX:
                self.unix = True
            else:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        self.networks = tuple(networks)
        self._known: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return self.unix or bool(self.networks)

    def trusts(self, host: str | None) -> bool:
        """Whether a peer at `host` may speak for its client; None is a Unix-socket peer."""
        if host is None:
            return self.unix
        known = self._known.get(host)
        if known is None:
            known = self._judge(host)
            if len(self._known) < _CACHE_LIMIT:
                self._known[host] = known
        return known

    def _judge(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.partition("%")[0])  # drop an IPv6 zone (fe80::1%eth0)
        except ValueError:
            return False  # not an address (an obfuscated identifier, "unknown"): never trusted
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)
