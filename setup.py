"""Build Corral, compiling its per-request modules to C with mypyc when it can.

Everything is in pyproject.toml except this: the modules every request runs through
(HOT_PATH) are plain, fully typed Python that mypyc turns into C extensions, which
takes a keep-alive request from about 12 to 9.4 us of server CPU (docs/benchmarks.md).
Compiled code enforces type annotations, so what an app hands us is typed Any and checked
by our own code (see Response.start_response).
Any of these leaves Corral pure Python, which behaves the same, only slower:

- CORRAL_NO_EXTENSIONS=1 in the environment of the build;
- an editable install (``pip install -e .``), so that edits take effect at once;
- mypyc or a C compiler missing or failing (a warning says so; the install goes on).
"""

from __future__ import annotations

import glob
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HOT_PATH = [
    "src/corral/http/connection_state.py",
    "src/corral/http/date.py",
    "src/corral/http/framing.py",
    "src/corral/http/h2_connection_state.py",
    "src/corral/http/h2_frames.py",
    "src/corral/http/h2_guard.py",
    "src/corral/http/h2_hpack.py",
    "src/corral/http/h2_huffman.py",
    "src/corral/http/h2_messages.py",
    "src/corral/http/limits.py",
    "src/corral/http/parser.py",
    "src/corral/http/request.py",
    "src/corral/http/serialize.py",
    "src/corral/observe/stats.py",
    "src/corral/server/connection.py",
    "src/corral/server/context.py",
    "src/corral/server/emitter.py",
    "src/corral/server/exchange.py",
    "src/corral/server/h2_connection.py",
    "src/corral/server/h2_stream.py",
    "src/corral/server/inline.py",
    "src/corral/server/outbox.py",
    "src/corral/server/peer.py",
    "src/corral/server/registry.py",
    "src/corral/server/threaded.py",
    "src/corral/wsgi/environ.py",
    "src/corral/wsgi/response.py",
]


class FreshBuildPy(build_py):
    """Drop compiled modules an earlier build left in build/: only this build's may ship.

    (pip builds a local directory in place, so build/ outlives a build; a stale module
    compiled from older source would shadow the .py beside it.)
    """

    def run(self) -> None:
        for pattern in ("*.so", "*.pyd"):
            for path in glob.glob(os.path.join(self.build_lib, "**", pattern), recursive=True):
                os.remove(path)
        super().run()


class OptionalBuildExt(build_ext):
    """Compile the hot path, or leave Corral pure Python: never a failed install."""

    def run(self) -> None:
        if self.editable_mode or self.inplace:
            self.announce("corral: editable install, the hot path stays pure Python", level=2)
            self.extensions = []
            return
        try:
            super().run()
        except Exception as exc:  # a compiler error of any kind: fall back, loudly
            self._fall_back(exc)

    def _fall_back(self, exc: Exception) -> None:
        sys.stderr.write(f"WARNING: corral: compiling the hot path failed ({exc}); installing pure Python\n")
        for path in self.get_outputs():  # no partial set: the compiled modules share one library
            if os.path.exists(path):
                os.remove(path)
        self.extensions = []


def hot_path_extensions() -> list:  # type: ignore[type-arg]
    if os.environ.get("CORRAL_NO_EXTENSIONS"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        sys.stderr.write("WARNING: corral: mypyc is not installed; installing pure Python\n")
        return []
    try:
        return mypycify(HOT_PATH, opt_level="3")  # type: ignore[no-any-return]
    except Exception as exc:  # mypyc refused the code: a bug of ours, but not the user's problem
        sys.stderr.write(f"WARNING: corral: mypyc failed ({exc}); installing pure Python\n")
        return []


setup(ext_modules=hot_path_extensions(), cmdclass={"build_py": FreshBuildPy, "build_ext": OptionalBuildExt})
