"""Read corral.toml: settings tables, profiles, and how layers stack.

How this works: the file is parsed with tomllib, then each table (the top
level, each [profile.NAME], each [sites.NAME]) is turned into a *layer*: a
dict from setting name to parsed value, holding only the keys the table set.
Layers stack by plain dict update (top level < profile < command line), except
tables (`env`, `hooks`), whose keys merge, and `static`, whose prefixes merge. Every
setting's TOML key, accepted types and parser come from its declaration in settings.py, so
nothing here lists settings.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import Field
from typing import Any

from .problems import ConfigError, Problems
from .settings import BY_NAME, SETTINGS, Config, toml_key
from .static import merge_routes, parse_static_table
from .values import TOML_TYPES, ValueProblem
from .values import shown as _shown

CONFIG_FILE = "corral.toml"
PROFILE_ENV = "CORRAL_PROFILE"

Layer = dict[str, Any]


def default_config_path(directory: str) -> str | None:
    """corral.toml in `directory`, if there is one: it is used without being asked for."""
    path = os.path.join(directory, CONFIG_FILE)
    return path if os.path.isfile(path) else None


def read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read config file: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: invalid TOML: {exc}"]) from None


def keys_for(fields: Iterable[Field[Any]]) -> dict[str, Field[Any]]:
    return {toml_key(f.name): f for f in fields}


SERVER_KEYS = keys_for(SETTINGS)


def parse_table(
    table: Mapping[str, Any],
    allowed: Mapping[str, Field[Any]],
    where: str,
    problems: Problems,
    base_dir: str,
    extra: Iterable[str] = (),
    hints: Mapping[str, str] | None = None,
) -> Layer:
    """The settings in one TOML table; keys in `extra` are left for the caller.

    `hints` maps keys that are valid elsewhere to a message saying where they go.
    """
    extra = set(extra)
    layer: Layer = {}
    for key, value in table.items():
        if key in extra:
            continue
        setting = allowed.get(key)
        if setting is None:
            hint = (hints or {}).get(key) or _misplaced(key, allowed)
            if hint:
                problems.add(where, key, hint)
            else:
                problems.unknown(where, key, [*allowed, *extra])
            continue
        try:
            layer[setting.name] = parse_value(setting, value, base_dir)
        except ValueProblem as exc:
            problems.add(where, key, str(exc))
    return layer


def parse_value(setting: Field[Any], value: Any, base_dir: str) -> Any:
    """One TOML value for one setting: type-checked, parsed, relative paths anchored."""
    meta = setting.metadata
    if meta["table"] is not None:
        return meta["table"](value)
    if setting.name == "static":
        return parse_static_table(value, base_dir)
    if meta["multiple"]:
        if not isinstance(value, list):
            raise ValueProblem(f"expected an array of {_expected(setting)}s, got {_shown(value)}")
        parsed = tuple(_parse_one(setting, item) for item in value)
        return tuple(_anchor(setting, item, base_dir) for item in parsed)
    return _anchor(setting, _parse_one(setting, value), base_dir)


def is_table(name: str) -> bool:
    """A setting written as a TOML table (`env`, `hooks`): its layers merge key by key."""
    setting = BY_NAME.get(name)
    return setting is not None and setting.metadata["table"] is not None


def merge(*layers: Layer) -> Layer:
    """Later layers win; tables (`env`, `hooks`) merge key by key, `static` prefix by prefix."""
    result: Layer = {}
    for layer in layers:
        for name, value in layer.items():
            if name in result and is_table(name):
                result[name] = {**result[name], **value}
            elif name == "static" and "static" in result:
                result["static"] = merge_routes(result["static"], value)
            else:
                result[name] = value
    return result


def config_from_layer(layer: Layer) -> Config:
    changes: dict[str, Any] = {name: table_pairs(value) if is_table(name) else value for name, value in layer.items()}
    return Config(**changes)


def table_pairs(table: Mapping[str, str]) -> tuple[str, ...]:
    """A table as the Config holds it: the `KEY=VALUE` pairs the command line takes."""
    return tuple(f"{key}={value}" for key, value in table.items())


def select_profile(
    document: Mapping[str, Any], profile: str | None, problems: Problems
) -> tuple[dict[str, Mapping[str, Any]], Mapping[str, Any] | None]:
    """All profile tables (each is checked, not only the chosen one) and the chosen one.

    An unknown profile is a problem, not an exception, so the errors in the
    profiles that do exist are reported with it.
    """
    raw = document.get("profile", {})
    if not isinstance(raw, dict):
        problems.add("", "profile", f"expected tables such as [profile.dev], got {_shown(raw)}")
        raw = {}
    profiles: dict[str, Mapping[str, Any]] = {}
    for name, table in raw.items():
        if isinstance(table, dict):
            profiles[name] = table
        else:
            problems.add("", f"profile.{name}", f"expected a table [profile.{name}], got {_shown(table)}")
    if profile is None:
        return profiles, None
    if profile not in profiles:
        available = ", ".join(sorted(profiles)) or "none (add a [profile.NAME] table)"
        problems.add("", None, f"no profile {profile!r}; available profiles: {available}")
        return profiles, None
    return profiles, profiles[profile]


def _parse_one(setting: Field[Any], value: Any) -> Any:
    parse = setting.metadata["parse"]
    types, expected = TOML_TYPES.get(parse, ((str,), "a string"))
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        raise ValueProblem(f"expected {expected}, got {_shown(value)}")
    return parse(value)


def _anchor(setting: Field[Any], value: Any, base_dir: str) -> Any:
    if not setting.metadata["path"] or not isinstance(value, str) or value == "-":
        return value
    return os.path.normpath(os.path.join(base_dir, os.path.expanduser(value)))


def _expected(setting: Field[Any]) -> str:
    return TOML_TYPES.get(setting.metadata["parse"], ((str,), "a string"))[1].removeprefix("a ")


def _misplaced(key: str, allowed: Mapping[str, Field[Any]]) -> str | None:
    """A known setting used where it does not apply gets a better message than 'unknown'."""
    setting = BY_NAME.get(key.replace("-", "_"))
    if setting is None or key in allowed or toml_key(setting.name) != key:
        return None
    return "is a server-wide setting; set it at the top level (or in a profile), not in a site"
