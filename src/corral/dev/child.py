"""The dev child: loads the app once, tells the reloader which files it imported, serves.

Messages on the channel (server/channel.py):
  Files   project files imported so far; sent after loading and again whenever
      more modules were imported (Django imports views on the first request), so
      lazily imported files are watched too.
  Trees   directories to watch recursively (Django's template directories), sent
      once after loading.
  LoadError   the app did not load; unlike a production worker, the child then
      serves a 500 page naming the error, so the socket keeps answering while the
      developer fixes the code.
  Ready and heartbeats, from the Worker itself.

It runs `Worker` directly rather than `run_worker`, because both of its extras
(the error page instead of exiting, the dev access log) replace what run_worker
decides.
"""

from __future__ import annotations

import signal
import socket
import sys

from .. import settings_guard
from ..loading import AppLoadError, load_app
from ..server.channel import Files, LoadError, Trees, send
from ..server.environment import prepare_process
from ..server.worker import Worker, WorkerSpec, start_static
from . import files
from .apps import broken_app, django_template_dirs, with_static_files
from .output import DevAccessLog

REPORT_INTERVAL = 1.0  # seconds between checks for newly imported modules


class FileReporter:
    """Sends the project files among sys.modules, each one once."""

    def __init__(self, channel: socket.socket) -> None:
        self.channel = channel
        self.known: set[str] = set()
        self.modules_seen = -1

    def report(self, extra: set[str] | frozenset[str] = frozenset()) -> None:
        if len(sys.modules) == self.modules_seen and not extra:
            return  # nothing imported since last time: skip the scan
        self.modules_seen = len(sys.modules)
        new = (files.module_files() | extra) - self.known
        if new:
            self.known |= new
            send(self.channel, Files(tuple(sorted(new))))


def run_child(spec: WorkerSpec, dev_access_log: bool = True) -> int:
    """Entry point in the forked child; returns the exit status."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    reporter = FileReporter(spec.channel)
    static = None
    try:
        config = spec.config
        source = settings_guard.told_by(config.settings, prepare_process(config))
        app = settings_guard.guarded_load(lambda: load_app(config.app, config.settings), source)
        # Django imports urls.py (and the views it imports) on the first request, where an error
        # there fails Django's own error page too; imported now, it is a load error like any other.
        settings_guard.import_urlconf()
        app = with_static_files(app)
        static = start_static(spec, django=False)  # --static only: Django's files come from its finders
    except AppLoadError as exc:
        reporter.report(files.error_files(exc))
        send(spec.channel, LoadError(str(exc), exc.user_traceback))
        app = broken_app(str(exc), exc.user_traceback)
    except SystemExit as exc:  # the app's module called sys.exit() while importing
        reporter.report(files.error_files(exc))
        message = f"loading the app called sys.exit({exc.code!r})"
        send(spec.channel, LoadError(message))
        app = broken_app(message, None)
    else:
        reporter.report()
        trees = django_template_dirs()
        if trees:
            send(spec.channel, Trees(tuple(sorted(trees))))
    worker = Worker(spec, app)
    worker.ctx.static = static
    if dev_access_log:
        worker.ctx.access_log = DevAccessLog()

    def tick() -> None:
        reporter.report()
        worker.loop.call_later(REPORT_INTERVAL, tick)

    worker.loop.call_later(REPORT_INTERVAL, tick)
    return worker.run()
