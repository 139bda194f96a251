"""Worker handles for the master's unit tests: real channel sockets, no worker processes."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from corral.config import Config
from corral.process.policy import Slot
from corral.process.workers import Group, WorkerHandle


def group(name: str = "main", workers: int = 2, **settings: Any) -> Group:
    config = Config(app="x:app", workers=workers, **settings)
    made = Group(0, name, config, None)
    made.slots = [Slot(i) for i in range(workers)]
    return made


class Handles:
    """Makes handles whose channels it closes at the end (one socketpair each)."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        self.next_pid = 1000

    def __call__(
        self, of: Group, slot: Slot | None = None, generation: int | None = None, **state: Any
    ) -> WorkerHandle:
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        self.sockets += [ours, theirs]
        slot = slot if slot is not None else of.slots[0]
        self.next_pid += 1
        slot.pid = self.next_pid
        gen = of.generation if generation is None else generation
        return WorkerHandle(of, slot, self.next_pid, ours, gen, **state)


@contextmanager
def handle_factory() -> Iterator[Handles]:
    handles = Handles()
    try:
        yield handles
    finally:
        for sock in handles.sockets:
            sock.close()
