"""Coverage-guided fuzzing of the HTTP layer with atheris (libFuzzer), in-process.

The invariant (STYLE.md: "one fuzz invariant"): any bytes, cut anywhere, either parse
into requests or raise our HTTPError carrying a status -- never another exception --
and what the parser holds stays within its limits. Each input is split into: a choice of
limits, the cut points, and the bytes.

    python tests/fuzz/fuzz_parser.py -max_total_time=600 CORPUS_DIR [SEED_DIR ...]

(libFuzzer writes new interesting inputs into the first directory; tests/data/requests
holds seeds.) tests/unit/http/test_fuzzers.py runs it for a few seconds on every change.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from corral.http.errors import HTTPError
    from corral.http.limits import Limits
    from corral.http.parser import RequestParser
    from corral.http.request import Request

LIMITS = (
    Limits(),
    Limits(max_request_line=64, max_header_size=256, max_headers=8, max_body_size=64, body_buffer_size=16),
)


class Sink:
    def __init__(self, limit: int) -> None:
        self.size = 0
        self.limit = limit
        self.finished = False

    def write(self, data: bytes) -> None:
        assert not self.finished, "body written after finish()"
        self.size += len(data)
        assert self.size <= self.limit, "body grew past --max-body-size"

    def finish(self) -> None:
        self.finished = True

    def fail(self, error: BaseException) -> None:
        pass


def check_request(request: Request, limits: Limits) -> None:
    assert len(request.target) <= limits.max_request_line
    assert len(request.headers) <= limits.max_headers
    assert not (request.chunked and request.content_length is not None), "two framings at once"
    assert request.method and request.version in ("1.0", "1.1")
    if request.complete and request.body is not None:
        assert isinstance(request.body, Sink) and request.body.finished


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    limits = LIMITS[fdp.ConsumeIntInRange(0, len(LIMITS) - 1)]
    cuts = sorted(fdp.ConsumeIntInRange(0, 4096) for _ in range(fdp.ConsumeIntInRange(0, 8)))
    raw = fdp.ConsumeBytes(fdp.remaining_bytes())
    parser = RequestParser(limits, lambda request: Sink(limits.max_body_size))
    start = 0
    try:
        for end in [*(c for c in cuts if c < len(raw)), len(raw)]:
            parser.feed(raw[start:end])
            start = end
    except HTTPError as error:
        assert 400 <= error.status < 600 and error.reason, error
    for request in parser.ready:
        check_request(request, limits)


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
