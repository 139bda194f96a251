"""The master's milestones -> log lines, sd_notify messages and `corral status`'s reload record."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.process.lifecycle import Lifecycle
from corral.process.notify import Notifier
from corral.process.status import describe_reload


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[tuple[socket.socket, Lifecycle]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.setblocking(False)
    life = Lifecycle(Notifier(str(tmp_path / "notify.sock")))
    yield sock, life
    life.notifier.close()
    sock.close()


def sent(sock: socket.socket) -> list[dict[str, str]]:
    messages = []
    while True:
        try:
            data = sock.recv(4096).decode()
        except BlockingIOError:
            return messages
        messages.append(dict(line.split("=", 1) for line in data.splitlines()))


def test_a_reload_is_serving_then_done(systemd: tuple[socket.socket, Lifecycle],
                                       caplog: pytest.LogCaptureFixture) -> None:
    sock, life = systemd
    life.ready("2 worker(s) x 1 thread(s)")
    life.reload_started("main", "app", 2)
    life.generation_serving("main", "app", 2, old_left=2)
    record = life.reloads["main"]
    assert record.state == "serving" and record.serving_after is not None
    with caplog.at_level(logging.INFO, "corral.error"):
        life.generation_retired("main", "app", 2)
    assert record.state == "done"
    assert "Reload finished: 2 new workers serving, old generation retired in" in caplog.text
    kinds = [next(iter(m)) for m in sent(sock)]
    assert kinds == ["READY", "RELOADING", "READY"]  # READY=1 again once the new code serves


def test_respawns_and_the_first_boot_are_not_reloads(systemd: tuple[socket.socket, Lifecycle]) -> None:
    sock, life = systemd
    life.generation_serving("main", "app", 2, old_left=0)
    life.generation_retired("main", "app", 2)
    life.reload_failed("main", "app", "boom", old_serving=False)
    assert life.reloads == {} and sent(sock) == []


def test_a_failed_reload_is_recorded_and_systemd_is_ready_again(systemd: tuple[socket.socket, Lifecycle]) -> None:
    sock, life = systemd
    life.ready("1 worker(s) x 1 thread(s)")
    life.reload_started("main", "app", 1)
    life.reload_failed("main", "app", "cannot load app 'v:app': SyntaxError", old_serving=True)
    data = life.reloads["main"].to_dict()
    assert data["state"] == "failed" and data["ok"] is False
    assert data["error"] == "cannot load app 'v:app': SyntaxError"
    assert "FAILED" in describe_reload(data, data["started_at"] + 12) and "12s ago" in describe_reload(
        data, data["started_at"] + 12)
    last = sent(sock)[-1]
    assert last["READY"] == "1" and "failed; the old workers keep serving" in last["STATUS"]


def test_ready_waits_for_every_site_of_a_reload(systemd: tuple[socket.socket, Lifecycle]) -> None:
    sock, life = systemd
    life.ready("blog 1x1, shop 1x1")
    life.reload_started("blog", "site 'blog'", 1)
    life.reload_started("shop", "site 'shop'", 1)
    life.generation_serving("blog", "site 'blog'", 1, old_left=1)
    assert [next(iter(m)) for m in sent(sock)] == ["READY", "RELOADING", "RELOADING"]
    life.generation_serving("shop", "site 'shop'", 1, old_left=1)
    assert [next(iter(m)) for m in sent(sock)] == ["READY"]


def test_stop_is_said_once_with_how_and_how_long(systemd: tuple[socket.socket, Lifecycle],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    sock, life = systemd
    life.stop_requested(graceful=True, delay=2)
    life.stop_requested(graceful=True, delay=2)  # a second SIGTERM
    life.draining(3)
    life.killed = 1
    with caplog.at_level(logging.INFO, "corral.error"):
        life.stopped()
    assert "Stopped (graceful, after a 2 s shutdown delay, 1 worker killed at the graceful timeout) in" in caplog.text
    messages = sent(sock)
    assert messages[0]["STOPPING"] == "1" and "still serving for 2 s" in messages[0]["STATUS"]
    assert messages[1:] == [{"STATUS": "Draining: finishing 3 in-flight requests"}]


def test_a_failed_start_says_no_stopped_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "corral.error"):
        Lifecycle().stopped()
    assert "Stopped" not in caplog.text
