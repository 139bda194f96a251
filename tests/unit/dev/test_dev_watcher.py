"""dev/watcher.py on real directories: what is watched, and that a change is reported once watching.

Changes arrive from the watcher's thread; each wait is on an event with a deadline.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.dev import watcher
from corral.dev.watcher import FileWatcher

DEADLINE = 10.0


class Changes:
    """Collects the batches; `wait_for(path)` returns once a batch named it."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self._cond = threading.Condition()

    def __call__(self, paths: set[str]) -> None:
        with self._cond:
            self.seen |= paths
            self._cond.notify_all()

    def wait_for(self, path: Path) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: str(path) in self.seen, DEADLINE)


@pytest.fixture
def changes() -> Changes:
    return Changes()


@pytest.fixture
def files(changes: Changes) -> Iterator[FileWatcher]:
    running = FileWatcher(changes)
    yield running
    running.close()


def test_add_dirs_reports_whether_anything_was_new(files: FileWatcher, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert files.watched() == frozenset()
    assert files.add_dirs([str(a)]) is True
    assert files.add_dirs([str(a)]) is False  # nothing new: the notifier is kept
    assert files.add_dirs([str(a), str(b), str(tmp_path / "missing")]) is True  # missing ones are ignored
    assert files.watched() == {str(a), str(b)}
    assert files.watched(recursive=True) == frozenset()  # flat and recursive are separate sets
    assert files.add_dirs([str(tmp_path / "missing")]) is False


def test_a_change_is_seen_once_add_returns(files: FileWatcher, changes: Changes, tmp_path: Path) -> None:
    files.add_dirs([str(tmp_path)])
    target = tmp_path / "views.py"
    target.write_text("x = 1\n")
    assert changes.wait_for(target)


def test_flat_directories_do_not_see_into_subdirectories(files: FileWatcher, changes: Changes,
                                                         tmp_path: Path) -> None:
    (tmp_path / "node_modules").mkdir()
    files.add_dirs([str(tmp_path)])
    (tmp_path / "node_modules" / "deep.js").write_text("")
    marker = tmp_path / "marker.py"
    marker.write_text("")  # after the deep write: once the marker is seen, the deep one would have been too
    assert changes.wait_for(marker)
    assert str(tmp_path / "node_modules" / "deep.js") not in changes.seen


def test_trees_are_watched_recursively(files: FileWatcher, changes: Changes, tmp_path: Path) -> None:
    (tmp_path / "templates" / "polls").mkdir(parents=True)
    assert files.add_trees([str(tmp_path / "templates")]) is True
    assert files.watched(recursive=True) == {str(tmp_path / "templates")}
    deep = tmp_path / "templates" / "polls" / "index.html"
    deep.write_text("<p>")
    assert changes.wait_for(deep)


def test_growing_the_set_keeps_watching_the_old_directories(files: FileWatcher, changes: Changes,
                                                            tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    files.add_dirs([str(first)])
    files.add_dirs([str(second)])  # a new notifier over both; the old one stops
    (first / "a.py").write_text("")
    (second / "b.py").write_text("")
    assert changes.wait_for(first / "a.py") and changes.wait_for(second / "b.py")


def test_close_stops_reporting(changes: Changes, tmp_path: Path) -> None:
    files = FileWatcher(changes)
    files.add_dirs([str(tmp_path)])
    files.close()
    assert files.watched() == frozenset()
    assert not any(t.name == "corral-watch" and t.is_alive() for t in threading.enumerate())


@pytest.mark.parametrize(("value", "polling"), [("", False), ("1", True), ("true", True), ("false", False),
                                                ("disabled", False), ("DISABLE", False)])
def test_force_polling_follows_watchfiles(monkeypatch: pytest.MonkeyPatch, value: str, polling: bool) -> None:
    monkeypatch.setenv("WATCHFILES_FORCE_POLLING", value)
    assert watcher._force_polling() is polling


def test_poll_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHFILES_POLL_DELAY_MS", raising=False)
    assert watcher._poll_delay_ms() == 300
    monkeypatch.setenv("WATCHFILES_POLL_DELAY_MS", "50")
    assert watcher._poll_delay_ms() == 50
    monkeypatch.setenv("WATCHFILES_POLL_DELAY_MS", "fast")
    assert watcher._poll_delay_ms() == 300


def test_polling_mode_sees_changes_too(monkeypatch: pytest.MonkeyPatch, changes: Changes, tmp_path: Path) -> None:
    monkeypatch.setenv("WATCHFILES_FORCE_POLLING", "1")
    monkeypatch.setenv("WATCHFILES_POLL_DELAY_MS", "20")
    files = FileWatcher(changes)
    try:
        files.add_dirs([str(tmp_path)])
        target = tmp_path / "polled.py"
        target.write_text("")
        os.utime(target)
        assert changes.wait_for(target)
    finally:
        files.close()
