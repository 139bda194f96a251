"""The channel: typed messages between the master (or the dev reloader) and a worker.

How this works: each worker holds one end of a socketpair; the other end is
the master's (process/arbiter.py) or, under `corral dev`, the reloader's
(dev/reloader.py). Messages travel as JSON lines, {"event": NAME, ...fields}.
Each event is one frozen dataclass below; `encode` and `decode` are the only
places that know the wire form. A line that does not parse, names an unknown
event or carries a field of the wrong type is skipped rather than trusted (the
peer is our own code, but a worker may die mid-line).

Worker -> master:  ready, heartbeat, recycle, warning, load-error
Dev child -> reloader:  files, trees (and the worker's messages above)
Master -> worker:  accept (multi-site: start or stop accepting; process/acceptors.py)

Importable by the master without the server stack, as spec.py is.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class Ready:
    """The worker listens: its app loaded and its own signal handlers are in place."""

    pid: int
    event: ClassVar[str] = "ready"


@dataclass(frozen=True)
class Heartbeat:
    """Once a second from the worker's loop: proof the loop runs, and its counters."""

    requests: int = 0
    in_flight: int = 0
    connections: int = 0
    stats: dict[str, Any] | None = None  # observe/stats.py snapshot, for /metrics
    rss: int | None = None  # bytes
    event: ClassVar[str] = "heartbeat"


@dataclass(frozen=True)
class Recycle:
    """The worker stops by itself (--max-requests, memory, a hung request): replace it now."""

    reason: str = "recycle"
    event: ClassVar[str] = "recycle"


@dataclass(frozen=True)
class LoadWarning:
    """Found while loading the app (settings_guard); every worker finds it, the master logs it once."""

    message: str
    event: ClassVar[str] = "warning"


@dataclass(frozen=True)
class LoadError:
    """The app did not load: the one line that tells the user why, and their traceback."""

    message: str
    traceback: str | None = None
    event: ClassVar[str] = "load-error"


@dataclass(frozen=True)
class Files:
    """Dev child: project files imported since its last report (the reloader watches them)."""

    files: tuple[str, ...]
    event: ClassVar[str] = "files"


@dataclass(frozen=True)
class Trees:
    """Dev child: directories to watch recursively (Django's template directories)."""

    paths: tuple[str, ...]
    event: ClassVar[str] = "trees"


@dataclass(frozen=True)
class Accept:
    """Master -> worker: take new connections (on) or leave them to other sites' workers."""

    on: bool
    event: ClassVar[str] = "accept"


Message = Ready | Heartbeat | Recycle | LoadWarning | LoadError | Files | Trees | Accept


def encode(message: Message) -> bytes:
    return json.dumps({"event": message.event, **asdict(message)}).encode() + b"\n"


def _int(fields: dict[str, Any], key: str) -> int:
    value = fields.get(key, 0)
    if type(value) is not int:  # bool is an int to isinstance; not a count
        raise ValueError(key)
    return value


def _str(fields: dict[str, Any], key: str, default: str | None = None) -> str:
    value = fields.get(key, default)
    if not isinstance(value, str):
        raise ValueError(key)
    return value


def _strs(fields: dict[str, Any], key: str) -> tuple[str, ...]:
    value = fields.get(key)
    if not isinstance(value, list):
        raise ValueError(key)
    return tuple(item for item in value if isinstance(item, str))


def _optional(fields: dict[str, Any], key: str, kind: type) -> Any:
    value = fields.get(key)
    return value if isinstance(value, kind) and type(value) is not bool else None


_DECODERS: dict[str, Callable[[dict[str, Any]], Message]] = {
    "ready": lambda f: Ready(_int(f, "pid")),
    "heartbeat": lambda f: Heartbeat(
        _int(f, "requests"), _int(f, "in_flight"), _int(f, "connections"),
        _optional(f, "stats", dict), _optional(f, "rss", int),
    ),
    "recycle": lambda f: Recycle(_str(f, "reason", "recycle")),
    "warning": lambda f: LoadWarning(_str(f, "message")),
    "load-error": lambda f: LoadError(_str(f, "message"), _optional(f, "traceback", str)),
    "files": lambda f: Files(_strs(f, "files")),
    "trees": lambda f: Trees(_strs(f, "paths")),
    "accept": lambda f: Accept(bool(f.get("on"))),
}


def decode(line: bytes) -> Message | None:
    """One JSON line -> its message; None for anything malformed or unknown."""
    try:
        fields = json.loads(line)
    except ValueError:
        return None
    if not isinstance(fields, dict):
        return None
    event = fields.get("event")
    decoder = _DECODERS.get(event) if isinstance(event, str) else None  # a list is not even hashable
    if decoder is None:
        return None
    try:
        return decoder(fields)
    except ValueError:
        return None


def send(channel: socket.socket, message: Message) -> bool:
    """Send one message; False when the peer is gone (each side notices that its own way)."""
    try:
        channel.sendall(encode(message))
    except OSError:
        return False
    return True


class Inbox:
    """The reading end of a channel: whole messages out, the partial last line kept."""

    def __init__(self, channel: socket.socket, size: int = 65536) -> None:
        self.channel = channel
        self.size = size  # bytes per recv
        self.buffer = b""
        self.closed = False  # the peer closed its end (or the socket is gone)

    def read(self, reads: int = 1) -> list[Message]:
        """Up to `reads` receives without blocking; stops early when nothing is left or on EOF.

        One receive per wake-up keeps a chatty worker from starving the master's
        loop; a dead worker's last words are read with more (it wrote a finite amount).
        """
        messages: list[Message] = []
        for _ in range(reads):
            try:
                data = self.channel.recv(self.size)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                data = b""
            if not data:
                self.closed = True
                break
            *lines, self.buffer = (self.buffer + data).split(b"\n")
            for line in lines:
                message = decode(line)
                if message is not None:
                    messages.append(message)
        return messages
