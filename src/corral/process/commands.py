"""The control socket's commands (`corral status`, `reload [SITE]`, `stop`) answered as data.

control.py carries the JSON lines; this module decides what each command
means, against a narrow view of the master (`Steerable`), so it is tested
without a master process.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

log = logging.getLogger("corral.error")


class Steerable(Protocol):
    """What the control commands may read and ask of the master."""

    @property
    def site_names(self) -> list[str]: ...

    @property
    def shutting_down(self) -> bool: ...  # stopping, or in --shutdown-delay

    def status(self) -> dict[str, Any]: ...

    def reload(self, site: str | None = None) -> None: ...

    def request_stop(self, graceful: bool, why: str = "") -> None: ...


def answer(master: Steerable, message: dict[str, Any]) -> dict[str, Any]:
    """Answer one control-socket command; a command that cannot be done says why."""
    command = message.get("command")
    if command == "status":
        return master.status()
    if command == "reload":
        site = message.get("site")
        names = master.site_names
        if site is not None and site not in names:
            return {"error": f"no site named {site!r}; sites: {', '.join(names)}"}
        if master.shutting_down:
            return {"error": "the server is stopping; not reloading"}
        master.reload(site)
        return {"ok": True, "reloading": site or "all"}
    if command == "stop":
        graceful = bool(message.get("graceful", True))
        why = f"Stop requested over the control socket ({'graceful' if graceful else 'immediate'})"
        if not graceful:
            log.info("%s", why)
        master.request_stop(graceful=graceful, why=why)
        return {"ok": True}
    return {"error": f"unknown command {command!r}; expected status, reload or stop"}
