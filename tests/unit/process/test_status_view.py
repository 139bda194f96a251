"""process/status.py: `corral status` data built from a plain view of the master, no arbiter."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from corral.process import generations
from corral.process.lifecycle import ReloadRecord
from corral.process.status import render, snapshot
from corral.process.workers import Group, WorkerHandle
from worker_handles import Handles, group, handle_factory


@dataclass
class View:
    groups: list[Group]
    workers: dict[int, WorkerHandle]
    stopping: bool = False
    started: float = field(default_factory=lambda: time.monotonic() - 60)
    delay_until: float = 0.0
    announced: bool = True
    reloads: dict[str, ReloadRecord] = field(default_factory=dict)


@pytest.fixture
def make() -> Iterator[Handles]:
    with handle_factory() as handles:
        yield handles


def test_each_site_lists_only_its_own_workers_with_their_state(make: Handles) -> None:
    blog, shop = group("blog", workers=2), group("shop", workers=1)
    ready = make(blog, blog.slots[0], requests=5)
    ready.slot.ready = True
    booting = make(blog, blog.slots[1])
    hung = make(shop, kill_at=1.0)
    shop.restarts["timeout"] += 1
    data = snapshot(View([blog, shop], {h.pid: h for h in (ready, booting, hung)}))
    assert data["pid"] == os.getpid() and data["ready"] and not data["draining"]
    assert 59 <= data["uptime"] <= 120
    sites = {site["name"]: site for site in data["sites"]}
    states = [(w["pid"], w["state"]) for w in sites["blog"]["workers"]]
    assert states == [(ready.pid, "ready"), (booting.pid, "booting")]
    assert sites["blog"]["workers"][0]["requests"] == 5
    assert [w["state"] for w in sites["shop"]["workers"]] == ["hung"]
    assert sites["shop"]["restarts"] == {"timeout": 1} and sites["shop"]["processes"] == 1


def test_a_stopping_master_is_not_ready_and_its_workers_drain(make: Handles) -> None:
    g = group(workers=1)
    handle = make(g)
    handle.slot.ready = True
    data = snapshot(View([g], {handle.pid: handle}, stopping=True))
    assert data["draining"] and not data["ready"]
    assert data["sites"][0]["workers"][0]["state"] == "draining"


def test_the_shutdown_delay_left_is_shown_and_readiness_already_fails(make: Handles) -> None:
    data = snapshot(View([group()], {}, delay_until=time.monotonic() + 10))
    assert not data["ready"] and 9 <= data["shutdown_delay_left"] <= 10
    assert "shutting down (draining in" in render(data)


def test_the_last_reload_and_the_generation_are_reported(make: Handles) -> None:
    g = group(workers=1)
    old = make(g)
    generations.start(g)
    new = make(g)
    record = ReloadRecord("main", time.monotonic(), time.time())
    data = snapshot(View([g], {old.pid: old, new.pid: new}, reloads={"main": record}))
    site = data["sites"][0]
    assert site["last_reload"]["state"] == "starting"
    assert [w["generation"] for w in site["workers"]] == [0, 1]
