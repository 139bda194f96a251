"""What `corral status` shows: the master's view of every site and worker, as data."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from ..server.watchdog import rss_bytes

if TYPE_CHECKING:
    from .arbiter import Arbiter, WorkerHandle


def worker_state(handle: WorkerHandle, stopping: bool) -> str:
    if handle.kill_at:
        return "hung"
    if handle.told_to_stop or stopping:
        return "draining"
    return "ready" if handle.slot.ready else "booting"


def status(arbiter: Arbiter) -> dict[str, Any]:
    now = time.monotonic()
    sites = []
    for group in arbiter.groups:
        workers = [
            {
                "pid": handle.pid,
                "state": worker_state(handle, arbiter.stopping),
                "requests": handle.requests,
                "in_flight": handle.in_flight,
                "connections": handle.connections,
                "rss_mib": round(rss_bytes(handle.pid) / 1048576, 1),
                "age": round(now - handle.started, 1),
                "generation": handle.generation,
                "accepting": handle.accepting,
            }
            for handle in arbiter.workers.values()
            if handle.group is group
        ]
        sites.append(
            {
                "name": group.name,
                "processes": len(group.slots),
                "threads": group.config.threads,
                "down": group.down,
                "restarts": dict(group.restarts),
                "last_reload": _last_reload(arbiter, group.name),
                "workers": sorted(workers, key=lambda w: int(w["pid"])),  # type: ignore[call-overload]
            }
        )
    return {
        "pid": os.getpid(),
        "uptime": round(now - arbiter.started, 1),
        "draining": arbiter.stopping,
        # --shutdown-delay: /readyz already fails, the workers still serve for this many seconds.
        "shutdown_delay_left": round(max(0.0, arbiter.delay_until - now), 1) if arbiter.delay_until else None,
        "ready": arbiter.announced and not arbiter.stopping and not arbiter.delay_until,
        "sites": sites,
    }


def _last_reload(arbiter: Arbiter, site: str) -> dict[str, Any] | None:
    record = arbiter.lifecycle.reloads.get(site)
    return None if record is None else record.to_dict()


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
