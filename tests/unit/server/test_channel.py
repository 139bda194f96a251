"""server/channel.py: the master <-> worker messages, their wire form and the reading end."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from corral.server import channel
from corral.server.channel import (
    Accept,
    Files,
    Heartbeat,
    Inbox,
    LoadError,
    LoadWarning,
    Message,
    Ready,
    Recycle,
    Trees,
)

EVERY_MESSAGE: list[Message] = [
    Ready(1234),
    Heartbeat(requests=7, in_flight=2, connections=3, stats={"version": 1, "sites": {}}, rss=1 << 20),
    Heartbeat(),
    Recycle("max-requests 1000"),
    LoadWarning("DEBUG is on"),
    LoadError("cannot load app 'x:app': boom", "Traceback: mine\n"),
    LoadError("no traceback"),
    Files(("/srv/app/views.py", "/srv/app/urls.py")),
    Trees(("/srv/app/templates",)),
    Accept(True),
    Accept(False),
]


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


@pytest.mark.parametrize("message", EVERY_MESSAGE, ids=lambda m: type(m).__name__)
def test_every_message_survives_the_wire(message: Message) -> None:
    line = channel.encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert channel.decode(line[:-1]) == message


def test_event_names_on_the_wire_are_the_ones_workers_and_dev_children_speak() -> None:
    names = {json.loads(channel.encode(m))["event"] for m in EVERY_MESSAGE}
    assert names == {"ready", "heartbeat", "recycle", "warning", "load-error", "files", "trees", "accept"}
    assert json.loads(channel.encode(Ready(5))) == {"event": "ready", "pid": 5}
    assert json.loads(channel.encode(Accept(False))) == {"event": "accept", "on": False}


@pytest.mark.parametrize(
    "line",
    [
        b"not json",
        b"[1, 2]",
        b'"ready"',
        b'{"pid": 1}',  # no event
        b'{"event": "nothing"}',
        b'{"event": ["ready"]}',
        b'{"event": 3}',
        b'{"event": "heartbeat", "requests": "7"}',
        b'{"event": "heartbeat", "requests": true}',  # a bool is no count
        b'{"event": "ready", "pid": 1.5}',
        b'{"event": "warning"}',  # no message
        b'{"event": "load-error", "message": 3}',
        b'{"event": "files", "files": "/one/path"}',
        b'{"event": "recycle", "reason": null}',
    ],
)
def test_a_malformed_or_unknown_line_is_skipped(line: bytes) -> None:
    assert channel.decode(line) is None


def test_optional_fields_of_the_wrong_type_are_dropped_not_trusted() -> None:
    line = b'{"event": "heartbeat", "requests": 1, "stats": [1], "rss": "big"}'
    assert channel.decode(line) == Heartbeat(requests=1)
    assert channel.decode(b'{"event": "load-error", "message": "m", "traceback": 5}') == LoadError("m")
    assert channel.decode(b'{"event": "files", "files": ["/a", 5, null]}') == Files(("/a",))


def test_inbox_keeps_a_partial_line_for_the_next_read(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    inbox = Inbox(b)
    line = channel.encode(Ready(1)) + channel.encode(Recycle("timeout"))
    a.sendall(line[:10])
    assert inbox.read() == [] and not inbox.closed
    a.sendall(line[10:-3])
    assert inbox.read() == [Ready(1)]
    a.sendall(line[-3:] + b"garbage\n")
    assert inbox.read() == [Recycle("timeout")]  # the garbage line is skipped
    assert inbox.read() == [] and not inbox.closed  # nothing waiting: no blocking


def test_inbox_reads_a_dead_peers_last_words_then_sees_the_end(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    inbox = Inbox(b, size=16)  # small receives: the messages take several
    for n in range(5):
        channel.send(a, Ready(n))
    a.close()
    assert inbox.read() == []  # one 16-byte receive holds no whole line
    assert inbox.read(64) == [Ready(n) for n in range(5)]
    assert inbox.closed


def test_inbox_read_is_bounded_per_call(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    inbox = Inbox(b, size=len(channel.encode(Ready(1))))  # exactly one message per receive
    for _ in range(4):
        channel.send(a, Ready(1))
    assert len(inbox.read(2)) == 2
    assert len(inbox.read(10)) == 2


def test_send_to_a_closed_peer_reports_it_instead_of_raising(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    assert channel.send(a, Ready(1))
    b.close()
    assert not channel.send(a, Accept(True))
