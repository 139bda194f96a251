"""What the master knows about its sites and workers, for metrics, probes and `status`.

How this works: the arbiter reports events as they happen (a worker started,
became ready, was told to stop, sent a heartbeat, exited); `MasterStats` keeps
the latest heartbeat snapshot of each live worker and, per site, the sum of
the last snapshots of the workers that exited, so totals never go backwards
when a worker is replaced. `state()` returns an immutable `ServerState` built
under a lock: the arbiter calls the event methods on its own thread while the
metrics server's threads read, and neither waits on the other for more than a
few dict operations.

Counts a worker made after its last heartbeat are lost if it dies without
another (SIGKILL); a worker that exits gracefully should send a last heartbeat.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .stats import SNAPSHOT_VERSION, add_site, empty_site

# Why a worker was replaced: the `cause` label of corral_worker_restarts_total.
CAUSES = ("exit", "signal", "memory", "timeout", "max-requests", "reload")


def exit_cause(status: int) -> str:
    """The restart cause of a worker that died on its own, from its `os.waitpid` status."""
    return "signal" if os.WIFSIGNALED(status) else "exit"


@dataclass(frozen=True)
class WorkerInfo:
    pid: int
    site: str
    ready: bool  # sent "ready" and serving
    draining: bool  # told to stop: finishing its in-flight requests, not accepting
    requests: int  # responses served (from its last heartbeat)
    in_flight: int
    connections: int
    rss: int  # bytes; 0 when not reported
    age: float  # seconds since it was started

    @property
    def state(self) -> str:
        return "draining" if self.draining else "ready" if self.ready else "booting"


@dataclass(frozen=True)
class SiteState:
    name: str
    workers: tuple[WorkerInfo, ...]
    desired_workers: int
    draining: bool  # the whole site is stopping
    down: bool  # its app failed to load; backed off
    restarts: dict[str, int]  # cause -> count
    stats: dict[str, Any]  # cumulative counters, shaped like one site of a WorkerStats snapshot
    connections_total: int

    @property
    def ready(self) -> bool:
        """At least one worker is ready and not draining, and the site is not stopping."""
        return not self.draining and any(w.ready and not w.draining for w in self.workers)


@dataclass(frozen=True)
class ServerState:
    sites: tuple[SiteState, ...]
    stopping: bool
    started: float  # wall-clock time the master started (Unix seconds)

    @property
    def ready(self) -> bool:
        return not self.stopping and bool(self.sites) and all(site.ready for site in self.sites)

    def not_ready_reasons(self) -> list[str]:
        if self.stopping:
            return ["the server is stopping"]
        if not self.sites:
            return ["no site is configured"]
        reasons = []
        for site in self.sites:
            if site.draining:
                reasons.append(f"site {site.name!r} is draining")
            elif not site.ready:
                why = " (its app failed to load)" if site.down else ""
                reasons.append(f"site {site.name!r} has no ready worker{why}")
        return reasons

    def to_dict(self) -> dict[str, Any]:
        """Plain data for `corral status --json` (no counters: /metrics has those)."""
        return {
            "ready": self.ready,
            "stopping": self.stopping,
            "uptime": round(max(0.0, time.time() - self.started), 3),
            "sites": [
                {
                    "name": site.name,
                    "ready": site.ready,
                    "draining": site.draining,
                    "down": site.down,
                    "desired_workers": site.desired_workers,
                    "requests": total_requests(site.stats),
                    "restarts": dict(site.restarts),
                    "workers": [
                        {
                            "pid": w.pid,
                            "state": w.state,
                            "requests": w.requests,
                            "in_flight": w.in_flight,
                            "connections": w.connections,
                            "rss": w.rss,
                            "age": round(w.age, 3),
                        }
                        for w in site.workers
                    ],
                }
                for site in self.sites
            ],
        }


def total_requests(site_stats: dict[str, Any]) -> int:
    return sum(sum(by_class.values()) for by_class in site_stats.get("requests", {}).values())


@dataclass
class _Worker:
    pid: int
    site: str
    started: float  # monotonic
    ready: bool = False
    draining: bool = False
    rss: int = 0
    snapshot: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Site:
    name: str
    desired_workers: int = 0
    draining: bool = False
    down: bool = False
    restarts: dict[str, int] = field(default_factory=dict)
    retired: dict[str, Any] = field(default_factory=empty_site)  # exited workers' last counters
    retired_connections: int = 0


class MasterStats:
    """Thread-safe record of the master's workers; `state` is the metrics server's provider."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sites: dict[str, _Site] = {}
        self._workers: dict[int, _Worker] = {}
        self._stopping = False
        self._started = time.time()

    # -- events from the arbiter (its own thread) -------------------------------------

    def add_site(self, name: str, workers: int) -> None:
        """Declare a site and how many workers it should have (again on resize)."""
        with self._lock:
            self._site(name).desired_workers = workers

    def worker_started(self, pid: int, site: str) -> None:
        with self._lock:
            self._site(site)
            self._workers[pid] = _Worker(pid, site, time.monotonic())

    def worker_ready(self, pid: int) -> None:
        with self._lock:
            worker = self._workers.get(pid)
            if worker is not None:
                worker.ready = True
                self._sites[worker.site].down = False

    def worker_draining(self, pid: int) -> None:
        """The worker was told to stop (reload, recycling, resize): it no longer counts as ready."""
        with self._lock:
            worker = self._workers.get(pid)
            if worker is not None:
                worker.draining = True

    def heartbeat(self, pid: int, snapshot: dict[str, Any] | None, rss: int | None = None) -> None:
        """The latest `WorkerStats.snapshot()` of a worker (and its RSS in bytes, if known)."""
        with self._lock:
            worker = self._workers.get(pid)
            if worker is None:
                return
            if isinstance(snapshot, dict) and snapshot.get("v") == SNAPSHOT_VERSION:
                worker.snapshot = snapshot
            if rss is not None:
                worker.rss = int(rss)

    def worker_exited(self, pid: int, cause: str | None) -> None:
        """Fold the worker's last counters into its site; count a restart unless `cause` is None.

        `cause` is one of CAUSES for a worker that is replaced (a crash: "exit" or
        "signal"; a recycle: "memory", "timeout", "max-requests"; "reload"), None for
        one that simply stopped (server shutdown, fewer workers).
        """
        with self._lock:
            worker = self._workers.pop(pid, None)
            if worker is None:
                return
            site = self._sites[worker.site]
            snapshot = worker.snapshot
            for name, counters in snapshot.get("sites", {}).items():
                add_site(self._site(name).retired, counters)
            site.retired_connections += int(snapshot.get("connections_total", 0))
            if cause is not None:
                site.restarts[cause] = site.restarts.get(cause, 0) + 1

    def site_down(self, name: str, down: bool = True) -> None:
        """The site's app failed to load and it is backed off (cleared by the next ready worker)."""
        with self._lock:
            self._site(name).down = down

    def set_draining(self, site: str | None = None, draining: bool = True) -> None:
        """A site (None: the whole server) is stopping: readiness fails from now on."""
        with self._lock:
            if site is None:
                self._stopping = draining
            else:
                self._site(site).draining = draining

    # -- reading (any thread) ---------------------------------------------------------

    def state(self) -> ServerState:
        with self._lock:
            now = time.monotonic()
            sites = []
            for site in self._sites.values():
                stats = empty_site()
                add_site(stats, site.retired)
                connections_total = site.retired_connections
                workers = []
                for worker in self._workers.values():
                    snapshot = worker.snapshot
                    counters = snapshot.get("sites", {})
                    if site.name in counters:
                        add_site(stats, counters[site.name])
                    if worker.site != site.name:
                        continue
                    connections_total += int(snapshot.get("connections_total", 0))
                    workers.append(
                        WorkerInfo(
                            pid=worker.pid,
                            site=worker.site,
                            ready=worker.ready,
                            draining=worker.draining,
                            requests=sum(total_requests(c) for c in counters.values()),
                            in_flight=int(snapshot.get("in_flight", 0)),
                            connections=int(snapshot.get("connections", 0)),
                            rss=worker.rss,
                            age=now - worker.started,
                        )
                    )
                sites.append(
                    SiteState(
                        name=site.name,
                        workers=tuple(workers),
                        desired_workers=site.desired_workers,
                        draining=site.draining,
                        down=site.down,
                        restarts=dict(site.restarts),
                        stats=stats,
                        connections_total=connections_total,
                    )
                )
            return ServerState(sites=tuple(sites), stopping=self._stopping, started=self._started)

    def _site(self, name: str) -> _Site:
        site = self._sites.get(name)
        if site is None:
            site = self._sites[name] = _Site(name)
        return site
