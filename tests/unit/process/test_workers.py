"""process/workers.py: groups' slots, worker specs, and a down site's 503."""

from __future__ import annotations

import socket

from corral.config import Config
from corral.config.sites import SiteConfig
from corral.process.policy import Slot
from corral.process.workers import Group, ready_summary, worker_spec
from corral.server.handoff import handoff_pair, send_connection
from worker_handles import group


def test_resize_grows_with_fresh_slots_and_shrinks_from_the_end() -> None:
    g = group(workers=2)
    assert g.resize(4) == [] and [s.index for s in g.slots] == [0, 1, 2, 3]
    removed = g.resize(1)
    assert [s.index for s in removed] == [3, 2, 1] and all(s.retiring for s in removed)
    assert [s.index for s in g.slots] == [0]


def test_a_multi_site_worker_closes_the_other_sites_queues_but_can_hand_off_to_all() -> None:
    sites = tuple(SiteConfig(name=n, config=Config(app="x:app"), hosts=(f"{n}.test",)) for n in ("blog", "shop"))
    groups = [Group(i, site.name, site.config, site) for i, site in enumerate(sites)]
    pairs = [handoff_pair() for _ in groups]
    channel, other = socket.socketpair()
    try:
        for g, (send, receive) in zip(groups, pairs, strict=True):
            g.handoff_send, g.handoff_receive = send, receive
        spec, close = worker_spec(groups[1], groups, sites, [], channel, Slot(0), None, frozenset())
        assert spec.site is sites[1] and spec.site_index == 1 and spec.sites == sites
        assert spec.handoff_send == [pairs[0][0], pairs[1][0]]
        assert spec.handoff_receive is pairs[1][1]
        assert close == [pairs[0][1]]
    finally:
        for sock in (channel, other, *(s for pair in pairs for s in pair)):
            sock.close()


def test_a_single_app_worker_has_no_sites_and_nothing_extra_to_close() -> None:
    g = group(workers=1)
    channel, other = socket.socketpair()
    try:
        spec, close = worker_spec(g, [g], (), [], channel, g.slots[0], None, frozenset({5}))
        assert spec.site is None and spec.sites == () and close == []
        assert spec.proxy_fds == frozenset({5}) and spec.index == 0
    finally:
        channel.close()
        other.close()


def test_a_down_sites_queued_connections_get_a_503() -> None:
    g = group()
    g.handoff_send, g.handoff_receive = handoff_pair()
    client, server_side = socket.socketpair()
    try:
        client.settimeout(5.0)
        send_connection(g.handoff_send, server_side.fileno(), b"GET / HTTP/1.1\r\n\r\n")
        server_side.close()  # the handoff holds its own copy
        g.refuse_queued()
        answer = b""
        while chunk := client.recv(4096):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b"This site is not available right now." in answer
    finally:
        client.close()
        g.close()


def test_the_ready_line_names_each_serving_site_and_the_ones_down() -> None:
    www, broken = group("www", workers=2, threads=4), group("broken", workers=1)
    broken.down = True
    assert ready_summary([www, broken], multi_site=True) == "www 2x4 (down: broken)"
    assert ready_summary([group(workers=3)], multi_site=False) == "3 worker(s) x 1 thread(s)"
