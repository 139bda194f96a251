"""Signals only queue work: handlers append to a queue and wake the master's loop."""

from __future__ import annotations

import os
import signal
import socket
from collections import deque

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGCHLD, signal.SIGTTIN, signal.SIGTTOU)


def signal_if_alive(pid: int, sig: int) -> None:
    """Send `sig` to `pid`; a process that already exited is not an error."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class SignalQueue:
    def __init__(self) -> None:
        self.pending: deque[int] = deque()
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)

    def install(self) -> None:
        signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        for sig in HANDLED:
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.pending.append(signum)

    def fileno(self) -> int:
        return self._reader.fileno()

    def drain_wakeups(self) -> None:
        try:
            while self._reader.recv(4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        signal.set_wakeup_fd(-1)
        self._reader.close()
        self._writer.close()
