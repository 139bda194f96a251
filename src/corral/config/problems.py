"""Configuration errors that name the file, the table, the key and the problem.

Loading collects every problem it finds before failing, so a deploy script
sees all the typos in one run instead of one per run.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfigError(Exception):
    """One line per problem; `problems` keeps them separate for tests and callers."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Problems:
    """Collects `file: [table] key: problem` lines while a file is checked."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, table: str, key: str | None, message: str) -> None:
        where = " ".join(part for part in (table, key) if part)
        self.items.append(f"{self.source}: {where}: {message}" if where else f"{self.source}: {message}")

    def unknown(self, table: str, key: str, known: Iterable[str], what: str = "key") -> None:
        self.add(table, key, f"unknown {what}{did_you_mean(key, known)}")

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError(list(self.items))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean "x"?)`, or `` when nothing is close; `_` for `-` is always caught."""
    choices = sorted(set(choices))
    dashed = word.replace("_", "-")
    if dashed != word and dashed in choices:
        return f' (did you mean "{dashed}"?)'
    close = difflib.get_close_matches(word, choices, n=2, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(f'"{c}"' for c in close) + "?)"


def table_name(*parts: str) -> str:
    """`[profile.prod.sites.blog]`; names that are not bare TOML keys are quoted."""
    shown = [part if part and all(c.isalnum() or c in "-_" for c in part) else f'"{part}"' for part in parts]
    return "[" + ".".join(shown) + "]" if parts else ""
