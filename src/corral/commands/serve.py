"""`corral serve`: bind, fork workers, supervise until stopped."""

from __future__ import annotations

import logging
import os
import socket
import sys

from .. import settings_guard
from ..config import Config
from ..config.files import PROFILE_ENV
from ..config.plan import Plan
from ..config.sites import implicit_site
from ..hooks import MasterHooks
from ..loading import AppLoadError
from ..observe import logs
from ..process.arbiter import Arbiter
from ..server.listeners import BindError, SocketOptions, listen, parse_bind, proxy_protocol_fds

log = logging.getLogger("corral.error")


SD_LISTEN_FDS_START = 3  # systemd passes activated sockets from fd 3 on


def inherited_listeners(announce: list[str] | None = None) -> list[socket.socket]:
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
        _announce(f"Listening at {shown} (socket from systemd)", announce)
    return sockets


def open_listeners(config: Config, announce: list[str] | None = None) -> list[socket.socket]:
    """Bind every --bind (--socket-mode/--socket-owner/--reuse-port apply to these only);
    "Listening at" is logged now, or appended to `announce` for later."""
    options = SocketOptions.from_config(config.socket_mode, config.socket_owner, config.reuse_port)
    sockets = []
    for text in config.bind:
        address = parse_bind(text)
        sock = listen(address, config.backlog, options)
        sockets.append(sock)
        expects = " (PROXY protocol)" if address.proxy_protocol or config.proxy_protocol else ""
        _announce(f"Listening at {address.url(sock, 'https' if config.certfile else 'http')}{expects}", announce)
    return sockets


def proxy_listeners(config: Config, sockets: list[socket.socket], activated: bool) -> frozenset[int]:
    """The fds of the listeners that expect the PROXY protocol, with a warning if none can use it."""
    fds = proxy_protocol_fds(config.bind, config.proxy_protocol, sockets, activated)
    if fds and activated:
        log.info("PROXY protocol expected on %d of the sockets from systemd", len(fds))
    if fds and not config.trusted_proxies:
        log.warning("PROXY protocol listeners with no --trusted-proxies: every connection to them is refused")
    return fds


def _log_lines(lines: list[str]) -> None:
    for line in lines:
        log.info("%s", line)


def _announce(line: str, later: list[str] | None) -> None:
    if later is None:
        log.info("%s", line)
    else:
        later.append(line)


def serve(config: Config, plan: Plan | None = None) -> int:
    logs.configure(config.log_level)
    plan = plan or Plan(server=config, sites=(implicit_site(config),))
    for warning in settings_guard.startup_warnings(plan, os.environ):
        log.warning("%s", warning)
    if plan.profile:
        # Workers judge whether DEBUG = True is served in production by it (settings_guard.exposure).
        os.environ[PROFILE_ENV] = plan.profile
    # "Listening at" is logged once the app has loaded and workers accept, never before a load error.
    listening: list[str] = []
    try:
        hooks = MasterHooks.load(config)  # when_ready, on_reload: the master's own hooks
    except AppLoadError as exc:
        sys.stderr.write(f"{exc.user_traceback or ''}corral: error: {exc}\n")
        return 1
    try:
        activated = inherited_listeners(listening)
        sockets = activated or open_listeners(config, listening)
        proxy_fds = proxy_listeners(config, sockets, bool(activated))
    except BindError as exc:
        sys.stderr.write(f"corral: error: {exc}\n")
        return 1
    sites = plan.sites if plan.multi_site else ()
    if sites:
        log.info("Corral %s serving %d sites: %s", _version(), len(sites), ", ".join(s.name for s in sites))
    else:
        what = config.app or (f"Django settings {config.settings}" if config.settings else "the welcome app")
        log.info("Corral %s serving %s", _version(), what)
    try:
        arbiter = Arbiter(config, sockets, sites, socket_activated=bool(activated), proxy_fds=proxy_fds,
                          hooks=hooks)
        arbiter.on_ready = lambda: _log_lines(listening)
        return arbiter.run()
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
