from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from helpers import Server


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """serve("app:spec", "--threads", "4") starts a server; all are stopped after the test."""
    started: list[Server] = []

    def start(*args: str, **kwargs) -> Server:  # type: ignore[no-untyped-def]
        server = Server(args, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
