"""`corral check`: resolve everything, load the app in a child, serve nothing."""

from __future__ import annotations

import os
import sys

from ..config import Config
from ..config.settings import SETTINGS, toml_key
from ..loading import AppLoadError, load_app
from ..server.environment import prepare_process
from ..server.listeners import BindError, parse_bind


def check(config: Config) -> int:
    problems = []
    for text in config.bind:
        try:
            parse_bind(text)
        except BindError as exc:
            problems.append(str(exc))
    print("Resolved configuration:")
    for f in SETTINGS:
        value = getattr(config, f.name)
        shown = ", ".join(value) if isinstance(value, tuple) else value
        print(f"  {toml_key(f.name):20} {shown if shown not in (None, '') else '-'}")
    pid = os.fork()  # load in a child so the app's side effects stay out of this process
    if pid == 0:
        try:
            prepare_process(config)
            app = load_app(config.app, config.settings)
            print(f"App: {getattr(app, '__module__', '?')}.{getattr(app, '__qualname__', type(app).__name__)} loaded")
            sys.stdout.flush()
            os._exit(0)
        except AppLoadError as exc:
            if exc.user_traceback:
                sys.stderr.write(exc.user_traceback)
            sys.stderr.write(f"corral: error: {exc}\n")
            sys.stderr.flush()
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    for problem in problems:
        sys.stderr.write(f"corral: error: {problem}\n")
    ok = os.waitstatus_to_exitcode(status) == 0 and not problems
    print("OK" if ok else "FAILED")
    return 0 if ok else 1
