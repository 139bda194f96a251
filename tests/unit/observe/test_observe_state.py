"""MasterStats: the master's view of sites and workers, built from arbiter events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from corral.observe.state import MasterStats, exit_cause, total_requests
from corral.observe.stats import WorkerStats


def beat(stats: MasterStats, pid: int, worker: WorkerStats, **gauges: int) -> None:
    stats.heartbeat(pid, worker.snapshot(**gauges))


def site_state(master: MasterStats, name: str = "blog"):  # type: ignore[no-untyped-def]
    return next(s for s in master.state().sites if s.name == name)


def test_live_workers_are_summed_per_site() -> None:
    master = MasterStats()
    master.add_site("blog", 2)
    a, b = WorkerStats(), WorkerStats()
    master.worker_started(1, "blog")
    master.worker_started(2, "blog")
    a.record("blog", "GET", 200, 0.01, 0, 10)
    b.record("blog", "GET", 200, 0.01, 0, 20)
    b.record("blog", "GET", 500, 0.01, 0, 5)
    beat(master, 1, a, connections=1, in_flight=1)
    beat(master, 2, b, connections=3, in_flight=0)
    blog = site_state(master)
    assert total_requests(blog.stats) == 3
    assert blog.stats["requests"]["GET"] == {"2xx": 2, "5xx": 1}
    assert blog.stats["bytes_out"] == 35
    assert {w.pid: (w.requests, w.connections, w.in_flight) for w in blog.workers} == {1: (1, 1, 1), 2: (2, 3, 0)}


def test_exited_workers_counts_are_kept_and_restarts_counted_by_cause() -> None:
    master = MasterStats()
    master.add_site("blog", 1)
    old = WorkerStats()
    master.worker_started(1, "blog")
    for _ in range(5):
        old.record("blog", "GET", 200, 0.01, 0, 1)
    old.opened()
    beat(master, 1, old)
    master.worker_exited(1, "signal")
    new = WorkerStats()
    master.worker_started(2, "blog")
    new.record("blog", "GET", 200, 0.01, 0, 1)
    new.opened()
    beat(master, 2, new)
    blog = site_state(master)
    assert total_requests(blog.stats) == 6
    assert blog.connections_total == 2
    assert blog.restarts == {"signal": 1}
    assert [w.pid for w in blog.workers] == [2]
    master.worker_exited(2, None)  # a plain stop is not a restart
    assert site_state(master).restarts == {"signal": 1}
    assert total_requests(site_state(master).stats) == 6


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["request", "beat", "exit", "start"]), st.integers(0, 3)), max_size=60))
def test_totals_never_go_backwards(events: list[tuple[str, int]]) -> None:
    """Whatever order heartbeats, exits and restarts come in, every exposed counter only grows."""
    master = MasterStats()
    master.add_site("blog", 4)
    workers: dict[int, WorkerStats] = {}
    next_pid = 100
    slots: dict[int, int] = {}  # slot -> pid
    previous = 0
    for kind, slot in events:
        pid = slots.get(slot)
        if kind == "start" and pid is None:
            next_pid += 1
            slots[slot] = next_pid
            workers[next_pid] = WorkerStats()
            master.worker_started(next_pid, "blog")
        elif pid is not None and kind == "request":
            workers[pid].record("blog", "GET", 200, 0.01, 1, 1)
        elif pid is not None and kind == "beat":
            beat(master, pid, workers[pid])
        elif pid is not None and kind == "exit":
            master.worker_exited(pid, "exit")
            del slots[slot]
        blog = site_state(master)
        now = total_requests(blog.stats)
        assert now >= previous
        assert blog.stats["duration"]["count"] == now == blog.stats["bytes_out"]
        previous = now


def test_readiness() -> None:
    master = MasterStats()
    master.add_site("blog", 1)
    master.add_site("shop", 1)
    state = master.state()
    assert not state.ready
    assert state.not_ready_reasons() == ["site 'blog' has no ready worker", "site 'shop' has no ready worker"]
    master.worker_started(1, "blog")
    master.worker_started(2, "shop")
    master.worker_ready(1)
    assert not master.state().ready  # shop is still booting
    master.worker_ready(2)
    assert master.state().ready
    master.worker_started(3, "shop")  # reload: a new worker, then the old one drains
    master.worker_ready(3)
    master.worker_draining(2)
    assert master.state().ready
    master.worker_draining(3)
    assert master.state().not_ready_reasons() == ["site 'shop' has no ready worker"]
    master.worker_exited(2, "reload")
    master.worker_exited(3, "reload")
    master.worker_started(4, "shop")
    master.worker_ready(4)
    assert master.state().ready
    master.set_draining("blog")
    assert master.state().not_ready_reasons() == ["site 'blog' is draining"]
    master.set_draining("blog", False)
    assert master.state().ready
    master.set_draining()
    assert master.state().not_ready_reasons() == ["the server is stopping"]


def test_a_site_whose_app_failed_says_so_until_a_worker_is_ready() -> None:
    master = MasterStats()
    master.add_site("blog", 1)
    master.site_down("blog")
    assert master.state().not_ready_reasons() == ["site 'blog' has no ready worker (its app failed to load)"]
    master.worker_started(5, "blog")
    master.worker_ready(5)
    assert not site_state(master).down
    assert master.state().ready


def test_ignores_unknown_pids_and_snapshot_shapes() -> None:
    master = MasterStats()
    master.add_site("blog", 1)
    master.heartbeat(99, WorkerStats().snapshot())
    master.worker_ready(99)
    master.worker_exited(99, "exit")
    master.worker_started(1, "blog")
    master.heartbeat(1, {"v": 999, "sites": {"blog": {"requests": {"GET": {"2xx": 5}}}}})
    master.heartbeat(1, None, rss=1234)
    blog = site_state(master)
    assert total_requests(blog.stats) == 0
    assert blog.restarts == {}
    assert blog.workers[0].rss == 1234


def test_status_dict_is_json() -> None:
    master = MasterStats()
    master.add_site("blog", 2)
    master.worker_started(7, "blog")
    master.worker_ready(7)
    worker = WorkerStats()
    worker.record("blog", "GET", 200, 0.01, 0, 1)
    master.heartbeat(7, worker.snapshot(connections=1, in_flight=1), rss=4096)
    data = json.loads(json.dumps(master.state().to_dict()))
    assert data["ready"] is True
    (blog,) = data["sites"]
    assert blog["name"] == "blog" and blog["desired_workers"] == 2 and blog["requests"] == 1
    (w,) = blog["workers"]
    assert (w["pid"], w["state"], w["requests"], w["in_flight"], w["rss"]) == (7, "ready", 1, 1, 4096)
    assert w["age"] >= 0


def test_state_is_safe_to_read_while_the_arbiter_writes() -> None:
    master = MasterStats()
    master.add_site("blog", 1)
    worker = WorkerStats()
    stop = threading.Event()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while not stop.is_set():
                master.state()
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for pid in range(1, 400):
            master.worker_started(pid, f"site{pid % 7}")
            worker.record(f"site{pid % 5}", "GET", 200, 0.01, 0, 1)
            master.heartbeat(pid, worker.snapshot())
            master.worker_exited(pid - 1, "exit")
    finally:
        stop.set()
        reader.join(10)
    assert not errors



def test_exit_cause_from_a_wait_status() -> None:
    for code, expected in (("import os; os.kill(os.getpid(), 9)", "signal"), ("raise SystemExit(4)", "exit")):
        child = subprocess.Popen([sys.executable, "-c", code])
        _, status = os.waitpid(child.pid, 0)
        child.returncode = 0  # reaped here: keep Popen from waiting again
        assert exit_cause(status) == expected
