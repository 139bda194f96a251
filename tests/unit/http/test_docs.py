"""docs/http.md lists every rejected input with its status and every limit."""

from __future__ import annotations

import re
from pathlib import Path

from corpus import load

from corral.config.settings import Config

DOC = (Path(__file__).resolve().parents[3] / "docs" / "http.md").read_text()


def test_every_invalid_corpus_case_is_in_the_table_under_its_status() -> None:
    sections = re.split(r"^#### ", DOC, flags=re.M)
    listed = {}
    for section in sections[1:]:
        status = int(section[:3])
        for name in re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.M):
            listed[name] = status
    expected = {case.name: case.meta["status"] for case in load("invalid")}
    assert listed == expected


def test_every_limit_and_timeout_is_documented_with_its_default() -> None:
    defaults = Config()
    for name in (
        "max_request_line",
        "max_header_size",
        "max_headers",
        "max_body_size",
        "body_buffer_size",
        "header_timeout",
        "body_timeout",
        "keepalive_timeout",
        "send_timeout",
        "graceful_timeout",
        "max_connections",
    ):
        flag = "--" + name.replace("_", "-")
        row = next((line for line in DOC.splitlines() if line.startswith(f"| `{flag}`")), None)
        assert row is not None, f"{flag} missing from docs/http.md"
        value = getattr(defaults, name)
        shown = row.split("|")[2].strip()
        number = float(re.match(r"[\d.]+", shown).group())  # type: ignore[union-attr]
        unit = {"MiB": 1024 * 1024, "KiB": 1024}.get(shown.split()[1] if " " in shown else "", 1)
        assert number * unit == value, (flag, shown, value)
