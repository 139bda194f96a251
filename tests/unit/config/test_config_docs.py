"""docs/configuration.md and docs/http.md document every key the declarations define, with its default."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from corral.config.files import parse_value, table_pairs
from corral.config.settings import BY_NAME, SETTINGS, carried_settings, toml_key
from corral.config.sites import SITE_ONLY_KEYS
from corral.http.limits import Limits
from corral.server.context import Timeouts

DOC = (Path(__file__).parents[3] / "docs" / "configuration.md").read_text(encoding="utf-8")


def test_every_setting_has_a_row_with_its_flag() -> None:
    for f in SETTINGS:
        key = toml_key(f.name)
        row = re.search(rf"^\| `{re.escape(key)}` \|(.*)$", DOC, re.MULTILINE)
        assert row, f"docs/configuration.md has no row for {key}"
        if f.name != "app":
            assert f"`--{key}" in row.group(1)


def test_every_site_key_is_documented() -> None:
    site_section = DOC[DOC.index("### Site keys") :]
    for key in SITE_ONLY_KEYS:
        assert f"`{key}`" in site_section.split("### Rules")[0], key


def test_documented_keys_exist() -> None:
    table = DOC[DOC.index("## Every key") : DOC.index("Keys that exist only in the file")]
    documented = set(re.findall(r"^\| `([a-z0-9-]+)` \|", table, re.MULTILINE))
    assert documented == {toml_key(f.name) for f in SETTINGS}


# -- the tables' defaults and scopes are the declarations' ----------------------------------

def _rows(table: str) -> dict[str, list[str]]:
    """`| `key` | cell | cell |` rows by their first cell's code span."""
    rows = {}
    for line in table.splitlines():
        match = re.match(r"^\| `([^`]+)`[^|]*\|(.*)\|$", line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split("|")]
    return rows


def _documented_default(cell: str) -> Any:
    """A Default cell: `none...` or its first code span, read as TOML and parsed as the file's value would be."""
    if cell.startswith("none"):
        return None
    span = re.match(r"`([^`]+)`", cell)
    assert span, f"a Default cell starts with none or a TOML value in backticks: {cell!r}"
    return tomllib.loads(f"value = {span.group(1)}")["value"]


def test_every_key_default_and_scope_are_the_declared_ones() -> None:
    rows = _rows(DOC[DOC.index("## Every key") : DOC.index("Keys that exist only in the file")])
    for f in SETTINGS:
        _flag, _type, default, scope, _what = rows[toml_key(f.name)]
        documented = _documented_default(default)
        if documented is not None:
            documented = parse_value(f, documented, "/")
            documented = table_pairs(documented) if isinstance(documented, dict) else documented
        assert documented == f.default, f"{toml_key(f.name)}: docs say {default}, the declaration {f.default!r}"
        expected = "app" if f.metadata["group"] == "app" else "server, site" if f.metadata["site"] else "server"
        assert scope == expected, f"{toml_key(f.name)}: scope"


HTTP_DOC = (Path(__file__).parents[3] / "docs" / "http.md").read_text(encoding="utf-8")
_UNITS = {"": 1, "bytes": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "s": 1}


def test_http_limits_table_has_every_limit_and_timeout_with_its_default() -> None:
    section = HTTP_DOC[HTTP_DOC.index("## Limits and timeouts") :]
    rows = _rows(section[: section.index("\n\n", section.index("| setting |"))])
    flags = {key: cells for key, cells in rows.items() if key.startswith("--")}
    carried_by_worker = {*carried_settings(Limits).values(), *carried_settings(Timeouts).values()}
    for name in carried_by_worker | {"graceful_timeout", "max_connections"}:
        assert f"--{toml_key(name)}" in flags, f"docs/http.md's limits table has no row for --{toml_key(name)}"
    for flag, (default, *_rest) in flags.items():
        setting = BY_NAME[flag.removeprefix("--").replace("-", "_")]
        match = re.match(r"(\d+(?:\.\d+)?) ?(bytes|KiB|MiB|GiB|s)?\b", default)
        assert match, f"{flag}: {default!r}"
        assert float(match.group(1)) * _UNITS[match.group(2) or ""] == setting.default, flag
