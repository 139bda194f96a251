"""The reloader: holds the listening sockets, runs the app in a child, restarts it on change.

How this works: this process never imports the app. It binds once (the CLI
hands it the sockets) and forks a child that loads the app and serves on those
sockets. The child reports the project files it imported; we watch their
directories. When one of those files (or a --watch path) changes, we stop the
child (SIGTERM; it stops accepting and drains for at most a second) and fork a
fresh one. The listening socket stays open in this process the whole time, so
a client connecting mid-restart waits in the kernel's backlog and is answered
by the next child: never "connection refused".

A child whose app fails to load reports the error and serves a 500 page naming
it; while the app is broken, any Python file changing in a watched directory
triggers a new attempt, so the next good save brings the app back.

One selector loop, as in the arbiter: signals only queue (process/signals.py),
the watcher thread only queues changed paths and wakes us through a socket.
"""

from __future__ import annotations

import logging
import os
import queue
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from watchfiles import Change, DefaultFilter

from ..config import Config
from ..process.exits import describe_status
from ..process.signals import SignalQueue, signal_if_alive
from ..process.spawn import fork_and_run
from ..server.channel import Files, Inbox, LoadError, Message, Ready, Recycle, Trees
from ..server.spec import WorkerSpec
from . import files
from .output import format_changes

log = logging.getLogger("corral.error")

DEV_THREADS = 4  # app threads when the command line asked for none: a page's parallel asset loads
DEV_GRACE = 1.0  # seconds in-flight requests get to finish before a restart goes ahead
KILL_MARGIN = 2.0  # seconds past the grace before a child that will not stop gets SIGKILL
MTIME_SLACK = 0.02  # file-system timestamps lag the wall clock by up to a few ms
SURVIVAL = 1.0  # a child that served this long and then died is restarted at once
PUMP_READS = 16  # receives per pass over the channel: the loop also watches files and signals

Spawn = Callable[[WorkerSpec, list[socket.socket], bool], int]


def fork_child(spec: WorkerSpec, close_in_child: list[socket.socket], dev_access_log: bool) -> int:
    """Fork and run the dev child; returns its pid in the parent."""

    def run() -> int:
        from .child import run_child

        return run_child(spec, dev_access_log)

    return fork_and_run(run, close_in_child, "App process")


def child_config(config: Config) -> Config:
    """One worker, threads on, short drain; the access log is ours unless it goes to a file."""
    return config.replace(
        workers=1,
        threads=config.threads if config.threads > 1 else DEV_THREADS,
        graceful_timeout=min(config.graceful_timeout, DEV_GRACE),
        access_log=None if config.access_log in (None, "-") else config.access_log,
    )


@dataclass
class Child:
    pid: int
    channel: socket.socket
    forked_at: float  # wall clock, comparable with file mtimes
    started: float  # monotonic
    inbox: Inbox = field(init=False)
    error: str | None = None
    ready_at: float | None = None
    kill_at: float | None = None  # set once told to stop

    def __post_init__(self) -> None:
        self.inbox = Inbox(self.channel)


@dataclass
class Reloader:
    config: Config
    sockets: list[socket.socket]
    watch: Sequence[str] = ()
    spawn: Spawn = fork_child
    files: set[str] = field(default_factory=set)
    proxy_fds: frozenset[int] = frozenset()  # listening sockets that expect the PROXY protocol

    def __post_init__(self) -> None:
        from .watcher import FileWatcher

        self.child_config = child_config(self.config)
        self.selector = selectors.DefaultSelector()
        self.signals = SignalQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.changes: queue.SimpleQueue[set[str]] = queue.SimpleQueue()
        self.watcher = FileWatcher(self._on_change)
        self.watch_paths = [os.path.realpath(path) for path in self.watch]
        self.base_dirs = {
            os.path.realpath(path) for path in (self.config.chdir or os.getcwd(), *self.config.pythonpath)
        }
        self.child: Child | None = None
        self.restart_pending = False
        self.stopping = False
        self.interrupts = 0
        self.root = os.getcwd()
        self._filter = DefaultFilter()

    # -- lifecycle -----------------------------------------------------------------

    def run(self) -> int:
        self.signals.install()
        self.selector.register(self.signals.fileno(), selectors.EVENT_READ, "signals")
        self.selector.register(self._wake_r, selectors.EVENT_READ, "changes")
        self.watcher.add_dirs(self.base_dirs)
        self.watcher.add_dirs(os.path.dirname(path) for path in self.watch_paths if not os.path.isdir(path))
        self.watcher.add_trees(path for path in self.watch_paths if os.path.isdir(path))
        self._spawn()
        try:
            while self.child is not None or not self.stopping:
                self._tick()
        finally:
            self.watcher.close()
            self.signals.close()
            self.selector.close()
            self._wake_r.close()
            self._wake_w.close()
        return 0

    def _tick(self) -> None:
        timeout = None
        if self.child is not None and self.child.kill_at is not None:
            timeout = max(0.0, self.child.kill_at - time.monotonic())
        events = self.selector.select(timeout)
        # Channel messages first: a file the child reported before an edit must be known
        # when that edit's change is judged.
        for key, _ in events:
            if isinstance(key.data, Child) and not self._pump(key.data):
                self.selector.unregister(key.data.channel)
        for key, _ in events:
            if key.data == "signals":
                self.signals.drain_wakeups()
            elif key.data == "changes":
                self._drain_wakeups()
        while self.signals.pending:
            self._handle_signal(self.signals.pending.popleft())
        self._reap()
        self._handle_changes()
        child = self.child
        if child is not None and child.kill_at is not None and time.monotonic() >= child.kill_at:
            log.warning("App process %d did not stop in time; killing it", child.pid)
            self._signal(child.pid, signal.SIGKILL)
            child.kill_at = time.monotonic() + KILL_MARGIN

    # -- signals -------------------------------------------------------------------

    def _handle_signal(self, sig: int) -> None:
        if sig == signal.SIGINT:
            self.interrupts += 1
        if sig == signal.SIGQUIT or self.interrupts > 1:
            self.stopping = True
            if self.child is not None:
                self._signal(self.child.pid, signal.SIGKILL)
        elif sig in (signal.SIGINT, signal.SIGTERM):
            if not self.stopping:
                log.info("Stopping")
            self.stopping = True
            self._stop_child()
        elif sig == signal.SIGHUP:
            self.restart("SIGHUP")

    # -- the child -----------------------------------------------------------------

    def _spawn(self) -> None:
        parent_end, child_end = socket.socketpair()
        spec = WorkerSpec(self.child_config, self.sockets, child_end, 0, proxy_fds=self.proxy_fds)
        close = [parent_end, self._wake_r, self._wake_w]
        pid = self.spawn(spec, close, self.config.access_log in (None, "-"))
        child_end.close()
        parent_end.setblocking(False)
        self.child = Child(pid, parent_end, forked_at=time.time(), started=time.monotonic())
        self.selector.register(parent_end, selectors.EVENT_READ, self.child)
        self.restart_pending = False
        log.debug("App process %d started", pid)

    def restart(self, reason: str) -> None:
        if self.stopping:
            return
        log.info("Reloading: %s", reason)
        self.restart_pending = True
        if self.child is None:
            self._spawn()
        else:
            self._stop_child()

    def _stop_child(self) -> None:
        child = self.child
        if child is not None and child.kill_at is None:
            child.kill_at = time.monotonic() + self.child_config.graceful_timeout + KILL_MARGIN
            self._signal(child.pid, signal.SIGTERM)

    def _pump(self, child: Child) -> bool:
        """Read and handle what the child sent; False once it closed its end."""
        while True:
            messages = child.inbox.read(PUMP_READS)
            for message in messages:
                if child is self.child:
                    self._on_message(child, message)
            if child.inbox.closed:
                return False
            if not messages:
                return True  # nothing more to read for now (or half a line: the rest wakes us)

    def _on_message(self, child: Child, message: Message) -> None:
        if isinstance(message, Files):
            self._watch_files(child, message.files)
        elif isinstance(message, LoadError):
            child.error = message.message
            if message.traceback:
                sys.stderr.write(message.traceback)
                sys.stderr.flush()
            log.error("%s", child.error)
        elif isinstance(message, Trees):
            new = [path for path in message.paths if path not in self.watch_paths]
            self.watch_paths.extend(new)
            self.watcher.add_trees(new)
        elif isinstance(message, Recycle):  # --max-requests, --max-worker-memory, a hung request: replace it now
            self.restart_pending = True
        elif isinstance(message, Ready):
            child.ready_at = time.monotonic()
            if child.error is None:
                threads = self.child_config.threads
                log.info("Corral ready: 1 worker x %d threads, watching %d files", threads, len(self.files))
            else:
                log.info("Waiting for a change; until the app loads, requests get an error page naming the error")

    def _watch_files(self, child: Child, reported: tuple[str, ...]) -> None:
        new = {path for path in reported if path not in self.files}
        self.files |= new
        self.watcher.add_dirs({os.path.dirname(path) for path in new})
        # A file changed after the fork may have changed after the child imported it, before
        # the watch above was in place: restart to be sure (at worst one restart too many).
        for path, mtime in files.mtimes(new).items():
            if mtime > child.forked_at - MTIME_SLACK:
                self.restart(f"{format_changes([path], self.root)} changed while loading")
                return

    def _reap(self) -> None:
        child = self.child
        if child is None:
            return
        try:
            pid, status = os.waitpid(child.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = child.pid, 0
        if pid == 0:
            return
        self._pump(child)  # its last words (a load error, say) come before the exit
        try:
            self.selector.unregister(child.channel)
        except (KeyError, ValueError):
            pass
        child.channel.close()
        self.child = None
        self._on_exit(child, status)

    def _on_exit(self, child: Child, status: int) -> None:
        log.debug("App process %d exited (%s)", child.pid, describe_status(status))
        if self.stopping:
            return
        if self.restart_pending:
            self._spawn()
            return
        log.error("App process %d exited (%s)", child.pid, describe_status(status))
        if child.ready_at is not None and time.monotonic() - child.ready_at >= SURVIVAL:
            self._spawn()
        else:
            log.info("Waiting for a change to start it again")

    # -- changes -------------------------------------------------------------------

    def _on_change(self, paths: set[str]) -> None:
        """Called from the watcher thread: queue, and wake the loop."""
        self.changes.put(paths)
        try:
            self._wake_w.send(b"!")
        except OSError:
            pass  # full (the loop is awake anyway) or closed (we are stopping)

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _handle_changes(self) -> None:
        changed: set[str] = set()
        while True:
            try:
                changed |= self.changes.get_nowait()
            except queue.Empty:
                break
        relevant = [path for path in changed if self.is_relevant(path)]
        if relevant:
            relevant.sort(key=lambda path: (not os.path.exists(path), path))  # name a saved file, not a temporary
            self.restart(f"{format_changes(relevant, self.root)} changed")

    def is_relevant(self, path: str) -> bool:
        if "__pycache__" in path.split(os.sep) or os.path.isdir(path):
            return False  # a directory's own event comes with events for the files that changed in it
        if path in self.files:
            return True
        for watched in self.watch_paths:
            if path == watched or path.startswith(watched + os.sep):
                return self._filter(Change.modified, path)
        broken = self.child is None or self.child.error is not None
        return broken and path.endswith(".py") and files.is_project_file(path)

    def _signal(self, pid: int, sig: int) -> None:
        signal_if_alive(pid, sig)
