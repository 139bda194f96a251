"""process/exits.py: why a worker exited, from its wait status and what the master told it."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from corral.process import generations
from corral.process.exits import describe_status, judge_exit
from corral.server.spec import EXIT_APP_LOAD_ERROR
from worker_handles import Handles, group, handle_factory


def exited(code: int) -> int:
    return code << 8  # a wait status, as os.waitpid returns it


def killed(sig: int) -> int:
    return sig


@pytest.fixture
def make() -> Iterator[Handles]:
    with handle_factory() as handles:
        yield handles


def test_describe_status_names_the_signal_or_the_code() -> None:
    assert describe_status(exited(0)) == "exit status 0"
    assert describe_status(exited(7)) == "exit status 7"
    assert describe_status(killed(signal.SIGKILL)) == "killed by SIGKILL"
    assert describe_status(killed(63)) == "killed by 63"  # a real-time signal has no name


def test_an_unexpected_death_is_a_restart_caused_by_exit_or_signal(make: Handles) -> None:
    handle = make(group())
    died = judge_exit(handle, exited(1), stopping=False)
    assert (died.expected, died.cause, died.load_error, died.reason) == (False, "exit", False, "exit status 1")
    assert judge_exit(handle, killed(signal.SIGSEGV), stopping=False).cause == "signal"


def test_a_stop_the_master_asked_for_is_no_restart(make: Handles) -> None:
    handle = make(group())
    assert judge_exit(handle, exited(0), stopping=True).cause is None
    assert judge_exit(handle, exited(0), stopping=True).expected
    handle.told_to_stop = True
    assert judge_exit(handle, killed(signal.SIGKILL), stopping=False).cause is None


def test_a_recycled_worker_counts_under_its_reasons_first_word(make: Handles) -> None:
    handle = make(group(), told_to_stop=True, exit_cause="memory above 512 MiB")
    ended = judge_exit(handle, exited(0), stopping=False)
    assert ended.expected and ended.cause == "memory"


def test_a_worker_replaced_by_a_reload_counts_as_reload(make: Handles) -> None:
    g = group()
    handle = make(g)
    generations.start(g)
    ended = judge_exit(handle, exited(0), stopping=False)
    assert ended.expected and ended.cause == "reload"


def test_the_reserved_exit_code_is_a_load_error(make: Handles) -> None:
    assert judge_exit(make(group()), exited(EXIT_APP_LOAD_ERROR), stopping=False).load_error
