"""docs/configuration.md documents every key the declarations define (and no key that is gone)."""

from __future__ import annotations

import re
from pathlib import Path

from corral.config.settings import SETTINGS, toml_key
from corral.config.sites import SITE_ONLY_KEYS

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
    documented = set(re.findall(r"^\| `([a-z-]+)` \|", table, re.MULTILINE))
    assert documented == {toml_key(f.name) for f in SETTINGS}
