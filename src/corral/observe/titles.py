"""Process titles, so `ps` and `top` tell the master from each site's workers.

    corral: master
    corral: worker site=blog

setproctitle rewrites the argv area that `ps` shows (moving environ out of
the way, which is the fiddly part) and, on Linux, also sets the 15-character
name in /proc/self/comm that `top` and `ps -o comm` show. Without it (not
installed, or a platform it does not support) we still set that short name
where the kernel offers it, and otherwise do nothing: a title is a
convenience, never a reason to fail.
"""

from __future__ import annotations

import logging

log = logging.getLogger("corral.error")

PREFIX = "corral: "


def process_title(role: str, **labels: object) -> str:
    """`process_title("worker", site="blog")` -> "corral: worker site=blog"."""
    extra = "".join(f" {key}={value}" for key, value in labels.items() if value is not None and value != "")
    return f"{PREFIX}{role}{extra}"


def set_title(role: str, **labels: object) -> str:
    """Set this process's title; returns it. Call after fork, in the process being named."""
    title = process_title(role, **labels)
    try:
        import setproctitle
    except ImportError:
        _set_comm(title)
    else:
        try:
            setproctitle.setproctitle(title)
        except Exception:  # never fail a worker over a title
            log.debug("Could not set the process title", exc_info=True)
    return title


def _set_comm(title: str) -> None:
    """The kernel's short name (Linux: 15 bytes); silently unsupported elsewhere."""
    try:
        with open("/proc/self/comm", "w", encoding="utf-8") as comm:
            comm.write(title[:15])
    except OSError:
        pass
