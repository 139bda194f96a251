"""A child of the master dies with it: Linux's parent-death signal, set right after fork.

PR_SET_PDEATHSIG makes the kernel send SIGTERM to the child the moment its parent exits,
even by SIGKILL, so no worker keeps serving alone. The worker's once-a-second getppid()
check (server/worker.py) stays as the fallback on other systems. The signal fires when the
parent *thread* that forked exits; the master forks only from its main thread.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int) -> bool:
    """Ask for SIGTERM when `parent` (the pid that forked us) exits; False if it already has.

    The check after the call closes the race of a parent dying between fork and prctl.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # no prctl (an unusual libc): the getppid() check still notices
    return os.getppid() == parent
