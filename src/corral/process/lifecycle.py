"""What the master tells the world about starting, reloading and stopping.

How this works: the arbiter reports the milestones of its life here (ready, a
reload started, a group's new generation serving, its old generation gone, a
reload abandoned, a stop asked for, the last worker gone), and this module
turns each into the log line an operator reads, the sd_notify message systemd
waits for (notify.py) and the record `corral status` shows (the last reload of
each site, with its outcome, time and reason). The arbiter keeps the decisions;
nothing here signals a process or changes a worker.

A reload is "serving" once every new worker is ready (systemd gets READY=1:
the new code answers) and "done" once the last worker of the old generation
has exited, which may be up to --keepalive-timeout later (retired workers close
idle keep-alive connections only at their own idle deadline).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from .notify import Notifier

log = logging.getLogger("corral.error")


@dataclass
class ReloadRecord:
    """One site's last reload, as `corral status` shows it."""

    site: str
    started: float  # monotonic
    started_at: float  # wall clock (Unix seconds), for `corral status`
    state: str = "starting"  # starting -> serving -> done, or failed
    serving_after: float | None = None  # seconds from the start until the new generation served
    finished_after: float | None = None  # seconds until the old generation was gone (or the failure)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "ok": self.state != "failed",
            "started_at": round(self.started_at, 3),
            "serving_after": None if self.serving_after is None else round(self.serving_after, 3),
            "finished_after": None if self.finished_after is None else round(self.finished_after, 3),
            "error": self.error,
        }


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class Lifecycle:
    def __init__(self, notifier: Notifier | None = None) -> None:
        self.notifier = notifier or Notifier(None)
        self.reloads: dict[str, ReloadRecord] = {}  # site name -> its last reload
        self.stop_started = 0.0  # monotonic; 0 until a stop is asked for
        self.stop_graceful = True
        self.delay = 0.0  # the --shutdown-delay this stop began with
        self.killed = 0  # workers killed at the graceful timeout
        self.summary = ""  # what is serving, e.g. "2 workers x 1 thread"

    # -- start ----------------------------------------------------------------------------

    def ready(self, summary: str) -> None:
        self.summary = summary
        self.notifier.ready(f"{summary} serving")

    # -- reload ---------------------------------------------------------------------------

    def reload_started(self, site: str, label: str, workers: int) -> None:
        self.reloads[site] = ReloadRecord(site, time.monotonic(), time.time())
        self.notifier.reloading(f"Reloading {label}: starting {plural(workers, 'new worker')}")

    def generation_serving(self, site: str, label: str, workers: int, old_left: int) -> None:
        """Every worker of the group's new generation is ready; `old_left` old ones still run."""
        record = self.reloads.get(site)
        if record is None or record.state != "starting":
            return  # a respawn or the first boot, not a reload
        record.state = "serving"
        record.serving_after = time.monotonic() - record.started
        if old_left:
            log.info(
                "Reload of %s: %s serving after %.1f s; retiring %s",
                label, plural(workers, "new worker"), record.serving_after, plural(old_left, "old one"),
            )
        self._reload_settled()
        if not old_left:
            self.generation_retired(site, label, workers)

    def generation_retired(self, site: str, label: str, workers: int) -> None:
        """The last worker of the old generation has exited."""
        record = self.reloads.get(site)
        if record is None or record.state != "serving":
            return
        record.state = "done"
        record.finished_after = time.monotonic() - record.started
        where = "" if label == "app" else f" ({label})"
        log.info(
            "Reload finished%s: %s serving, old generation retired in %.1f s",
            where, plural(workers, "new worker"), record.finished_after,
        )

    def reload_failed(self, site: str, label: str, error: str, old_serving: bool) -> None:
        record = self.reloads.get(site)
        if record is None or record.state != "starting":
            return  # not reloading: a crash or a start that failed, reported by the arbiter
        record.state = "failed"
        record.finished_after = time.monotonic() - record.started
        record.error = error
        kept = "the old workers keep serving" if old_serving else "it is backed off"
        self._reload_settled(f"Reload of {label} failed; {kept}: {error}")

    def _reload_settled(self, status: str | None = None) -> None:
        """READY=1 again once no group is still starting its new generation (systemd waits for it)."""
        if any(record.state == "starting" for record in self.reloads.values()):
            if status:
                self.notifier.status(status)
            return
        if self.stop_started:
            return  # stopping: READY=1 would tell systemd the opposite
        self.notifier.ready(status or f"{self.summary} serving (reloaded)")

    # -- stop -----------------------------------------------------------------------------

    def stop_requested(self, graceful: bool, delay: float) -> None:
        """A stop asked for from outside (a signal, `corral stop`); the first one counts."""
        if self.stop_started:
            self.stop_graceful = self.stop_graceful and graceful  # e.g. a second Ctrl-C
            return
        self.stop_started = time.monotonic()
        self.stop_graceful = graceful
        self.delay = delay if graceful else 0.0
        if self.delay:
            self.notifier.stopping(f"Shutting down: /readyz fails, still serving for {self.delay:g} s")
        else:
            self.notifier.stopping("Draining: finishing in-flight requests" if graceful else "Stopping now")

    def draining(self, in_flight: int) -> None:
        """The shutdown delay is over (or skipped): workers stop accepting and finish."""
        self.notifier.status(f"Draining: finishing {plural(in_flight, 'in-flight request')}")

    def stopped(self) -> None:
        """The last worker is gone; said only for a stop someone asked for."""
        if not self.stop_started:
            return
        details = ["graceful" if self.stop_graceful else "immediate"]
        if self.delay:
            details.append(f"after a {self.delay:g} s shutdown delay")
        if self.killed:
            details.append(f"{plural(self.killed, 'worker')} killed at the graceful timeout")
        log.info("Stopped (%s) in %.1f s", ", ".join(details), time.monotonic() - self.stop_started)
        self.notifier.close()
