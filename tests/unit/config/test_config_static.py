"""The static map's settings: --static, static = {...} tables, guards, merging, worker specs."""

from __future__ import annotations

import os
from dataclasses import asdict

import pytest

from config_problems import only_problem
from corral.cli import build_parser, overrides_from_args
from corral.config import load_plan
from corral.config.static import StaticRoute, root_problems
from corral.process.spawn import _config, decode_site, encode_site


def test_detailed_form(toml, tmp_path) -> None:
    path = toml(
        """
        [static]
        "/static/" = "staticfiles"
        media = "/srv/media"

        [static."/private"]
        root = "private"
        auth = "django"
        auth_groups = ["staff"]
        auth-allow-http = true
        """
    )
    routes = load_plan(path).server.static
    assert routes == (
        StaticRoute("/static", str(tmp_path / "staticfiles")),
        StaticRoute("/media", "/srv/media"),
        StaticRoute("/private", str(tmp_path / "private"), "django", ("staff",), True),
    )
    assert str(routes[2]) == f"/private -> {tmp_path / 'private'} (auth django, groups staff, http allowed)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'static = ["/static"]',
            "static: expected a table such as static = { \"/static\" = \"staticfiles\" }, got array",
        ),
        ('static = { "/" = "x" }', "static: '/': the site's root is its app; map a prefix such as /static"),
        ('static = { "/a/../b" = "x" }', "static: '/a/../b' is not a clean path prefix"),
        ('static = { "/s" = 1 }', "static: '/s': expected a directory"),
        ('static = { "/s" = { auth = "django" } }', "static: '/s': root = \"DIRECTORY\" is required"),
        ('static = { "/s" = { root = "x", auth = "ldap" } }', "static: '/s': auth must be 'django', got 'ldap'"),
        (
            'static = { "/s" = { root = "x", auth-groups = ["a"] } }',
            'static: \'/s\': auth-groups and auth-allow-http need auth = "django"',
        ),
        (
            'static = { "/s" = { root = "x", auth = "django", auth-groups = "staff" } }',
            "static: '/s': auth-groups must be an array",
        ),
        ('static = { "/s" = { root = "x", cache = 1 } }', "static: '/s': unknown key 'cache'"),
        ('static = { "/s" = "x", "/s/" = "y" }', "static: '/s/' is the same prefix as '/s'"),
        ('static-django = ["static", "js"]', "static-django: expected one of static, media, none, got 'js'"),
    ],
)
def test_bad_tables(toml, text: str, message: str) -> None:
    assert message in only_problem(toml(text))


def test_command_line_flag_and_layers_merge_by_prefix(toml, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["serve", "--static", "/media=uploads", "--static-follow-symlinks"])
    cli = overrides_from_args(args)
    assert cli["static"] == (StaticRoute("/media", str(tmp_path / "uploads")),)
    path = toml(
        """
        static = { "/static" = "/srv/static", "/media" = "/srv/media" }
        [profile.prod]
        static = { "/static" = "/srv/prod-static" }
        """
    )
    server = load_plan(path, "prod", cli).server
    assert [(r.prefix, r.root) for r in server.static] == [
        ("/static", "/srv/prod-static"),
        ("/media", str(tmp_path / "uploads")),
    ]
    assert server.static_follow_symlinks


def test_bad_flag() -> None:
    args = build_parser().parse_args(["serve", "--static", "/static"])
    with pytest.raises(Exception, match="expected URL_PREFIX=DIRECTORY"):
        overrides_from_args(args)


def test_sites_have_their_own_map_and_mount_guards(toml) -> None:
    path = toml(
        """
        static-cache-control = "max-age=10"
        [sites.blog]
        settings = "blog.settings"
        default = true
        static = { "/assets" = "/srv/blog/assets" }
        static-django = ["static", "media"]
        mounts = { "/tools" = { app = "tools:app", auth = "django", auth-groups = ["staff"] } }
        """
    )
    (site,) = load_plan(path).sites
    assert site.config.static == (StaticRoute("/assets", "/srv/blog/assets"),)
    assert site.config.static_django == ("static", "media")
    assert site.config.static_cache_control == "max-age=10"
    assert site.mounts[0].auth == "django" and site.mounts[0].auth_groups == ("staff",)
    # Workers under another interpreter get the site as JSON: nothing is lost on the way.
    import json

    again = decode_site(json.loads(json.dumps(encode_site(site))))
    assert again.config == site.config and again.mounts == site.mounts
    assert _config(json.loads(json.dumps(asdict(site.config)))) == site.config


def test_mount_with_unknown_key(toml) -> None:
    path = toml(
        """
        [sites.blog]
        app = "x:app"
        default = true
        mounts = { "/tools" = { app = "tools:app", auth = "django", realm = "x" } }
        """
    )
    assert "a mount takes app = \"...\" and auth, auth-groups, auth-allow-http, not realm" in only_problem(path)


def test_missing_roots_are_reported(tmp_path) -> None:
    (tmp_path / "file").write_text("")
    routes = [StaticRoute("/a", str(tmp_path / "nope")), StaticRoute("/b", str(tmp_path / "file")),
              StaticRoute("/c", str(tmp_path))]
    assert root_problems(routes) == [
        f"static /a: directory {tmp_path / 'nope'} does not exist",
        f"static /b: {tmp_path / 'file'} is not a directory",
    ]
    assert os.path.isdir(tmp_path)
