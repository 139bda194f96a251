"""File-system watching for the reloader, on watchfiles' notify backend.

How this works: a `Notifier` owns one watchfiles `RustNotify` (inotify, FSEvents,
... or polling) over a fixed set of paths, and a thread that waits on it and
hands each batch of changed paths to a callback. `RustNotify` sets its watches
up when it is constructed, so once `FileWatcher.add_*` returns, any later change
is seen: the reloader relies on that to announce "ready" only when watching.
Adding directories builds a new notifier over the larger set, then stops the
old one, so there is no moment when nothing watches.

Directories holding imported modules are watched flat (not recursively): a
project's tree may hold a virtualenv or node_modules that nobody wants the
kernel to track. Paths given with --watch are watched recursively.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable

from watchfiles._rust_notify import RustNotify

ChangeCallback = Callable[[set[str]], None]

STEP_MS = 50  # a batch is reported after this long without a new change
DEBOUNCE_MS = 500  # ...and at the latest this long after its first change


def _force_polling() -> bool:
    """WATCHFILES_FORCE_POLLING, with watchfiles' meaning (for network and WSL mounts)."""
    value = os.environ.get("WATCHFILES_FORCE_POLLING", "")
    return bool(value) and value.lower() not in ("false", "disable", "disabled")


def _poll_delay_ms() -> int:
    value = os.environ.get("WATCHFILES_POLL_DELAY_MS", "")
    return int(value) if value.isdigit() else 300


class Notifier:
    """One RustNotify over fixed paths, drained by a daemon thread."""

    def __init__(self, paths: Iterable[str], recursive: bool, on_change: ChangeCallback) -> None:
        self.paths = frozenset(paths)
        self._notify = RustNotify(sorted(self.paths), False, _force_polling(), _poll_delay_ms(), recursive, True)
        self._stop = threading.Event()
        self._on_change = on_change
        self._thread = threading.Thread(target=self._run, name="corral-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                # timeout 0: wait until a change or the stop event (checked every step)
                result = self._notify.watch(DEBOUNCE_MS, STEP_MS, 0, self._stop)
                if isinstance(result, set):
                    self._on_change({path for _, path in result})
                elif result == "stop":
                    return
        finally:
            self._notify.close()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


class FileWatcher:
    """Flat directories plus recursive trees; reports changed paths to `on_change` (from a thread)."""

    def __init__(self, on_change: ChangeCallback) -> None:
        self._on_change = on_change
        self._notifiers: dict[bool, Notifier] = {}

    def watched(self, recursive: bool = False) -> frozenset[str]:
        notifier = self._notifiers.get(recursive)
        return notifier.paths if notifier else frozenset()

    def add_dirs(self, dirs: Iterable[str]) -> bool:
        """Watch these directories (flat) too; True if any was new."""
        return self._add(dirs, recursive=False)

    def add_trees(self, trees: Iterable[str]) -> bool:
        return self._add(trees, recursive=True)

    def _add(self, paths: Iterable[str], recursive: bool) -> bool:
        old = self._notifiers.get(recursive)
        current = old.paths if old else frozenset()
        wanted = current | {path for path in paths if os.path.isdir(path)}
        if wanted == current:
            return False
        try:
            notifier = Notifier(wanted, recursive, self._on_change)
        except FileNotFoundError:  # a directory vanished since isdir(): try once more without it
            wanted = frozenset(path for path in wanted if os.path.isdir(path))
            notifier = Notifier(wanted, recursive, self._on_change)
        self._notifiers[recursive] = notifier
        if old is not None:
            old.stop()
        return True

    def close(self) -> None:
        notifiers = list(self._notifiers.values())
        self._notifiers.clear()
        for notifier in notifiers:
            notifier.stop()
        for notifier in notifiers:
            notifier.join(1.0)
