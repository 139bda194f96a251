"""[sites.NAME] tables: the typed model of a multi-site server, and its validation.

How this works: each site table is parsed into a layer (as in files.py) that
holds app settings (app, settings, env, chdir, pythonpath, env-file), the
server settings a site may override (declared `site=True` in settings.py), and
the site's own keys (hosts, mount, mounts, middleware, processes, virtualenv,
user, group, default). `build_sites` turns the merged layers into SiteConfig
objects, each carrying the full effective Config its workers run with, and then
checks the sites against each other (hosts, mounts, the default site).

Routing rules that validation relies on (and `route` implements):
1. Host (port dropped, case-insensitive): the sites listing it exactly; if none,
   the sites whose `*.suffix` wildcard matches, most specific suffix first;
   if none, the default site.
2. Among those, the longest mount that is a whole-segment prefix of the path.
3. If none of them is mounted at a prefix of the path, the default site (when
   its mount matches), else no site: the server answers 404.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..server.routing import Router, under
from .files import Layer, is_table, keys_for, parse_table, table_pairs
from .hooks import master_hooks_in
from .problems import Problems, table_name
from .settings import SETTINGS, Config
from .static import parse_auth_options
from .values import ValueProblem, pairs_table, parse_positive_int, toml_type_name

# Keys only a site has, with what each expects (for "got X, expected Y" messages).
SITE_ONLY_KEYS = ("processes", "virtualenv", "hosts", "default", "mount", "mounts", "middleware", "user", "group")
APP_SETTINGS = tuple(f for f in SETTINGS if f.metadata["group"] == "app")
_APP_NAMES = frozenset(f.name for f in APP_SETTINGS)
SITE_SETTINGS = keys_for(f for f in SETTINGS if f.metadata["group"] == "app" or f.metadata["site"])

_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_HOST_RE = re.compile(rf"{_LABEL}(\.{_LABEL})*\Z")
_IPV6_RE = re.compile(r"\[[0-9a-f:.]+\]\Z")
_SPEC_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*\Z")
_MOUNT_AUTH_KEYS = ("auth", "auth-groups", "auth-allow-http")
_SEGMENT_RE = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@%-]+\Z")


@dataclass(frozen=True)
class Middleware:
    """WSGI middleware applied as `use(app, **options)`; the first listed is outermost."""

    use: str  # "pkg.module:Class"
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Mount:
    """A further app of the same site, mounted at `prefix` below the site's own mount."""

    prefix: str  # "/api": leading '/', no trailing '/'
    app: str  # any APP form
    # auth = "django": HTTP Basic against the site's Django users first (static/auth.py).
    auth: str = ""
    auth_groups: tuple[str, ...] = ()
    auth_allow_http: bool = False


@dataclass(frozen=True)
class SiteConfig:
    name: str
    # Everything the site's workers run with: the server's settings, overridden by the
    # site's; app/settings/env/chdir/pythonpath are the site's own; workers = processes.
    config: Config
    hosts: tuple[str, ...] = ()  # lower-case names and "*.example.com" wildcards
    default: bool = False  # gets requests whose host no site claims
    mount: str = ""  # SCRIPT_NAME prefix: "" for the root, else "/blog"
    mounts: tuple[Mount, ...] = ()
    middleware: tuple[Middleware, ...] = ()
    virtualenv: str | None = None
    user: str | None = None
    group: str | None = None
    overrides: frozenset[str] = frozenset()  # setting names this site set itself

    @property
    def app(self) -> str | None:
        return self.config.app

    @property
    def settings(self) -> str | None:
        return self.config.settings

    @property
    def env(self) -> dict[str, str]:
        return dict(pair.split("=", 1) for pair in self.config.env)  # type: ignore[misc]

    @property
    def chdir(self) -> str | None:
        return self.config.chdir

    @property
    def pythonpath(self) -> tuple[str, ...]:
        return self.config.pythonpath

    @property
    def processes(self) -> int:
        return self.config.workers

    @property
    def threads(self) -> int:
        return self.config.threads


def parse_site_table(name: str, table: Any, where: str, problems: Problems, base_dir: str) -> Layer:
    if not isinstance(table, dict):
        problems.add(where, None, f"expected a table, got {toml_type_name(table)}")
        return {}
    layer = parse_table(table, SITE_SETTINGS, where, problems, base_dir, extra=SITE_ONLY_KEYS)
    for hook in master_hooks_in(layer.get("hooks", {})):
        problems.add(where, "hooks", f"{hook} runs in the master, once for the server: set it at the top level")
    for key in SITE_ONLY_KEYS:
        if key not in table:
            continue
        try:
            layer[key] = _SITE_PARSERS[key](table[key], base_dir)
        except ValueProblem as exc:
            problems.add(where, key, str(exc))
    return layer


def build_sites(layers: Mapping[str, tuple[Layer, str]], server: Config, problems: Problems) -> tuple[SiteConfig, ...]:
    """SiteConfigs from merged layers ({name: (layer, where)}), checked against each other."""
    sites = []
    for name, (layer, where) in layers.items():
        if not layer.get("app") and not layer.get("settings"):
            problems.add(
                where, None, 'needs an app (app = "pkg.module:app") or a Django settings module (settings = ...)'
            )
        if not layer.get("hosts") and not layer.get("default"):
            problems.add(
                where, None, "has no hosts and is not the default site (default = true): it would get no requests"
            )
        sites.append(_site(name, layer, server))
    where_of = {name: where for name, (_, where) in layers.items()}
    _check_defaults(sites, where_of, problems)
    _check_claims(sites, where_of, problems)
    return tuple(sites)


def implicit_site(server: Config) -> SiteConfig:
    """No [sites]: one default site serving the top-level app on every host."""
    return SiteConfig(name="default", config=server, default=True)


def route(sites: Iterable[SiteConfig], host: str, path: str) -> SiteConfig | None:
    """The site for a request, by the rules at the top of this module (None: 404).

    One implementation of those rules: the workers' Router, which `check` and the
    tests use through this function.
    """
    sites = tuple(sites)
    index = Router(sites).match(host, path)
    return None if index is None else sites[index]


# -- building ----------------------------------------------------------------------


def _site(name: str, layer: Layer, server: Config) -> SiteConfig:
    changes = {f.name: f.default for f in APP_SETTINGS}  # a site never inherits the server's app
    changes["workers"] = layer.get("processes", server.workers)
    overrides = {key for key in layer if key not in SITE_ONLY_KEYS}
    for key in overrides:
        changes[key] = layer[key]
        if is_table(key):
            # A site's table merges over the server's (its hooks add to the server's), except
            # an app table (env), which a site never inherits.
            inherited = {} if key in _APP_NAMES else pairs_table(getattr(server, key))
            changes[key] = table_pairs({**inherited, **layer[key]})
    return SiteConfig(
        name=name,
        config=server.replace(**changes),
        hosts=layer.get("hosts", ()),
        default=layer.get("default", False),
        mount=layer.get("mount", ""),
        mounts=layer.get("mounts", ()),
        middleware=layer.get("middleware", ()),
        virtualenv=layer.get("virtualenv"),
        user=layer.get("user"),
        group=layer.get("group"),
        overrides=frozenset(overrides),
    )


def _check_defaults(sites: list[SiteConfig], where_of: Mapping[str, str], problems: Problems) -> None:
    defaults = [s.name for s in sites if s.default]
    for name in defaults[1:]:
        problems.add(where_of[name], "default", f"site {defaults[0]!r} is already the default site; only one may be")


def _check_claims(sites: list[SiteConfig], where_of: Mapping[str, str], problems: Problems) -> None:
    """Two sites may not claim the same host and mount; a site's mount may not be shadowed."""
    claims: dict[tuple[str, str], str] = {}
    for site in sites:
        for host in site.hosts:
            owner = claims.setdefault((host, site.mount), site.name)
            if owner != site.name:
                problems.add(
                    where_of[site.name],
                    "hosts",
                    f"{host!r} at mount {_shown_mount(site.mount)!r} is already claimed by site {owner!r}",
                )
    for site in sites:
        keys = set(site.hosts) | ({"<default>"} if site.default else set())
        for mount in site.mounts:
            path = site.mount + mount.prefix
            for other in sites:
                if other is site or not (keys & (set(other.hosts) | ({"<default>"} if other.default else set()))):
                    continue
                if len(other.mount) > len(site.mount) and under(path, other.mount):
                    shared = sorted(keys & set(other.hosts)) or ["(default)"]
                    problems.add(
                        where_of[site.name],
                        "mounts",
                        f"{mount.prefix!r} (at {path}) is shadowed by site {other.name!r}, mounted at "
                        f"{other.mount} for the same host {shared[0]!r}: requests there go to {other.name!r}",
                    )


# -- site-only keys ----------------------------------------------------------------


def _processes(value: Any, base_dir: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueProblem(f"expected a whole number, got {toml_type_name(value)}")
    return parse_positive_int(value)


def _virtualenv(value: Any, base_dir: str) -> str:
    text = _text(value, "a path to a virtualenv directory")
    return os.path.normpath(os.path.join(base_dir, os.path.expanduser(text)))


def _hosts(value: Any, base_dir: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueProblem(
            f'expected an array of host names such as ["example.com", "*.example.com"], got {toml_type_name(value)}'
        )
    hosts: list[str] = []
    for item in value:
        host = _host(item)
        if host in hosts:
            raise ValueProblem(f"{item!r} is listed twice")
        hosts.append(host)
    return tuple(hosts)


def _host(item: Any) -> str:
    text = _text(item, "a host name").strip().lower().rstrip(".")
    if text == "default":
        raise ValueProblem('"default" is not a host name; mark the default site with default = true')
    if text.startswith("*."):
        if _HOST_RE.match(text[2:]) and "*" not in text[2:]:
            return text
        raise ValueProblem(f"bad wildcard {item!r}: expected '*.' followed by a domain, as in '*.example.com'")
    if "*" in text:
        raise ValueProblem(f"bad wildcard {item!r}: '*' may only be the whole first label, as in '*.example.com'")
    if _IPV6_RE.match(text):
        return text
    if ":" in text:
        raise ValueProblem(f"{item!r}: write the host without a port (routing ignores the port)")
    if not _HOST_RE.match(text):
        raise ValueProblem(f"{item!r} is not a valid host name")
    return text


def _default(value: Any, base_dir: str) -> bool:
    if not isinstance(value, bool):
        raise ValueProblem(f"expected true or false, got {toml_type_name(value)}")
    return value


def _mount_value(value: Any, base_dir: str) -> str:
    return normalize_prefix(_text(value, 'a path prefix such as "/blog"'))


def normalize_prefix(text: str) -> str:
    """'/blog/' -> '/blog', 'blog' -> '/blog', '/' -> '' (the root, as SCRIPT_NAME has it)."""
    stripped = text.strip()
    segments = stripped.strip("/").split("/") if stripped.strip("/") else []
    for segment in segments:
        if not segment or segment in (".", "..") or not _SEGMENT_RE.match(segment):
            raise ValueProblem(f"{text!r} is not a clean path prefix (no empty, '.' or '..' segments, '?' or '#')")
    return "".join("/" + segment for segment in segments)


def _mounts(value: Any, base_dir: str) -> tuple[Mount, ...]:
    if not isinstance(value, dict):
        raise ValueProblem(f'expected a table such as mounts = {{ "/api" = "api:app" }}, got {toml_type_name(value)}')
    mounts: dict[str, Mount] = {}
    for prefix, target in value.items():
        normalized = normalize_prefix(prefix)
        if not normalized:
            raise ValueProblem(f"{prefix!r}: the site's root is its own app; mount further apps below it")
        guard: tuple[str, tuple[str, ...], bool] = ("", (), False)
        if isinstance(target, dict):
            options = {key.replace("_", "-"): value for key, value in target.items()}
            unknown = set(options) - {"app", *_MOUNT_AUTH_KEYS}
            if unknown:
                raise ValueProblem(
                    f'{prefix!r}: a mount takes app = "..." and {", ".join(_MOUNT_AUTH_KEYS)}, '
                    f"not {', '.join(sorted(unknown))}"
                )
            guard = parse_auth_options(repr(prefix), options)
            target = options.get("app")
        app = _text(target, 'an APP such as "api:app" (or { app = "api:app" })')
        if normalized in mounts:
            raise ValueProblem(f"{prefix!r} is the same prefix as {mounts[normalized].prefix!r}")
        mounts[normalized] = Mount(normalized, app, *guard)
    return tuple(mounts.values())


def _middleware(value: Any, base_dir: str) -> tuple[Middleware, ...]:
    example = '[{ use = "pkg.module:Class", option = "value" }]'
    if not isinstance(value, list):
        raise ValueProblem(f"expected an array of tables such as {example}, got {toml_type_name(value)}")
    result = []
    for number, item in enumerate(value, 1):
        if not isinstance(item, dict):
            raise ValueProblem(f"item {number}: expected a table such as {example[1:-1]}, got {toml_type_name(item)}")
        options = dict(item)
        use = options.pop("use", None)
        if not isinstance(use, str) or not _SPEC_RE.match(use):
            got = "nothing" if use is None else repr(use)
            raise ValueProblem(f'item {number}: use = "pkg.module:Class" is required, got {got}')
        for key in options:
            if not key.isidentifier():
                raise ValueProblem(f"item {number}: option {key!r} is not a Python keyword argument name")
        result.append(Middleware(use=use, options=MappingProxyType(options)))
    return tuple(result)


def _user(value: Any, base_dir: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    text = _text(value, "a user or group name (or a numeric id)").strip()
    if not text:
        raise ValueProblem("expected a user or group name, got an empty string")
    return text


def _text(value: Any, expected: str) -> str:
    if not isinstance(value, str):
        raise ValueProblem(f"expected {expected}, got {toml_type_name(value)}")
    return value


_SITE_PARSERS = {
    "processes": _processes,
    "virtualenv": _virtualenv,
    "hosts": _hosts,
    "default": _default,
    "mount": _mount_value,
    "mounts": _mounts,
    "middleware": _middleware,
    "user": _user,
    "group": _user,
}


def _shown_mount(mount: str) -> str:
    return mount or "/"


def site_table(name: str, profile: str | None = None) -> str:
    return table_name("profile", profile, "sites", name) if profile else table_name("sites", name)
