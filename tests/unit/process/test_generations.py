"""process/generations.py: a reload's bookkeeping, without processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from corral.process import generations
from worker_handles import Handles, group, handle_factory


@pytest.fixture
def make() -> Iterator[Handles]:
    with handle_factory() as handles:
        yield handles


def test_start_gives_the_group_fresh_slots_and_retires_the_old_ones() -> None:
    g = group(workers=3)
    old_slots = list(g.slots)
    new_slots = generations.start(g)
    assert g.generation == 1 and new_slots is g.slots
    assert [s.index for s in new_slots] == [0, 1, 2]
    assert not set(map(id, new_slots)) & set(map(id, old_slots))
    assert all(s.retiring for s in old_slots) and not any(s.retiring for s in new_slots)


def test_old_workers_retire_only_once_every_new_slot_is_ready(make: Handles) -> None:
    g = group(workers=2)
    old = [make(g, slot) for slot in g.slots]
    generations.start(g)
    new = [make(g, slot) for slot in g.slots]
    every = old + new
    assert [h.old for h in every] == [True, True, False, False]
    assert generations.old_workers(every, g) == old
    assert generations.to_retire(every, g) is None  # none of the new ones is ready
    g.slots[0].ready = True
    assert generations.to_retire(every, g) is None  # one is not enough
    g.slots[1].ready = True
    assert generations.to_retire(every, g) == old
    old[0].told_to_stop = True
    assert generations.to_retire(every, g) == [old[1]]  # each is told once


def test_other_groups_workers_are_not_counted(make: Handles) -> None:
    blog, shop = group("blog"), group("shop")
    shop_workers = [make(shop, slot) for slot in shop.slots]
    blog_old = make(blog)
    generations.start(blog)
    assert generations.old_workers([blog_old, *shop_workers], blog) == [blog_old]
    assert generations.old_workers([blog_old, *shop_workers], shop) == []


def test_abandon_stops_the_new_generation_and_takes_the_old_one_back(make: Handles) -> None:
    g = group(workers=2)
    old = [make(g, slot) for slot in g.slots]
    old_slots = list(g.slots)
    generations.start(g)
    new = [make(g, slot) for slot in g.slots]
    assert generations.abandon(old + new, g) == new
    assert g.generation == 0
    assert g.slots == old_slots and not any(s.retiring for s in g.slots)
    assert not any(h.old for h in old)  # serving again as the group's current generation
    assert generations.old_workers(old + new, g) == []



def test_abandon_after_two_reloads_goes_back_to_the_newest_generation_still_alive(make: Handles) -> None:
    g = group(workers=1)
    first = make(g)
    generations.start(g)
    second = make(g)
    generations.start(g)
    third = make(g)
    assert generations.abandon([first, second, third], g) == [third]
    assert g.generation == 1 and g.slots == [second.slot]
    assert first.old and first.slot.retiring  # retires when the second generation is ready
    second.slot.ready = True
    assert generations.to_retire([first, second], g) == [first]
