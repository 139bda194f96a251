"""Read dotenv files: KEY=VALUE lines, `export` prefixes, quotes and comments."""

from __future__ import annotations

import re

_LINE_RE = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*\Z")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


class DotenvError(ValueError):
    pass


def read_dotenv(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise DotenvError(f"{path}: cannot read env file: {exc.strerror}") from None
    result: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE_RE.match(line)
        if not match:
            raise DotenvError(f"{path}, line {number}: expected KEY=VALUE, got {line.strip()!r}")
        key, raw = match.groups()
        result[key] = _value(raw, path, number)
    return result


def _value(raw: str, path: str, number: int) -> str:
    if raw[:1] in ("'", '"'):
        quote = raw[0]
        end = raw.find(quote, 1)
        while quote == '"' and end > 0 and raw[end - 1] == "\\":
            end = raw.find(quote, end + 1)
        if end < 0:
            raise DotenvError(f"{path}, line {number}: unterminated {quote} quote")
        rest = raw[end + 1 :].strip()
        if rest and not rest.startswith("#"):
            raise DotenvError(f"{path}, line {number}: unexpected text after the closing quote")
        inner = raw[1:end]
        if quote == "'":
            return inner
        return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), inner)
    return re.split(r"\s+#", raw, maxsplit=1)[0].strip()
