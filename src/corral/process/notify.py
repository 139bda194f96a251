"""Tell systemd what the master is doing (sd_notify), when it asked to be told.

How this works: systemd (with `Type=notify`) puts the path of a datagram socket in
NOTIFY_SOCKET; each state change is one datagram of `KEY=value` lines, as in
sd_notify(3). A path starting with `@` is in Linux's abstract namespace (a NUL
byte on the wire). The master takes the variable out of its own environment at
start, as sd_notify's `unset_environment` does, so the workers and the app it
forks never inherit it and cannot send a stray READY=1 or STOPPING=1 of their own.

Nothing here may stop Corral from serving: a socket that cannot be reached is
logged once and the notifications are dropped, exactly as with no systemd at all.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import MutableMapping

log = logging.getLogger("corral.error")

ENV = "NOTIFY_SOCKET"
_MAX_STATUS = 1024  # characters of a STATUS= line; systemctl status shows one line anyway


def socket_address(text: str) -> str | bytes:
    """NOTIFY_SOCKET's value -> an AF_UNIX address (`@name` is abstract: a leading NUL)."""
    if text.startswith("@"):
        return b"\0" + text[1:].encode()
    if not text.startswith("/"):
        raise ValueError(f"{ENV}={text!r} is neither an absolute path nor an abstract name (@name)")
    return text


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds: what systemd >= 253 wants beside RELOADING=1."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """Sends sd_notify datagrams; without NOTIFY_SOCKET every method does nothing."""

    def __init__(self, address: str | bytes | None) -> None:
        self.address = address
        self._sock: socket.socket | None = None
        self._failed = False
        self._ready = False

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str] | None = None) -> Notifier:
        """Take NOTIFY_SOCKET out of `environ` (default: os.environ) and notify there."""
        environ = os.environ if environ is None else environ
        text = environ.pop(ENV, "")
        if not text:
            return cls(None)
        try:
            return cls(socket_address(text))
        except ValueError as exc:
            log.warning("Not notifying systemd: %s", exc)
            return cls(None)

    @property
    def enabled(self) -> bool:
        return self.address is not None and not self._failed

    def ready(self, status: str) -> None:
        """The workers accept (at start, and again when a reload is over)."""
        self._ready = True
        self.send(READY="1", STATUS=status)

    def reloading(self, status: str) -> None:
        """A reload started; systemd counts the unit as reloading until the next ready()."""
        if self._ready:  # before the first READY=1 systemd is still waiting for the start
            self.send(RELOADING="1", MONOTONIC_USEC=str(monotonic_usec()), STATUS=status)
        else:
            self.status(status)

    def stopping(self, status: str) -> None:
        self.send(STOPPING="1", STATUS=status)

    def status(self, status: str) -> None:
        self.send(STATUS=status)

    def send(self, **fields: str) -> None:
        if not self.enabled:
            return
        if "STATUS" in fields:
            fields["STATUS"] = " ".join(fields["STATUS"].split())[:_MAX_STATUS]  # one line
        message = "".join(f"{key}={value}\n" for key, value in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)  # the master never waits on systemd
            assert self.address is not None
            self._sock.sendto(message, self.address)
        except BlockingIOError:
            log.debug("systemd's notification queue is full; dropped %r", message)
        except OSError as exc:
            self._failed = True
            log.warning("Cannot notify systemd at %s=%r (%s); not notifying it again", ENV, self.address, exc)
            self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
