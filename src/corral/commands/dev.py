"""`corral dev`: the development server. One worker, threads, access log, autoreload."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from .. import install_command
from ..config import Config
from ..dev.output import configure_logging
from ..server.listeners import BindError
from .serve import close_listeners, open_listeners, proxy_listeners

log = logging.getLogger("corral.error")


def dev(config: Config, watch: Sequence[str] = ()) -> int:
    configure_logging(config.log_level)
    try:
        from ..dev.reloader import Reloader
    except ImportError as exc:
        if (exc.name or "").startswith("watchfiles"):
            # A dependency of Corral since the reloader needs it: only a broken install lacks it.
            sys.stderr.write(f"corral: error: corral dev needs watchfiles, which Corral depends on: reinstall "
                             f"Corral ({install_command(sys.executable)}) or pip install watchfiles\n")
            return 1
        raise
    for path in watch:
        if not os.path.exists(path):
            sys.stderr.write(f"corral: error: --watch {path}: no such file or directory\n")
            return 2
    try:
        sockets = open_listeners(config)
        proxy_fds = proxy_listeners(config, sockets, activated=False)
    except BindError as exc:
        sys.stderr.write(f"corral: error: {exc}\n")
        return 1
    what = config.app or (f"Django settings {config.settings}" if config.settings else "the welcome app")
    log.info("Corral development server: serving %s, reloading on change. Quit with Ctrl-C.", what)
    try:
        return Reloader(config, sockets, watch, proxy_fds=proxy_fds).run()
    finally:
        close_listeners(sockets)
