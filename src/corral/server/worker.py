"""A worker process: one event loop serving the inherited listening sockets.

How this works: the master forks us with the listening sockets and one end of a
socketpair (the *channel*). We prepare the app's environment, load the app
(a failure is reported on the channel and ends the process with
`EXIT_APP_LOAD_ERROR`, so the master stops instead of respawning), then serve.
A sweeper runs once a second: it expires connection deadlines, sends a
heartbeat with our counters, and notices if the master died (a fallback: on Linux
the parent-death signal, SIGTERM, comes at once; process/lifeline.py). SIGTERM and SIGINT
drain gracefully; a second SIGINT, or SIGQUIT, exits at once.
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import Callable
from typing import Any, cast

from .. import settings_guard
from ..config.files import PROFILE_ENV
from ..config.settings import carried
from ..hooks import WorkerHooks, WorkerInfo
from ..http.limits import Limits
from ..loading import AppLoadError, load_app
from ..observe.access import AccessLog
from ..observe.titles import set_title
from ..proxy.forwarded import ProxyHeaders
from ..proxy.trust import TrustedProxies
from . import malloc, watchdog
from .alpn import ALPNChoice
from .app_threads import AppThreads
from .channel import Accept, Heartbeat, Inbox, LoadError, LoadWarning, Ready, Recycle, send
from .connection import HTTPConnection
from .context import Connection, ServerContext, Timeouts
from .environment import drop_privileges, prepare_process
from .handoff import receive_connection
from .listeners import abort_stalled_sends
from .proxy_reader import ProxyIntake, ProxyProtocolReader, RejectionLog, header_deadline
from .registry import Registry
from .routing import Router
from .spec import EXIT_APP_LOAD_ERROR, WorkerSpec
from .tls import TLSError, build_context
from .tls_listener import TLSServer

log = logging.getLogger("corral.error")

def loop_sensitive() -> bool:
    """Whether the loaded app includes code that checks for a running event loop."""
    return any(name in sys.modules for name in ("django", "asgiref"))


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()  # type: ignore[no-any-return]


async def _ticks(count: int) -> None:
    """Let the loop run what is already scheduled, `count` times over."""
    for _ in range(count):
        await asyncio.sleep(0)


def run_worker(spec: WorkerSpec) -> int:
    """Entry point in the forked child; returns the exit status."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    config = spec.config
    set_title("worker", site=spec.site.name if spec.site is not None else None)
    malloc.tune_for_bodies(config.body_buffer_size)  # large bodies reuse heap pages (see malloc.py)
    dropped = None
    try:
        # Before privileges drop: the certificate came from the master, the context is ours.
        tls_context = build_context(spec.tls, http2_over_tls(spec)) if spec.tls is not None else None
    except TLSError as exc:
        send(spec.channel, LoadError(str(exc)))
        return EXIT_APP_LOAD_ERROR
    try:
        if spec.site is not None:
            # A site sees only its own settings module, never the master's or another site's.
            dropped = os.environ.pop("DJANGO_SETTINGS_MODULE", None)
            drop_privileges(spec.site.user, spec.site.group)
        source = settings_guard.told_by(config.settings, prepare_process(config))
        hooks = WorkerHooks.load(config)
        hooks.post_fork(worker_info(spec))  # before the app: where pools and tracing are set up
        site = spec.site
        if site is not None:
            from ..middleware.compose import build_site_app

            app = settings_guard.guarded_load(lambda: build_site_app(site), source)
        else:
            app = settings_guard.guarded_load(lambda: load_app(config.app, config.settings), source)
        static = start_static(spec)  # after the app: a Django site's settings are loaded now
    except AppLoadError as exc:
        send(spec.channel, LoadError(str(exc), exc.user_traceback))
        return EXIT_APP_LOAD_ERROR
    exposure = settings_guard.exposure(os.environ.get(PROFILE_ENV), settings_guard.socket_binds(spec.sockets))
    for warning in (settings_guard.debug_warning(exposure), settings_guard.not_inherited_warning(dropped)):
        if warning:
            send(spec.channel, LoadWarning(warning))  # the master logs it once per generation
    # The app and its imports live as long as the worker: out of the collector's sight, they
    # are not traversed again by every full collection a request's garbage triggers.
    gc.collect()
    gc.freeze()
    worker = Worker(spec, app, tls_context, hooks)
    worker.ctx.static = static
    return worker.run()


def http2_over_tls(spec: WorkerSpec) -> bool:
    """Whether ALPN offers h2: by default, but not across several sites (a connection's
    streams could name different sites, and a connection is handed to one)."""
    return not spec.config.no_http2_tls and not spec.sites


def start_static(spec: WorkerSpec, django: bool = True) -> object | None:
    """The worker's static map (None: nothing mapped); a missing root fails like an app that won't load."""
    from ..static.setup import StaticSetupError, build_static_map, static_plan

    mount = spec.sites[spec.site_index].mount if spec.sites else ""
    try:
        plan = static_plan(spec.config, mount, django)
        static = build_static_map(spec.config, plan)
    except StaticSetupError as exc:
        raise AppLoadError(str(exc)) from None
    if spec.index == 0:  # once per site, not once per worker
        where = f"site {spec.site.name}: " if spec.site is not None else ""
        for line in plan.describe():
            log.info("%sServing %s", where, line)
        for warning in plan.warnings:
            log.warning("%s%s", where, warning)
    return static


def app_name(spec: WorkerSpec) -> str:
    """How the error log names the app this worker loaded (its spec, or the Django settings)."""
    config = spec.site.config if spec.site is not None else spec.config
    name = config.app or (f"Django {config.settings}" if config.settings else "corral.welcome")
    return f"{name} (site {spec.site.name})" if spec.site is not None else name


def worker_info(spec: WorkerSpec) -> WorkerInfo:
    site = spec.site.name if spec.site is not None else None
    return WorkerInfo(pid=os.getpid(), site=site, index=spec.index, threads=spec.config.threads)


class Worker:
    def __init__(
        self, spec: WorkerSpec, app: Any, tls_context: ssl.SSLContext | None = None, hooks: WorkerHooks | None = None
    ) -> None:
        self.spec = spec
        self.tls_context = tls_context
        self.hooks = hooks
        config = spec.config
        self.loop = new_event_loop()
        asyncio.set_event_loop(self.loop)
        executor = AppThreads(config.threads, "corral-app") if config.threads > 1 else None
        self.ctx = ServerContext(
            app=app,
            loop=self.loop,
            limits=carried(Limits, config),
            timeouts=carried(Timeouts, config),
            executor=executor,
            multiprocess=config.workers > 1,
            access_log=AccessLog(
                config.access_log,
                config.access_log_format,
                site=spec.site.name if spec.site else "main",
                client=config.access_log_client,
            ) if config.access_log else None,
            proxy=ProxyHeaders(TrustedProxies(config.trusted_proxies), config.proxy_headers),
        )
        if tls_context is not None:
            self.ctx.url_scheme = "https"
            self.ctx.tls = True
        self.ctx.app_name = app_name(spec)
        self.ctx.h2c = config.http2  # (multi-site: each connection routed by its first stream)
        self.ctx.h2c_upgrade = self.ctx.h2c and not self.ctx.tls and not config.no_h2c_upgrade
        if spec.site is not None:
            self.ctx.site_name = spec.site.name
        if spec.sites:
            self.ctx.router = Router(spec.sites)
            self.ctx.site_index = spec.site_index
            self.ctx.mount = spec.sites[spec.site_index].mount
            self.ctx.handoff = spec.handoff_send
        self.ctx.hide_loop = loop_sensitive()
        # The worker's own, handed to each connection and TLS listener (see registry.py).
        self.registry: Registry[Connection] = Registry(
            config.max_connections, watchdog.request_limit(config), self.recycle
        )
        if hooks is not None:
            self.ctx.pre_request = hooks.pre_request
            self.ctx.post_request = hooks.post_request
        self.servers: list[asyncio.AbstractServer] = []
        self.parent = os.getppid()
        self.stopped = asyncio.Event()
        self.interrupts = 0
        self.recycling = False
        # Patient drain (reload, recycle): idle keep-alive connections close at their own
        # idle deadline, never while a client may be reusing them; on a stop, after a short grace.
        self.patient = False
        self.listen_fds: list[int] = []
        self.inbox = Inbox(spec.channel, 4096)  # the master's messages (multi-site: accept)
        # Listeners that expect a PROXY protocol header (see proxy_reader.py), by fd.
        self.proxy_fds = set(spec.proxy_fds)
        self.proxy_trust = TrustedProxies(config.trusted_proxies)
        self.proxy_rejections = RejectionLog()

    def run(self) -> int:
        try:
            return self.loop.run_until_complete(self._main())
        finally:
            self.loop.close()

    async def _main(self) -> int:
        loop = self.loop
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGQUIT, self._exit_now)
        loop.add_signal_handler(signal.SIGHUP, self._retire)
        if self.spec.sites:
            # Multi-site: the master may pause our accepting (see process/acceptors.py); keep
            # our own copies of the listening sockets to start again from.
            self.listen_fds = [self._dup_listener(sock.fileno()) for sock in self.spec.sockets]
            loop.add_reader(self.spec.channel.fileno(), self._on_master_message)
        for sock in self.spec.sockets:
            self.servers.append(await self._listen(sock, sock.fileno()))
        if self.spec.handoff_receive is not None:
            loop.add_reader(self.spec.handoff_receive.fileno(), self._adopt_handed_off)
        # On a missed heartbeat the master sends SIGUSR1 first: the C-level handler prints
        # every thread's Python stack even while an inline app blocks the loop.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        send(self.spec.channel, Ready(os.getpid()))
        self._heartbeat()
        sweeper = loop.create_task(self._sweep())
        await self.stopped.wait()
        sweeper.cancel()
        await self._drain()
        if self.hooks is not None:
            self.hooks.worker_exit(worker_info(self.spec))
        return 0

    async def _listen(self, sock: socket.socket, fd: int) -> asyncio.AbstractServer:
        """Serve `sock`, whose listener was fd `fd` (the PROXY protocol flag is kept by fd)."""
        if not self.spec.sites:  # (the sites of a multi-site config share listeners: set per adoption)
            abort_stalled_sends(sock, self.ctx.timeouts.send)
        if self.tls_context is not None:
            timeout = self.spec.config.header_timeout  # for a PROXY header, the first byte and the handshake
            proxy = None
            if fd in self.proxy_fds:  # TLS passed through by a load balancer, a PROXY header in front
                proxy = ProxyIntake(self.proxy_trust, header_deadline(timeout), self.proxy_rejections)
            make = self._new_tls_connection if http2_over_tls(self.spec) else self._new_connection
            server = TLSServer(self.ctx, self.registry, sock, self.tls_context, make, timeout, proxy)
            return server.start()
        return await self.loop.create_server(self._protocol_factory(fd), sock=sock, backlog=self.spec.config.backlog)

    def _on_master_message(self) -> None:
        messages = self.inbox.read()
        if self.inbox.closed:
            self.loop.remove_reader(self.spec.channel.fileno())
        for message in messages:
            if isinstance(message, Accept) and not self.registry.stopping:
                self.loop.create_task(self._set_accepting(message.on))

    async def _set_accepting(self, on: bool) -> None:
        if on and not self.servers:
            for fd in self.listen_fds:
                server = await self._listen(socket.socket(fileno=os.dup(fd)), fd)
                if self.registry.stopping:  # began draining meanwhile: accept nothing more
                    server.close()
                else:
                    self.servers.append(server)
        elif not on and self.servers:
            for listening in self.servers:
                listening.close()
            self.servers.clear()

    def _adopt_handed_off(self) -> None:
        """Take connections another site's worker routed to this site."""
        receive = self.spec.handoff_receive
        assert receive is not None
        if self.registry.stopping:
            return
        for _ in range(64):  # bounded per wake-up: other work gets its turn
            item = receive_connection(receive)
            if item is None:
                return
            self.loop.create_task(self._adopt(*item))

    def _dup_listener(self, fd: int) -> int:
        copy = os.dup(fd)
        if fd in self.proxy_fds:
            self.proxy_fds.add(copy)
        return copy

    def _protocol_factory(self, fd: int) -> Callable[[], asyncio.Protocol]:
        """What a listener's connections start with: HTTP, or a PROXY protocol header first."""
        return self._new_proxy_connection if fd in self.proxy_fds else self._new_connection

    def _new_connection(self, initial: bytes = b"", peername: Any = None) -> asyncio.Protocol:
        # An asyncio protocol by its methods (see HTTPConnection); typeshed wants the class.
        return cast(asyncio.Protocol, HTTPConnection(self.ctx, self.registry, initial, peername))

    def _new_tls_connection(self, initial: bytes = b"", peername: Any = None) -> asyncio.Protocol:
        """A TLS connection: HTTP/2 or HTTP/1.1, whichever ALPN settles in the handshake."""

        def http2() -> Any:
            from .h2_connection import H2Connection  # only once a client speaks HTTP/2

            return H2Connection(self.ctx, self.registry, initial, peername)

        return cast(asyncio.Protocol, ALPNChoice(lambda: self._new_connection(initial, peername), http2))

    def _new_proxy_connection(self) -> asyncio.Protocol:
        reader = ProxyProtocolReader(
            self._new_connection,
            self.proxy_trust,
            header_deadline(self.ctx.timeouts.header),
            self.loop,
            self.proxy_rejections,
        )
        return cast(asyncio.Protocol, reader)

    async def _adopt(self, client: socket.socket, data: bytes, peername: Any) -> None:
        if client.family != socket.AF_UNIX:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as for connections we accept
            abort_stalled_sends(client, self.ctx.timeouts.send)
        try:
            await self.loop.connect_accepted_socket(lambda: self._new_connection(data, peername), client)
        except OSError:
            client.close()

    def _on_stop_signal(self, sig: int) -> None:
        if sig == signal.SIGTERM and os.getppid() != self.parent:  # the parent-death signal (lifeline.py)
            log.warning("Master process died; worker %d exiting", os.getpid())
        if sig == signal.SIGINT:
            self.interrupts += 1
            if self.interrupts > 1:
                self._exit_now()
        self.stopped.set()

    def _exit_now(self) -> None:
        os._exit(1)

    def _retire(self) -> None:
        """Replaced by a reload: drain patiently, the server itself goes on."""
        self.patient = True
        self.stopped.set()

    def recycle(self, reason: str) -> None:
        """Stop gracefully so the master starts a fresh worker (limits, hung requests)."""
        if not self.recycling:
            self.recycling = True
            log.info("Worker %d recycling: %s", os.getpid(), reason)
            send(self.spec.channel, Recycle(reason))
            self.patient = True
            self.stopped.set()

    def _heartbeat(self) -> None:
        ctx = self.ctx
        registry = self.registry
        in_flight = sum(len(conn.running()) for conn in registry)
        connections = len(registry)
        send(self.spec.channel, Heartbeat(
            requests=registry.requests_served,
            connections=connections,
            in_flight=in_flight,
            stats=ctx.stats.snapshot(connections=connections, in_flight=in_flight),
            rss=watchdog.rss_bytes(),
        ))

    async def _sweep(self) -> None:
        ctx = self.ctx
        config = self.spec.config
        while True:
            await asyncio.sleep(1.0)
            now = self.loop.time()
            for conn in self.registry:
                conn.check_deadline(now)
            if os.getppid() != self.parent:
                log.warning("Master process died; worker %d exiting", os.getpid())
                self.stopped.set()
                return
            if ctx.executor is not None:
                for conn, ex in watchdog.hung_requests(self.registry, config.timeout):
                    watchdog.report_hung(ex, config.timeout)
                    conn.time_out(ex)
                    self.recycle("timeout")
            if config.max_worker_memory and watchdog.rss_bytes() > config.max_worker_memory * 1024 * 1024:
                self.recycle(f"memory above {config.max_worker_memory} MiB")
            self._heartbeat()

    async def _drain(self) -> None:
        """Stop accepting, let in-flight requests finish, close idle connections."""
        ctx = self.ctx
        registry = self.registry
        registry.stopping = True
        if self.spec.handoff_receive is not None:
            self.loop.remove_reader(self.spec.handoff_receive.fileno())
        for server in self.servers:
            server.close()
        # A connection accepted in the tick the stop signal arrived has its connection_made
        # still queued (uvloop): let it join the registry before the registry is counted, or
        # an idle worker would exit with it unanswered.
        await _ticks(2)
        for fd in self.listen_fds:
            os.close(fd)
        self.listen_fds = []
        deadline = self.loop.time() + self.spec.config.graceful_timeout
        while (len(registry) or registry.handshaking) and self.loop.time() < deadline:
            now = self.loop.time()
            for conn in registry:
                conn.shutdown(now, self.patient)
            await asyncio.sleep(0.05)
        ctx.outbox.send_all()  # responses finished in this pass leave before anything is cut
        for conn in registry:
            conn.abort()
        self._heartbeat()  # the last second's counts, before we go
        if ctx.executor is not None:
            ctx.executor.shutdown(wait=False, cancel_futures=True)
        await asyncio.sleep(0)
        sys.stdout.flush()
