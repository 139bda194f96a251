"""MountDispatcher: whole-segment prefixes, the longest first, PEP 3333 SCRIPT_NAME/PATH_INFO."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from corral.middleware.mount import MountDispatcher


def recorder(name: str) -> Callable[..., Iterable[bytes]]:
    """An app answering `name SCRIPT_NAME PATH_INFO`."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [])
        return [f"{name} {environ.get('SCRIPT_NAME', '')!r} {environ.get('PATH_INFO', '')!r}".encode()]

    return app


def dispatch(dispatcher: MountDispatcher, path: str, script_name: str | None = None) -> str:
    environ = {"PATH_INFO": path}
    if script_name is not None:
        environ["SCRIPT_NAME"] = script_name
    return b"".join(dispatcher(environ, lambda *a: None)).decode()


@pytest.fixture
def dispatcher() -> MountDispatcher:
    return MountDispatcher(recorder("site"), {"/api": recorder("api"), "/api/v2/": recorder("v2"),
                                              "/docs": recorder("docs")})


@pytest.mark.parametrize(("path", "answer"), [
    ("/api/users", "api '/api' '/users'"),
    ("/api/", "api '/api' '/'"),
    ("/api", "api '/api' ''"),  # PEP 3333: PATH_INFO may be empty
    ("/api/v2/items", "v2 '/api/v2' '/items'"),  # the longest prefix wins, whatever the order given
    ("/api/v2", "v2 '/api/v2' ''"),  # a trailing '/' in the prefix is ignored
    ("/api/v20", "api '/api' '/v20'"),
    ("/docs/a/b", "docs '/docs' '/a/b'"),
    ("/apiary", "site '' '/apiary'"),  # whole segments only
    ("/", "site '' '/'"),
    ("", "site '' ''"),
    ("/other/api", "site '' '/other/api'"),
])
def test_prefixes(dispatcher: MountDispatcher, path: str, answer: str) -> None:
    assert dispatch(dispatcher, path) == answer


def test_script_name_of_the_site_mount_is_kept(dispatcher: MountDispatcher) -> None:
    """A site mounted at /blog with an app at /api inside it: SCRIPT_NAME grows, it is not replaced."""
    assert dispatch(dispatcher, "/api/x", script_name="/blog") == "api '/blog/api' '/x'"
    assert dispatch(dispatcher, "/x", script_name="/blog") == "site '/blog' '/x'"


def test_prefix_matching_is_case_sensitive(dispatcher: MountDispatcher) -> None:
    assert dispatch(dispatcher, "/API/x") == "site '' '/API/x'"


def test_no_mounts_is_the_default_app() -> None:
    assert dispatch(MountDispatcher(recorder("site"), {}), "/api") == "site '' '/api'"
