"""Which files belong to the project: what the reloader watches.

A project file is any imported module's file that is not part of Python
itself, not an installed package (site-packages, dist-packages, the virtualenv)
and not Corral. Code installed in editable mode from a directory of its own
counts as project code, as it does for runserver.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import traceback
from collections.abc import Iterable

_CORRAL_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_NEVER_IN_PROJECT = frozenset({"site-packages", "dist-packages", "__pycache__"})


def _installed_roots() -> tuple[str, ...]:
    roots = {_CORRAL_DIR}
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(name)
        if path:
            roots.add(os.path.realpath(path))
    return tuple(sorted(roots))


INSTALLED_ROOTS = _installed_roots()


def is_project_file(path: str, installed: Iterable[str] = INSTALLED_ROOTS) -> bool:
    """True for an absolute path the reloader should watch."""
    if _NEVER_IN_PROJECT.intersection(path.split(os.sep)):
        return False
    return not any(path == root or path.startswith(root + os.sep) for root in installed)


def module_files(modules: Iterable[object] | None = None) -> set[str]:
    """Absolute, real paths of the project files among the imported modules."""
    found = set()
    for module in list(sys.modules.values()) if modules is None else modules:
        name = getattr(module, "__file__", None)
        if not isinstance(name, str) or not name:
            continue
        path = os.path.realpath(name)
        if is_project_file(path):
            found.add(path)
    return found


def error_files(exc: BaseException | None) -> set[str]:
    """Project files named by an exception chain: its frames, and a SyntaxError's file.

    Used when the app failed to load: the module that broke was dropped from
    sys.modules, yet its file is exactly the one the next save will fix.
    """
    found = set()
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        names = [frame.filename for frame in traceback.extract_tb(exc.__traceback__)]
        if isinstance(exc, SyntaxError) and exc.filename:
            names.append(exc.filename)
        for name in names:
            if name and not name.startswith("<"):
                path = os.path.realpath(name)
                if is_project_file(path) and os.path.isfile(path):
                    found.add(path)
        exc = exc.__cause__ or exc.__context__
    return found


def mtimes(paths: Iterable[str]) -> dict[str, float]:
    """Each path's modification time; files that vanished meanwhile are left out."""
    result = {}
    for path in paths:
        try:
            result[path] = os.stat(path).st_mtime
        except OSError:
            continue
    return result
