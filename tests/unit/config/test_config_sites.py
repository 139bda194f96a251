"""[sites.NAME] tables: the typed model, inheritance from the server, validation and routing."""
# ruff: noqa: E501  (expected messages are kept whole, one per line, so they read as the user sees them)

from __future__ import annotations

import pytest

from config_problems import only_problem, problems_of
from corral.config import Middleware, Mount, load_plan, route
from corral.config.sites import normalize_prefix
from corral.config.values import ValueProblem

TWO_SITES = """
    bind = ["127.0.0.1:8000"]
    workers = 3
    threads = 2
    max-body-size = "10M"
    keepalive-timeout = 7

    [sites.blog]
    settings = "blog.settings"
    hosts = ["Blog.Example.com.", "*.blog.example.com"]
    mount = "/blog/"
    processes = 2
    threads = 8
    max-body-size = "1M"
    env = { SECRET = "s" }
    chdir = "blog"
    pythonpath = ["lib"]
    virtualenv = "venvs/blog"
    user = "www-blog"
    group = 33
    mounts = { "/api" = "api:app", "static/" = { app = "static:app" } }
    middleware = [
        { use = "whitenoise:WhiteNoise", root = "static", max_age = 60 },
        { use = "pkg.mw:Timing" },
    ]

    [sites.shop]
    app = "shop.wsgi:application"
    default = true
"""


def site_problem(toml, body: str, extra: str = "") -> str:
    """The one problem of a [sites.s] table with `body` (plus a default site unless given)."""
    path = toml(f"[sites.s]\n{body}\n{extra}")
    return only_problem(path).removeprefix(f"{path}: ")


# -- the model ---------------------------------------------------------------------------


def test_sites_are_parsed_into_the_model(toml, tmp_path) -> None:
    plan = load_plan(toml(TWO_SITES))
    assert plan.multi_site
    blog, shop = plan.sites
    assert blog.name == "blog" and shop.name == "shop"
    assert blog.hosts == ("blog.example.com", "*.blog.example.com")
    assert blog.mount == "/blog" and not blog.default
    assert blog.settings == "blog.settings" and blog.app is None
    assert blog.env == {"SECRET": "s"}
    assert blog.chdir == str(tmp_path / "blog") and blog.pythonpath == (str(tmp_path / "lib"),)
    assert blog.virtualenv == str(tmp_path / "venvs" / "blog")
    assert (blog.user, blog.group) == ("www-blog", "33")
    assert blog.mounts == (Mount("/api", "api:app"), Mount("/static", "static:app"))
    assert blog.middleware == (
        Middleware("whitenoise:WhiteNoise", {"root": "static", "max_age": 60}),
        Middleware("pkg.mw:Timing", {}),
    )
    assert shop.default and shop.hosts == () and shop.mount == ""
    assert shop.app == "shop.wsgi:application" and shop.settings is None


def test_sites_inherit_server_settings_and_override_their_own(toml) -> None:
    plan = load_plan(toml(TWO_SITES))
    blog, shop = plan.sites
    assert (blog.processes, blog.threads) == (2, 8)
    assert blog.config.max_body_size == 1024 * 1024  # its own
    assert blog.config.keepalive_timeout == 7.0  # the server's
    assert (shop.processes, shop.threads) == (3, 2)  # the server's workers and threads
    assert shop.config.max_body_size == 10 * 1024 * 1024
    assert blog.overrides >= {"threads", "max_body_size"} and "keepalive_timeout" not in blog.overrides
    assert plan.server.app is None and plan.server.settings is None


def test_a_site_never_inherits_another_sites_app_environment(toml) -> None:
    _, shop = load_plan(toml(TWO_SITES)).sites
    assert shop.settings is None and shop.env == {} and shop.chdir is None and shop.pythonpath == ()


def test_server_flags_set_what_sites_inherit(toml) -> None:
    blog, shop = load_plan(toml(TWO_SITES), None, {"workers": 5, "keepalive_timeout": 1.0}).sites
    assert shop.processes == 5 and blog.processes == 2
    assert shop.config.keepalive_timeout == blog.config.keepalive_timeout == 1.0


def test_without_sites_the_plan_has_one_implicit_default_site(toml) -> None:
    plan = load_plan(toml('app = "basic:hello"\nworkers = 2'))
    (site,) = plan.sites
    assert not plan.multi_site
    assert site.default and site.mount == "" and site.hosts == ()
    assert site.app == "basic:hello" and site.processes == 2 and site.config is plan.server


def test_profiles_override_and_add_sites(toml) -> None:
    path = toml(
        TWO_SITES
        + """
    [profile.prod]
    workers = 9
    [profile.prod.sites.blog]
    processes = 6
    env = { EXTRA = "1" }
    hosts = ["blog.example.org"]
    [profile.prod.sites.wiki]
    app = "wiki:app"
    hosts = ["wiki.example.org"]
    """
    )
    assert [s.name for s in load_plan(path).sites] == ["blog", "shop"]
    blog, shop, wiki = load_plan(path, "prod").sites
    assert blog.processes == 6 and blog.hosts == ("blog.example.org",)
    assert blog.env == {"SECRET": "s", "EXTRA": "1"}  # env merges, other keys replace
    assert blog.settings == "blog.settings" and blog.mount == "/blog"
    assert shop.processes == 9
    assert wiki.app == "wiki:app" and wiki.processes == 9


def test_sites_only_in_a_profile(toml) -> None:
    path = toml('app = "basic:hello"\n[profile.multi.sites.a]\napp = "a:app"\ndefault = true\n')
    assert not load_plan(path).multi_site
    assert only_problem(path, "multi") == f"{path}: app: belongs in each [sites.NAME] table when the file defines sites"


# -- validation of one site ----------------------------------------------------------------

DEFAULT_SITE = '[sites.d]\napp = "d:app"\ndefault = true\n'


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('app = "a:app"\nhost = ["a.com"]', '[sites.s] host: unknown key (did you mean "hosts" or "hooks"?)'),
        ('app = "a:app"\nprocess = 2\ndefault = true', '[sites.s] process: unknown key (did you mean "processes"?)'),
        ('app = "a:app"\ndefault = true\nbind = ["x:1"]', "[sites.s] bind: is a server-wide setting; set it at the top level (or in a profile), not in a site"),
        ('app = "a:app"\ndefault = true\nworkers = 2', "[sites.s] workers: is a server-wide setting; set it at the top level (or in a profile), not in a site"),
        ('hosts = ["a.com"]', '[sites.s]: needs an app (app = "pkg.module:app") or a Django settings module (settings = ...)'),
        ('app = "a:app"', "[sites.s]: has no hosts and is not the default site (default = true): it would get no requests"),
        ('app = "a:app"\ndefault = "yes"', "[sites.s] default: expected true or false, got string"),
        ('app = 1\ndefault = true', "[sites.s] app: expected a string, got integer 1"),
        ('app = "a:app"\ndefault = true\nmax-body-size = "huge"', "[sites.s] max-body-size: expected a size such as 65536, 64k or 10M, got 'huge'"),
        ('app = "a:app"\ndefault = true\nenv = { A = 1 }', '[sites.s] env: A: expected a string (write A = "1"), got integer 1'),
        ('app = "a:app"\ndefault = true\nprocesses = 0', "[sites.s] processes: expected a number of at least 1, got 0"),
        ('app = "a:app"\ndefault = true\nprocesses = "2"', "[sites.s] processes: expected a whole number, got string"),
        ('app = "a:app"\ndefault = true\nvirtualenv = ["v"]', "[sites.s] virtualenv: expected a path to a virtualenv directory, got array"),
        ('app = "a:app"\ndefault = true\nuser = ""', "[sites.s] user: expected a user or group name, got an empty string"),
        ('app = "a:app"\ndefault = true\ngroup = 1.5', "[sites.s] group: expected a user or group name (or a numeric id), got float"),
    ],
)
def test_site_key_errors(toml, body: str, expected: str) -> None:
    assert site_problem(toml, body) == expected


@pytest.mark.parametrize(
    ("hosts", "expected"),
    [
        ('"a.com"', 'expected an array of host names such as ["example.com", "*.example.com"], got string'),
        ("[1]", "expected a host name, got integer"),
        ('["default"]', '"default" is not a host name; mark the default site with default = true'),
        ('["a.com:8000"]', "'a.com:8000': write the host without a port (routing ignores the port)"),
        ('["foo.*.com"]', "bad wildcard 'foo.*.com': '*' may only be the whole first label, as in '*.example.com'"),
        ('["*example.com"]', "bad wildcard '*example.com': '*' may only be the whole first label, as in '*.example.com'"),
        ('["*"]', "bad wildcard '*': '*' may only be the whole first label, as in '*.example.com'"),
        ('["*.*.com"]', "bad wildcard '*.*.com': expected '*.' followed by a domain, as in '*.example.com'"),
        ('["*.-x.com"]', "bad wildcard '*.-x.com': expected '*.' followed by a domain, as in '*.example.com'"),
        ('["exa mple.com"]', "'exa mple.com' is not a valid host name"),
        ('["-a.com"]', "'-a.com' is not a valid host name"),
        ('["a.com", "A.COM"]', "'A.COM' is listed twice"),
    ],
)
def test_host_errors(toml, hosts: str, expected: str) -> None:
    assert site_problem(toml, f'app = "a:app"\nhosts = {hosts}') == f"[sites.s] hosts: {expected}"


def test_hosts_accept_ip_addresses() -> None:
    from corral.config.sites import _hosts

    assert _hosts(["127.0.0.1", "[::1]", "xn--bcher-kva.example"], "") == ("127.0.0.1", "[::1]", "xn--bcher-kva.example")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("mount", "1", 'expected a path prefix such as "/blog", got integer'),
        ("mount", '"/a//b"', "'/a//b' is not a clean path prefix (no empty, '.' or '..' segments, '?' or '#')"),
        ("mount", '"/a/../b"', "'/a/../b' is not a clean path prefix (no empty, '.' or '..' segments, '?' or '#')"),
        ("mount", '"/a?b"', "'/a?b' is not a clean path prefix (no empty, '.' or '..' segments, '?' or '#')"),
        ("mounts", '["/api"]', 'expected a table such as mounts = { "/api" = "api:app" }, got array'),
        ("mounts", '{ "/" = "x:app" }', "'/': the site's root is its own app; mount further apps below it"),
        ("mounts", '{ "/api" = 1 }', 'expected an APP such as "api:app" (or { app = "api:app" }), got integer'),
        ("mounts", '{ "/api" = { app = "a:b", settings = "s" } }', "'/api': a mount takes app = \"...\" and auth, auth-groups, auth-allow-http, not settings"),
        ("mounts", '{ "/api" = "a:b", "api/" = "c:d" }', "'api/' is the same prefix as '/api'"),
        ("middleware", '"whitenoise:WhiteNoise"', 'expected an array of tables such as [{ use = "pkg.module:Class", option = "value" }], got string'),
        ("middleware", '["x:Y"]', 'item 1: expected a table such as { use = "pkg.module:Class", option = "value" }, got string'),
        ("middleware", '[{ use = "a:B" }, { root = "x" }]', 'item 2: use = "pkg.module:Class" is required, got nothing'),
        ("middleware", '[{ use = "whitenoise.WhiteNoise" }]', "item 1: use = \"pkg.module:Class\" is required, got 'whitenoise.WhiteNoise'"),
        ("middleware", '[{ use = "a:B", "max-age" = 1 }]', "item 1: option 'max-age' is not a Python keyword argument name"),
    ],
)
def test_mount_and_middleware_errors(toml, key: str, value: str, expected: str) -> None:
    assert site_problem(toml, f'app = "a:app"\ndefault = true\n{key} = {value}') == f"[sites.s] {key}: {expected}"


def test_normalize_prefix() -> None:
    assert normalize_prefix("/") == "" and normalize_prefix("") == ""
    assert normalize_prefix("blog") == "/blog" and normalize_prefix("/blog/") == "/blog"
    assert normalize_prefix("/a/b-c_d.e~f") == "/a/b-c_d.e~f"
    with pytest.raises(ValueProblem):
        normalize_prefix("/a b")


def test_site_that_is_not_a_table(toml) -> None:
    path = toml('sites = { a = 1 }\n')
    assert only_problem(path) == f"{path}: [sites.a]: expected a table, got integer"
    path = toml('sites = ["a"]\n')
    assert only_problem(path) == f"{path}: sites: expected tables such as [sites.blog]"


def test_errors_in_a_profile_site_name_the_profile_table(toml) -> None:
    path = toml(DEFAULT_SITE + '[profile.prod.sites.d]\nthread = 2\n')
    assert only_problem(path) == f'{path}: [profile.prod.sites.d] thread: unknown key (did you mean "threads"?)'


# -- validation across sites -----------------------------------------------------------


def test_app_settings_at_the_server_level_are_rejected_with_sites(toml) -> None:
    path = toml('settings = "x.settings"\nenv = { A = "1" }\n[profile.p]\nchdir = "x"\n' + DEFAULT_SITE)
    assert problems_of(path, "p") == [
        f"{path}: env: belongs in each [sites.NAME] table when the file defines sites",
        f"{path}: settings: belongs in each [sites.NAME] table when the file defines sites",
        f"{path}: [profile.p] chdir: belongs in each [sites.NAME] table when the file defines sites",
    ]


def test_app_flags_are_rejected_with_sites(toml) -> None:
    path = toml(DEFAULT_SITE)
    assert problems_of(path, None, {"app": "x:app", "settings": "s"}) == [
        f"{path}: APP given on the command line, but this file defines [sites]: set it per site",
        f"{path}: --settings given on the command line, but this file defines [sites]: set it per site",
    ]


def test_two_default_sites(toml) -> None:
    path = toml(DEFAULT_SITE + '[sites.e]\napp = "e:app"\ndefault = true\n')
    assert only_problem(path) == f"{path}: [sites.e] default: site 'd' is already the default site; only one may be"


def test_two_sites_claiming_the_same_host_and_mount(toml) -> None:
    path = toml(
        """
        [sites.a]
        app = "a:app"
        hosts = ["x.com", "y.com"]
        mount = "/blog"
        [sites.b]
        app = "b:app"
        hosts = ["X.com"]
        mount = "blog/"
        [sites.c]
        app = "c:app"
        hosts = ["y.com"]
        """
    )
    assert only_problem(path) == f"{path}: [sites.b] hosts: 'x.com' at mount '/blog' is already claimed by site 'a'"


def test_a_mount_shadowed_by_another_site(toml) -> None:
    path = toml(
        """
        [sites.main]
        app = "main:app"
        hosts = ["x.com"]
        mounts = { "/api/v1" = "api:app" }
        [sites.api]
        app = "other:app"
        hosts = ["x.com", "z.com"]
        mount = "/api"
        """
    )
    assert only_problem(path) == (
        f"{path}: [sites.main] mounts: '/api/v1' (at /api/v1) is shadowed by site 'api', mounted at /api "
        "for the same host 'x.com': requests there go to 'api'"
    )


def test_nested_sites_on_one_host_are_fine(toml) -> None:
    path = toml(
        """
        [sites.main]
        app = "main:app"
        hosts = ["x.com"]
        mounts = { "/api" = "api:app" }
        [sites.blog]
        app = "blog:app"
        hosts = ["x.com"]
        mount = "/blog"
        mounts = { "/feed" = "feed:app" }
        [sites.other]
        app = "other:app"
        hosts = ["y.com"]
        mount = "/api"
        """
    )
    assert len(load_plan(path).sites) == 3


# -- routing -----------------------------------------------------------------------------


@pytest.fixture
def sites(toml):
    path = toml(
        """
        [sites.root]
        app = "root:app"
        hosts = ["example.com", "www.example.com"]
        [sites.blog]
        app = "blog:app"
        hosts = ["example.com"]
        mount = "/blog"
        [sites.wild]
        app = "wild:app"
        hosts = ["*.example.com"]
        [sites.deep]
        app = "deep:app"
        hosts = ["*.eu.example.com"]
        mount = "/x"
        [sites.fallback]
        app = "fallback:app"
        default = true
        mount = "/"
        """
    )
    return load_plan(path).sites


@pytest.mark.parametrize(
    ("host", "path", "site"),
    [
        ("example.com", "/", "root"),
        ("EXAMPLE.COM:8080", "/blog", "blog"),
        ("example.com", "/blog/post/1", "blog"),
        ("example.com", "/blogger", "root"),  # whole segments only
        ("www.example.com", "/blog", "root"),
        ("shop.example.com", "/", "wild"),
        ("a.eu.example.com", "/x/y", "deep"),  # the most specific wildcard
        ("a.eu.example.com", "/", "fallback"),  # that wildcard's sites do not serve "/"
        ("unknown.org", "/blog", "fallback"),
        ("", "/", "fallback"),
        ("example.com.", "/blog", "blog"),
    ],
)
def test_route(sites, host: str, path: str, site: str) -> None:
    assert route(sites, host, path).name == site


def test_route_without_a_default_is_none(toml) -> None:
    path = toml('[sites.a]\napp = "a:app"\nhosts = ["a.com"]\nmount = "/a"\n')
    plan = load_plan(path)
    assert route(plan.sites, "b.com", "/a") is None
    assert route(plan.sites, "a.com", "/") is None
    assert route(plan.sites, "[::1]:80", "/a") is None
