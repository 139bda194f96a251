"""Held writes: what leaves when, against a recording transport and a real event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from corral.server.outbox import HOLD_LIMIT, HOLD_TIME, HeldTransport, Outbox


class Recorder:
    """The socket side: every system-call-level write, in order."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False
        self.events: list[str] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def writelines(self, pieces: Any) -> None:
        self.writes.append(b"".join(pieces))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.events.append("close")
        self.closing = True

    def abort(self) -> None:
        self.events.append("abort")
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return sum(map(len, self.writes))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"socket": "the socket"}.get(name, default)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def end_pass(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_until_complete(asyncio.sleep(0))


def held(loop: asyncio.AbstractEventLoop, outbox: Outbox | None = None) -> tuple[HeldTransport, Recorder]:
    recorder = Recorder()
    return HeldTransport(recorder, outbox or Outbox(loop)), recorder


def test_responses_of_one_pass_leave_together_at_its_end(loop: asyncio.AbstractEventLoop) -> None:
    outbox = Outbox(loop)
    (one, first), (two, second) = held(loop, outbox), held(loop, outbox)
    one.write(b"response one")
    two.write(b"response two")
    assert first.writes == [] and second.writes == []
    end_pass(loop)
    assert first.writes == [b"response one"] and second.writes == [b"response two"]


def test_pipelined_responses_leave_in_one_write(loop: asyncio.AbstractEventLoop) -> None:
    transport, recorder = held(loop)
    transport.write(b"first;")
    transport.write(b"second;")
    end_pass(loop)
    assert recorder.writes == [b"first;second;"]


def test_a_large_write_goes_straight_through_after_what_was_held(loop: asyncio.AbstractEventLoop) -> None:
    transport, recorder = held(loop)
    transport.write(b"head;")
    big = b"x" * HOLD_LIMIT
    transport.write(big)
    assert recorder.writes == [b"head;" + big], "sent at once, in order, so back-pressure applies"
    transport.writelines([b"a", b"b"])
    assert recorder.writes[-1] == b"ab"


def test_close_and_abort_send_what_was_held_first(loop: asyncio.AbstractEventLoop) -> None:
    for end in ("close", "abort"):
        transport, recorder = held(loop)
        transport.write(b"last response")
        getattr(transport, end)()
        assert recorder.writes == [b"last response"] and recorder.events == [end]
        end_pass(loop)
        assert recorder.writes == [b"last response"], "sent once"


def test_nothing_is_written_to_a_transport_lost_meanwhile(loop: asyncio.AbstractEventLoop) -> None:
    transport, recorder = held(loop)
    transport.write(b"response")
    recorder.closing = True  # the peer reset the connection before the pass ended
    end_pass(loop)
    assert recorder.writes == []


def test_direct_uses_of_the_socket_see_everything_sent(loop: asyncio.AbstractEventLoop) -> None:
    transport, recorder = held(loop)
    transport.write(b"response")
    assert transport.get_write_buffer_size() == len(b"response")
    transport.write(b"next")
    assert transport.get_extra_info("socket") == "the socket"
    assert recorder.writes == [b"response", b"next"], "sendfile and handoff use the socket itself"


def test_held_bytes_wait_for_no_app_call_once_hold_time_passed(loop: asyncio.AbstractEventLoop) -> None:
    now = [50.0]
    outbox = Outbox(loop, clock=lambda: now[0])
    transport, recorder = held(loop, outbox)
    transport.write(b"response")  # held at 50.0
    outbox.before_app_call(50.0 + HOLD_TIME / 2)
    assert recorder.writes == [], "a quick burst is still batched"
    outbox.before_app_call(50.0 + HOLD_TIME * 2)
    assert recorder.writes == [b"response"]
    end_pass(loop)
    assert recorder.writes == [b"response"], "sent once"
