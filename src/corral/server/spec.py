"""What a worker process is started with; importable by the master without the server stack.

(The master never runs the event loop, so it need not load asyncio, uvloop or
httptools: every module it imports is resident in each worker's memory twice
over, once shared and counted by RSS in every process.)
"""

from __future__ import annotations

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

