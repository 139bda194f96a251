"""Reload generations: which workers are new, which are old, and when the old ones go.

How this works: every group counts its reloads in `generation`; each worker
handle remembers the generation it was started in. A reload (`start`) bumps
the count and gives the group fresh slots, so the old workers go on serving
from slots that are no longer the group's. When every new slot is ready, the
old workers are retired (`to_retire`); if the new code cannot load, the reload
is abandoned (`abandon`): the new workers are stopped and the group takes its
old generation and slots back. Bookkeeping only: the arbiter sends the signals
and reports the milestones (lifecycle.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from .policy import Slot
from .workers import Group, WorkerHandle


def start(group: Group) -> list[Slot]:
    """Begin the group's next generation; returns its slots, each to be filled by a new worker."""
    group.generation += 1
    for slot in group.slots:
        slot.retiring = True
    group.slots = [Slot(i) for i in range(len(group.slots))]
    return group.slots


def old_workers(handles: Iterable[WorkerHandle], group: Group) -> list[WorkerHandle]:
    return [handle for handle in handles if handle.group is group and handle.old]


def to_retire(handles: Iterable[WorkerHandle], group: Group) -> list[WorkerHandle] | None:
    """The old workers to retire now that the new generation serves; None while it does not yet."""
    if not all(slot.ready for slot in group.slots):
        return None
    return [handle for handle in old_workers(handles, group) if not handle.told_to_stop]


def abandon(handles: Iterable[WorkerHandle], group: Group) -> list[WorkerHandle]:
    """The new code failed to load: go back to the old generation; returns the new workers to stop.

    Only when old workers are still alive (`old_workers`): they keep serving from their slots.
    After two reloads in a row the newest generation still alive becomes the group's again;
    any older one stays old, and retires once that one is ready, as it would have.
    """
    handles = list(handles)
    new = [h for h in handles if h.group is group and h.generation == group.generation]
    old = old_workers(handles, group)
    group.generation = max(h.generation for h in old)
    # Only that generation's slots: taking every old worker's would leave the group with
    # more slots than workers configured, each refilled when its worker retires.
    group.slots = [h.slot for h in old if h.generation == group.generation]
    for slot in group.slots:
        slot.retiring = False
    return new
