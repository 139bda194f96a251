"""PROXY protocol plumbing: `proxy:` binds, which listeners expect it, the handoff's peer,
the header deadline, the refusal log's limit, and the raw-socket reader of TLS listeners."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.proxy.protocol import ProxyHeaderError
from corral.proxy.trust import TrustedProxies
from corral.server.handoff import handoff_pair, receive_connection, send_connection
from corral.server.listeners import Address, BindError, parse_bind, proxy_protocol_fds
from corral.server.proxy_reader import (
    ENDED_EARLY,
    NOT_TRUSTED,
    PROXY_HEADER_TIMEOUT,
    ProxyIntake,
    RejectionLog,
    header_deadline,
    take_header,
)
from proxy_headers import tlv, v1, v2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("proxy:0.0.0.0:8001", Address(socket.AF_INET, "0.0.0.0", 8001, True)),
        ("proxy::8001", Address(socket.AF_INET, "0.0.0.0", 8001, True)),
        ("proxy:[::]:8001", Address(socket.AF_INET6, "::", 8001, True)),
        ("proxy:unix:/run/c.sock", Address(socket.AF_UNIX, "/run/c.sock", 0, True)),
        ("proxy:8001", Address(socket.AF_INET, "proxy", 8001, False)),  # the host named proxy
        ("127.0.0.1:8000", Address(socket.AF_INET, "127.0.0.1", 8000, False)),
    ],
)
def test_proxy_binds(text: str, expected: Address) -> None:
    assert parse_bind(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("proxy:", "bind 'proxy:': proxy: needs an address after it"),
        ("proxy:1.2.3.4:x", "bind 'proxy:1.2.3.4:x': 'x' is not a port number"),
        ("proxy:::1:80", "bind 'proxy:::1:80': write IPv6 addresses in brackets"),
    ],
)
def test_bad_proxy_binds_name_the_bind_as_written(text: str, message: str) -> None:
    with pytest.raises(BindError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_bind(text)


@pytest.fixture
def two_listeners() -> Iterator[list[socket.socket]]:
    socks = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    yield socks
    for sock in socks:
        sock.close()


def test_bound_listeners_follow_their_binds(two_listeners: list[socket.socket]) -> None:
    plain, proxied = two_listeners
    binds = ["127.0.0.1:0", "proxy:127.0.0.1:0"]
    assert proxy_protocol_fds(binds, False, two_listeners, False) == {proxied.fileno()}
    assert proxy_protocol_fds(binds, True, two_listeners, False) == {plain.fileno(), proxied.fileno()}
    assert proxy_protocol_fds(["127.0.0.1:0"] * 2, False, two_listeners, False) == frozenset()


def test_activated_sockets_match_proxy_binds_by_address(two_listeners: list[socket.socket], tmp_path: Path) -> None:
    first, second = two_listeners
    port = second.getsockname()[1]
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(tmp_path / "s"))
    try:
        sockets = [*two_listeners, unix]
        binds = [f"proxy:127.0.0.1:{port}", "proxy:localhost:1", "proxy:", f"proxy:unix:{tmp_path / 's'}"]
        assert proxy_protocol_fds(binds, False, sockets, True) == {second.fileno(), unix.fileno()}
        assert first.fileno() not in proxy_protocol_fds([f"proxy:[::1]:{port}"], False, sockets, True)
    finally:
        unix.close()


@pytest.mark.parametrize(
    "peer", [("198.51.100.9", 4242), ("2001:db8::20", 40001), ("", None), (None, None)], ids=str
)
@pytest.mark.parametrize("size", [10, 40_000], ids=["inline", "memfd"])
def test_the_handoff_carries_the_proxy_given_peer(peer: tuple[object, object], size: int) -> None:
    host, port = peer
    peername = (host, port) if port is not None else host
    send_end, receive_end = handoff_pair()
    left, right = socket.socketpair()
    try:
        data = b"G" * size
        send_connection(send_end, left.fileno(), data, peername)
        item = receive_connection(receive_end)
        assert item is not None
        client, received, got = item
        client.close()
        assert (received, got) == (data, peername)
    finally:
        for sock in (send_end, receive_end, left, right):
            sock.close()


def test_the_header_deadline_is_capped_by_the_header_timeout() -> None:
    assert header_deadline(30.0) == PROXY_HEADER_TIMEOUT
    assert header_deadline(1.0) == 1.0


def test_refusals_are_logged_once_each_up_to_a_burst(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limit = RejectionLog(burst=2, window=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="corral.error"):
        for n in range(5):
            limit(f"10.0.0.{n}:1", "bad")
        assert [r.getMessage() for r in caplog.records] == [
            "PROXY protocol: refused a connection from 10.0.0.0:1: bad",
            "PROXY protocol: refused a connection from 10.0.0.1:1: bad",
        ]
        caplog.clear()
        now[0] = 61.0
        limit("10.0.0.9:1", "late")
        assert [r.getMessage() for r in caplog.records] == [
            "PROXY protocol: 3 more connections refused without a log line each",
            "PROXY protocol: refused a connection from 10.0.0.9:1: late",
        ]


# -- take_header: the PROXY header off a raw socket, the TLS bytes behind it left unread --------

CLIENT_HELLO = b"\x16\x03\x01\x00\x05hello"  # what must stay in the socket for the TLS transport


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    yield ours, theirs
    ours.close()
    theirs.close()


@pytest.mark.parametrize("header", [v1(), v1("2001:db8::1", "2001:db8::2"), v2(), v2(tlvs=tlv(0xEA, b"x" * 300)),
                                    v2(None, local=True)], ids=["v1", "v1-ipv6", "v2", "v2-tlvs", "v2-local"])
def test_take_header_leaves_what_follows_in_the_socket(pair: tuple[socket.socket, socket.socket],
                                                       header: bytes) -> None:
    ours, theirs = pair
    theirs.sendall(header + CLIENT_HELLO)
    found, consumed = take_header(ours, b"")
    assert found is not None and found.length == len(header) and consumed == b""
    assert ours.recv(100) == CLIENT_HELLO


def test_take_header_byte_by_byte(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    header = v2("192.0.2.5", "192.0.2.1", 99, 443)
    consumed = b""
    assert take_header(ours, consumed) == (None, b"")  # nothing yet: woken for nothing
    for i, byte in enumerate(header):
        theirs.sendall(bytes([byte]) + (CLIENT_HELLO if i == len(header) - 1 else b""))
        found, consumed = take_header(ours, consumed)
        if i < len(header) - 1:
            assert found is None and consumed == header[: i + 1]
    assert found is not None and found.source == ("192.0.2.5", 99)
    assert ours.recv(100) == CLIENT_HELLO


@pytest.mark.parametrize(("sent", "reason"),
                         [(CLIENT_HELLO, "not a PROXY protocol header"), (b"PROXY TCP4 ", ENDED_EARLY)])
def test_take_header_refuses(pair: tuple[socket.socket, socket.socket], sent: bytes, reason: str) -> None:
    ours, theirs = pair
    theirs.sendall(sent)
    theirs.shutdown(socket.SHUT_WR)
    with pytest.raises(ProxyHeaderError, match=reason):
        _found, consumed = take_header(ours, b"")
        take_header(ours, consumed)  # the rest never comes: the connection ended


def test_intake_admits_trusted_peers_only(caplog: pytest.LogCaptureFixture) -> None:
    intake = ProxyIntake(TrustedProxies(["10.0.0.0/8", "unix"]), 1.0, RejectionLog())
    with caplog.at_level(logging.WARNING, logger="corral.error"):
        assert intake.admits(("10.1.2.3", 5)) and intake.admits("")
        assert not intake.admits(("2001:db8::1", 7, 0, 0))
    assert [r.getMessage() for r in caplog.records] == [
        f"PROXY protocol: refused a connection from [2001:db8::1]:7: {NOT_TRUSTED}"
    ]
