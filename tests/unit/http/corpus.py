"""Load the raw request corpus (tests/data/requests) and replay it through the parser.

Each `valid/NAME.http` is raw bytes on the wire with `valid/NAME.json` giving the
requests it must parse into; each `invalid/NAME.http` has `invalid/NAME.json` with
the status it must be refused with. `limits` in a sidecar overrides `Limits`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.http.errors import HTTPError
from corral.http.limits import Limits
from corral.http.parser import RequestParser
from corral.http.request import Request

CORPUS = Path(__file__).resolve().parents[2] / "data" / "requests"


@dataclass
class Case:
    name: str
    raw: bytes
    meta: dict[str, Any]

    @property
    def limits(self) -> Limits:
        return Limits(**self.meta.get("limits", {}))


def load(kind: str) -> list[Case]:
    cases = []
    for path in sorted((CORPUS / kind).glob("*.http")):
        meta = json.loads(path.with_suffix(".json").read_text())
        cases.append(Case(path.stem, path.read_bytes(), meta))
    return cases


class Sink:
    """A body sink that keeps everything in memory and records finish()."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.finished = False
        self.failed: BaseException | None = None

    def write(self, data: bytes) -> None:
        assert not self.finished, "body written after finish()"
        self.data += data

    def finish(self) -> None:
        self.finished = True

    def fail(self, error: BaseException) -> None:
        self.failed = error


@dataclass
class Outcome:
    """What a replay produced; equal outcomes mean the chunking made no difference."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int | None = None
    detail: str | None = None
    mid_request: bool = False


def describe(request: Request) -> dict[str, Any]:
    body = request.body
    assert body is None or isinstance(body, Sink)
    return {
        "method": request.method,
        "path": request.path.decode("latin-1"),
        "query": request.query.decode("latin-1"),
        "version": request.version,
        "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in request.headers],
        "body": bytes(body.data).decode("latin-1") if body is not None else "",
        "body_finished": body.finished if body is not None else True,
        "complete": request.complete,
        "host": request.host.decode("latin-1") if request.host is not None else None,
        "keep_alive": request.keep_alive,
        "chunked": request.chunked,
        "content_length": request.content_length,
        "expect_continue": request.expect_continue,
    }


def replay(raw: bytes, limits: Limits, pieces: Iterable[bytes] | None = None) -> Outcome:
    parser = RequestParser(limits, lambda request: Sink())
    outcome = Outcome()
    try:
        for piece in pieces if pieces is not None else (raw,):
            parser.feed(piece)
    except HTTPError as error:
        outcome.status, outcome.detail = error.status, error.detail
    outcome.requests = [describe(r) for r in parser.ready]
    outcome.mid_request = parser.mid_request
    return outcome


# -- ways to cut a byte stream -----------------------------------------------------


def whole(raw: bytes) -> Iterator[bytes]:
    yield raw


def byte_by_byte(raw: bytes) -> Iterator[bytes]:
    for i in range(len(raw)):
        yield raw[i : i + 1]


def line_by_line(raw: bytes) -> Iterator[bytes]:
    yield from raw.splitlines(keepends=True)


def random_chunks(seed: int) -> Any:
    def cut(raw: bytes) -> Iterator[bytes]:
        rng = random.Random(seed)
        i = 0
        while i < len(raw):
            n = rng.randint(1, 17)
            yield raw[i : i + n]
            i += n

    cut.__name__ = f"random_{seed}"
    return cut


CHUNKINGS = [whole, byte_by_byte, line_by_line, *(random_chunks(seed) for seed in (1, 2, 3))]
