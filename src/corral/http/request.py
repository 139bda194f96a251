"""The parsed head of one request, plus the sink its body is written to."""

from __future__ import annotations

from typing import Protocol


class BodySink(Protocol):
    """Where a request body goes as it arrives (memory, a temp file, a stream)."""

    def write(self, data: bytes) -> object: ...

    def finish(self) -> None: ...


class Request:
    """One request head; `body` is filled while the message is received."""

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.method = ""
        self.target = b""
        self.path = b""
        self.query = b""
        self.version = "1.1"
        self.host: bytes | None = None
        self.content_length: int | None = None
        self.chunked = False
        self.keep_alive = True
        self.expect_continue = False
        self.body: BodySink | None = None
        self.complete = False
        self.received = 0  # body bytes received so far (decoded)
        self.absolute_form = False  # the target was http://host/...: its authority replaced Host

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target!r} HTTP/{self.version}>"
