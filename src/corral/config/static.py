"""The static map's configuration: URL prefixes served from directories, and their guards.

Three spellings give the same StaticRoute values:

    --static /static=/srv/site/staticfiles                  (command line, repeatable)
    static = { "/static" = "staticfiles" }                  (corral.toml, a table like env)
    [static."/private"]                                     (a prefix with options)
    root = "private"
    auth = "django"
    auth-groups = ["staff"]

Prefixes are whole path segments below the site's own mount (as `mounts` are). Relative
roots are anchored at corral.toml's directory (or the working directory, on the command
line). Nothing here touches the filesystem: a missing root is reported by `root_problems`,
which `corral serve` and `corral check` call before anything starts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .values import ValueProblem, toml_type_name

AUTH_KINDS = ("django",)
DJANGO_KINDS = ("static", "media", "none")
_OPTION_KEYS = ("root", "auth", "auth-groups", "auth-allow-http")


@dataclass(frozen=True)
class StaticRoute:
    prefix: str  # "/static": leading "/", no trailing "/", never the root
    root: str  # an absolute directory
    auth: str = ""  # "" (public) or "django": HTTP Basic checked against Django's users
    auth_groups: tuple[str, ...] = ()  # with auth: the user must be in one of these groups
    auth_allow_http: bool = False  # with auth: also over plain HTTP (credentials in clear text)
    origin: str = ""  # "" (configured) or "django" (STATIC_URL/MEDIA_URL of the site's settings)

    def __str__(self) -> str:
        text = f"{self.prefix} -> {self.root}"
        if self.auth:
            groups = f", groups {', '.join(self.auth_groups)}" if self.auth_groups else ""
            text += f" (auth {self.auth}{groups}{', http allowed' if self.auth_allow_http else ''})"
        return text

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StaticRoute:
        """The inverse of dataclasses.asdict after a JSON round trip (worker specs)."""
        return cls(**{**data, "auth_groups": tuple(data.get("auth_groups", ()))})


def parse_static_flag(text: str) -> StaticRoute:
    """`--static PREFIX=DIRECTORY`; a relative directory is taken from the working directory."""
    if isinstance(text, StaticRoute):
        return text
    if not isinstance(text, str) or "=" not in text:
        raise ValueProblem(f"expected URL_PREFIX=DIRECTORY such as /static=/srv/site/static, got {text!r}")
    prefix, _, root = text.partition("=")
    return _route(prefix, root, {}, os.getcwd())


def parse_static_table(value: Any, base_dir: str) -> tuple[StaticRoute, ...]:
    """`static = { "/static" = "dir", "/private" = { root = "dir", auth = "django" } }`."""
    if not isinstance(value, dict):
        raise ValueProblem(
            f'expected a table such as static = {{ "/static" = "staticfiles" }}, got {toml_type_name(value)}'
        )
    routes: dict[str, StaticRoute] = {}
    for prefix, target in value.items():
        if isinstance(target, str):
            route = _route(prefix, target, {}, base_dir)
        elif isinstance(target, dict):
            options = {key.replace("_", "-"): item for key, item in target.items()}
            unknown = sorted(set(options) - set(_OPTION_KEYS))
            if unknown:
                raise ValueProblem(f"{prefix!r}: unknown key {unknown[0]!r} (expected {', '.join(_OPTION_KEYS)})")
            root = options.get("root")
            if not isinstance(root, str):
                raise ValueProblem(f'{prefix!r}: root = "DIRECTORY" is required')
            route = _route(prefix, root, options, base_dir)
        else:
            raise ValueProblem(
                f'{prefix!r}: expected a directory ("/static" = "dir") or a table with root = "dir", '
                f"got {toml_type_name(target)}"
            )
        if route.prefix in routes:
            raise ValueProblem(f"{prefix!r} is the same prefix as {routes[route.prefix].prefix!r}")
        routes[route.prefix] = route
    return tuple(routes.values())


def parse_auth_options(where: str, options: Mapping[str, Any]) -> tuple[str, tuple[str, ...], bool]:
    """auth, auth-groups and auth-allow-http of a static route or a mount, checked."""
    auth = options.get("auth", "")
    if auth != "" and auth not in AUTH_KINDS:
        raise ValueProblem(f"{where}: auth must be {' or '.join(map(repr, AUTH_KINDS))}, got {auth!r}")
    groups = options.get("auth-groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
        raise ValueProblem(f'{where}: auth-groups must be an array of group names such as ["staff"]')
    allow_http = options.get("auth-allow-http", False)
    if not isinstance(allow_http, bool):
        raise ValueProblem(f"{where}: auth-allow-http must be true or false, got {toml_type_name(allow_http)}")
    if not auth and (groups or allow_http):
        raise ValueProblem(f'{where}: auth-groups and auth-allow-http need auth = "django"')
    return auth, tuple(groups), allow_http


def parse_django_kind(text: str) -> str:
    """One of `static_django`'s values: which of Django's settings to serve."""
    if not isinstance(text, str) or text.strip().lower() not in DJANGO_KINDS:
        raise ValueProblem(f"expected one of {', '.join(DJANGO_KINDS)}, got {text!r}")
    return text.strip().lower()


def merge_routes(base: Iterable[StaticRoute], later: Iterable[StaticRoute]) -> tuple[StaticRoute, ...]:
    """Layers stack by prefix (as env stacks by key): a profile may add /media and keep /static."""
    merged = {route.prefix: route for route in base}
    merged.update((route.prefix, route) for route in later)
    return tuple(merged.values())


def root_problems(routes: Iterable[StaticRoute]) -> list[str]:
    """What is wrong with the configured roots on this machine (I/O: called at start, not parse)."""
    problems = []
    for route in routes:
        if not os.path.exists(route.root):
            problems.append(f"static {route.prefix}: directory {route.root} does not exist")
        elif not os.path.isdir(route.root):
            problems.append(f"static {route.prefix}: {route.root} is not a directory")
    return problems


def _route(prefix: Any, root: str, options: Mapping[str, Any], base_dir: str) -> StaticRoute:
    from .sites import normalize_prefix  # (sites imports settings, which imports this module)

    normalized = normalize_prefix(str(prefix))
    if not normalized:
        raise ValueProblem(f"{prefix!r}: the site's root is its app; map a prefix such as /static")
    if not root.strip():
        raise ValueProblem(f"{prefix!r}: the directory is empty")
    auth, groups, allow_http = parse_auth_options(repr(prefix), options)
    directory = os.path.normpath(os.path.join(base_dir, os.path.expanduser(root)))
    return StaticRoute(normalized, directory, auth, groups, allow_http)
