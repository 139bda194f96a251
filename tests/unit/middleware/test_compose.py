"""compose.py: a site's app, its mounts inside it, its middleware around both (first listed outermost)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from corral.config.settings import Config
from corral.config.sites import Middleware, Mount, SiteConfig
from corral.loading import AppLoadError
from corral.middleware.compose import apply_middleware, build_site_app, load_site_apps
from corral.middleware.mount import MountDispatcher

Write = Callable[[str, str], Path]

APPS = """
def application(environ, start_response):
    start_response("200 OK", [("X-Seen", environ.get("HTTP_X_TRAIL", ""))])
    return [("site " + environ["SCRIPT_NAME"] + " " + environ["PATH_INFO"]).encode()]

def api(environ, start_response):
    start_response("200 OK", [("X-Seen", environ.get("HTTP_X_TRAIL", ""))])
    return [("api " + environ["SCRIPT_NAME"] + " " + environ["PATH_INFO"]).encode()]
"""

MIDDLEWARE = """
class Tag:
    '''Appends its tag to the request's X-Trail on the way in, and wraps the body on the way out.'''
    def __init__(self, app, tag="?", suffix=""):
        self.app, self.tag, self.suffix = app, tag, suffix

    def __call__(self, environ, start_response):
        environ["HTTP_X_TRAIL"] = environ.get("HTTP_X_TRAIL", "") + self.tag
        body = b"".join(self.app(environ, start_response))
        return [b"<" + self.tag.encode() + b">" + body + self.suffix.encode()]

def refuses(app, **options):
    raise ValueError("needs a secret")

def returns_none(app):
    return None
"""


@pytest.fixture
def modules(write: Write) -> None:
    write("lc_apps.py", APPS)
    write("lc_middleware.py", MIDDLEWARE)


def site(app: str = "lc_apps", mounts: tuple[Mount, ...] = (), middleware: tuple[Middleware, ...] = ()) -> SiteConfig:
    return SiteConfig(name="shop", config=Config(app=app), mounts=mounts, middleware=middleware)


def tag(name: str, **options: Any) -> Middleware:
    return Middleware("lc_middleware:Tag", MappingProxyType({"tag": name, **options}))


def call(app: Callable[..., Any], path: str) -> tuple[str, str]:
    """(body, the X-Seen header): what the innermost app saw of the trail."""
    seen: list[str] = []
    environ = {"SCRIPT_NAME": "", "PATH_INFO": path}
    body = b"".join(app(environ, lambda status, headers: seen.append(dict(headers)["X-Seen"])))
    return body.decode(), seen[0]


def test_an_app_alone_is_returned_as_loaded(modules: None) -> None:
    import lc_apps  # type: ignore[import-not-found]

    assert build_site_app(site()) is lc_apps.application


def test_first_middleware_listed_is_outermost(modules: None) -> None:
    app = build_site_app(site(middleware=(tag("A"), tag("B"))))
    assert call(app, "/x") == ("<A><B>site  /x", "AB")  # requests meet A first; responses leave through A last


def test_middleware_options_are_keyword_arguments(modules: None) -> None:
    app = build_site_app(site(middleware=(tag("A", suffix="!"),)))
    assert call(app, "/") == ("<A>site  /!", "A")


def test_mounts_inside_the_site_and_middleware_around_both(modules: None) -> None:
    app = build_site_app(site(mounts=(Mount("/api", "lc_apps:api"),), middleware=(tag("M"),)))
    assert isinstance(app.app, MountDispatcher)  # type: ignore[attr-defined]
    assert call(app, "/api/orders/7") == ("<M>api /api /orders/7", "M")
    assert call(app, "/apiary") == ("<M>site  /apiary", "M")


def test_load_site_apps_by_prefix(modules: None) -> None:
    import lc_apps

    app, mounted = load_site_apps(site(mounts=(Mount("/api", "lc_apps:api"), Mount("/v2", "lc_apps"))))
    assert app is lc_apps.application
    assert mounted == {"/api": lc_apps.api, "/v2": lc_apps.application}


def test_a_mount_that_cannot_load_names_its_prefix(modules: None) -> None:
    with pytest.raises(AppLoadError) as caught:
        build_site_app(site(mounts=(Mount("/api", "lc_apps:nope"),)))
    assert str(caught.value) == "mount '/api': cannot load app 'lc_apps:nope': module 'lc_apps' has no attribute 'nope'"


def test_the_sites_own_app_failing_is_not_blamed_on_a_mount(modules: None) -> None:
    with pytest.raises(AppLoadError) as caught:
        build_site_app(site(app="lc_apps:missing", mounts=(Mount("/api", "lc_apps:api"),)))
    assert str(caught.value).startswith("cannot load app 'lc_apps:missing'")


def test_middleware_that_cannot_be_imported(modules: None) -> None:
    with pytest.raises(AppLoadError) as caught:
        build_site_app(site(middleware=(Middleware("lc_middleware:Nope"),)))
    assert str(caught.value) == (
        "cannot load middleware 'lc_middleware:Nope': module 'lc_middleware' has no attribute 'Nope'"
    )
    with pytest.raises(AppLoadError, match="^cannot load middleware 'lc_nowhere:Tag': module 'lc_nowhere' not found"):
        build_site_app(site(middleware=(Middleware("lc_nowhere:Tag"),)))


def test_middleware_that_raises_when_applied(modules: None) -> None:
    with pytest.raises(AppLoadError) as caught:
        build_site_app(site(middleware=(Middleware("lc_middleware:refuses"),)))
    assert str(caught.value) == "middleware 'lc_middleware:refuses' raised ValueError when applied: needs a secret"


def test_an_unknown_option_is_the_middlewares_own_error(modules: None) -> None:
    with pytest.raises(AppLoadError, match=r"^middleware 'lc_middleware:Tag' raised TypeError when applied: .*colour"):
        build_site_app(site(middleware=(tag("A", colour="red"),)))


def test_middleware_returning_something_not_callable(modules: None) -> None:
    import lc_apps

    with pytest.raises(AppLoadError) as caught:
        apply_middleware(lc_apps.application, site(middleware=(Middleware("lc_middleware:returns_none"),)))
    assert str(caught.value) == "middleware 'lc_middleware:returns_none' returned NoneType, not a WSGI callable"
