"""The parsed head of one request, plus the sink its body is written to."""

from __future__ import annotations

from typing import Protocol


class BodySink(Protocol):
    """Where a request body goes as it arrives (memory, a temp file, a stream)."""

    def write(self, data: bytes) -> object: ...

    def finish(self) -> None: ...


class Request:
    """One request head; `body` is filled while the message is received.

    Defaults live on the class (no __slots__): a request sets only the fields
    that differ, which keeps the per-request cost down on the hot path.
    """

    method = ""
    target = b""
    path = b""
    query = b""
    version = "1.1"
    host: bytes | None = None
    content_length: int | None = None
    chunked = False
    keep_alive = True
    expect_continue = False
    body: BodySink | None = None
    complete = False
    received = 0  # body bytes received so far (decoded)
    absolute_form = False  # the target was http://host/...: its authority replaced Host

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target!r} HTTP/{self.version}>"
