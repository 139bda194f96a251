"""Parsers for setting values, shared by the command line and corral.toml."""

from __future__ import annotations

import re

_SIZE_RE = re.compile(r"(\d+)\s*([kmg]?)(i?b)?\Z", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


class ValueProblem(ValueError):
    """A value of the wrong shape; the message says what was expected."""


def parse_size(text: str | int) -> int:
    """Bytes from `65536`, `64k`, `1M`, `1MiB`, `2G`."""
    if isinstance(text, bool):
        raise ValueProblem("expected a size such as 65536, 64k or 10M")
    if isinstance(text, int):
        if text < 0:
            raise ValueProblem("a size cannot be negative")
        return text
    match = _SIZE_RE.match(text.strip())
    if not match:
        raise ValueProblem(f"expected a size such as 65536, 64k or 10M, got {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def _whole_number(text: str | int, minimum: int) -> int:
    if isinstance(text, bool):
        raise ValueProblem("expected a whole number")
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ValueProblem(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise ValueProblem(f"expected a number of at least {minimum}, got {value}")
    return value


def parse_positive_int(text: str | int) -> int:
    return _whole_number(text, 1)


def parse_count(text: str | int) -> int:
    return _whole_number(text, 0)


def parse_seconds(text: str | int | float) -> float:
    if isinstance(text, bool):
        raise ValueProblem("expected a number of seconds")
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueProblem(f"expected a number of seconds, got {text!r}") from None
    if value <= 0:
        raise ValueProblem(f"expected a positive number of seconds, got {value}")
    return value


def parse_nonnegative_seconds(text: str | int | float) -> float:
    """Seconds where 0 means "off" (parse_seconds refuses 0: a zero timeout would fail everything)."""
    if isinstance(text, bool):
        raise ValueProblem("expected a number of seconds")
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueProblem(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0 or value == float("inf"):  # also refuses nan
        raise ValueProblem(f"expected 0 or a positive number of seconds, got {value}")
    return value


def parse_bool(value: str | bool) -> bool:
    """A switch: true in TOML, or the bare flag on the command line (which argparse stores as True)."""
    if isinstance(value, bool):
        return value
    text = parse_text(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueProblem(f"expected true or false, got {value!r}")


def parse_text(text: str) -> str:
    if not isinstance(text, str):
        raise ValueProblem(f"expected a string, got {type(text).__name__}")
    return text


def parse_env_pair(text: str) -> tuple[str, str]:
    if not isinstance(text, str) or "=" not in text:
        raise ValueProblem(f"expected KEY=VALUE, got {text!r}")
    key, _, value = text.partition("=")
    if not re.match(r"[A-Za-z_][A-Za-z0-9_]*\Z", key):
        raise ValueProblem(f"{key!r} is not a valid environment variable name")
    return key, value


def parse_env_assignment(text: str) -> str:
    """A command-line --env value, checked now so a typo fails before any worker starts."""
    parse_env_pair(text)
    return text


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def parse_log_level(text: str) -> str:
    level = parse_text(text).lower()
    if level not in LOG_LEVELS:
        raise ValueProblem(f"expected one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return level


# What each parser accepts from TOML, and how to say so: TOML has real types, so
# `workers = "4"` is an error there even though the command line hands us text.
TOML_TYPES: dict[object, tuple[tuple[type, ...], str]] = {
    parse_size: ((int, str), 'a size such as 65536 or "10M"'),
    parse_positive_int: ((int,), "a whole number"),
    parse_count: ((int,), "a whole number"),
    parse_seconds: ((int, float), "a number of seconds"),
    parse_nonnegative_seconds: ((int, float), "a number of seconds"),
    parse_text: ((str,), "a string"),
    parse_bool: ((bool,), "true or false"),
    parse_env_assignment: ((str,), 'a "KEY=VALUE" string'),
    parse_log_level: ((str,), f"one of {', '.join(repr(level) for level in LOG_LEVELS)}"),
}


def toml_type_name(value: object) -> str:
    """How TOML would name this value's type, for error messages."""
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    return type(value).__name__
