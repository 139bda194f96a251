"""The control socket: `corral status`, `corral reload [SITE]`, `corral stop`.

A Unix socket (mode 0600: only the server's user may steer it) that the
master's selector loop serves. A client sends one JSON line, e.g.
{"command": "reload", "site": "blog"}, and gets one JSON line back, answered
from the master's own state. The master must never wait on a client (its loop
also reaps and replaces workers and handles signals), so clients are read
without blocking: ControlServer keeps its own selector over the listening
socket and the clients whose line is incomplete, and hands the master that
selector's fd, readable whenever any of them is.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import socket
import time
from collections.abc import Callable
from typing import Any

from ..config import Config

_TIMEOUT = 2.0  # seconds a control client gets to send its line
_MAX_LINE = 65536
_MAX_PENDING = 32  # clients with an incomplete line; past this the oldest is dropped
_REPLY_TIMEOUT = 0.5  # seconds to hand a client its reply (the socket buffer takes it at once)


class ControlError(Exception):
    pass


def runtime_dir() -> str:
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base):
        return base
    path = f"/tmp/corral-{os.getuid()}"
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def control_path(config: Config) -> str:
    """The configured path, else one derived from the first bind (so `corral status` finds it)."""
    if config.control_socket:
        return config.control_socket
    bind = config.bind[0] if config.bind else "default"
    name = re.sub(r"[^A-Za-z0-9.-]+", "_", bind).strip("_")
    if bind.endswith(":0"):
        name += f"-{os.getpid()}"  # an ephemeral port names no server: keep concurrent ones apart
    return os.path.join(runtime_dir(), f"corral-{name}.sock")


class ControlServer:
    def __init__(self, path: str, handler: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.path = path
        self.handler = handler
        if os.path.exists(path):
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)  # stale, from a server that is gone
            else:
                raise ControlError(f"control socket {path} is in use by another running server")
            finally:
                probe.close()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o077)
        try:
            self.sock.bind(path)
        finally:
            os.umask(old_umask)
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.sock, selectors.EVENT_READ, None)
        self.pending: dict[socket.socket, tuple[float, bytes]] = {}  # client -> (deadline, data so far)

    def fileno(self) -> int:
        """Readable when a client connects or sends (an epoll/kqueue fd is itself pollable)."""
        return self.selector.fileno()

    def accept_all(self) -> None:
        """Serve whatever is ready, without blocking; called when fileno() is readable."""
        for key, _ in self.selector.select(0):
            if key.data is None:
                self._accept()
            else:
                self._read(key.fileobj)  # type: ignore[arg-type]
        now = time.monotonic()
        for client, (deadline, _) in list(self.pending.items()):
            if now > deadline:
                self._drop(client)

    def _accept(self) -> None:
        for _ in range(16):  # bounded: the master has other work
            try:
                client, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. EMFILE: the client is left in the backlog; try again later
            client.setblocking(False)
            if len(self.pending) >= _MAX_PENDING:
                self._drop(min(self.pending, key=lambda c: self.pending[c][0]))
            self.pending[client] = (time.monotonic() + _TIMEOUT, b"")
            self.selector.register(client, selectors.EVENT_READ, client)
            self._read(client)  # the line is usually there already

    def _read(self, client: socket.socket) -> None:
        deadline, data = self.pending[client]
        try:
            chunk = client.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        data += chunk
        if b"\n" in data or not chunk or len(data) >= _MAX_LINE:
            self._answer(client, data)
        else:
            self.pending[client] = (deadline, data)

    def _answer(self, client: socket.socket, data: bytes) -> None:
        try:
            message = json.loads(data.split(b"\n", 1)[0] or b"{}")
            reply = self.handler(message) if isinstance(message, dict) else {"error": "expected a JSON object"}
        except ValueError:
            reply = {"error": "expected one JSON line"}
        try:
            client.settimeout(_REPLY_TIMEOUT)
            client.sendall(json.dumps(reply).encode() + b"\n")
        except OSError:
            pass  # the client went away; nothing to answer
        self._drop(client)

    def _drop(self, client: socket.socket) -> None:
        self.pending.pop(client, None)
        try:
            self.selector.unregister(client)
        except (KeyError, ValueError):
            pass
        client.close()

    def close(self) -> None:
        for client in list(self.pending):
            self._drop(client)
        self.selector.close()
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


def send_command(path: str, message: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """Client side: one command, one reply."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        sock.sendall(json.dumps(message).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except FileNotFoundError:
        raise ControlError(f"no server is running with control socket {path}") from None
    except ConnectionRefusedError:
        raise ControlError(f"nothing answers on control socket {path} (server stopped?)") from None
    except OSError as exc:
        raise ControlError(f"control socket {path}: {exc}") from None
    finally:
        sock.close()
    try:
        reply = json.loads(data)
    except ValueError:
        raise ControlError(f"control socket {path} gave no answer") from None
    if not isinstance(reply, dict):
        raise ControlError("malformed answer from the server")
    return reply
