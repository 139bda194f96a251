"""The master: binds nothing itself (the CLI hands it sockets), forks and
supervises workers, and never imports the app.

How this works: one selector loop over the signal queue's wake-up socket and
each worker's channel. Signals are queued and handled here, never in the
handler. The first worker boots alone, so a broken app is reported once and the
master exits non-zero instead of spawning a crash loop; the rest start once it
is ready. Dead workers are reaped on SIGCHLD and their slots refilled after the
back-off that policy.py decides. SIGTERM/SIGINT drain (workers finish their
in-flight requests within the graceful timeout); a second SIGINT ends at once.
SIGHUP starts a fresh generation of workers and retires the old one once the
new one is ready.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import Config
from ..server.worker import EXIT_APP_LOAD_ERROR, WorkerSpec, run_worker
from . import policy
from .policy import Slot
from .signals import SignalQueue

log = logging.getLogger("corral.error")

EXIT_OK, EXIT_FAILED = 0, 1
_KILL_MARGIN = 5.0  # seconds past the graceful timeout before stragglers get SIGKILL


@dataclass
class WorkerHandle:
    slot: Slot
    pid: int
    channel: socket.socket
    buffer: bytes = b""
    requests: int = 0
    generation: int = 0
    told_to_stop: bool = False


def fork_worker(spec: WorkerSpec, close_in_child: list[socket.socket]) -> int:
    """Fork and run a worker in the child; returns the child's pid in the parent."""
    pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        for sock in close_in_child:
            sock.close()
        status = run_worker(spec)
    except BaseException:
        logging.getLogger("corral.error").exception("Worker crashed")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return 0  # unreachable


@dataclass
class Arbiter:
    config: Config
    sockets: list[socket.socket]
    spawn: Callable[[WorkerSpec, list[socket.socket]], int] = fork_worker
    slots: list[Slot] = field(default_factory=list)
    workers: dict[int, WorkerHandle] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.signals = SignalQueue()
        self.stopping = False
        self.stop_deadline = 0.0
        self.exit_code = EXIT_OK
        self.booted = False
        self.generation = 0
        self.interrupts = 0

    # -- lifecycle -----------------------------------------------------------------

    def run(self) -> int:
        self.signals.install()
        self.selector.register(self.signals.fileno(), selectors.EVENT_READ, None)
        self.slots = [Slot(index) for index in range(self.config.workers)]
        self._spawn(self.slots[0])  # boot one first: a broken app fails once, loudly
        try:
            while self.workers or not self.stopping:
                self._tick()
        finally:
            self.signals.close()
            self.selector.close()
        return self.exit_code

    def _tick(self) -> None:
        now = time.monotonic()
        if self.stopping:
            timeout = max(0.0, min(1.0, self.stop_deadline - now))
            if now >= self.stop_deadline:
                self._kill_all(signal.SIGKILL)
        else:
            if self.booted:
                for slot in policy.due_for_spawn(self.slots, now):
                    self._spawn(slot)
            timeout = policy.next_wakeup(self.slots, now)
        for key, _ in self.selector.select(timeout):
            if key.data is None:
                self.signals.drain_wakeups()
            else:
                self._read_channel(key.data)
        while self.signals.pending:
            self._handle_signal(self.signals.pending.popleft())
        self._reap()

    # -- signals -------------------------------------------------------------------

    def _handle_signal(self, sig: int) -> None:
        if sig == signal.SIGCHLD:
            return  # reaped after every tick
        if sig == signal.SIGINT:
            self.interrupts += 1
            if self.interrupts > 1:
                log.info("Second interrupt: exiting now")
                self._kill_all(signal.SIGKILL)
                self.stop(graceful=False)
                return
        if sig in (signal.SIGTERM, signal.SIGINT):
            log.info("Received %s: finishing in-flight requests (up to %gs)", signal.Signals(sig).name, self.config.graceful_timeout)
            self.stop(graceful=True)
        elif sig == signal.SIGQUIT:
            self.stop(graceful=False)
        elif sig == signal.SIGHUP:
            self.reload()
        elif sig == signal.SIGTTIN:
            self._resize(+1)
        elif sig == signal.SIGTTOU:
            self._resize(-1)

    def stop(self, graceful: bool) -> None:
        if not self.stopping:
            self.stopping = True
            self.stop_deadline = time.monotonic() + (self.config.graceful_timeout + _KILL_MARGIN if graceful else 0)
            self._kill_all(signal.SIGTERM if graceful else signal.SIGKILL)

    def reload(self) -> None:
        """Start a new generation; the old one retires when the new one is ready."""
        log.info("Reloading: starting a new generation of %d workers", len(self.slots))
        self.generation += 1
        old = list(self.slots)
        for slot in old:
            slot.retiring = True
        self.slots = [Slot(index) for index in range(len(old))]
        for slot in self.slots:
            self._spawn(slot)

    def _resize(self, delta: int) -> None:
        count = max(1, len(self.slots) + delta)
        while len(self.slots) < count:
            self.slots.append(Slot(len(self.slots)))
        while len(self.slots) > count:
            slot = self.slots.pop()
            slot.retiring = True
            if slot.pid:
                self._signal(slot.pid, signal.SIGTERM)
        log.info("Now running %d workers", count)

    # -- workers -------------------------------------------------------------------

    def _spawn(self, slot: Slot) -> None:
        parent_end, child_end = socket.socketpair()
        spec = WorkerSpec(self.config, self.sockets, child_end, slot.index)
        others = [parent_end] + [handle.channel for handle in self.workers.values()]
        pid = self.spawn(spec, others)
        child_end.close()
        parent_end.setblocking(False)
        slot.pid = pid
        slot.started = time.monotonic()
        slot.ready = False
        handle = WorkerHandle(slot, pid, parent_end, generation=self.generation)
        self.workers[pid] = handle
        self.selector.register(parent_end, selectors.EVENT_READ, handle)
        log.debug("Booting worker %d (pid %d)", slot.index, pid)

    def _read_channel(self, handle: WorkerHandle) -> None:
        try:
            data = handle.channel.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.selector.unregister(handle.channel)
            return
        handle.buffer += data
        *lines, handle.buffer = handle.buffer.split(b"\n")
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            self._on_message(handle, message)

    def _on_message(self, handle: WorkerHandle, message: dict[str, object]) -> None:
        event = message.get("event")
        if event == "ready":
            handle.slot.ready = True
            if not self.booted:
                self.booted = True
                log.info("Worker %d ready; starting %d more", handle.pid, len(self.slots) - 1)
            self._retire_old_generation()
            if all(slot.ready for slot in self.slots):
                log.info("Corral ready: %d worker(s) x %d thread(s)", len(self.slots), self.config.threads)
        elif event == "heartbeat":
            handle.requests = int(message.get("requests", 0))  # type: ignore[call-overload]
        elif event == "load-error":
            self._on_load_error(handle, str(message.get("message")), message.get("traceback"))

    def _on_load_error(self, handle: WorkerHandle, text: str, user_traceback: object) -> None:
        if user_traceback:
            sys.stderr.write(str(user_traceback))
        if not self.booted:
            sys.stderr.write(f"corral: error: {text}\n")
            sys.stderr.flush()
            self.exit_code = EXIT_FAILED
            self.stop(graceful=False)
        else:
            log.error("Worker could not load the app, old workers keep serving: %s", text)
            for slot in self.slots:
                slot.respawn_at = time.monotonic() + policy.MAX_DELAY

    def _retire_old_generation(self) -> None:
        if not all(slot.ready for slot in self.slots):
            return
        for handle in list(self.workers.values()):
            if handle.generation < self.generation and not handle.told_to_stop:
                handle.told_to_stop = True
                self._signal(handle.pid, signal.SIGTERM)

    def _reap(self) -> None:
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
            try:
                self.selector.unregister(handle.channel)
            except (KeyError, ValueError):
                pass
            handle.channel.close()
            self._on_exit(handle, status)

    def _on_exit(self, handle: WorkerHandle, status: int) -> None:
        slot = handle.slot
        reason = describe_status(status)
        code = os.waitstatus_to_exitcode(status)
        expected = self.stopping or slot.retiring or handle.generation < self.generation
        if code == EXIT_APP_LOAD_ERROR:
            slot.pid = None
            if not self.booted and not self.stopping:
                self.exit_code = EXIT_FAILED
                self.stop(graceful=False)
            else:
                policy.record_exit(slot, time.monotonic())
            return
        if expected:
            log.debug("Worker %d exited (%s)", handle.pid, reason)
            slot.pid = None
            return
        log.error("Worker %d died (%s); restarting", handle.pid, reason)
        policy.record_exit(slot, time.monotonic())
        if slot.crashes > 1:
            log.warning("Worker slot %d crashed %d times in a row; next start in %.1fs", slot.index, slot.crashes, policy.restart_delay(slot.crashes))
        if not self.booted:
            self.exit_code = EXIT_FAILED
            self.stop(graceful=False)

    def _kill_all(self, sig: int) -> None:
        for pid in list(self.workers):
            self._signal(pid, sig)

    def _signal(self, pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                raise


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"killed by {name}"
    return f"exit status {os.WEXITSTATUS(status)}"
