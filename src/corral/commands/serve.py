"""`corral serve`: bind, fork workers, supervise until stopped."""

from __future__ import annotations

import logging
import os
import socket
import sys

from ..config import Config
from ..config.plan import Plan
from ..observe import logs
from ..process.arbiter import Arbiter
from ..server.listeners import BindError, listen, parse_bind

log = logging.getLogger("corral.error")


def open_listeners(config: Config) -> list[socket.socket]:
    sockets = []
    for text in config.bind:
        address = parse_bind(text)
        sock = listen(address, config.backlog)
        sockets.append(sock)
        log.info("Listening at %s", address.url(sock))
    return sockets


def serve(config: Config, plan: Plan | None = None) -> int:
    logs.configure(config.log_level)
    try:
        sockets = open_listeners(config)
    except BindError as exc:
        sys.stderr.write(f"corral: error: {exc}\n")
        return 1
    sites = plan.sites if plan is not None and plan.multi_site else ()
    if sites:
        log.info("Corral %s serving %d sites: %s", _version(), len(sites), ", ".join(s.name for s in sites))
    else:
        what = config.app or (f"Django settings {config.settings}" if config.settings else "the welcome app")
        log.info("Corral %s serving %s", _version(), what)
    try:
        return Arbiter(config, sockets, sites).run()
    finally:
        for sock in sockets:
            if sock.family == socket.AF_UNIX:
                path = sock.getsockname()
                if isinstance(path, str) and path:
                    try:
                        os.unlink(path)
                    except OSError:
                        pass
            sock.close()


def _version() -> str:
    from .. import __version__

    return __version__
