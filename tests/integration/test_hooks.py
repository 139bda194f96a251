"""Server hooks in a real `corral serve`: each runs in the process it names, failures are handled.

The hooks are tests/apps/hook_probes.py: each writes `hook_probes: [pid, event, ...]`
to stderr, which the test reads as it comes (no file polling, no sleeps); the master's
pid is the server process's, a worker's is what the app's /pid route answers.
"""
# ruff: noqa: E501  (expected messages are kept whole, one per line, so they read as the user sees them)

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers import APPS, Server
from http_client import get

Serve = Callable[..., Server]
EVERY_HOOK = ("post_fork", "when_ready", "pre_request", "post_request", "worker_exit", "on_reload")


def hook_flags(**hooks: str) -> list[str]:
    flags = []
    for name, function in hooks.items():
        flags += ["--hooks", f"{name}=hook_probes:{function}"]
    return flags


def every_hook() -> list[str]:
    return hook_flags(**{name: name for name in EVERY_HOOK})


def notes(server: Server, event: str | None = None) -> list[list[Any]]:
    """The hook_probes lines so far: [pid, event, ...] each, optionally of one event only."""
    found = []
    for line in server.log().splitlines():
        if line.startswith("hook_probes: "):
            note = json.loads(line.removeprefix("hook_probes: "))
            if event is None or note[1] == event:
                found.append(note)
    return found


def wait_notes(server: Server, event: str, count: int, timeout: float = 10) -> list[list[Any]]:
    """Wait (on the server's stderr, with a deadline) until `count` notes of `event` arrived."""
    deadline = time.monotonic() + timeout
    start = 0
    while len(notes(server, event)) < count:
        line = server.wait_for(rf'^hook_probes: \[\d+, "{event}"', max(0.0, deadline - time.monotonic()), start=start)
        assert line is not None, f"fewer than {count} {event} hooks after {timeout}s:\n{server.log()}"
        start = server.log_lines.index(line, start) + 1
    return notes(server, event)


def corral(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corral", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
        env={"PYTHONPATH": str(APPS), "PATH": "/usr/bin:/bin"},
        check=False,
    )


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("corral: error:")]


# -- each hook in its process ---------------------------------------------------------------------


def test_each_hook_runs_in_the_process_it_names(serve: Serve) -> None:
    server = serve("wsgi_apps:app", "--workers", "2", "--threads", "2", *every_hook())
    master = server.proc.pid

    forks = wait_notes(server, "post_fork", 2)
    workers = {note[0] for note in forks}
    assert len(workers) == 2 and master not in workers
    for pid, _, told_pid, site, _index, threads, app_imported in forks:
        assert told_pid == pid, "post_fork is told its own worker's pid"
        assert (site, threads, app_imported) == (None, 2, False), "post_fork runs before the app is imported"
    assert sorted(note[4] for note in forks) == [0, 1]

    (ready,) = wait_notes(server, "when_ready", 1)  # just after the "Corral ready" line
    assert ready == [master, "when_ready", master, ["main"], [server.url]]

    status, body = get(server.port, "/pid")
    assert status == 200
    worker = int(body)
    (pre,) = notes(server, "pre_request")
    (post,) = wait_notes(server, "post_request", 1)
    assert pre == [worker, "pre_request", "/pid"]
    pid, _, path, code, duration, seen = post
    assert (pid, path, code, seen) == (worker, "/pid", 200, "seen"), "post_request sees pre_request's environ"
    assert 0 <= duration < 5

    status, body = get(server.port, "/environ")
    assert json.loads(body)["hook_probes.pre"]["value"] == "seen", "the app sees what pre_request set"

    server.signal(signal.SIGHUP)
    (reload,) = wait_notes(server, "on_reload", 1)
    assert reload == [master, "on_reload", master, None]
    exits = wait_notes(server, "worker_exit", 2)  # the old generation, once the new one is ready
    assert {(note[0], note[2]) for note in exits} == {(pid, pid) for pid in workers}

    new = {note[0] for note in wait_notes(server, "post_fork", 4)} - workers
    assert len(new) == 2
    assert server.stop() == 0
    assert {note[0] for note in notes(server, "worker_exit")} == workers | new
    assert len(notes(server, "when_ready")) == 1, "when_ready is the start's, not each reload's"


def test_no_request_hooks_no_calls(serve: Serve) -> None:
    server = serve("wsgi_apps:app", *hook_flags(post_fork="post_fork"))
    wait_notes(server, "post_fork", 1)
    assert get(server.port, "/pid")[0] == 200
    assert server.stop() == 0
    assert {note[1] for note in notes(server)} == {"post_fork"}


# -- hooks that raise -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hook", "function", "message"),
    [
        ("post_fork", "post_fork_raises", "post_fork hook 'hook_probes:post_fork_raises' raised RuntimeError: no database today"),
        ("when_ready", "when_ready_raises", "when_ready hook 'hook_probes:when_ready_raises' raised RuntimeError: not ready after all"),
    ],
)
def test_a_start_hook_that_raises_fails_the_start_with_one_line(hook: str, function: str, message: str) -> None:
    result = corral("serve", "wsgi_apps:app", "--bind", "127.0.0.1:0", "--workers", "2", *hook_flags(**{hook: function}))
    assert result.returncode == 1, result.stderr
    assert errors(result.stderr) == [f"corral: error: {message}"], result.stderr
    assert "Traceback (most recent call last):" in result.stderr
    assert f"in {function}\n" in result.stderr, "the traceback names the hook's own frame"
    assert "corral/" not in result.stderr.partition("Traceback")[2], "only the user's frames"


@pytest.mark.parametrize(
    ("hook", "spec", "message"),
    [
        ("post_fork", "hook_nowhere:post_fork", "cannot load post_fork hook 'hook_nowhere:post_fork': module 'hook_nowhere' not found"),
        ("when_ready", "hook_probes:nope", "cannot load when_ready hook 'hook_probes:nope': module 'hook_probes' has no attribute 'nope'"),
        ("pre_request", "hook_probes:NOT_A_FUNCTION", "cannot load pre_request hook 'hook_probes:NOT_A_FUNCTION': not a function (it is int 42)"),
    ],
)
def test_a_hook_that_cannot_load_fails_the_start(hook: str, spec: str, message: str) -> None:
    result = corral("serve", "wsgi_apps:app", "--bind", "127.0.0.1:0", "--hooks", f"{hook}={spec}")
    assert result.returncode == 1, result.stderr
    (line,) = errors(result.stderr)
    assert line.startswith(f"corral: error: {message}"), result.stderr
    assert "Corral ready" not in result.stderr


def test_a_request_hook_that_raises_is_logged_and_the_request_goes_on(serve: Serve) -> None:
    flags = hook_flags(pre_request="pre_request_raises", post_request="post_request_raises")
    server = serve("wsgi_apps:app", *flags)
    for _ in range(2):
        status, body = get(server.port, "/pid")
        assert status == 200 and body.isdigit()
    assert len(notes(server, "pre_request_raises")) == 2
    line = server.wait_for("post_request hook 'hook_probes:post_request_raises' raised; the request goes on", 5)
    assert line is not None, server.log()
    log = server.log()
    assert log.count("pre_request hook 'hook_probes:pre_request_raises' raised; the request goes on") == 2
    assert "ValueError: pre_request is broken" in log and "ValueError: post_request is broken" in log
    assert "Traceback (most recent call last):" in log


def test_an_on_reload_hook_that_raises_is_logged_and_the_reload_goes_on(serve: Serve) -> None:
    flags = hook_flags(on_reload="on_reload_raises", post_fork="post_fork", worker_exit="worker_exit")
    server = serve("wsgi_apps:app", *flags)
    (first,) = wait_notes(server, "post_fork", 1)
    server.signal(signal.SIGHUP)
    assert server.wait_for("on_reload hook 'hook_probes:on_reload_raises' raised", 10) is not None, server.log()
    assert "ValueError: on_reload is broken" in server.log()
    (_, second) = wait_notes(server, "post_fork", 2)
    assert second[0] != first[0], "the reload started new workers anyway"
    (gone,) = wait_notes(server, "worker_exit", 1)  # the old one retires once the new one is ready
    assert gone[0] == first[0]
    assert get(server.port, "/pid") == (200, str(second[0]).encode())


# -- sites ----------------------------------------------------------------------------------------

SITES = """
bind = ["127.0.0.1:0"]
hooks = {{ post_fork = "hook_probes:post_fork", when_ready = "hook_probes:when_ready" }}

[sites.alpha]
app = "site_probe:app"
hosts = ["alpha.test"]
processes = 2

[sites.beta]
app = "site_probe:app"
hosts = ["beta.test"]
hooks = {{ pre_request = "hook_probes:pre_request", post_fork = "{beta_fork}" }}
"""


def test_sites_inherit_the_servers_hooks_and_add_their_own(serve: Serve, tmp_path: Path) -> None:
    (tmp_path / "corral.toml").write_text(SITES.format(beta_fork="hook_probes:post_fork"))
    server = serve("--config", str(tmp_path / "corral.toml"))
    forks = wait_notes(server, "post_fork", 3)
    assert sorted((note[3], note[4]) for note in forks) == [("alpha", 0), ("alpha", 1), ("beta", 0)]
    (ready,) = wait_notes(server, "when_ready", 1)
    assert ready[0] == server.proc.pid and sorted(ready[3]) == ["alpha", "beta"]

    for host in ("alpha.test", "beta.test"):
        raw = server.request(f"GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        assert raw.startswith(b"HTTP/1.1 200"), raw
    (pre,) = wait_notes(server, "pre_request", 1)
    beta_worker = next(note[0] for note in forks if note[3] == "beta")
    assert pre == [beta_worker, "pre_request", "/x"], "only beta has pre_request"


def test_a_sites_post_fork_that_raises_takes_that_site_down_alone(serve: Serve, tmp_path: Path) -> None:
    """As a site whose app cannot load: the others serve (docs/sites.md), the error is named."""
    (tmp_path / "corral.toml").write_text(SITES.format(beta_fork="hook_probes:post_fork_raises"))
    server = serve("--config", str(tmp_path / "corral.toml"), ready=r"Corral ready: alpha 2x1 \(down: beta\)")
    assert (
        "Site 'beta' could not load its app and is backed off: post_fork hook 'hook_probes:post_fork_raises' "
        "raised RuntimeError: no database today"
    ) in server.log()
    assert "RuntimeError: no database today" in server.log().partition("Traceback (most recent call last):")[2]
    raw = server.request(b"GET /x HTTP/1.1\r\nHost: alpha.test\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200"), raw


# -- corral check ---------------------------------------------------------------------------------


def test_check_lists_the_hooks_it_loaded() -> None:
    result = corral("check", "wsgi_apps:app", *every_hook())
    assert result.returncode == 0, result.stderr
    assert (
        "Site default: loaded app wsgi_apps.app, post_fork hook hook_probes:post_fork, pre_request hook "
        "hook_probes:pre_request, post_request hook hook_probes:post_request, worker_exit hook hook_probes:worker_exit"
    ) in result.stdout
    assert "Server: loaded when_ready hook hook_probes:when_ready (runs in the master)" in result.stdout
    assert "Server: loaded on_reload hook hook_probes:on_reload (runs in the master)" in result.stdout
    assert notes_in(result.stderr) == [], "check imports hooks, it never calls them"


def notes_in(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("hook_probes: ")]


@pytest.mark.parametrize(
    ("hook", "spec", "message"),
    [
        ("post_fork", "hook_nowhere:f", "site 'default': cannot load post_fork hook 'hook_nowhere:f': module 'hook_nowhere' not found"),
        ("worker_exit", "hook_probes:nope", "site 'default': cannot load worker_exit hook 'hook_probes:nope': module 'hook_probes' has no attribute 'nope'"),
        ("post_request", "hook_probes:NOT_A_FUNCTION", "site 'default': cannot load post_request hook 'hook_probes:NOT_A_FUNCTION': not a function (it is int 42)"),
        ("when_ready", "hook_nowhere:f", "cannot load when_ready hook 'hook_nowhere:f': module 'hook_nowhere' not found"),
        ("on_reload", "hook_probes:NOT_A_FUNCTION", "cannot load on_reload hook 'hook_probes:NOT_A_FUNCTION': not a function (it is int 42)"),
    ],
)
def test_check_reports_a_bad_hook_reference_with_one_line(hook: str, spec: str, message: str) -> None:
    result = corral("check", "wsgi_apps:app", "--hooks", f"{hook}={spec}")
    assert result.returncode == 1
    (line,) = errors(result.stderr)
    assert line.startswith(f"corral: error: {message}"), result.stderr
    assert result.stdout.endswith("FAILED\n")
