"""Which sites' workers accept new connections (multi-site only): a pure function.

Every worker can accept and route, but a connection accepted by another site's
worker costs a handoff (and is lost if that worker dies before routing it). So
once there is enough traffic to judge, only the sites that get a real share of
the requests keep accepting; the others still get their connections, handed
over by the acceptors. With little traffic everyone accepts, which is cheap and
needs no judgement.
"""

from __future__ import annotations

from collections.abc import Mapping

WINDOW = 1.0  # seconds of traffic each decision looks at
MIN_REQUESTS = 100  # below this many requests in a window, every site accepts
MIN_SHARE = 0.1  # a site with at least this share of the window's requests keeps accepting


def choose_acceptors(requests: Mapping[str, int]) -> frozenset[str] | None:
    """Sites that should accept, from each site's requests in the last window; None: all."""
    total = sum(requests.values())
    if total < MIN_REQUESTS or len(requests) < 2:
        return None
    busiest = max(requests, key=lambda site: requests[site])
    return frozenset(site for site, count in requests.items() if count >= MIN_SHARE * total) | {busiest}
