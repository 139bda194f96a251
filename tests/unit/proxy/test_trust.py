"""--trusted-proxies: which peers may speak for a client."""

from __future__ import annotations

import pytest

from corral.config.values import parse_bool
from corral.proxy.trust import DEFAULT_TRUSTED, TrustedProxies, parse_trusted_proxy


def test_default_trusts_loopback_and_unix_only() -> None:
    trusted = TrustedProxies(DEFAULT_TRUSTED)
    assert trusted.trusts("127.0.0.1") and trusted.trusts("::1") and trusted.trusts(None)
    assert not trusted.trusts("127.0.0.2") and not trusted.trusts("10.0.0.1") and not trusted.trusts("::2")


def test_networks_ipv4_ipv6_and_mapped_addresses() -> None:
    trusted = TrustedProxies(["10.0.0.0/8", "fd00::/8"])
    assert trusted.trusts("10.200.3.4") and trusted.trusts("fd12::1") and trusted.trusts("::ffff:10.0.0.9")
    assert trusted.trusts("fd00::1%eth0")
    assert not trusted.trusts("11.0.0.1") and not trusted.trusts("fe80::1") and not trusted.trusts(None)


def test_identifiers_that_are_not_addresses_are_never_trusted() -> None:
    trusted = TrustedProxies(["0.0.0.0/0", "::/0"])
    for host in ("unknown", "_hidden", "", "10.0.0.1:80", "[::1]"):
        assert not trusted.trusts(host), host


def test_empty_list_trusts_nobody() -> None:
    trusted = TrustedProxies([])
    assert not trusted and not trusted.trusts("127.0.0.1") and not trusted.trusts(None)


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "localhost", "1.2.3", "unix:/x", ""])
def test_bad_entries_are_refused_with_what_was_expected(entry: str) -> None:
    with pytest.raises(ValueError, match="expected an address"):
        parse_trusted_proxy(entry)


def test_entries_are_normalised() -> None:
    assert parse_trusted_proxy(" UNIX ") == "unix"
    assert parse_trusted_proxy("10.1.2.3/8") == "10.1.2.3/8"  # host bits allowed, as nginx's set_real_ip_from


def test_parse_bool() -> None:
    assert parse_bool(True) is True and parse_bool("on") is True and parse_bool("false") is False
    with pytest.raises(ValueError):
        parse_bool("maybe")
