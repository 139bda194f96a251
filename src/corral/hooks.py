"""Server hooks at run time: import them, and call them in the process each names.

The master imports only `when_ready` and `on_reload` (never the app, but these are
your code by definition); each worker imports the others after its fork, before
it loads the app. A hook that does not import, is not callable, or raises at
start (`post_fork`, `when_ready`) fails the start with one line, reported the way
an app that cannot load is (the master does not respawn into it). A hook that
raises later is logged with its traceback and the server goes on.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import Config
from .config.hooks import HOOKS, MASTER_HOOKS, hooks_of
from .loading import AppLoadError, load_object, user_traceback

log = logging.getLogger("corral.error")

Hook = Callable[..., Any]


@dataclass(frozen=True)
class WorkerInfo:
    """What post_fork and worker_exit are told about the worker they run in."""

    pid: int
    site: str | None  # the [sites.NAME] it serves; None on a single-app server
    index: int  # its slot, 0 .. workers-1 (a replacement takes the same index)
    threads: int  # app threads it runs (size a per-process pool by it)


@dataclass(frozen=True)
class ServerInfo:
    """What when_ready and on_reload are told about the server (they run in the master)."""

    pid: int  # the master's
    sites: tuple[str, ...]  # site names; ("main",) on a single-app server
    addresses: tuple[str, ...]  # what it listens on: http://127.0.0.1:8000, unix:/run/x.sock


class HookFailed(AppLoadError):
    """A hook that raised where that must stop the start: one line plus the user's traceback."""


def load_hooks(config: Config, names: frozenset[str] | set[str]) -> dict[str, Hook]:
    """Import the configured hooks among `names`: {name: callable}. Raises AppLoadError."""
    loaded: dict[str, Hook] = {}
    for name, spec in hooks_of(config.hooks).items():
        if name not in names:
            continue
        what = f"{name} hook"
        target = load_object(spec, what)
        if not callable(target):
            kind = f"{type(target).__name__} {target!r:.40}"
            raise AppLoadError(f"cannot load {what} {spec!r}: not a function (it is {kind})")
        loaded[name] = target
    return loaded


WORKER_HOOKS = frozenset(HOOKS) - MASTER_HOOKS


def spec_of(config: Config, name: str) -> str:
    return hooks_of(config.hooks).get(name, "?")


def call_at_start(name: str, spec: str, hook: Hook, *args: Any) -> None:
    """Call a hook whose failure must fail the start (post_fork, when_ready)."""
    try:
        hook(*args)
    except Exception as exc:
        raise HookFailed(
            f"{name} hook {spec!r} raised {type(exc).__name__}: {exc}", user_traceback(exc)
        ) from None


def call_logged(name: str, spec: str, hook: Hook, *args: Any) -> bool:
    """Call a hook whose failure is logged (with the traceback) and survived. False if it raised."""
    try:
        hook(*args)
    except Exception:
        log.exception("%s hook %r raised (the server goes on)", name, spec)
        return False
    return True


class MasterHooks:
    """when_ready and on_reload, imported by the master before any worker starts."""

    def __init__(self, config: Config, loaded: dict[str, Hook]) -> None:
        self.config = config
        self.loaded = loaded

    @classmethod
    def load(cls, config: Config) -> MasterHooks:
        """Import them with the working directory (and a single app's --chdir/--pythonpath) on
        sys.path, as a worker would see it; sys.path is left as it was (the workers set their own)."""
        saved = list(sys.path)
        extra = [os.path.abspath(p) for p in config.pythonpath]
        if config.chdir:
            extra.append(os.path.abspath(config.chdir))
        extra.append(os.getcwd())
        sys.path[:0] = [p for p in extra if p not in sys.path]
        try:
            return cls(config, load_hooks(config, MASTER_HOOKS))
        finally:
            sys.path[:] = saved

    def when_ready(self, info: ServerInfo) -> None:
        hook = self.loaded.get("when_ready")
        if hook is not None:
            call_at_start("when_ready", spec_of(self.config, "when_ready"), hook, info)

    def on_reload(self, info: ServerInfo, site: str | None) -> None:
        hook = self.loaded.get("on_reload")
        if hook is not None:
            call_logged("on_reload", spec_of(self.config, "on_reload"), hook, info, site)


class WorkerHooks:
    """post_fork, pre_request, post_request and worker_exit, imported by each worker."""

    def __init__(self, config: Config, loaded: dict[str, Hook]) -> None:
        self.config = config
        self.loaded = loaded
        self.pre_request: Hook | None = None
        self.post_request: Hook | None = None
        if "pre_request" in loaded:
            self.pre_request = _guarded("pre_request", spec_of(config, "pre_request"), loaded["pre_request"])
        if "post_request" in loaded:
            self.post_request = _guarded("post_request", spec_of(config, "post_request"), loaded["post_request"])

    @classmethod
    def load(cls, config: Config) -> WorkerHooks:
        return cls(config, load_hooks(config, WORKER_HOOKS))

    def post_fork(self, info: WorkerInfo) -> None:
        hook = self.loaded.get("post_fork")
        if hook is not None:
            call_at_start("post_fork", spec_of(self.config, "post_fork"), hook, info)

    def worker_exit(self, info: WorkerInfo) -> None:
        hook = self.loaded.get("worker_exit")
        if hook is not None:
            call_logged("worker_exit", spec_of(self.config, "worker_exit"), hook, info)


def _guarded(name: str, spec: str, hook: Hook) -> Hook:
    """A request hook that cannot break the request: what it raises is logged, and the
    request goes on as if the hook were not there (hooks observe; middleware decides)."""

    def call(*args: Any) -> None:
        try:
            hook(*args)
        except Exception:
            log.exception("%s hook %r raised; the request goes on", name, spec)

    return call
