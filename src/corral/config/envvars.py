"""CORRAL_* environment variables: one per setting, derived from its declaration.

The variable of a setting is CORRAL_ and its TOML key in capitals, `-` as `_`:
`max-body-size` is CORRAL_MAX_BODY_SIZE. A variable takes what the flag takes
(`CORRAL_MAX_BODY_SIZE=10M`, `CORRAL_REUSE_PORT=1`); a repeatable setting takes a
comma-separated list (`CORRAL_BIND=0.0.0.0:8000,unix:/run/corral.sock`). The table
settings, `env` and `hooks`, have none: the app inherits the environment anyway, and
hooks are code, named in the file or on the command line. An empty variable counts
as unset, as CORRAL_PROFILE does.

Precedence (config/plan.py): flag > variable > profile > top level of corral.toml >
default. The variables are read once, by the command line in the master; workers,
site processes and the dev reloader's children get the resolved Config, never the
variables, so they cannot see another value than the master did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import Field
from typing import Any

from .problems import ConfigError, did_you_mean
from .settings import SETTINGS, toml_key
from .values import ValueProblem

PREFIX = "CORRAL_"
# Variables Corral reads for other things; no setting may derive one of these names.
OTHER_VARIABLES = frozenset({"CORRAL_PROFILE", "CORRAL_NO_EXTENSIONS", "CORRAL_SPEC_FD", "CORRAL_MASTER_PID"})


def variable(name: str) -> str:
    """The environment variable of setting `name`: `max_body_size` -> CORRAL_MAX_BODY_SIZE."""
    return PREFIX + toml_key(name).replace("-", "_").upper()


def has_variable(setting: Field[Any]) -> bool:
    return setting.metadata["table"] is None and setting.metadata["cli"]


VARIABLES: dict[str, Field[Any]] = {variable(f.name): f for f in SETTINGS if has_variable(f)}


def environment_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings set by CORRAL_* variables, parsed; every bad one is reported at once."""
    layer: dict[str, Any] = {}
    problems: list[str] = []
    for name, setting in VARIABLES.items():
        raw = environ.get(name, "")
        if raw == "":
            continue
        try:
            layer[setting.name] = _parse(setting, raw)
        except ValueProblem as exc:
            problems.append(f"environment variable {name}={raw!r}: {exc}")
    if problems:
        raise ConfigError(problems)
    return layer


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """Warnings for CORRAL_* variables that name no setting (a typo would otherwise do nothing)."""
    known = VARIABLES.keys() | OTHER_VARIABLES
    return [
        f"environment variable {name} is not a Corral setting{did_you_mean(name, known)}; ignored"
        for name in sorted(environ)
        if name.startswith(PREFIX) and name not in known
    ]


def _parse(setting: Field[Any], raw: str) -> Any:
    parse = setting.metadata["parse"]
    if not setting.metadata["multiple"]:
        return parse(raw)
    items = [item.strip() for item in raw.split(",")]
    if "" in items:
        raise ValueProblem("expected a comma-separated list without empty items")
    return tuple(parse(item) for item in items)
