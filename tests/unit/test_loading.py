"""loading.py: every APP form, and an exact message for every way loading fails.

Each test writes its own modules (the `write` fixture, tests/unit/conftest.py) under names
no other test uses.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from corral import welcome
from corral.loading import AppLoadError, load_app, load_object, user_traceback

Write = Callable[[str, str], Path]

APP = """
def application(environ, start_response):
    return [b"application"]

def app(environ, start_response):
    return [b"app"]

def create_app(name="default", debug=True):
    def made(environ, start_response):
        return [f"{name} {debug}".encode()]
    return made

def broken_factory():
    raise RuntimeError("no database")

class Holder:
    def inner(self, environ, start_response):
        return [b"inner"]

holder = Holder()
not_callable = 42
"""


def call(app: Callable[..., list[bytes]]) -> bytes:
    return b"".join(app({}, lambda *a: None))


def error(spec: str) -> AppLoadError:
    with pytest.raises(AppLoadError) as caught:
        load_app(spec)
    return caught.value


# -- the forms ---------------------------------------------------------------------------


def test_module_colon_name(write: Write) -> None:
    write("lt_colon/mod.py", APP)
    assert call(load_app("lt_colon.mod:app")) == b"app"
    assert call(load_app("lt_colon.mod:application")) == b"application"


def test_module_colon_dotted_attribute(write: Write) -> None:
    write("lt_dotted_attr.py", APP)
    assert call(load_app("lt_dotted_attr:holder.inner")) == b"inner"


def test_module_alone_prefers_application_then_app(write: Write) -> None:
    write("lt_both.py", APP)
    write("lt_app_only.py", "def app(environ, start_response):\n    return [b'only app']\n")
    assert call(load_app("lt_both")) == b"application"
    assert call(load_app("lt_app_only")) == b"only app"


def test_module_with_neither_name(write: Write) -> None:
    write("lt_neither.py", "x = 1\n")
    assert str(error("lt_neither")) == (
        "cannot load app 'lt_neither': module 'lt_neither' has no attribute 'application' or 'app'"
    )


def test_django_dotted_wsgi_application_form(write: Write) -> None:
    write("lt_site/wsgi.py", APP)
    assert call(load_app("lt_site.wsgi.application")) == b"application"
    assert call(load_app("lt_site.wsgi.app")) == b"app"


def test_factory_call_with_literal_arguments(write: Write) -> None:
    write("lt_factory.py", APP)
    import lt_factory  # type: ignore[import-not-found]

    assert load_app("lt_factory:create_app") is lt_factory.create_app  # without parentheses: not called
    assert call(load_app("lt_factory:create_app()")) == b"default True"
    assert call(load_app("lt_factory:create_app('prod', debug=False)")) == b"prod False"


def test_factory_arguments_must_be_literals(write: Write) -> None:
    write("lt_factory_expr.py", APP)
    message = str(error("lt_factory_expr:create_app(__import__('os'))"))
    assert "a factory call may only have literal arguments" in message


def test_factory_that_raises_names_it_and_keeps_the_traceback(write: Write) -> None:
    path = write("lt_factory_raises.py", APP)
    caught = error("lt_factory_raises:broken_factory()")
    assert str(caught) == (
        "cannot load app 'lt_factory_raises:broken_factory()': "
        "factory broken_factory() raised RuntimeError: no database"
    )
    assert caught.user_traceback is not None
    assert str(path) in caught.user_traceback and 'raise RuntimeError("no database")' in caught.user_traceback


def test_no_spec_is_the_welcome_app() -> None:
    assert load_app(None) is welcome.application


# -- the errors --------------------------------------------------------------------------


def test_missing_module_says_where_python_looked(write: Write) -> None:
    message = str(error("lt_nowhere:app"))
    assert message.startswith("cannot load app 'lt_nowhere:app': module 'lt_nowhere' not found (sys.path starts ")
    assert error("lt_nowhere:app").user_traceback is None


def test_missing_package_of_the_dotted_form_names_the_parent(write: Write) -> None:
    message = str(error("lt_nosite.wsgi.application"))
    assert message.startswith("cannot load app 'lt_nosite.wsgi.application': module 'lt_nosite.wsgi' not found")


def test_missing_submodule_in_an_existing_package(write: Write) -> None:
    write("lt_pkg/__init__.py", "")
    message = str(error("lt_pkg.nothere:app"))
    assert message.startswith("cannot load app 'lt_pkg.nothere:app': module 'lt_pkg.nothere' not found")


def test_missing_attribute(write: Write) -> None:
    write("lt_attr.py", APP)
    assert str(error("lt_attr:nope")) == "cannot load app 'lt_attr:nope': module 'lt_attr' has no attribute 'nope'"
    assert str(error("lt_attr.nope")) == "cannot load app 'lt_attr.nope': module 'lt_attr' has no attribute 'nope'"
    assert str(error("lt_attr:holder.nope")) == (
        "cannot load app 'lt_attr:holder.nope': module 'lt_attr' has no attribute 'holder.nope'"
    )


def test_not_callable(write: Write) -> None:
    write("lt_value.py", APP)
    assert str(error("lt_value:not_callable")) == (
        "cannot load app 'lt_value:not_callable': 'not_callable' is not callable (it is a int)"
    )


def test_invalid_module_path_and_attribute_name(write: Write) -> None:
    assert str(error("lt-dash:app")) == "cannot load app 'lt-dash:app': 'lt-dash' is not a valid module path"
    assert str(error(":app")) == "cannot load app ':app': '' is not a valid module path"
    write("lt_names.py", APP)
    assert str(error("lt_names:1app")) == (
        "cannot load app 'lt_names:1app': '1app' is not an attribute name or factory call"
    )


def test_app_importing_a_missing_module_is_not_told_it_is_missing(write: Write) -> None:
    """The user's module exists; what it imports does not: say that, with their traceback."""
    path = write("lt_imports.py", "import os\nimport lt_dependency_nobody_has\n")
    caught = error("lt_imports:app")
    assert str(caught) == (
        "cannot load app 'lt_imports:app': importing 'lt_imports' failed: no module named 'lt_dependency_nobody_has'"
    )
    assert caught.user_traceback is not None
    assert f'File "{path}", line 2' in caught.user_traceback
    assert "import lt_dependency_nobody_has" in caught.user_traceback


def test_app_raising_on_import_carries_only_the_users_frames(write: Write) -> None:
    path = write("lt_raises.py", "def helper():\n    return 1 / 0\n\nvalue = helper()\n")
    caught = error("lt_raises")
    assert str(caught) == (
        "cannot load app 'lt_raises': importing 'lt_raises' raised ZeroDivisionError: division by zero"
    )
    trace = caught.user_traceback or ""
    assert trace.startswith("Traceback (most recent call last):\n")
    assert f'File "{path}", line 4' in trace and f'File "{path}", line 2, in helper' in trace
    assert trace.rstrip().endswith("ZeroDivisionError: division by zero")
    assert "importlib" not in trace and "loading.py" not in trace  # our machinery is trimmed out


def test_dotted_form_whose_module_raises_reports_the_users_error(write: Write) -> None:
    path = write("lt_site_raises/wsgi.py", "import lt_dependency_nobody_has\n")
    caught = error("lt_site_raises.wsgi.application")
    assert "no module named 'lt_dependency_nobody_has'" in str(caught)  # not "not found": the module exists
    assert caught.user_traceback is not None and str(path) in caught.user_traceback


def test_dotted_form_names_the_module_that_failed(write: Write) -> None:
    write("lt_site_raises2/wsgi.py", "raise KeyError('k')\n")
    assert str(error("lt_site_raises2.wsgi:application")).startswith(
        "cannot load app 'lt_site_raises2.wsgi:application': importing 'lt_site_raises2.wsgi' raised KeyError"
    )
    assert str(error("lt_site_raises2.wsgi.application")).startswith(
        "cannot load app 'lt_site_raises2.wsgi.application': importing 'lt_site_raises2.wsgi' raised KeyError"
    )

def test_syntax_error_names_the_file_and_line(write: Write) -> None:
    path = write("lt_syntax.py", "x = 1\ndef broken(:\n")
    caught = error("lt_syntax:app")
    assert str(caught).startswith(f"cannot load app 'lt_syntax:app': syntax error in {path}, line 2: ")
    assert caught.user_traceback is not None and "SyntaxError" in caught.user_traceback


def test_user_traceback_hides_given_directories(write: Write, tmp_path: Path) -> None:
    write("lt_hidden.py", "def boom():\n    raise ValueError('x')\n")
    import lt_hidden  # type: ignore[import-not-found]

    try:
        lt_hidden.boom()
    except ValueError as exc:
        assert "lt_hidden.py" in user_traceback(exc)
        assert "lt_hidden.py" not in user_traceback(exc, hide=(str(tmp_path),))
        assert "test_loading.py" in user_traceback(exc, hide=(str(tmp_path),))


# -- load_object: middleware classes and factories ---------------------------------------


def test_load_object_both_separators(write: Write) -> None:
    write("lt_objects.py", APP)
    import lt_objects  # type: ignore[import-not-found]

    assert load_object("lt_objects:Holder") is lt_objects.Holder
    assert load_object("lt_objects.Holder") is lt_objects.Holder
    assert load_object("lt_objects:not_callable") == 42  # no callable check: the caller decides


def test_load_object_errors_name_what_was_loaded(write: Write) -> None:
    write("lt_objects_err.py", APP)
    with pytest.raises(AppLoadError) as caught:
        load_object("lt_objects_err:Nope", what="middleware")
    assert str(caught.value) == (
        "cannot load middleware 'lt_objects_err:Nope': module 'lt_objects_err' has no attribute 'Nope'"
    )
    with pytest.raises(AppLoadError) as caught:
        load_object("lt_no_such_module:Thing", what="middleware")
    assert str(caught.value).startswith(
        "cannot load middleware 'lt_no_such_module:Thing': module 'lt_no_such_module' not found"
    )



@pytest.mark.parametrize("spec", ["Thing", "lt-bad:Thing", "lt_objects_raises:Thing"])
def test_load_object_errors_never_call_a_middleware_an_app(write: Write, spec: str) -> None:
    write("lt_objects_raises.py", "raise KeyError('k')\n")
    with pytest.raises(AppLoadError) as caught:
        load_object(spec, what="middleware")
    assert str(caught.value).startswith(f"cannot load middleware {spec!r}: ")

# -- a Django settings module ------------------------------------------------------------
# Django configures itself once per process, so these run in a fresh interpreter each.

SETTINGS = """
SECRET_KEY = "x"
INSTALLED_APPS = []
ROOT_URLCONF = "{package}.urls"
{extra}
"""
URLS = "urlpatterns = []\n"
WSGI = """
from django.core.wsgi import get_wsgi_application
inner = get_wsgi_application()

def application(environ, start_response):
    return inner(environ, start_response)

application.marker = "{package}"
"""
PROBE = """
import sys
from corral.loading import AppLoadError, load_app
try:
    app = load_app(None, sys.argv[1])
except AppLoadError as exc:
    print("error:", exc)
else:
    print(type(app).__name__, getattr(app, "marker", "-"))
"""


def load_settings(tmp_path: Path, *settings: str) -> list[str]:
    """What load_app(None, settings) gives for each settings module, each in its own interpreter
    (started together: they are independent, and the suite stays fast)."""
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    probes = [subprocess.Popen([sys.executable, "-c", PROBE, name], cwd=tmp_path, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE) for name in settings]
    answers = []
    for probe in probes:
        out, err = probe.communicate(timeout=60)
        assert probe.returncode == 0, err
        answers.append(out.strip())
    return answers


def django_project(tmp_path: Path, package: str, extra: str) -> None:
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").touch()
    (tmp_path / package / "settings.py").write_text(SETTINGS.format(package=package, extra=extra))
    (tmp_path / package / "urls.py").write_text(URLS)
    (tmp_path / package / "wsgi.py").write_text(WSGI.format(package=package))


def test_django_settings(tmp_path: Path) -> None:
    django_project(tmp_path, "lt_dj_named", 'WSGI_APPLICATION = "lt_dj_named.wsgi.application"')
    django_project(tmp_path, "lt_dj_handler", "")
    django_project(tmp_path, "lt_dj_wrong", 'WSGI_APPLICATION = "lt_dj_wrong.wsgi.nope"')
    django_project(tmp_path, "lt_dj_raises", 'DATABASES = {"default": 1 / 0}')
    named, handler, wrong, missing, raises = load_settings(
        tmp_path, "lt_dj_named.settings", "lt_dj_handler.settings", "lt_dj_wrong.settings", "lt_dj_named.nosettings",
        "lt_dj_raises.settings",
    )
    assert named == "function lt_dj_named"  # the settings' WSGI_APPLICATION
    assert handler == "WSGIHandler -"  # none given: Django's own handler, as runserver does
    assert wrong == (
        "error: WSGI_APPLICATION = 'lt_dj_wrong.wsgi.nope' in lt_dj_wrong.settings: "
        "cannot load app 'lt_dj_wrong.wsgi.nope': module 'lt_dj_wrong.wsgi' has no attribute 'nope'"
    )
    assert missing.startswith(
        "error: cannot load app 'lt_dj_named.nosettings': settings module 'lt_dj_named.nosettings' not found"
    )
    assert raises == (
        "error: cannot load app 'lt_dj_raises.settings': importing 'lt_dj_raises.settings' raised "
        "ZeroDivisionError: division by zero"
    )
