"""H1State driven directly, without a connection: every rule of http/connection_state.py.

Each table row is one situation (built by a short list of events from a fresh state)
and what the state must answer; the clock is a number the test passes.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from corral.http import connection_state as s
from corral.http.connection_state import H1State

KEEPALIVE, HEADER, BODY, SEND = 30.0, 10.0, 20.0, 4.0
T0 = 100.0  # when the connection is opened


def fresh() -> H1State:
    state = H1State(KEEPALIVE, HEADER, BODY, SEND)
    state.opened(T0)
    return state


Step = Callable[[H1State], object]


def run(*steps: Step) -> H1State:
    state = fresh()
    for step in steps:
        step(state)
    return state


def idle(now: float) -> Step:
    return lambda st: st.waiting(now, False)


def arrive(now: float, part: int) -> Step:
    return lambda st: st.arriving(now, part)


def began(st: H1State) -> None:
    st.began()


def done(keep_alive: bool = True, body_read: bool = True) -> Step:
    return lambda st: st.completed(keep_alive, body_read)


def paused(now: float) -> Step:
    return lambda st: st.paused(now)


def resumed(st: H1State) -> None:
    st.resumed()


def failed(st: H1State) -> None:
    st.failed()


def eof(st: H1State) -> None:
    st.eof_received(True)


# -- rules 5 and 6: which deadline runs -------------------------------------------------

DEADLINES = [
    ("accepted: the first head's timeout", [], s.HEAD, T0 + HEADER),
    ("first bytes of a head keep the accept's deadline", [arrive(T0 + 3, s.HEAD_PART)], s.HEAD, T0 + HEADER),
    ("a head begun after idling: its own timeout", [idle(T0), arrive(T0 + 5, s.HEAD_PART)], s.HEAD, T0 + 5 + HEADER),
    ("more of that head does not extend it",
     [idle(T0), arrive(T0 + 5, s.HEAD_PART), arrive(T0 + 8, s.HEAD_PART)], s.HEAD, T0 + 5 + HEADER),
    ("a body before its exchange: the body timeout", [arrive(T0 + 2, s.BODY_PART)], s.BODY, T0 + 2 + BODY),
    ("each piece of body restarts it (a stall bound)",
     [arrive(T0 + 2, s.BODY_PART), arrive(T0 + 9, s.BODY_PART)], s.BODY, T0 + 9 + BODY),
    ("an exchange runs: no timer", [began], s.NONE, T0 + HEADER),
    ("its streamed body: the body timeout", [began, arrive(T0 + 1, s.STREAMED_PART)], s.BODY, T0 + 1 + BODY),
    ("a pipelined head while it runs changes nothing", [began, arrive(T0 + 1, s.HEAD_PART)], s.NONE, T0 + HEADER),
    ("nor a pipelined body", [began, arrive(T0 + 1, s.BODY_PART)], s.NONE, T0 + HEADER),
    ("after the response: keep-alive", [began, done(), idle(T0 + 2)], s.IDLE, T0 + 2 + KEEPALIVE),
    ("after the response with a head half in: its deadline stands",
     [began, done(), lambda st: st.waiting(T0 + 2, True)], s.NONE, T0 + HEADER),
    ("writing paused: send", [began, paused(T0 + 1)], s.SEND, T0 + 1 + SEND),
    ("paused, the response completes: send", [began, paused(T0 + 1), done(), idle(T0 + 2)], s.SEND, T0 + 1 + SEND),
    ("paused, the next exchange begins: still send",
     [began, paused(T0 + 1), done(), began], s.SEND, T0 + 1 + SEND),
    ("paused, a head arrives: still send", [began, paused(T0 + 1), done(), arrive(T0 + 2, s.HEAD_PART)],
     s.SEND, T0 + 1 + SEND),
    ("paused, a streamed body arrives: still send", [began, paused(T0 + 1), arrive(T0 + 2, s.STREAMED_PART)],
     s.SEND, T0 + 1 + SEND),
    ("resumed: no timer until the connection says what it waits for", [began, paused(T0 + 1), resumed],
     s.NONE, T0 + 1 + SEND),
    ("resumed with nothing to do: keep-alive", [began, paused(T0 + 1), done(), resumed, idle(T0 + 3)],
     s.IDLE, T0 + 3 + KEEPALIVE),
]


@pytest.mark.parametrize(("steps", "kind", "deadline"), [row[1:] for row in DEADLINES], ids=[r[0] for r in DEADLINES])
def test_which_deadline_runs(steps: list[Step], kind: int, deadline: float) -> None:
    state = run(*steps)
    assert (state.kind, state.deadline) == (kind, deadline)


# -- rules 1-3: what comes next when no exchange runs -----------------------------------

NEXT = [
    ("nothing ready: wait", [], False, s.WAIT),
    ("a request ready: start it", [], True, s.START),
    ("an exchange runs: nothing else starts", [began], True, s.STOP),
    ("it completed with keep-alive: the next starts", [began, done()], True, s.START),
    ("an error waits behind a ready request: the request first", [failed], True, s.START),
    ("then the error is answered", [failed], False, s.ANSWER_ERROR),
    ("an error, even after EOF", [failed, eof], False, s.ANSWER_ERROR),
    ("EOF with a request ready: it is answered", [eof], True, s.START),
    ("EOF and nothing left: close", [eof], False, s.CLOSE),
    ("closing: nothing more", [lambda st: st.closing()], True, s.STOP),
    ("lost: nothing more", [lambda st: st.lost()], True, s.STOP),
    ("lost mid-exchange: nothing more", [began, lambda st: st.lost()], True, s.STOP),
]


@pytest.mark.parametrize(("steps", "ready", "step"), [row[1:] for row in NEXT], ids=[r[0] for r in NEXT])
def test_what_comes_next(steps: list[Step], ready: bool, step: int) -> None:
    assert run(*steps).next_step(ready) == step


@pytest.mark.parametrize(
    ("responding", "ready", "closes_now"),
    [(False, False, True), (False, True, False), (True, False, False), (True, True, False)],
)
def test_eof_closes_at_once_only_with_nothing_to_answer(responding: bool, ready: bool, closes_now: bool) -> None:
    state = run(began) if responding else fresh()
    assert state.eof_received(ready) is closes_now


# -- rule 4: keep-alive after a response ------------------------------------------------

@pytest.mark.parametrize(
    ("keep_alive", "body_read", "lost", "goes_on"),
    [
        (True, True, False, True),
        (False, True, False, False),  # the response said close
        (True, False, False, False),  # a 100-continue body still on the wire
        (True, True, True, False),  # the client is gone
    ],
)
def test_a_response_is_followed_by_the_next_request_only_when_all_allow(
    keep_alive: bool, body_read: bool, lost: bool, goes_on: bool
) -> None:
    state = run(began)
    if lost:
        state.closed = True  # (lost() also ends the exchange; here the completion comes after)
    assert state.completed(keep_alive, body_read) is goes_on
    assert not state.responding


# -- rule 7: an expired deadline ---------------------------------------------------------

EXPIRED = [
    # (name, steps, detail, buffered, closing, action, kind after)
    ("idle passes: close", [idle(T0)], False, False, False, s.SHUT, s.IDLE),
    ("idle with bytes unread: the send timeout first", [idle(T0)], False, True, False, s.NOTHING, s.SEND),
    ("accepted, no request ever: close", [], False, False, False, s.SHUT, s.HEAD),
    ("half a head: 408", [arrive(T0, s.HEAD_PART)], True, False, False, s.REJECT_HEAD, s.HEAD),
    ("half a head, closing with bytes unread: send first", [], True, True, True, s.NOTHING, s.SEND),
    ("a body before its exchange stalls: 408", [arrive(T0, s.BODY_PART)], False, False, False, s.REJECT_BODY, s.BODY),
    ("a streamed body stalls: its reads fail", [began, arrive(T0, s.STREAMED_PART)], True, False, False,
     s.FAIL_BODY, s.NONE),
    ("send passes: abort", [paused(T0)], False, True, False, s.ABORT, s.SEND),
    ("an exchange runs: no timer to pass", [began], False, False, False, s.NOTHING, s.NONE),
]


@pytest.mark.parametrize(
    ("steps", "detail", "buffered", "closing", "action", "kind"), [r[1:] for r in EXPIRED], ids=[r[0] for r in EXPIRED]
)
def test_an_expired_deadline(
    steps: list[Step], detail: bool, buffered: bool, closing: bool, action: int, kind: int
) -> None:
    state = run(*steps)
    at = state.deadline
    assert state.expired(at - 0.01, detail, buffered, closing) == s.NOTHING  # not yet
    assert state.expired(at, detail, buffered, closing) == action
    assert state.kind == kind
    if action == s.NOTHING and kind == s.SEND:
        assert state.deadline == at + SEND  # counted from the moment the other deadline passed
        assert state.expired(state.deadline, detail, buffered, closing) == s.ABORT


def test_a_lost_connection_never_expires() -> None:
    state = run(idle(T0), lambda st: st.lost())
    assert state.expired(T0 + 10 * KEEPALIVE, False, False, False) == s.NOTHING


# -- draining ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("steps", "now", "patient", "closes"),
    [
        ([idle(T0)], T0 + s.DRAIN_IDLE_GRACE - 0.01, False, False),  # quiet too briefly: a request may be coming
        ([idle(T0)], T0 + s.DRAIN_IDLE_GRACE, False, True),
        ([idle(T0)], T0 + s.DRAIN_IDLE_GRACE, True, False),  # patient: at its own idle deadline
        ([idle(T0)], T0 + KEEPALIVE, True, True),
        ([], T0 + HEADER - 0.01, False, False),  # accepted, its first request may still come
        ([], T0 + HEADER, False, True),
    ],
)
def test_draining_closes_an_idle_connection(steps: list[Step], now: float, patient: bool, closes: bool) -> None:
    assert run(*steps).drain_closes(now, patient) is closes
