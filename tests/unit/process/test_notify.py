"""sd_notify: datagrams on the socket NOTIFY_SOCKET names, path or abstract, never an error."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.process.notify import Notifier, monotonic_usec, socket_address


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(2)
    yield sock, path
    sock.close()


def fields(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    assert data.endswith("\n"), data
    return dict(line.split("=", 1) for line in data.splitlines())


def test_address_forms() -> None:
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@corral/notify") == b"\0corral/notify"
    with pytest.raises(ValueError, match="absolute path"):
        socket_address("relative/notify")


def test_from_environ_takes_the_variable_out(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    environ = {"NOTIFY_SOCKET": path, "OTHER": "x"}
    notifier = Notifier.from_environ(environ)
    assert environ == {"OTHER": "x"}  # the workers forked later inherit none
    notifier.ready("2 workers serving")
    assert fields(sock) == {"READY": "1", "STATUS": "2 workers serving"}
    notifier.close()


def test_without_the_variable_nothing_is_sent() -> None:
    notifier = Notifier.from_environ({})
    assert not notifier.enabled
    notifier.ready("x")  # no socket, no error


def test_a_bad_value_is_a_warning_not_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "corral.error"):
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": "notify.sock"})
    assert not notifier.enabled
    assert "Not notifying systemd" in caplog.text


def test_abstract_namespace_socket() -> None:
    name = f"corral-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2)
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": "@" + name})
        notifier.stopping("Draining")
        assert fields(sock) == {"STOPPING": "1", "STATUS": "Draining"}
        notifier.close()


def test_reloading_carries_the_monotonic_clock(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier(path)
    notifier.ready("serving")
    fields(sock)
    before = monotonic_usec()
    notifier.reloading("Reloading app")
    got = fields(sock)
    assert got["RELOADING"] == "1" and got["STATUS"] == "Reloading app"
    assert before <= int(got["MONOTONIC_USEC"]) <= monotonic_usec()
    notifier.close()


def test_reloading_before_the_first_ready_is_only_a_status(listener: tuple[socket.socket, str]) -> None:
    """systemd still waits for the start's READY=1; RELOADING=1 then would confuse it."""
    sock, path = listener
    notifier = Notifier(path)
    notifier.reloading("Reloading app")
    assert fields(sock) == {"STATUS": "Reloading app"}
    notifier.close()


def test_status_is_one_line(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier(path)
    notifier.status("Reload failed:\n  SyntaxError: invalid syntax")
    assert fields(sock) == {"STATUS": "Reload failed: SyntaxError: invalid syntax"}
    notifier.close()


def test_a_socket_nobody_listens_on_is_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier(str(tmp_path / "gone.sock"))
    with caplog.at_level(logging.WARNING, "corral.error"):
        notifier.ready("serving")
        notifier.stopping("Draining")
    assert caplog.text.count("Cannot notify systemd") == 1
    assert not notifier.enabled
