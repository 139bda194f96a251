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
                "last_reload": dict(group.last_reload) if group.last_reload else None,
                "workers": sorted(workers, key=lambda w: int(w["pid"])),  # type: ignore[call-overload]
            }
        )
    return {
        "pid": os.getpid(),
        "uptime": round(now - arbiter.started, 1),
        "draining": arbiter.stopping,
        "ready": arbiter.announced and not arbiter.stopping,
        "sites": sites,
    }


def render(data: dict[str, Any]) -> str:
    """The human-readable table `corral status` prints."""
    lines = [f"corral master pid {data['pid']}, up {data['uptime']:.0f}s{', draining' if data['draining'] else ''}"]
    for site in data["sites"]:
        restarts = ", ".join(f"{k} {v}" for k, v in sorted(site["restarts"].items())) or "none"
        down = " (DOWN)" if site["down"] else ""
        lines.append(
            f"site {site['name']}{down}: {site['processes']} x {site['threads']} threads; restarts: {restarts}"
        )
        header = f"  {'PID':>7}  {'STATE':9} {'REQUESTS':>9} {'IN FLIGHT':>9} {'CONNS':>6} {'RSS MiB':>8} {'AGE s':>7}"
        reload = site.get("last_reload")
        if reload:
            error = f": {reload['error']}" if reload.get("error") else ""
            lines.append(f"  last reload (generation {reload['generation']}): {reload['state']}{error}")
        lines.append(header)
        for w in site["workers"]:
            lines.append(
                f"  {w['pid']:>7}  {w['state']:9} {w['requests']:>9} {w['in_flight']:>9} {w['connections']:>6} "
                f"{w['rss_mib']:>8} {w['age']:>7.0f}"
            )
    return "\n".join(lines)
