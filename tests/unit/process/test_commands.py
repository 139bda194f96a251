"""process/commands.py: the control socket's commands against a fake master."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from corral.process.commands import answer


@dataclass
class FakeMaster:
    site_names: list[str] = field(default_factory=lambda: ["blog", "shop"])
    shutting_down: bool = False
    reloads: list[str | None] = field(default_factory=list)
    stops: list[tuple[bool, str]] = field(default_factory=list)

    def status(self) -> dict[str, Any]:
        return {"pid": 1, "sites": []}

    def reload(self, site: str | None = None) -> None:
        self.reloads.append(site)

    def request_stop(self, graceful: bool, why: str = "") -> None:
        self.stops.append((graceful, why))


def test_status_is_the_masters_own_answer() -> None:
    assert answer(FakeMaster(), {"command": "status"}) == {"pid": 1, "sites": []}


def test_reload_all_or_one_site() -> None:
    master = FakeMaster()
    assert answer(master, {"command": "reload"}) == {"ok": True, "reloading": "all"}
    assert answer(master, {"command": "reload", "site": "shop"}) == {"ok": True, "reloading": "shop"}
    assert master.reloads == [None, "shop"]


def test_reload_of_an_unknown_site_names_the_sites() -> None:
    master = FakeMaster()
    reply = answer(master, {"command": "reload", "site": "blgo"})
    assert reply == {"error": "no site named 'blgo'; sites: blog, shop"}
    assert master.reloads == []


def test_no_reload_while_stopping() -> None:
    master = FakeMaster(shutting_down=True)
    assert answer(master, {"command": "reload"}) == {"error": "the server is stopping; not reloading"}
    assert master.reloads == []


def test_stop_is_graceful_unless_asked_otherwise() -> None:
    master = FakeMaster()
    assert answer(master, {"command": "stop"}) == {"ok": True}
    assert answer(master, {"command": "stop", "graceful": False}) == {"ok": True}
    assert [graceful for graceful, _ in master.stops] == [True, False]
    assert "control socket (immediate)" in master.stops[1][1]


def test_an_unknown_command_says_what_is_expected() -> None:
    assert answer(FakeMaster(), {"command": "restart"}) == {
        "error": "unknown command 'restart'; expected status, reload or stop"
    }
    assert "unknown command None" in answer(FakeMaster(), {})["error"]
