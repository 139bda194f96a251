"""The imported request corpora (tests/data/corpora/) as cases: raw bytes and what their project expects.

gunicorn (tests/requests): each NNN.http is a raw request written with escapes (``\\r\\n``,
``\\0``, ``\\xHH``; real newlines are ignored), each NNN.py says what gunicorn's parser must
make of it: ``request = {...}`` (or a list of them, pipelined) for a valid one, an error class
for an invalid one. The .py files are gunicorn's own test modules, run with stand-ins for their
gunicorn imports (see _gunicorn_expectation): a ``cfg.set(...)`` call marks a case that needs a non-default
gunicorn setting, which is kept as the case's ``settings``.

llhttp (test/request/*.md): each ``### name`` section has an ``http`` block (newlines are
CRLF, ``\\r``/``\\n``/``\\t``/``\\xHH``/octal escapes) and the ``log`` llhttp must produce.
Only ``"type": "request"`` sections count: the other types run llhttp with a lenient flag.
A log with an ``error`` line expects a rejection (after the requests it completed first),
except code 22, llhttp pausing at an Upgrade for its caller; each ``message complete`` is one
request the parser must accept.
"""

from __future__ import annotations

import builtins
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

CORPORA = Path(__file__).resolve().parent / "data" / "corpora"
_HOST_FIELD = re.compile(rb"\r\nhost[ \t]*:", re.I)


@dataclass(frozen=True)
class Expected:
    """What the corpus says of one request: the parts Corral's echo app can show."""

    method: str
    body: bytes | None  # None: the corpus does not say


@dataclass(frozen=True)
class Case:
    id: str  # "gunicorn/valid/001", "llhttp/uri/Quotes in URI"
    data: bytes
    valid: bool  # the corpus's parser accepts it
    requests: tuple[Expected, ...] = ()  # for a valid case: the complete requests in it
    error: str = ""  # for an invalid case: the corpus's name for the error
    settings: tuple[str, ...] = field(default=())  # non-default settings the corpus ran it with

    def with_host(self) -> Case:
        """The case with `Host: corpus.test` in each HTTP/1.1 head that has none.

        Both corpora test parsers, which need no Host; a server MUST refuse an HTTP/1.1
        request without one (RFC 9112 3.2), so as they are most cases would only show that.
        """
        return Case(self.id, add_host(self.data), self.valid, self.requests, self.error, self.settings)


def add_host(data: bytes) -> bytes:
    """Walk the messages (heads, Content-Length and chunked bodies) and add a Host where missing.

    Where the framing cannot be followed (the malformed part of an invalid case), the rest
    is left as it is.
    """
    out = []
    position = 0
    while position < len(data):
        while data.startswith(b"\r\n", position):  # empty lines before a request are ignored
            out.append(b"\r\n")
            position += 2
        end = data.find(b"\r\n\r\n", position)
        if end < 0:
            break
        head = data[position : end + 2]
        line_end = head.find(b"\r\n")
        if head.split(b"\r\n", 1)[0].endswith(b" HTTP/1.1") and not _HOST_FIELD.search(head):
            head = head[: line_end + 2] + b"Host: corpus.test\r\n" + head[line_end + 2 :]
        out.append(head + b"\r\n")
        body_end = _body_end(data, end + 4, head)
        if body_end is None:
            position = end + 4
            break
        out.append(data[end + 4 : body_end])
        position = body_end
    out.append(data[position:])
    return b"".join(out)


def _body_end(data: bytes, start: int, head: bytes) -> int | None:
    if re.search(rb"\r\ntransfer-encoding[ \t]*:[^\r]*chunked", head, re.I):
        position = start
        while True:
            line_end = data.find(b"\r\n", position)
            if line_end < 0:
                return None
            size_text = data[position:line_end].split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                return None
            position = line_end + 2
            if size == 0:
                trailers_end = data.find(b"\r\n", position) if data.startswith(b"\r\n", position) else data.find(
                    b"\r\n\r\n", position)
                if trailers_end < 0:
                    return None
                return trailers_end + (2 if data.startswith(b"\r\n", position) else 4)
            position += size + 2
    length = re.search(rb"\r\ncontent-length[ \t]*:[ \t]*(\d+)", head, re.I)
    return start + int(length.group(1)) if length else start


# -- gunicorn -------------------------------------------------------------------------------


def _gunicorn_bytes(raw: bytes) -> bytes:
    data = raw.replace(b"\n", b"").replace(b"\\r\\n", b"\r\n")
    data = data.replace(b"\\0", b"\0").replace(b"\\n", b"\n").replace(b"\\t", b"\t")
    return re.sub(rb"\\x([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), data)


class _Stub:
    """Whatever a gunicorn test module imports (Config, error classes): a named stand-in."""

    def __init__(self, name: str, calls: list[str]) -> None:
        self.__name__ = name
        self._calls = calls

    def __getattr__(self, name: str) -> _Stub:
        return _Stub(name, self._calls)

    def __call__(self, *args: object, **kwargs: object) -> _Stub:
        return self

    def set(self, *args: object) -> None:  # cfg.set("name", value): a non-default setting
        self._calls.append(", ".join(repr(a) for a in args))


def _gunicorn_expectation(path: Path) -> tuple[object, tuple[str, ...]]:
    """`request` and the cfg.set(...) calls of one of gunicorn's expectation modules.

    The module is gunicorn's own test data: it is run with its gunicorn imports replaced by
    stand-ins, and its `uri("...")` helper by the plain string.
    """
    calls: list[str] = []

    def fake_import(name: str, *args: object, **kwargs: object) -> _Stub:
        return _Stub(name, calls)

    namespace: dict[str, object] = {
        "__builtins__": {**vars(builtins), "__import__": fake_import},
        "uri": lambda raw: raw,
    }
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return namespace["request"], tuple(calls)


def gunicorn_cases() -> list[Case]:
    cases = []
    for http in sorted((CORPORA / "gunicorn").glob("*/*.http")):
        kind = http.parent.name
        value, settings = _gunicorn_expectation(http.with_suffix(".py"))
        case_id = f"gunicorn/{kind}/{http.stem}"
        data = _gunicorn_bytes(http.read_bytes())
        if kind == "valid":
            items = value if isinstance(value, list) else [value]
            requests = tuple(
                Expected(str(item["method"]), item.get("body") if isinstance(item.get("body"), bytes) else None)
                for item in items
                if isinstance(item, dict)
            )
            cases.append(Case(case_id, data, True, requests, settings=settings))
        else:
            cases.append(Case(case_id, data, False, error=getattr(value, "__name__", repr(value)), settings=settings))
    return cases


# -- llhttp ---------------------------------------------------------------------------------

_SECTION = re.compile(r"^#{2,4} (.+)$", re.M)
_BLOCK = re.compile(r"(?:<!-- meta=(\{.*?\}) -->\n)?```(\w+)\n(.*?)```", re.S)
_METHOD = re.compile(r'span\[method\]="([^"]*)"')
_PAUSED_UPGRADE = "error code=22 "  # HPE_PAUSED_UPGRADE


def _llhttp_bytes(text: str) -> bytes:
    """llhttp's md-test rules: literal text as UTF-8, escapes as the single bytes they name."""
    data = re.sub(rb"\n\Z", b"", text.encode("utf-8"))
    data = re.sub(rb"\\(\r\n|\r|\n)", b"", data)
    data = re.sub(rb"\r\n|\r|\n", b"\r\n", data)
    for escape, char in ((rb"\r", b"\r"), (rb"\n", b"\n"), (rb"\t", b"\t"), (rb"\f", b"\f")):
        data = data.replace(escape, char)
    data = re.sub(rb"\\x([0-9a-fA-F]+)", lambda m: bytes([int(m.group(1), 16)]), data)
    return re.sub(rb"\\([0-7]{1,3})", lambda m: bytes([int(m.group(1), 8)]), data)


def _llhttp_requests(log: str) -> tuple[Expected, ...]:
    requests = []
    method = ""
    for line in log.splitlines():
        found = _METHOD.search(line)
        if found:
            method += found.group(1)  # a paused parser reports a span in pieces
        if line.endswith("message complete"):
            requests.append(Expected(method, None))
            method = ""
        elif "message begin" in line:
            method = ""
    return tuple(requests)


def llhttp_cases() -> list[Case]:
    cases = []
    seen: set[str] = set()
    for md in sorted((CORPORA / "llhttp" / "request").glob("*.md")):
        text = md.read_text()
        headings = list(_SECTION.finditer(text))
        for index, heading in enumerate(headings):
            end = headings[index + 1].start() if index + 1 < len(headings) else len(text)
            blocks = {kind: (meta, body) for meta, kind, body in _BLOCK.findall(text[heading.end() : end])}
            if "http" not in blocks or "log" not in blocks:
                continue
            meta = json.loads(blocks["http"][0] or "{}")
            if meta.get("type") != "request" or meta.get("skipBody"):
                continue  # run by llhttp with a lenient flag (or told to skip a body): not RFC 9112
            log = blocks["log"][1]
            case_id = f"llhttp/{md.stem}/{heading.group(1).strip()}"
            if case_id in seen:  # two sections of one file with one title
                case_id += f" (line {text.count(chr(10), 0, heading.start()) + 1})"
            seen.add(case_id)
            data = _llhttp_bytes(blocks["http"][1])
            error = next((line for line in log.splitlines() if " error code=" in line), "")
            requests = _llhttp_requests(log)  # for an invalid case: those completed before the error
            if error and _PAUSED_UPGRADE not in error:
                cases.append(Case(case_id, data, False, requests, error=error.split(" ", 1)[1]))
            else:  # llhttp stops at an Upgrade for its caller to take over: not an error
                cases.append(Case(case_id, data, True, requests))
    return cases


def all_cases() -> list[Case]:
    return gunicorn_cases() + llhttp_cases()
