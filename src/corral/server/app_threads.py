"""The threads a worker runs its app in (--threads N): N threads taking work from one queue.

concurrent.futures.ThreadPoolExecutor did the same with a Future per request (a Condition
and its lock each), a work-item object and an idle semaphore to adjust; nobody here waits
on those futures (a request reports back through the loop, see threaded.py), so this pool
keeps only what is used: a SimpleQueue of (function, argument) pairs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any

log = logging.getLogger("corral.error")

_STOP = None  # put once per thread: each returns when it takes one


class AppThreads:
    """`count` threads, started on first use, running submitted calls in order of arrival."""

    def __init__(self, count: int, name_prefix: str) -> None:
        self.count = count
        self._name_prefix = name_prefix
        self._queue: SimpleQueue[tuple[Callable[[Any], object], Any] | None] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopped = False

    def submit(self, function: Callable[[Any], object], argument: Any) -> None:
        if self._stopped:
            raise RuntimeError("cannot run app code after the worker's threads stopped")
        if len(self._threads) < self.count:
            self._start_threads()
        self._queue.put((function, argument))

    def shutdown(self, wait: bool = False, cancel_futures: bool = True) -> None:
        """Stop the threads once their current call returns; with cancel_futures, queued calls never run."""
        with self._lock:
            self._stopped = True
            if cancel_futures:
                while True:
                    try:
                        self._queue.get_nowait()
                    except Empty:
                        break
            for _ in self._threads:
                self._queue.put(_STOP)
        if wait:
            for thread in self._threads:
                thread.join()

    def _start_threads(self) -> None:
        # All at once on the first request: a thread costs a mostly untouched stack, and
        # starting them one by one would need an idle count kept under a lock per request.
        with self._lock:
            while len(self._threads) < self.count and not self._stopped:
                thread = threading.Thread(target=self._run, name=f"{self._name_prefix}_{len(self._threads)}",
                                          daemon=True)
                thread.start()
                self._threads.append(thread)

    def _run(self) -> None:
        take = self._queue.get
        while (item := take()) is not None:
            function, argument = item
            try:
                function(argument)
            except BaseException:  # run_threaded answers for the app; this is a bug of ours
                log.exception("Unexpected error in an app thread")
            del item, function, argument  # not kept alive while this thread waits for more
