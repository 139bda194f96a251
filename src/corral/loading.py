"""Resolve an APP spec (or a Django settings module) to a WSGI callable.

Errors say exactly which part failed: the module does not exist, a module it
imports does not exist, the module raised, the attribute is missing, or the
object is not callable. When the user's own code raised, the error carries
their traceback with our import machinery trimmed out.
"""

from __future__ import annotations

import ast
import importlib
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

WSGIApp = Callable[..., Any]
_OUR_DIR = os.path.dirname(os.path.abspath(__file__))
_IMPORTLIB_DIR = os.path.dirname(os.path.abspath(importlib.__file__))


class AppLoadError(Exception):
    """One clear line (`str(error)`), plus the user's traceback when their code raised."""

    def __init__(self, message: str, user_traceback: str | None = None) -> None:
        super().__init__(message)
        self.user_traceback = user_traceback


def load_app(spec: str | None, settings: str | None = None) -> WSGIApp:
    """Load the callable named by `spec`; with only `settings`, Django's WSGI_APPLICATION."""
    if spec is None:
        if settings is not None:
            return load_django_app(settings)
        from .welcome import application

        return application
    if ":" in spec:
        module_name, _, attribute = spec.partition(":")
        try:
            module = _import(module_name, spec)
        except _ModuleMissing as missing:
            raise missing.error from None
        return _resolve(module, module_name, attribute, spec)
    parent = spec.rpartition(".")[0]
    if parent:
        # Python imports the parents first anyway: one that raises is named, not the whole spec.
        try:
            _import(parent, spec)
        except _ModuleMissing:
            pass  # reported below, where the dotted form is tried
    try:
        module = _import(spec, spec)
    except _ModuleMissing as missing:
        # Django's WSGI_APPLICATION form: pkg.wsgi.application
        module_name, dot, attribute = spec.rpartition(".")
        if not dot or missing.name != spec:
            raise missing.error from None
        try:
            module = _import(module_name, spec)
        except _ModuleMissing as parent_missing:
            raise parent_missing.error from None
        return _resolve(module, module_name, attribute, spec)
    for attribute in ("application", "app"):
        if hasattr(module, attribute):
            return _resolve(module, spec, attribute, spec)
    raise AppLoadError(f"cannot load app {spec!r}: module {spec!r} has no attribute 'application' or 'app'")


def load_django_app(settings: str) -> WSGIApp:
    """What runserver does: import the settings, load WSGI_APPLICATION or Django's handler."""
    os.environ["DJANGO_SETTINGS_MODULE"] = settings
    try:
        import django
        from django.conf import settings as django_settings
        from django.core.exceptions import ImproperlyConfigured
    except ImportError:
        raise AppLoadError(f"settings {settings!r} given but Django is not installed in this environment") from None
    try:
        _import(settings, settings, what="settings module")
        django.setup(set_prefix=False)
        dotted = getattr(django_settings, "WSGI_APPLICATION", None)
    except AppLoadError:
        raise
    except ImproperlyConfigured as exc:
        raise AppLoadError(f"Django settings {settings!r} are improperly configured: {exc}") from None
    except Exception as exc:
        raise AppLoadError(
            f"setting up Django with {settings!r} raised {type(exc).__name__}: {exc}", user_traceback(exc)
        ) from None
    if not dotted:
        from django.core.handlers.wsgi import WSGIHandler

        return WSGIHandler()
    try:
        return load_app(dotted)
    except AppLoadError as exc:
        raise AppLoadError(f"WSGI_APPLICATION = {dotted!r} in {settings}: {exc}", exc.user_traceback) from None


def load_object(spec: str, what: str = "object") -> Any:
    """Import `pkg.mod:name` (a middleware class, a factory): exact errors, no callable check."""
    module_name, colon, attribute = spec.partition(":")
    if not colon:
        module_name, _, attribute = spec.rpartition(".")
    try:
        module = _import(module_name, spec)
    except _ModuleMissing as missing:
        raise _named(missing.error, what) from None
    except AppLoadError as exc:
        raise _named(exc, what) from None
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise AppLoadError(
                f"cannot load {what} {spec!r}: module {module_name!r} has no attribute {attribute!r}"
            ) from None
    return target


def _named(error: AppLoadError, what: str) -> AppLoadError:
    """The same error about a middleware (or another `what`) instead of an app."""
    return AppLoadError(str(error).replace("cannot load app", f"cannot load {what}", 1), error.user_traceback)


class _ModuleMissing(Exception):
    def __init__(self, name: str, error: AppLoadError) -> None:
        self.name = name
        self.error = error


def _import(module_name: str, spec: str, what: str = "module") -> Any:
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise AppLoadError(f"cannot load app {spec!r}: {module_name!r} is not a valid module path")
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            where = ", ".join(p or "." for p in sys.path[:4])
            error = AppLoadError(
                f"cannot load app {spec!r}: {what} {module_name!r} not found (sys.path starts {where})"
            )
            if what != "module":
                raise error from None
            raise _ModuleMissing(module_name, error) from None
        raise AppLoadError(
            f"cannot load app {spec!r}: importing {module_name!r} failed: no module named {missing!r}",
            user_traceback(exc),
        ) from None
    except SyntaxError as exc:
        raise AppLoadError(
            f"cannot load app {spec!r}: syntax error in {exc.filename}, line {exc.lineno}: {exc.msg}",
            user_traceback(exc),
        ) from None
    except Exception as exc:
        raise AppLoadError(
            f"cannot load app {spec!r}: importing {module_name!r} raised {type(exc).__name__}: {exc}",
            user_traceback(exc),
        ) from None


def _resolve(module: Any, module_name: str, expression: str, spec: str) -> WSGIApp:
    name, paren, args = expression.partition("(")
    target: Any = module
    for part in name.strip().split("."):
        if not part.isidentifier():
            raise AppLoadError(f"cannot load app {spec!r}: {name!r} is not an attribute name or factory call")
        try:
            target = getattr(target, part)
        except AttributeError:
            raise AppLoadError(
                f"cannot load app {spec!r}: module {module_name!r} has no attribute {name.strip()!r}"
            ) from None
    if paren:
        positional, keywords = _literal_call_args(expression, spec)
        try:
            target = target(*positional, **keywords)
        except Exception as exc:
            raise AppLoadError(
                f"cannot load app {spec!r}: factory {name.strip()}() raised {type(exc).__name__}: {exc}",
                user_traceback(exc),
            ) from None
    if not callable(target):
        raise AppLoadError(
            f"cannot load app {spec!r}: {expression!r} is not callable (it is a {type(target).__name__})"
        )
    return target  # type: ignore[no-any-return]


def _literal_call_args(expression: str, spec: str) -> tuple[list[Any], dict[str, Any]]:
    try:
        call = ast.parse(expression.strip(), mode="eval").body
        if not isinstance(call, ast.Call):
            raise ValueError
        positional = [ast.literal_eval(arg) for arg in call.args]
        keywords = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg}
    except (SyntaxError, ValueError):
        raise AppLoadError(
            f"cannot load app {spec!r}: a factory call may only have literal arguments, "
            "as in create_app('prod', debug=False)"
        ) from None
    return positional, keywords


def user_traceback(exc: BaseException, hide: tuple[str, ...] = ()) -> str:
    """The traceback without frames from importlib, Corral itself or the directories in `hide`."""
    hidden = (_OUR_DIR, _IMPORTLIB_DIR, *hide)
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith(hidden) and "importlib._bootstrap" not in frame.filename
    ]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)
