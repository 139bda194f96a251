"""The acceptor choice is a pure function of each site's requests in a window."""

from corral.process.acceptors import MIN_REQUESTS, choose_acceptors


def test_little_traffic_lets_every_site_accept() -> None:
    assert choose_acceptors({"a": MIN_REQUESTS - 1, "b": 0}) is None


def test_a_single_site_never_needs_choosing() -> None:
    assert choose_acceptors({"a": 10_000}) is None


def test_only_sites_with_a_real_share_accept() -> None:
    assert choose_acceptors({"busy": 5000, "idle": 3, "some": 900}) == {"busy", "some"}


def test_the_busiest_site_always_accepts_even_when_traffic_is_spread_thin() -> None:
    counts = {f"s{i}": 30 for i in range(20)}
    counts["s7"] = 31
    chosen = choose_acceptors(counts)
    assert chosen is not None and "s7" in chosen and len(chosen) == 1
