"""Build a site's WSGI callable: its app, further apps mounted inside it, then middleware.

The first middleware listed is the outermost: `[A, B]` gives A(B(app)), as a
reader of the config expects requests to pass through A first.
"""

from __future__ import annotations

from ..config.sites import Mount, SiteConfig
from ..loading import AppLoadError, WSGIApp, load_app, load_object
from .mount import MountDispatcher


def build_site_app(site: SiteConfig) -> WSGIApp:
    app, mounted = load_site_apps(site)
    if mounted:
        app = MountDispatcher(app, mounted)
    return apply_middleware(app, site)


def load_site_apps(site: SiteConfig) -> tuple[WSGIApp, dict[str, WSGIApp]]:
    """The site's own app and the apps mounted inside it, by prefix."""
    app = load_app(site.config.app, site.config.settings)
    mounted = {}
    for mount in site.mounts:
        try:
            mounted[mount.prefix] = load_app(mount.app)
        except AppLoadError as exc:
            raise AppLoadError(f"mount {mount.prefix!r}: {exc}", exc.user_traceback) from None
        if mount.auth:
            mounted[mount.prefix] = guarded(mount, mounted[mount.prefix])
    return app, mounted


def guarded(mount: Mount, app: WSGIApp) -> WSGIApp:
    """A mount with auth = "django": the site's Django users checked before its app runs."""
    from ..static.auth import DjangoGuard, GuardedApp

    try:
        return GuardedApp(app, DjangoGuard(f"mount {mount.prefix}", mount.auth_groups, mount.auth_allow_http))
    except RuntimeError as exc:
        raise AppLoadError(str(exc)) from None


def apply_middleware(app: WSGIApp, site: SiteConfig) -> WSGIApp:
    """Wrap `app` in the site's middleware, the first listed outermost."""
    for middleware in reversed(site.middleware):
        factory = load_object(middleware.use, what="middleware")
        try:
            app = factory(app, **dict(middleware.options))
        except Exception as exc:
            raise AppLoadError(
                f"middleware {middleware.use!r} raised {type(exc).__name__} when applied: {exc}"
            ) from None
        if not callable(app):
            raise AppLoadError(f"middleware {middleware.use!r} returned {type(app).__name__}, not a WSGI callable")
    return app
