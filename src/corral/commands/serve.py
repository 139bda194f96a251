"""`corral serve`: bind, fork workers, supervise until stopped."""

from __future__ import annotations

import logging
import os
import socket
import sys

from ..config import Config
from ..config.plan import Plan
from ..hooks import MasterHooks
from ..loading import AppLoadError
from ..observe import logs
from ..process.arbiter import Arbiter
from ..server.listeners import BindError, SocketOptions, listen, parse_bind, proxy_protocol_fds

log = logging.getLogger("corral.error")


SD_LISTEN_FDS_START = 3  # systemd passes activated sockets from fd 3 on


def inherited_listeners() -> list[socket.socket]:
    """Sockets handed over by systemd socket activation (LISTEN_FDS), if they are for us.

    systemd keeps them open across restarts of the service, so a restart of the
    master never refuses a connection: the kernel queues them meanwhile.
    """
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    count = int(os.environ.get("LISTEN_FDS", "0") or 0)
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)  # not for the workers or the app
    sockets = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count):
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        os.set_inheritable(fd, True)
        sockets.append(sock)
        where = sock.getsockname()
        shown = f"unix:{where}" if sock.family == socket.AF_UNIX else f"http://{where[0]}:{where[1]}"
        log.info("Listening at %s (socket from systemd)", shown)
    return sockets


def open_listeners(config: Config) -> list[socket.socket]:
    """Bind every --bind address; --socket-mode/--socket-owner/--reuse-port apply to these only."""
    options = SocketOptions.from_config(config.socket_mode, config.socket_owner, config.reuse_port)
    sockets = []
    for text in config.bind:
        address = parse_bind(text)
        sock = listen(address, config.backlog, options)
        sockets.append(sock)
        expects = " (PROXY protocol)" if address.proxy_protocol or config.proxy_protocol else ""
        log.info("Listening at %s%s", address.url(sock, "https" if config.certfile else "http"), expects)
    return sockets


def proxy_listeners(config: Config, sockets: list[socket.socket], activated: bool) -> frozenset[int]:
    """The fds of the listeners that expect the PROXY protocol, with a warning if none can use it."""
    fds = proxy_protocol_fds(config.bind, config.proxy_protocol, sockets, activated)
    if fds and activated:
        log.info("PROXY protocol expected on %d of the sockets from systemd", len(fds))
    if fds and not config.trusted_proxies:
        log.warning("PROXY protocol listeners with no --trusted-proxies: every connection to them is refused")
    return fds


def serve(config: Config, plan: Plan | None = None) -> int:
    logs.configure(config.log_level)
    try:
        hooks = MasterHooks.load(config)  # when_ready, on_reload: the master's own hooks
    except AppLoadError as exc:
        sys.stderr.write(f"{exc.user_traceback or ''}corral: error: {exc}\n")
        return 1
    try:
        activated = inherited_listeners()
        sockets = activated or open_listeners(config)
        proxy_fds = proxy_listeners(config, sockets, bool(activated))
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
        return Arbiter(config, sockets, sites, socket_activated=bool(activated), proxy_fds=proxy_fds,
                       hooks=hooks).run()
    finally:
        close_listeners(sockets, remove_files=not activated)  # systemd owns its socket files


def close_listeners(sockets: list[socket.socket], remove_files: bool = True) -> None:
    """Close listening sockets, removing the Unix socket files we created."""
    for sock in sockets:
        if sock.family == socket.AF_UNIX and remove_files:
            path = sock.getsockname()
            if isinstance(path, str) and path:
                try:
                    os.unlink(path)
                except OSError:
                    pass
        sock.close()


def _version() -> str:
    from .. import __version__, build

    return f"{__version__} ({build()})"
