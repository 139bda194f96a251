"""What a worker process is started with; importable by the master without the server stack.

(The master never runs the event loop, so it need not load asyncio, uvloop or
httptools: every module it imports is resident in each worker's memory twice
over, once shared and counted by RSS in every process.)
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from ..config import Config
from ..config.sites import SiteConfig

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
