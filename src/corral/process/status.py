"""What `corral status` shows: the master's view of every site and worker, as data.

`snapshot` reads the master through `MasterView` (a Protocol the arbiter
satisfies), never the arbiter itself: status depends on workers.py, not on the loop.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..server.watchdog import rss_bytes
from .lifecycle import ReloadRecord
from .workers import Group, WorkerHandle, of_group


class MasterView(Protocol):
    """What status reads of the master (read-only)."""

    @property
    def groups(self) -> Sequence[Group]: ...

    @property
    def workers(self) -> Mapping[int, WorkerHandle]: ...

    @property
    def stopping(self) -> bool: ...

    @property
    def started(self) -> float: ...  # monotonic

    @property
    def delay_until(self) -> float: ...  # --shutdown-delay ends then (monotonic); 0: not delaying

    @property
    def announced(self) -> bool: ...  # said "Corral ready"

    @property
    def reloads(self) -> Mapping[str, ReloadRecord]: ...  # site name -> its last reload


def worker_state(handle: WorkerHandle, stopping: bool) -> str:
    if handle.kill_at:
        return "hung"
    if handle.told_to_stop or stopping:
        return "draining"
    return "ready" if handle.slot.ready else "booting"


def snapshot(master: MasterView) -> dict[str, Any]:
    now = time.monotonic()
    sites = []
    for group in master.groups:
        workers = [
            {
                "pid": handle.pid,
                "state": worker_state(handle, master.stopping),
                "requests": handle.requests,
                "in_flight": handle.in_flight,
                "connections": handle.connections,
                "rss_mib": round(rss_bytes(handle.pid) / 1048576, 1),
                "age": round(now - handle.started, 1),
                "generation": handle.generation,
                "accepting": handle.accepting,
            }
            for handle in of_group(master.workers.values(), group)
        ]
        record = master.reloads.get(group.name)
        sites.append(
            {
                "name": group.name,
                "processes": len(group.slots),
                "threads": group.config.threads,
                "down": group.down,
                "restarts": dict(group.restarts),
                "last_reload": None if record is None else record.to_dict(),
                "workers": sorted(workers, key=lambda w: int(w["pid"])),  # type: ignore[call-overload]
            }
        )
    return {
        "pid": os.getpid(),
        "uptime": round(now - master.started, 1),
        "draining": master.stopping,
        # --shutdown-delay: /readyz already fails, the workers still serve for this many seconds.
        "shutdown_delay_left": round(max(0.0, master.delay_until - now), 1) if master.delay_until else None,
        "ready": master.announced and not master.stopping and not master.delay_until,
        "sites": sites,
    }


def describe_reload(reload: dict[str, Any], now: float) -> str:
    """One line on a site's last reload, e.g. "failed 12s ago (10:04:31): SyntaxError ..."."""
    clock = time.strftime("%H:%M:%S", time.localtime(reload["started_at"]))
    when = f"{max(0.0, now - reload['started_at']):.0f}s ago ({clock})"
    state = reload["state"]
    if state == "failed":
        return f"FAILED {when}: {reload['error']}"
    if state == "done":
        return f"done {when}, old generation retired in {reload['finished_after']:.1f} s"
    if state == "serving":
        return f"serving {when}; old workers retiring"
    return f"starting new workers since {when}"


def render(data: dict[str, Any], now: float | None = None) -> str:
    """The human-readable table `corral status` prints."""
    now = time.time() if now is None else now
    state = ", draining" if data["draining"] else ""
    if data.get("shutdown_delay_left") is not None:
        state = f", shutting down (draining in {data['shutdown_delay_left']:.0f}s)"
    lines = [f"corral master pid {data['pid']}, up {data['uptime']:.0f}s{state}"]
    for site in data["sites"]:
        restarts = ", ".join(f"{k} {v}" for k, v in sorted(site["restarts"].items())) or "none"
        down = " (DOWN)" if site["down"] else ""
        lines.append(
            f"site {site['name']}{down}: {site['processes']} x {site['threads']} threads; restarts: {restarts}"
        )
        if site.get("last_reload"):
            lines.append(f"  last reload: {describe_reload(site['last_reload'], now)}")
        header = f"  {'PID':>7}  {'STATE':9} {'REQUESTS':>9} {'IN FLIGHT':>9} {'CONNS':>6} {'RSS MiB':>8} {'AGE s':>7}"
        lines.append(header)
        for w in site["workers"]:
            lines.append(
                f"  {w['pid']:>7}  {w['state']:9} {w['requests']:>9} {w['in_flight']:>9} {w['connections']:>6} "
                f"{w['rss_mib']:>8} {w['age']:>7.0f}"
            )
    return "\n".join(lines)
