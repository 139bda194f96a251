"""What the master supervises: site groups, their worker slots, and a handle per live worker.

A *group* is one site's daemon process group (a single-app server has one).
Its *slots* (policy.Slot) are the places a worker fills: the count the group
should run, each with its crash record. A *handle* is one live worker process
as the master sees it: its slot, its channel, what its last heartbeat said and
what the master has told it. Data and small queries only; the arbiter decides.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config import Config
from ..config.sites import SiteConfig
from ..server.channel import Inbox
from ..server.handoff import receive_connection
from ..server.spec import WorkerSpec
from .policy import Slot

if TYPE_CHECKING:
    from ..server.tls import TLSMaterial  # ssl is loaded by the master only when TLS is on

_REFUSE_PER_WAKEUP = 64  # queued connections answered per wake-up: the loop has other work


@dataclass
class Group:
    """One site's daemon process group."""

    index: int
    name: str
    config: Config
    site: SiteConfig | None
    slots: list[Slot] = field(default_factory=list)
    booted: bool = False
    down: bool = False  # its app failed to load: backed off, connections get 503
    generation: int = 0  # bumped by each reload (generations.py)
    restarts: Counter[str] = field(default_factory=Counter)  # worker replacements by cause
    handoff_send: socket.socket | None = None
    handoff_receive: socket.socket | None = None

    @property
    def label(self) -> str:
        return f"site {self.name!r}" if self.site is not None else "app"

    def resize(self, count: int) -> list[Slot]:
        """Grow or shrink to `count` slots; returns the slots removed (their workers must stop)."""
        while len(self.slots) < count:
            self.slots.append(Slot(len(self.slots)))
        removed = []
        while len(self.slots) > count:
            slot = self.slots.pop()
            slot.retiring = True
            removed.append(slot)
        return removed

    def refuse_queued(self) -> None:
        """A site that is down: answer the connections routed to it with a 503, and close them."""
        assert self.handoff_receive is not None
        # Here, not at import: the response writer loads the compiled hot path and email.utils,
        # which the master otherwise never needs (docs/architecture.md, the master's imports).
        from ..wsgi.response import error_response

        site_down = error_response(503, "Service Unavailable", "This site is not available right now.")
        for _ in range(_REFUSE_PER_WAKEUP):
            item = receive_connection(self.handoff_receive)
            if item is None:
                return
            client = item[0]
            try:
                client.setblocking(True)
                client.settimeout(1.0)  # the 503 fits in the socket buffer; never wait on a client
                client.sendall(site_down)
            except OSError:
                pass
            finally:
                client.close()

    def close(self) -> None:
        for sock in (self.handoff_send, self.handoff_receive):
            if sock is not None:
                sock.close()


@dataclass
class WorkerHandle:
    group: Group
    slot: Slot
    pid: int
    channel: socket.socket
    generation: int
    started: float = 0.0
    requests: int = 0
    in_flight: int = 0
    connections: int = 0
    last_heartbeat: float = 0.0
    told_to_stop: bool = False
    exit_cause: str | None = None  # why we expect it to exit (recycling, timeout)
    kill_at: float = 0.0  # hung: SIGKILL at this time, after its stack was dumped
    drain_deadline: float = 0.0  # told to stop: it must be gone by then (set by heartbeats.py)
    accepting: bool = True  # multi-site: whether it takes new connections (acceptors.py)
    inbox: Inbox = field(init=False)

    def __post_init__(self) -> None:
        self.inbox = Inbox(self.channel)

    @property
    def old(self) -> bool:
        """From a generation a reload has replaced (or is replacing)."""
        return self.generation < self.group.generation


def of_group(handles: Iterable[WorkerHandle], group: Group) -> list[WorkerHandle]:
    return [handle for handle in handles if handle.group is group]


def ready_summary(groups: list[Group], multi_site: bool) -> str:
    """What "Corral ready: ..." says: each serving site's processes x threads, and the sites down."""
    if multi_site:
        summary = ", ".join(f"{g.name} {len(g.slots)}x{g.config.threads}" for g in groups if not g.down)
    else:
        summary = f"{len(groups[0].slots)} worker(s) x {groups[0].config.threads} thread(s)"
    down = [g.name for g in groups if g.down]
    return summary + (f" (down: {', '.join(down)})" if down else "")


def worker_spec(
    group: Group,
    groups: list[Group],
    sites: tuple[SiteConfig, ...],
    sockets: list[socket.socket],
    channel: socket.socket,
    slot: Slot,
    tls: TLSMaterial | None,
    proxy_fds: frozenset[int],
) -> tuple[WorkerSpec, list[socket.socket]]:
    """What a new worker of `group` starts with, and the master's sockets it must not keep."""
    spec = WorkerSpec(group.config, sockets, channel, slot.index, tls=tls, proxy_fds=proxy_fds)
    close_in_child: list[socket.socket] = []
    if sites:
        spec.site = group.site
        spec.site_index = group.index
        spec.sites = sites
        spec.handoff_send = [g.handoff_send for g in groups if g.handoff_send is not None]
        spec.handoff_receive = group.handoff_receive
        # Another site's queue is not ours to read: only its own workers take from it.
        close_in_child += [g.handoff_receive for g in groups if g is not group and g.handoff_receive]
    return spec, close_in_child
