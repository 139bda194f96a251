"""The master's supervision with an injected spawner: real child processes, no real app.

The spawner forks a child that says one thing on its channel and exits at once;
`os.waitid(..., WNOWAIT)` waits for that exit without reaping it, so the test
can force the race the master's loop meets under load: the SIGCHLD is handled
before the channel message was read.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator

import pytest

from corral.config import Config
from corral.process.arbiter import Arbiter
from corral.process.policy import Slot
from corral.server.worker import EXIT_APP_LOAD_ERROR, WorkerSpec


def child_says(message: dict[str, object], status: int):  # type: ignore[no-untyped-def]
    def spawn(spec: WorkerSpec, close_in_child: list[socket.socket]) -> int:
        pid = os.fork()
        if pid == 0:  # the child: say it, exit, touch nothing else
            try:
                spec.channel.sendall(json.dumps(message).encode() + b"\n")
            finally:
                os._exit(status)
        return pid

    return spawn


@pytest.fixture
def make_arbiter() -> Iterator:  # type: ignore[type-arg]
    made: list[Arbiter] = []

    def make(spawn) -> Arbiter:  # type: ignore[no-untyped-def]
        arbiter = Arbiter(Config(app="x:app"), [], spawn=spawn)
        made.append(arbiter)
        return arbiter

    yield make
    for arbiter in made:
        for handle in arbiter.workers.values():
            handle.channel.close()
        arbiter.selector.close()
        arbiter.signals.close()


def spawn_and_wait_for_exit(arbiter: Arbiter) -> int:
    group = arbiter.groups[0]
    group.slots = [Slot(0)]
    arbiter._spawn(group, group.slots[0])
    pid = next(iter(arbiter.workers))
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped
    return pid


def test_load_error_sent_just_before_exit_is_reported(make_arbiter, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    message = {"event": "load-error", "message": "cannot load app 'x:app': boom", "traceback": "Traceback: mine\n"}
    arbiter = make_arbiter(child_says(message, EXIT_APP_LOAD_ERROR))
    spawn_and_wait_for_exit(arbiter)
    arbiter._reap()  # SIGCHLD first: the message is still unread in the channel
    err = capsys.readouterr().err
    assert "corral: error: cannot load app 'x:app': boom" in err
    assert err.index("Traceback: mine") < err.index("corral: error:")
    assert arbiter.exit_code == 1 and arbiter.stopping
    assert not arbiter.workers


def test_worker_death_before_boot_stops_the_master(make_arbiter) -> None:  # type: ignore[no-untyped-def]
    arbiter = make_arbiter(child_says({"event": "nothing"}, 7))
    spawn_and_wait_for_exit(arbiter)
    arbiter._reap()
    assert arbiter.exit_code == 1 and arbiter.stopping  # no restart loop for a worker that never booted
