"""dev/files.py: which files the reloader watches, and which ones a failed load points at."""

from __future__ import annotations

import json
import os
import sysconfig
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import corral
from corral.dev.files import INSTALLED_ROOTS, error_files, is_project_file, module_files, mtimes

Write = Callable[[str, str], Path]


def test_installed_roots_cover_python_and_corral() -> None:
    assert os.path.realpath(sysconfig.get_paths()["stdlib"]) in INSTALLED_ROOTS
    assert os.path.realpath(sysconfig.get_paths()["purelib"]) in INSTALLED_ROOTS
    assert os.path.dirname(os.path.abspath(corral.__file__)) in INSTALLED_ROOTS


def test_is_project_file() -> None:
    installed = ("/usr/lib/python3.11", "/srv/venv/lib/python3.11/site-packages")
    assert is_project_file("/srv/mysite/views.py", installed)
    assert not is_project_file("/usr/lib/python3.11/json/__init__.py", installed)
    assert not is_project_file("/usr/lib/python3.11", installed)
    assert is_project_file("/usr/lib/python3.11-extra/x.py", installed)  # a root is a whole directory
    # whatever the roots, these are never the project's own code
    assert not is_project_file("/opt/app/.venv/lib/python3.12/site-packages/django/urls.py", installed)
    assert not is_project_file("/usr/lib/python3/dist-packages/yaml/__init__.py", installed)
    assert not is_project_file("/srv/mysite/__pycache__/views.cpython-311.pyc", installed)


def test_module_files_keeps_real_paths_of_project_modules(tmp_path: Path) -> None:
    real = tmp_path / "views.py"
    real.write_text("")
    link = tmp_path / "link.py"
    link.symlink_to(real)
    modules = [
        SimpleNamespace(__file__=str(link)),  # found through a symlink: its target is watched
        SimpleNamespace(__file__=json.__file__),  # the standard library
        SimpleNamespace(__file__=corral.__file__),  # Corral itself
        SimpleNamespace(__file__=None),  # a namespace package
        SimpleNamespace(__file__=""),
        SimpleNamespace(),  # a built-in module
    ]
    assert module_files(modules) == {str(real)}


def test_module_files_defaults_to_the_imported_modules(write: Write) -> None:
    path = write("ldf_imported.py", "")
    import ldf_imported  # type: ignore[import-not-found]  # noqa: F401

    found = module_files()
    assert os.path.realpath(path) in found
    assert os.path.realpath(json.__file__) not in found


def test_error_files_of_a_raising_import(write: Write) -> None:
    inner = write("ldf_inner.py", "def boom():\n    raise ValueError('x')\n")
    outer = write("ldf_outer.py", "import ldf_inner\nldf_inner.boom()\n")
    try:
        import ldf_outer  # type: ignore[import-not-found]  # noqa: F401
    except ValueError as exc:
        found = error_files(exc)
    # the user's two files (and this test, which is project code too), never importlib's frames
    assert found == {str(inner.resolve()), str(outer.resolve()), str(Path(__file__).resolve())}


def test_error_files_of_a_syntax_error_and_of_the_chain(write: Write) -> None:
    broken = write("ldf_syntax.py", "def f(:\n")
    caller = write("ldf_caller.py", "def load():\n    import ldf_syntax\n")
    import ldf_caller  # type: ignore[import-not-found]

    try:
        try:
            ldf_caller.load()
        except SyntaxError as exc:
            raise RuntimeError("could not load") from exc
    except RuntimeError as exc:
        found = error_files(exc)
    assert str(broken.resolve()) in found  # named only by the SyntaxError, not by any frame
    assert str(caller.resolve()) in found  # a frame of the cause
    assert found <= {str(broken.resolve()), str(caller.resolve()), str(Path(__file__).resolve())}


def test_error_files_skips_files_that_are_gone_and_pseudo_files(tmp_path: Path) -> None:
    exc = SyntaxError("bad", (str(tmp_path / "deleted.py"), 1, 1, "x"))
    assert error_files(exc) == set()
    assert error_files(SyntaxError("bad", ("<string>", 1, 1, "x"))) == set()
    assert error_files(None) == set()


def test_error_files_stops_on_a_cycle() -> None:
    first, second = ValueError("a"), ValueError("b")
    first.__context__, second.__context__ = second, first
    assert error_files(first) == set()


def test_mtimes_leaves_out_vanished_files(tmp_path: Path) -> None:
    here = tmp_path / "a.py"
    here.write_text("")
    os.utime(here, (1_000_000, 1_000_000))
    assert mtimes([str(here), str(tmp_path / "gone.py")]) == {str(here): 1_000_000.0}
