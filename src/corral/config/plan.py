"""The resolved plan: the server's Config and the sites it serves.

Precedence, lowest first: setting defaults < corral.toml top level < the chosen
[profile.NAME] < CORRAL_* environment variables (config/envvars.py) < command-line
flags. Sites come from [sites.NAME] tables (a profile may override or add them with
[profile.NAME.sites.SITE]); without any, the plan has one implicit default site
serving the top-level app.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .envvars import variable
from .files import (
    SERVER_KEYS,
    Layer,
    config_from_layer,
    is_table,
    merge,
    parse_table,
    read_toml,
    select_profile,
)
from .problems import ConfigError, Problems, table_name
from .settings import Config, toml_key
from .sites import APP_SETTINGS, SITE_ONLY_KEYS, SiteConfig, build_sites, implicit_site, parse_site_table, site_table
from .tls import tls_problems
from .values import pairs_table

_APP_NAMES = frozenset(f.name for f in APP_SETTINGS)
_SITE_HINT = "is a site key; put it in a [sites.NAME] table"
_TOP_HINTS = {key: _SITE_HINT for key in SITE_ONLY_KEYS}
_PROFILE_HINTS = {**_TOP_HINTS, "profile": "profiles cannot be nested; [profile.NAME] tables belong at the top level"}


@dataclass(frozen=True)
class Plan:
    server: Config  # listeners, server-wide settings; the app settings too when single-site
    sites: tuple[SiteConfig, ...]  # never empty
    source: str | None = None  # the config file used, if any
    profile: str | None = None
    multi_site: bool = False  # True when [sites] tables define the sites
    # Server settings set by the file, the profile or a flag (not left at their defaults), so a
    # command with its own defaults (corral dev: threads, access log) applies them only elsewhere.
    given: frozenset[str] = frozenset()
    # Server settings whose value came from a CORRAL_* variable (no flag overrode it), for corral check.
    from_environment: frozenset[str] = frozenset()


def load_plan(
    path: str | None,
    profile: str | None = None,
    cli_overrides: Mapping[str, Any] | None = None,
    environment: Mapping[str, Any] | None = None,
) -> Plan:
    """Resolve file + profile + variables + flags.

    `cli_overrides` and `environment` map setting names to parsed values: the flags given, and
    the settings CORRAL_* variables set (envvars.environment_layer).
    """
    cli_layer: Layer = dict(cli_overrides or {})
    for name in cli_layer:
        if is_table(name):
            cli_layer[name] = pairs_table(cli_layer[name])
    env_layer: Layer = dict(environment or {})
    from_environment = frozenset(env_layer) - frozenset(cli_layer)
    if path is None:
        if profile is not None:
            raise ConfigError([f"profile {profile!r} chosen, but there is no config file (corral.toml or --config)"])
        layer = merge(env_layer, cli_layer)
        server = config_from_layer(layer)
        _check_tls(server, None, multi_site=False)
        return Plan(
            server=server, sites=(implicit_site(server),), given=frozenset(layer), from_environment=from_environment
        )

    problems = Problems(path)
    document = read_toml(path)
    base_dir = os.path.dirname(os.path.abspath(path))
    top = parse_table(document, SERVER_KEYS, "", problems, base_dir, extra=("profile", "sites"), hints=_TOP_HINTS)
    site_layers = _site_layers(document.get("sites"), None, problems, base_dir)

    profiles, chosen = select_profile(document, profile, problems)
    profile_layer: Layer = {}
    for name, table in profiles.items():
        where = table_name("profile", name)
        layer = parse_table(table, SERVER_KEYS, where, problems, base_dir, extra=("sites",), hints=_PROFILE_HINTS)
        overrides = _site_layers(table.get("sites"), name, problems, base_dir)
        if table is chosen:
            profile_layer = layer
            for site, (site_layer, site_where) in overrides.items():
                base, base_where = site_layers.get(site, ({}, site_where))
                site_layers[site] = (merge(base, site_layer), base_where)
    problems.raise_if_any()

    server_layer = merge(top, profile_layer, env_layer, cli_layer)
    if not site_layers:
        server = config_from_layer(server_layer)
        _check_tls(server, problems, multi_site=False)
        given = frozenset(server_layer)
        return Plan(
            server=server,
            sites=(implicit_site(server),),
            source=path,
            profile=profile,
            given=given,
            from_environment=from_environment,
        )

    # With sites, each site names its own app and environment; a server-level one would be ambiguous.
    for layer, where in ((top, ""), (profile_layer, table_name("profile", profile or ""))):
        for name in sorted(_APP_NAMES & set(layer)):
            problems.add(where, toml_key(name), "belongs in each [sites.NAME] table when the file defines sites")
    for name in sorted(_APP_NAMES & set(cli_layer)):
        flag = "APP" if name == "app" else "--" + toml_key(name)
        problems.add("", None, f"{flag} given on the command line, but this file defines [sites]: set it per site")
    for name in sorted(_APP_NAMES & set(env_layer) - set(cli_layer)):
        message = f"{variable(name)} set in the environment, but this file defines [sites]: set it per site"
        problems.add("", None, message)
    problems.raise_if_any()
    server = config_from_layer(server_layer)
    _check_tls(server, problems, multi_site=True)
    sites = build_sites(site_layers, server, problems)
    problems.raise_if_any()
    given = frozenset(server_layer)
    return Plan(
        server=server,
        sites=sites,
        source=path,
        profile=profile,
        multi_site=True,
        given=given,
        from_environment=from_environment,
    )


def _check_tls(server: Config, problems: Problems | None, multi_site: bool) -> None:
    """TLS settings that do not go together; `problems` None: they all came from flags."""
    found = tls_problems(server, multi_site)
    if problems is None:
        if found:
            raise ConfigError(found)
        return
    for problem in found:
        problems.add("", None, problem)
    problems.raise_if_any()


def _site_layers(raw: Any, profile: str | None, problems: Problems, base_dir: str) -> dict[str, tuple[Layer, str]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        where = table_name("profile", profile) if profile else ""
        problems.add(where, "sites", "expected tables such as [sites.blog]")
        return {}
    return {
        name: (parse_site_table(name, table, site_table(name, profile), problems, base_dir), site_table(name, profile))
        for name, table in raw.items()
    }
