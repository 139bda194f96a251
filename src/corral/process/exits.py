"""Why a worker exited, in the words of the logs and the metrics: a pure function of its state."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..observe.state import exit_cause
from ..server.spec import EXIT_APP_LOAD_ERROR

if TYPE_CHECKING:
    from .workers import WorkerHandle  # the dev reloader imports describe_status alone


@dataclass(frozen=True)
class Exit:
    reason: str  # "exit status 1", "killed by SIGKILL"
    expected: bool  # the master asked for it (stop, reload, recycle, resize): no restart back-off
    cause: str | None  # the restart cause counted in status and metrics; None: not a replacement
    load_error: bool  # EXIT_APP_LOAD_ERROR: the app cannot load, respawning would loop


def judge_exit(handle: WorkerHandle, status: int, stopping: bool) -> Exit:
    expected = stopping or handle.slot.retiring or handle.told_to_stop or handle.old
    if handle.exit_cause is not None:
        cause: str | None = handle.exit_cause.split(" ")[0]  # "memory above 512 MiB" -> "memory"
    elif handle.old:
        cause = "reload"
    elif expected:
        cause = None
    else:
        cause = exit_cause(status)
    load_error = os.waitstatus_to_exitcode(status) == EXIT_APP_LOAD_ERROR
    return Exit(describe_status(status), expected, cause, load_error)


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"killed by {name}"
    return f"exit status {os.WEXITSTATUS(status)}"
