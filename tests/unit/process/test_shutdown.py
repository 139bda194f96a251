"""process/shutdown.py: the stop sequence's state, stepped with a fake clock."""

from __future__ import annotations

import socket

from corral.process.heartbeats import KILL_MARGIN
from corral.process.shutdown import Shutdown, stop_listening


def test_a_graceful_stop_of_a_ready_server_delays_then_drains_then_kills() -> None:
    s = Shutdown(delay=5.0, graceful_timeout=10.0)
    assert s.should_delay(graceful=True, announced=True)
    s.start_delay(now=100.0)
    assert s.delaying and not s.stopping
    assert not s.should_delay(graceful=True, announced=True)  # a second request cuts it short instead
    assert not s.delay_over(104.9) and s.delay_over(105.0)
    assert s.wait(104.5) == 0.5
    assert s.begin(graceful=True, now=105.0)
    assert s.stopping and not s.delaying
    assert s.deadline == 105.0 + 10.0 + KILL_MARGIN
    assert not s.past_deadline(s.deadline - 0.01) and s.past_deadline(s.deadline)
    assert s.wait(s.deadline - 0.25) == 0.25 and s.wait(s.deadline + 3) == 0.0
    assert s.first_kill() and not s.first_kill()  # the warning is said once


def test_no_delay_for_a_server_that_never_said_ready_or_an_immediate_stop() -> None:
    s = Shutdown(delay=5.0, graceful_timeout=10.0)
    assert not s.should_delay(graceful=True, announced=False)
    assert not s.should_delay(graceful=False, announced=True)
    assert not Shutdown(delay=0.0, graceful_timeout=10.0).should_delay(graceful=True, announced=True)


def test_an_immediate_stop_has_no_grace_and_no_straggler_warning() -> None:
    s = Shutdown(delay=5.0, graceful_timeout=10.0)
    assert s.begin(graceful=False, now=50.0)
    assert s.past_deadline(50.0) and not s.first_kill()


def test_the_first_stop_sets_the_deadline_and_later_ones_keep_it() -> None:
    s = Shutdown(delay=0.0, graceful_timeout=10.0)
    assert s.begin(graceful=True, now=1.0)
    assert not s.begin(graceful=False, now=2.0)
    assert s.deadline == 1.0 + 10.0 + KILL_MARGIN
    assert s.wait(0.0) == 1.0  # never sleeps past a second: heartbeats and respawns wait on it too


def test_stop_listening_refuses_new_connections_on_a_socket_others_share() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        stop_listening([listener])
        stop_listening([listener])  # twice, or on a socket already shut: no error
        client = socket.socket()
        client.settimeout(5.0)
        try:
            client.connect(listener.getsockname())
            client.sendall(b"x")
            assert client.recv(1) == b""  # reset or closed, never queued for a worker
        except (ConnectionRefusedError, ConnectionResetError):
            pass
        finally:
            client.close()
        assert listener.fileno() >= 0  # the fd stays valid: workers share the socket
    finally:
        listener.close()
