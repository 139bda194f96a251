"""Route a request to a site by Host and mount prefix, fast enough for every request.

The rules (also documented in config/sites.py and docs/sites.md):
1. Host, port dropped, case-insensitive: the sites listing it exactly; if none,
   the sites whose `*.suffix` wildcard matches, most specific first; if none,
   the default site.
2. Among those, the longest mount that is a whole-segment prefix of the path.
3. Else the default site when its mount matches; else no site (404).
The candidate list per host is computed once and cached (bounded), so a request
costs a dict lookup and a few prefix checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

_CACHE_LIMIT = 4096  # distinct Host values remembered; clients choose them


class Routable(Protocol):
    @property
    def hosts(self) -> tuple[str, ...]: ...

    @property
    def default(self) -> bool: ...

    @property
    def mount(self) -> str: ...


def under(path: str, mount: str) -> bool:
    """Whole-segment prefix test: /blog matches /blog and /blog/x, not /blogger."""
    return not mount or path == mount or path.startswith(mount) and path[len(mount)] == "/"


class Router:
    def __init__(self, sites: Sequence[Routable]) -> None:
        self._sites = list(sites)
        self._default = next((i for i, s in enumerate(sites) if s.default), None)
        self._exact: dict[str, list[int]] = {}
        self._wildcards: list[tuple[str, int]] = []
        for index, site in enumerate(sites):
            for host in site.hosts:
                if host.startswith("*."):
                    self._wildcards.append((host[1:], index))  # ".example.com"
                else:
                    self._exact.setdefault(host, []).append(index)
        self._wildcards.sort(key=lambda item: -len(item[0]))
        self._cache: dict[str, list[tuple[str, int]]] = {}

    def name(self, index: int) -> str:
        return getattr(self._sites[index], "name", str(index))

    def match(self, host: str, path: str) -> int | None:
        """Index of the site for this Host header value and (decoded) path, or None."""
        candidates = self._cache.get(host)
        if candidates is None:
            candidates = self._candidates(host)
            if len(self._cache) < _CACHE_LIMIT:
                self._cache[host] = candidates
        for mount, index in candidates:
            if under(path, mount):
                return index
        return None

    def _candidates(self, raw_host: str) -> list[tuple[str, int]]:
        host = _strip_port(raw_host.strip().lower()).rstrip(".")
        indexes = self._exact.get(host)
        if indexes is None:
            best = None
            indexes = []
            for suffix, index in self._wildcards:
                if host.endswith(suffix) and (best is None or len(suffix) == best):
                    best = len(suffix)
                    indexes.append(index)
        ordered = sorted(((self._sites[i].mount, i) for i in indexes), key=lambda item: -len(item[0]))
        if self._default is not None:
            ordered.append((self._sites[self._default].mount, self._default))
        return ordered


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.partition(":")[0]
