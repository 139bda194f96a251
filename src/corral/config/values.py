"""Parsers for setting values, shared by the command line and corral.toml."""

from __future__ import annotations

import re
from collections.abc import Iterable

_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
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


def _seconds(text: str | int | float) -> float:
    if isinstance(text, bool):
        raise ValueProblem("expected a number of seconds")
    try:
        return float(text)
    except (TypeError, ValueError):
        raise ValueProblem(f"expected a number of seconds, got {text!r}") from None


def parse_seconds(text: str | int | float) -> float:
    value = _seconds(text)
    if value <= 0:
        raise ValueProblem(f"expected a positive number of seconds, got {value}")
    return value


def parse_nonnegative_seconds(text: str | int | float) -> float:
    """Seconds where 0 means "off" (parse_seconds refuses 0: a zero timeout would fail everything)."""
    value = _seconds(text)
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


def parse_env_table(value: object) -> dict[str, str]:
    """`env = { KEY = "value" }`: values must be strings, so `DEBUG = 1` is not silently "1"."""
    if not isinstance(value, dict):
        raise ValueProblem(f'expected a table such as env = {{ KEY = "value" }}, got {shown(value)}')
    result: dict[str, str] = {}
    for key, item in value.items():
        if not _ENV_NAME_RE.match(key):
            raise ValueProblem(f"{key!r} is not a valid environment variable name")
        if not isinstance(item, str):
            raise ValueProblem(f'{key}: expected a string (write {key} = "{plain(item)}"), got {shown(item)}')
        result[key] = item
    return result


_MODE_RE = re.compile(r"(?:0o|0)?([0-7]{1,3})\Z", re.IGNORECASE)


def parse_file_mode(text: str) -> str:
    """Permission bits in octal: "660", "0660" and "0o660" all give "0660".

    Kept as text (what `corral check` and --help show); octal_mode() gives the number.
    Only a string in TOML: an integer 660 there would be decimal, which no one means.
    """
    match = _MODE_RE.match(parse_text(text).strip())
    if not match:
        raise ValueProblem(f'expected permission bits in octal, such as "0660", got {text!r}')
    return f"0{int(match.group(1), 8):03o}"


def octal_mode(text: str) -> int:
    return int(text, 8)


_ACCOUNT_RE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.$-]*\Z")


def parse_owner(text: str) -> str:
    """`USER`, `USER:GROUP` or `:GROUP`, by name or numeric id (looked up when used, not here)."""
    user, colon, group = parse_text(text).strip().partition(":")
    for part, what in ((user, "user"), (group, "group")):
        if part and not _ACCOUNT_RE.match(part):
            raise ValueProblem(f"{part!r} is not a {what} name or id")
    if not user and not group or colon and not group:
        raise ValueProblem(f"expected USER, USER:GROUP or :GROUP, got {text!r}")
    return f"{user}{colon}{group}"


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
    parse_file_mode: ((str,), 'an octal string such as "0660" (a TOML integer would be decimal)'),
    parse_owner: ((str,), 'a "USER", "USER:GROUP" or ":GROUP" string'),
    parse_log_level: ((str,), f"one of {', '.join(repr(level) for level in LOG_LEVELS)}"),
}


def toml_type_name(value: object) -> str:
    """How TOML would name this value's type, for error messages."""
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    return type(value).__name__


def shown(value: object) -> str:
    """A TOML value as an error message names it: `integer 1`, `string 'x'`, `table`."""
    kind = toml_type_name(value)
    if isinstance(value, (dict, list)):
        return kind
    return f"{kind} {plain(value)!r}" if isinstance(value, str) else f"{kind} {plain(value)}"


def plain(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def pairs_table(pairs: Iterable[str]) -> dict[str, str]:
    """`KEY=VALUE` pairs (the command line's, or a Config's) as a table; the last of a key wins."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        result[key] = value
    return result
