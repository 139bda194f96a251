"""The master: forks and supervises workers, and never imports the app.

How this works: one selector loop over the signal queue's wake-up socket and
each worker's channel. Signals are queued and handled here, never in the
handler. Workers come in *groups*: one per site (a single-app server is one
group). Each group boots one worker first, so a broken app is reported once;
on a single-app server that ends the master with a non-zero status instead of
a crash loop, while on a multi-site server only that site is backed off (and
its queued connections answered 503) while the others keep serving. Dead
workers are reaped on SIGCHLD and their slots refilled after the back-off that
policy.py decides. SIGTERM/SIGINT drain (after --shutdown-delay, during which
/readyz fails but the workers serve on; a second SIGTERM/SIGINT cuts the delay
short); a second SIGINT while draining ends at once. SIGHUP starts a fresh
generation of workers and retires the old one once the new one is ready.
lifecycle.py turns these milestones into log lines, sd_notify messages and the
reload record `corral status` shows.

The pieces it runs on, each testable without processes: workers.py (groups,
slots, handles), generations.py (reload bookkeeping), shutdown.py (the stop
sequence), heartbeats.py and exits.py (what a worker's silence or exit
means), commands.py (the control socket's commands), status.py (what
`corral status` shows, from a read-only view), server/channel.py (the
messages workers send). This class keeps the loop and the reactions: it
signals, spawns, logs and reports.
"""

from __future__ import annotations

import logging
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..config import Config
from ..config.sites import SiteConfig
from ..hooks import HookFailed, MasterHooks, ServerInfo
from ..observe.state import MasterStats
from ..observe.titles import set_title
from ..server.channel import Accept, Heartbeat, LoadError, LoadWarning, Message, Ready, Recycle, send
from ..server.handoff import handoff_pair
from ..server.listeners import socket_url
from ..server.spec import WorkerSpec
from . import acceptors, commands, generations, heartbeats, policy
from . import status as status_view
from .certificates import Certificates
from .control import ControlError, ControlServer, control_path
from .exits import judge_exit
from .heartbeats import Verdict
from .lifecycle import Lifecycle, ReloadRecord
from .notify import Notifier
from .policy import Slot
from .shutdown import Shutdown, stop_listening
from .signals import SignalQueue, signal_if_alive
from .spawn import VirtualenvError, exec_worker, fork_worker
from .workers import Group, WorkerHandle, ready_summary, worker_spec

log = logging.getLogger("corral.error")

EXIT_OK, EXIT_FAILED = 0, 1
# Sent to a worker replaced by a reload: drain without racing clients on idle keep-alive
# connections (the server goes on, so they are closed at their own idle deadline).
RETIRE_SIGNAL = signal.SIGHUP
# Receives from a dead worker's channel before its exit is judged: it wrote a finite amount.
_LAST_WORDS_READS = 64

Spawner = Callable[[WorkerSpec, list[socket.socket]], int]


class Arbiter:
    def __init__(
        self,
        config: Config,
        sockets: list[socket.socket],
        sites: tuple[SiteConfig, ...] = (),
        spawn: Spawner | None = None,
        socket_activated: bool = False,
        proxy_fds: frozenset[int] = frozenset(),
        hooks: MasterHooks | None = None,
    ) -> None:
        self.socket_activated = socket_activated
        self.proxy_fds = proxy_fds  # listening sockets that expect the PROXY protocol
        self.hooks = hooks
        self.config = config
        self.sockets = sockets
        self.sites = sites
        self.spawn = spawn
        self.selector = selectors.DefaultSelector()
        self.signals = SignalQueue()
        self.workers: dict[int, WorkerHandle] = {}
        self.shutdown = Shutdown(config.shutdown_delay, config.graceful_timeout)
        self.lifecycle = Lifecycle()
        self.exit_code = EXIT_OK
        self.interrupts = 0
        self.announced = False
        self.warned: set[tuple[str, int, str]] = set()  # (group, generation, text): each said once
        self.on_ready: Callable[[], object] | None = None  # called once, just before "Corral ready"
        self.started = time.monotonic()
        self.control: ControlServer | None = None
        self.next_acceptor_check = 0.0
        self.requests_seen: dict[str, int] = {}
        self.stats = MasterStats()  # what /metrics, /readyz report
        self.metrics: Any = None  # an observe.httpd.MetricsServer when --metrics-bind is set
        self.certificates = Certificates(config)
        if sites:
            self.groups = [Group(i, site.name, site.config, site) for i, site in enumerate(sites)]
            for group in self.groups:
                group.handoff_send, group.handoff_receive = handoff_pair()
        else:
            self.groups = [Group(0, "main", config, None)]

    @property
    def multi_site(self) -> bool:
        return bool(self.sites)

    @property
    def stopping(self) -> bool:
        return self.shutdown.stopping

    @property
    def delay_until(self) -> float:
        return self.shutdown.delay_until

    # -- what status.py and commands.py see (their Protocols) -----------------------

    @property
    def reloads(self) -> Mapping[str, ReloadRecord]:
        return self.lifecycle.reloads

    @property
    def site_names(self) -> list[str]:
        return [g.name for g in self.groups]

    @property
    def shutting_down(self) -> bool:
        return self.stopping or self.shutdown.delaying

    def status(self) -> dict[str, Any]:
        return status_view.snapshot(self)

    # -- lifecycle -----------------------------------------------------------------

    def run(self) -> int:
        set_title("master")
        problem = self.certificates.load()
        if problem is not None:
            sys.stderr.write(f"corral: error: {problem}\n")
            return EXIT_FAILED
        # Taken out of our environment before the first fork: only the master speaks to systemd.
        self.lifecycle = Lifecycle(Notifier.from_environ())
        for group in self.groups:
            self.stats.add_site(group.name, group.config.workers)
        if self.config.metrics_bind:
            from ..observe.httpd import MetricsServer  # http.server: only when metrics are on

            self.metrics = MetricsServer(self.config.metrics_bind, self.stats.state)
            try:
                self.metrics.start()
            except OSError as exc:
                sys.stderr.write(f"corral: error: cannot serve metrics on {self.config.metrics_bind}: {exc}\n")
                return EXIT_FAILED
        self.signals.install()
        self.selector.register(self.signals.fileno(), selectors.EVENT_READ, None)
        try:
            self.control = ControlServer(control_path(self.config), lambda message: commands.answer(self, message))
        except (ControlError, OSError) as exc:
            log.warning("No control socket (corral status/reload/stop will not reach this server): %s", exc)
        else:
            self.selector.register(self.control.fileno(), selectors.EVENT_READ, self.control)
        for group in self.groups:
            group.slots = [Slot(i) for i in range(group.config.workers)]
            self._spawn(group, group.slots[0])  # boot one first: a broken app fails once, loudly
        try:
            while self.workers or not self.stopping:
                self._tick()
            self.lifecycle.stopped()
        finally:
            self.signals.close()
            self.selector.close()
            if self.control is not None:
                self.control.close()
            if self.metrics is not None:
                self.metrics.stop()
            for group in self.groups:
                group.close()
        return self.exit_code

    def _tick(self) -> None:
        now = time.monotonic()
        if self.shutdown.delay_over(now):
            self._begin_drain("Shutdown delay over")
        timeout = self.shutdown.wait(now)
        if self.stopping:
            if self.shutdown.past_deadline(now):
                if self.workers and self.shutdown.first_kill():
                    self.lifecycle.killed = len(self.workers)
                    log.warning("Graceful timeout: killing %d worker(s) still busy", len(self.workers))
                self._kill_all(signal.SIGKILL)
        else:
            self._check_heartbeats(now)
            if self.multi_site and now >= self.next_acceptor_check:
                self.next_acceptor_check = now + acceptors.WINDOW
                self._choose_acceptors()
            for group in self.groups:
                if group.booted or group.down:
                    for slot in policy.due_for_spawn(group.slots, now):
                        self._spawn(group, slot)
                timeout = min(timeout, policy.next_wakeup(group.slots, now))
        for key, _ in self.selector.select(timeout):
            if key.data is None:
                self.signals.drain_wakeups()
            elif isinstance(key.data, Group):
                key.data.refuse_queued()
            elif isinstance(key.data, ControlServer):
                key.data.accept_all()
            else:
                self._read_channel(key.data)
        while self.signals.pending:
            self._handle_signal(self.signals.pending.popleft())
        self._reap()

    # -- signals -------------------------------------------------------------------

    def _handle_signal(self, sig: int) -> None:
        if sig == signal.SIGCHLD:
            return  # reaped after every tick
        name = signal.Signals(sig).name
        if sig in (signal.SIGTERM, signal.SIGINT) and self.shutdown.delaying:
            self._begin_drain(f"Received {name} during the shutdown delay")  # skips the rest of it
            return
        if sig == signal.SIGINT:
            self.interrupts += 1
            if self.interrupts > 1:
                log.info("Second interrupt: exiting now")
                self.request_stop(graceful=False)
                return
        if sig in (signal.SIGTERM, signal.SIGINT):
            self.request_stop(graceful=True, why=f"Received {name}")
        elif sig == signal.SIGQUIT:
            log.info("Received SIGQUIT: exiting now")
            self.request_stop(graceful=False)
        elif sig == signal.SIGHUP:
            self.reload()
        elif sig == signal.SIGTTIN:
            self._resize(+1)
        elif sig == signal.SIGTTOU:
            self._resize(-1)

    def request_stop(self, graceful: bool, why: str = "") -> None:
        """A stop asked for from outside (a signal, `corral stop`), unlike a failed start.

        A graceful one waits --shutdown-delay first: /readyz fails at once (load
        balancers stop sending new requests) while the workers go on accepting and
        serving the ones still routed here; then the drain starts as without a delay.
        """
        delay = self.config.shutdown_delay
        delaying = self.shutdown.should_delay(graceful, self.announced)
        self.lifecycle.stop_requested(graceful, delay if delaying else 0.0)
        if delaying:
            self.shutdown.start_delay(time.monotonic())
            self.stats.set_draining()
            # Logged after set_draining(): once this line is out, /readyz answers 503.
            log.info("%s: /readyz fails from now on; serving for %gs more, then draining", why, delay)
            return
        if graceful and self.shutdown.delaying:
            self._begin_drain(f"{why} during the shutdown delay")
            return
        self.stop(graceful)
        if graceful:
            # Logged after stop(): once this line is out, new connections are refused.
            log.info("%s: finishing in-flight requests (up to %gs)", why, self.config.graceful_timeout)

    def _begin_drain(self, why: str) -> None:
        """The shutdown delay is over (or was cut short): stop accepting, finish, exit."""
        self.stop(graceful=True)
        self.lifecycle.draining(sum(h.in_flight for h in self.workers.values()))
        log.info("%s: finishing in-flight requests (up to %gs)", why, self.config.graceful_timeout)

    def stop(self, graceful: bool) -> None:
        if self.shutdown.begin(graceful, time.monotonic()):
            self.stats.set_draining()
        self._kill_all(signal.SIGTERM if graceful else signal.SIGKILL)
        # Sockets systemd lent us are left open to new connections: it keeps them for the
        # next master, and the connections queued meanwhile are that master's to answer.
        if not self.socket_activated:
            stop_listening(self.sockets)

    def reload(self, site: str | None = None) -> None:
        """Start a new generation; each group's old one retires when its new one is ready."""
        if self.shutting_down:
            log.info("Not reloading: the server is stopping")
            return
        self.certificates.reload()
        if self.hooks is not None:
            self.hooks.on_reload(self.server_info(), site)
        for group in self.groups:
            if site is not None and group.name != site:
                continue
            log.info("Reloading %s: starting %d new workers", group.label, len(group.slots))
            self.lifecycle.reload_started(group.name, group.label, len(group.slots))
            self._site_up(group)  # a reload is the next attempt at a site that was down
            for slot in generations.start(group):
                self._spawn(group, slot)

    def _resize(self, delta: int) -> None:
        group = self.groups[0]
        count = max(1, len(group.slots) + delta)
        for slot in group.resize(count):
            if slot.pid:
                self._signal(slot.pid, signal.SIGTERM)
        log.info("Now running %d workers", count)

    # -- workers -------------------------------------------------------------------

    def _spawn(self, group: Group, slot: Slot) -> None:
        parent_end, child_end = socket.socketpair()
        spec, close_in_child = worker_spec(
            group, self.groups, self.sites, self.sockets, child_end, slot, self.certificates.material, self.proxy_fds
        )
        close_in_child += [parent_end] + [handle.channel for handle in self.workers.values()]
        spawn = self.spawn or (exec_worker if group.site is not None and group.site.virtualenv else fork_worker)
        try:
            pid = spawn(spec, close_in_child)
        except (VirtualenvError, OSError) as exc:
            child_end.close()
            parent_end.close()
            self._on_load_error(group, f"{group.label}: cannot start a worker: {exc}", None)
            policy.record_exit(slot, time.monotonic())
            return
        child_end.close()
        parent_end.setblocking(False)
        slot.pid = pid
        slot.started = time.monotonic()
        slot.ready = False
        handle = WorkerHandle(group, slot, pid, parent_end, group.generation, started=time.monotonic())
        self.workers[pid] = handle
        self.stats.worker_started(pid, group.name)
        self.selector.register(parent_end, selectors.EVENT_READ, handle)
        log.debug("Booting worker %d of %s (pid %d)", slot.index, group.label, pid)

    def _read_channel(self, handle: WorkerHandle, reads: int = 1) -> None:
        messages = handle.inbox.read(reads)
        if handle.inbox.closed:
            try:
                self.selector.unregister(handle.channel)
            except (KeyError, ValueError):
                pass  # already: a dead worker's channel is read once more in _reap
        for message in messages:
            self._on_message(handle, message)

    def _on_message(self, handle: WorkerHandle, message: Message) -> None:
        group = handle.group
        if isinstance(message, Ready):
            if self.stopping or handle.told_to_stop:
                # Told to stop while it was forking: a signal that early can land in the
                # master's inherited handler and be lost. Now its own handlers are in place.
                self._signal(handle.pid, signal.SIGTERM)
            handle.slot.ready = True
            handle.last_heartbeat = time.monotonic()
            self.stats.worker_ready(handle.pid)
            if group.down:
                self._site_up(group)
                log.info("%s is back", group.label.capitalize())
            if not group.booted:
                group.booted = True
                if len(group.slots) > 1:
                    log.info("Worker %d of %s ready; starting %d more", handle.pid, group.label, len(group.slots) - 1)
            self._retire_old_generation(group)
            self._announce_if_ready()
        elif isinstance(message, Heartbeat):
            handle.last_heartbeat = time.monotonic()
            handle.requests = message.requests
            handle.in_flight = message.in_flight
            handle.connections = message.connections
            self.stats.heartbeat(handle.pid, message.stats, message.rss)
        elif isinstance(message, Recycle):
            reason = message.reason
            log.info("Worker %d of %s is recycling (%s); starting its replacement", handle.pid, group.label, reason)
            self._replace(handle, reason)
        elif isinstance(message, LoadWarning):  # found while loading the app (settings_guard): every worker finds it
            text = message.message
            if (group.name, handle.generation, text) not in self.warned:
                self.warned.add((group.name, handle.generation, text))
                log.warning("%s: %s", group.label.capitalize(), text)
        elif isinstance(message, LoadError):
            if handle.generation != group.generation:
                return  # a reload already abandoned: its error was reported once
            self._on_load_error(group, message.message, message.traceback)

    def _announce_if_ready(self) -> None:
        if self.announced or not all(all(s.ready for s in g.slots) or g.down for g in self.groups):
            return
        self.announced = True
        if self.on_ready is not None:
            self.on_ready()
        summary = ready_summary(self.groups, self.multi_site)
        log.info("Corral ready: %s", summary)
        self.lifecycle.ready(summary)
        if self.hooks is not None and not all(g.down for g in self.groups):  # someone accepts
            try:
                self.hooks.when_ready(self.server_info())
            except HookFailed as exc:
                self._fail_start(exc)

    def _fail_start(self, exc: HookFailed) -> None:
        """A hook that must not fail did: one line, the user's traceback, a stop, exit status 1."""
        if exc.user_traceback:
            sys.stderr.write(exc.user_traceback)
        sys.stderr.write(f"corral: error: {exc}\n")
        sys.stderr.flush()
        self.exit_code = EXIT_FAILED
        self.stop(graceful=True)

    def server_info(self) -> ServerInfo:
        addresses = tuple(socket_url(sock) for sock in self.sockets)
        return ServerInfo(os.getpid(), tuple(g.name for g in self.groups), addresses)

    def _on_load_error(self, group: Group, text: str, user_traceback: str | None) -> None:
        if user_traceback:
            sys.stderr.write(user_traceback)
        if not self.multi_site and not group.booted:
            sys.stderr.write(f"corral: error: {text}\n")
            sys.stderr.flush()
            self.exit_code = EXIT_FAILED
            self.stop(graceful=False)
            return
        if generations.old_workers(self.workers.values(), group):
            log.error("%s: the new code failed to load; the old workers keep serving: %s", group.label, text)
            self._abandon_generation(group)
            self.lifecycle.reload_failed(group.name, group.label, text, old_serving=True)
            return
        log.error("%s could not load its app and is backed off: %s", group.label.capitalize(), text)
        self.lifecycle.reload_failed(group.name, group.label, text, old_serving=False)
        self._site_down(group)
        now = time.monotonic()
        for slot in group.slots:
            if slot.pid is None:
                slot.respawn_at = max(slot.respawn_at, now + policy.restart_delay(max(slot.crashes, 4)))
        self._announce_if_ready()

    def _abandon_generation(self, group: Group) -> None:
        """A reload whose new workers cannot load: keep the old generation."""
        for handle in generations.abandon(self.workers.values(), group):
            self._draining(handle)
            self._signal(handle.pid, signal.SIGTERM)

    def _replace(self, handle: WorkerHandle, cause: str) -> None:
        """Start a fresh worker for this one's slot now; the old one is on its way out."""
        self._draining(handle)
        handle.exit_cause = cause
        group = handle.group
        old = handle.slot
        old.retiring = True
        if self.stopping or old not in group.slots:
            return
        fresh = Slot(old.index)
        group.slots[group.slots.index(old)] = fresh
        self._spawn(group, fresh)

    def _choose_acceptors(self) -> None:
        """Let only the sites with real traffic accept (see acceptors.py); tell workers that change."""
        window: dict[str, int] = {}
        for group in self.groups:
            if group.down:
                continue
            total = sum(h.requests for h in self.workers.values() if h.group is group)
            window[group.name] = max(0, total - self.requests_seen.get(group.name, 0))
            self.requests_seen[group.name] = total
        chosen = acceptors.choose_acceptors(window)
        for handle in self.workers.values():
            wanted = chosen is None or handle.group.name in chosen
            if wanted != handle.accepting and handle.slot.ready and not handle.told_to_stop:
                if not send(handle.channel, Accept(wanted)):
                    continue  # gone: it is reaped soon
                handle.accepting = wanted
                state = "resumes" if wanted else "stops"
                log.debug("Worker %d of %s %s accepting", handle.pid, handle.group.label, state)

    def _check_heartbeats(self, now: float) -> None:
        """A worker whose loop stops answering (an inline app stuck past --timeout) is replaced."""
        for handle in list(self.workers.values()):
            verdict = heartbeats.judge(handle, now)
            if verdict is Verdict.KILL:
                handle.kill_at = 0.0
                self._signal(handle.pid, signal.SIGKILL)
            elif verdict is Verdict.STUCK_DRAINING:
                log.error(
                    "Worker %d of %s is still draining past --graceful-timeout %gs: its stack follows; killing it",
                    handle.pid, handle.group.label, handle.group.config.graceful_timeout,
                )
                self._dump_then_kill(handle, now)
            elif verdict is Verdict.HUNG:
                log.error(
                    "Worker %d of %s sent no heartbeat for %.0fs (--timeout %gs): its stack follows; replacing it",
                    handle.pid, handle.group.label, now - handle.last_heartbeat, handle.group.config.timeout,
                )
                self._dump_then_kill(handle, now)
                self._replace(handle, "timeout")

    def _dump_then_kill(self, handle: WorkerHandle, now: float) -> None:
        self._signal(handle.pid, signal.SIGUSR1)  # faulthandler in the worker prints every thread's stack
        handle.kill_at = now + heartbeats.DUMP_GRACE

    def _retire_old_generation(self, group: Group) -> None:
        retiring = generations.to_retire(self.workers.values(), group)
        if retiring is None:
            return
        for handle in retiring:
            self._draining(handle)
            self._signal(handle.pid, RETIRE_SIGNAL)
        old = generations.old_workers(self.workers.values(), group)
        self.lifecycle.generation_serving(group.name, group.label, len(group.slots), len(old))

    def _reap(self) -> None:
        """Reap exited workers; each one's channel is read to the end first.

        SIGCHLD can be handled in the same tick its last message arrives, or before it;
        closing the channel unread would lose the one line that tells the user why.
        """
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            handle = self.workers.pop(pid, None)
            if handle is None:
                continue
            self._read_channel(handle, _LAST_WORDS_READS)  # see below
            try:
                self.selector.unregister(handle.channel)
            except (KeyError, ValueError):
                pass
            handle.channel.close()
            self._on_exit(handle, status)
            if handle.old and not generations.old_workers(self.workers.values(), handle.group):
                self.lifecycle.generation_retired(handle.group.name, handle.group.label, len(handle.group.slots))

    def _on_exit(self, handle: WorkerHandle, status: int) -> None:
        slot = handle.slot
        group = handle.group
        ended = judge_exit(handle, status, self.stopping)
        if ended.load_error:
            self.stats.worker_exited(handle.pid, None)
            policy.record_exit(slot, time.monotonic())
            if not self.multi_site and not group.booted and not self.stopping:
                self.exit_code = EXIT_FAILED
                self.stop(graceful=False)
            return
        self.stats.worker_exited(handle.pid, ended.cause)
        if ended.cause is not None:
            group.restarts[ended.cause] += 1  # same causes as the metrics: signal, exit, memory, timeout, ...
        if ended.expected:
            log.debug("Worker %d exited (%s)", handle.pid, ended.reason)
            slot.pid = None
            return
        log.error("Worker %d of %s died (%s); restarting", handle.pid, group.label, ended.reason)
        policy.record_exit(slot, time.monotonic())
        if slot.crashes > 1:
            delay = policy.restart_delay(slot.crashes)
            log.warning("%s worker crashed %d times in a row; next start in %.1fs", group.label, slot.crashes, delay)
        if not group.booted:
            if not self.multi_site:
                self.exit_code = EXIT_FAILED
                self.stop(graceful=False)
            elif not group.down:
                self._site_down(group)
                self._announce_if_ready()

    # -- a site that is down: its queued connections get 503 ----------------------------

    # Both transitions happen here only: the queue is watched exactly while the site is down
    # (registering it twice would end the master; watching it while the site's own workers
    # serve would answer some of their connections with 503s).

    def _site_down(self, group: Group) -> None:
        if group.down:
            return
        group.down = True
        self.stats.site_down(group.name)
        if group.handoff_receive is not None:
            self.selector.register(group.handoff_receive, selectors.EVENT_READ, group)

    def _site_up(self, group: Group) -> None:
        """Its app loaded, or a reload tries again: connections wait for its own workers."""
        self.stats.site_down(group.name, False)
        if not group.down:
            return
        group.down = False
        if group.handoff_receive is not None:
            self.selector.unregister(group.handoff_receive)

    def _draining(self, handle: WorkerHandle) -> None:
        """It was told to stop (or will be): its exit is expected, /metrics shows it draining."""
        handle.told_to_stop = True
        self.stats.worker_draining(handle.pid)

    def _kill_all(self, sig: int) -> None:
        for pid in list(self.workers):
            self._signal(pid, sig)

    def _signal(self, pid: int, sig: int) -> None:
        signal_if_alive(pid, sig)

