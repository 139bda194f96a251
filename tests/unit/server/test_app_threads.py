"""The worker's app threads (server/app_threads.py)."""

from __future__ import annotations

import threading
import time

import pytest

from corral.server.app_threads import AppThreads


def test_calls_run_on_named_threads_up_to_the_count_at_once() -> None:
    pool = AppThreads(3, "test-app")
    started = threading.Semaphore(0)
    release = threading.Event()
    names: list[str] = []
    lock = threading.Lock()

    def call(n: int) -> None:
        with lock:
            names.append(threading.current_thread().name)
        started.release()
        release.wait(10)

    try:
        for n in range(5):
            pool.submit(call, n)
        for _ in range(3):
            assert started.acquire(timeout=10)
        assert not started.acquire(timeout=0.2)  # the other two wait for a free thread
        release.set()
        for _ in range(2):
            assert started.acquire(timeout=10)
        assert set(names) <= {"test-app_0", "test-app_1", "test-app_2"} and len(set(names)) == 3
    finally:
        release.set()
        pool.shutdown(wait=True)


def test_an_exception_is_logged_and_the_thread_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    pool = AppThreads(1, "test-app")
    done = threading.Event()

    def broken(_: object) -> None:
        raise ValueError("bug")

    try:
        pool.submit(broken, None)
        pool.submit(lambda _: done.set(), None)
        assert done.wait(10)
    finally:
        pool.shutdown(wait=True)
    assert "Unexpected error in an app thread" in caplog.text and "ValueError: bug" in caplog.text


def test_shutdown_cancels_what_is_queued_and_refuses_more() -> None:
    pool = AppThreads(1, "test-app")
    busy = threading.Event()
    release = threading.Event()
    ran: list[int] = []

    def call(n: int) -> None:
        ran.append(n)
        busy.set()
        release.wait(10)

    pool.submit(call, 1)
    assert busy.wait(10)
    pool.submit(call, 2)  # queued behind the busy thread
    pool.shutdown(wait=False, cancel_futures=True)
    release.set()
    started = time.monotonic()
    pool.shutdown(wait=True)
    assert time.monotonic() - started < 10
    assert ran == [1]
    with pytest.raises(RuntimeError, match="threads stopped"):
        pool.submit(call, 3)
