"""What a worker process is started with; importable by the master without the server stack.

(The master never runs the event loop, so it need not load asyncio, uvloop or
httptools: every module it imports is resident in each worker's memory twice
over, once shared and counted by RSS in every process.)
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config import Config
from ..config.sites import SiteConfig

if TYPE_CHECKING:
    from .tls import TLSMaterial  # ssl is loaded by the master only when TLS is on

EXIT_APP_LOAD_ERROR = 3  # reserved: the master must not respawn on this


@dataclass
class WorkerSpec:
    config: Config
    sockets: list[socket.socket]
    channel: socket.socket
    index: int
    # Multi-site only: this worker's site, every site (for routing) and the handoff sockets.
    site: SiteConfig | None = None
    site_index: int = 0
    sites: tuple[SiteConfig, ...] = ()
    handoff_send: list[socket.socket] = field(default_factory=list)
    handoff_receive: socket.socket | None = None
    # HTTPS: the certificate and key this worker's generation serves, read by the master.
    tls: TLSMaterial | None = None
    # The listening sockets (by fd) whose connections start with a PROXY protocol header.
    proxy_fds: frozenset[int] = frozenset()


Message = dict[str, object]


def read_messages(channel: socket.socket, buffer: bytes, size: int = 65536) -> tuple[list[Message], bytes, bool]:
    """Read what a channel holds: (whole JSON-line messages, the partial rest, closed?).

    Master and workers talk over socketpairs in JSON lines; a line that does not
    parse is skipped rather than trusted.
    """
    try:
        data = channel.recv(size)
    except (BlockingIOError, InterruptedError):
        return [], buffer, False
    except OSError:
        data = b""
    if not data:
        return [], buffer, True
    *lines, rest = (buffer + data).split(b"\n")
    messages = []
    for line in lines:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict):
            messages.append(message)
    return messages, rest, False
