"""Operating Corral (issue 5), proved on real `corral serve` processes.

Hung requests past --timeout (threaded: 504 and a graceful recycle; inline: the
master's heartbeat check, a faulthandler stack and SIGKILL), --max-requests
(+ jitter) and --max-worker-memory recycling, the control socket (`corral
status/reload/stop`), systemd socket activation across a restart of the
master, and process titles. Every server gets its own --control-socket under
tmp_path; every wait has a deadline. `--log-level debug` where a test waits for
the master's "Worker N exited" line instead of polling.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from corral.process.control import send_command
from helpers import Server, read_response
from http_client import get

Serve = Callable[..., Server]


# -- helpers -----------------------------------------------------------------------


def control(tmp_path: Path) -> str:
    path = str(tmp_path / "ctl.sock")
    assert len(path) < 100, path  # AF_UNIX paths are limited to 108 bytes
    return path


def corral(*args: str, timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
    """Run a client command (`corral status ...`) to completion."""
    return subprocess.run(
        [sys.executable, "-m", "corral", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def status(sock: str) -> dict[str, Any]:
    result = corral("status", "--control-socket", sock, "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def get_pid(port: int, path: str = "/") -> int:
    code, body = get(port, path)
    assert code == 200, (code, body)
    return int(body)


def run_lengths(pids: Sequence[int]) -> list[int]:
    """[a, a, b, b, b] -> [2, 3]: how many requests each worker served in a row."""
    runs: list[int] = []
    for i, pid in enumerate(pids):
        if i and pid == pids[i - 1]:
            runs[-1] += 1
        else:
            runs.append(1)
    return runs


def wait_for_status(sock: str, check: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
    """The master learns counts from heartbeats (one a second): poll its status until `check` holds."""
    deadline = time.monotonic() + timeout
    while True:
        data = send_command(sock, {"command": "status"})
        if check(data) or time.monotonic() > deadline:
            return data
        time.sleep(0.1)


class KeepAliveClient:
    """Requests on one persistent connection, reconnecting only when the server says "close"."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.port = port
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str = "/") -> tuple[int, bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            self.conn.request("GET", path)
            response = self.conn.getresponse()
            answer = response.status, response.read()
        except BaseException:
            self.close()
            raise
        if response.getheader("Connection") == "close":
            self.close()  # a draining worker asked us to reconnect
        return answer

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class ClientLoop:
    """Client threads sending requests until the block ends: `fresh` ones open a connection per
    request, `keepalive` ones reuse theirs. Records every failure and the pid behind every
    success; `saw_new_pid` is set once a pid outside `known` answers.
    """

    def __init__(self, port: int, known: set[int], path: str = "/other", fresh: int = 1, keepalive: int = 0) -> None:
        self.port = port
        self.known = known
        self.path = path
        self.deadline = time.monotonic() + 30  # a bound, should the test fail to end the block
        self.pids: list[int] = []
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.saw_new_pid = threading.Event()
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(False,)) for _ in range(fresh)]
        self.threads += [threading.Thread(target=self._run, args=(True,)) for _ in range(keepalive)]

    def _run(self, keepalive: bool) -> None:
        client = KeepAliveClient(self.port, timeout=5)
        try:
            while not self.done.is_set() and time.monotonic() < self.deadline:
                try:
                    code, body = client.get(self.path) if keepalive else get(self.port, self.path, timeout=5)
                except (OSError, http.client.HTTPException) as exc:
                    self._record(f"{'keep-alive' if keepalive else 'fresh'}: {exc!r}")
                    continue
                if code != 200:
                    self._record(f"status {code}")
                    continue
                pid = int(body)
                with self.lock:
                    self.pids.append(pid)
                if pid not in self.known:
                    self.saw_new_pid.set()
        finally:
            client.close()

    def _record(self, failure: str) -> None:
        with self.lock:
            self.failures.append(failure)

    def __enter__(self) -> ClientLoop:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join(10)


def pids_of(data: dict[str, Any]) -> set[int]:
    return {w["pid"] for site in data["sites"] for w in site["workers"]}


# -- --timeout -----------------------------------------------------------------------

STACK = re.compile(r'ops_apps\.py", line \d+,? in deeply_asleep')


@pytest.mark.parametrize(
    ("threads", "workers", "timeout"), [("4", "1", "3"), ("1", "2", "1")], ids=["threaded", "inline"]
)
def test_hung_request_is_reported_and_its_worker_replaced(
    serve: Serve, tmp_path: Path, threads: str, workers: str, timeout: str
) -> None:
    threaded = threads != "1"
    sock = control(tmp_path)
    options = f"--threads {threads} --workers {workers} --timeout {timeout} --log-level debug".split()
    server = serve("ops_apps:hangs", *options, "--control-socket", sock)
    before = pids_of(status(sock))
    answers: dict[str, Any] = {}

    def request(path: str, into: str) -> None:
        try:
            answers[into] = get(server.port, path, timeout=20)
        except (OSError, http.client.HTTPException) as exc:
            answers[into] = exc

    hanger = threading.Thread(target=request, args=("/hang", "hang"))
    hanger.start()
    line = server.wait_for(r"deeply asleep in \d+", 10)
    assert line, server.log()
    hung_since = time.monotonic()
    stuck = int(line.split()[-1])
    napper = threading.Thread(target=request, args=("/nap?2.8", "nap"))
    # Inline, one client at a time: connections the worker accepted just before it hung (in
    # the same accept batch as /hang, or idle keep-alive ones) are lost with it; that is
    # inherent to running the app on the loop's thread. Threaded, the loop never stops, so
    # concurrent and keep-alive clients must all be served.
    clients = {"fresh": 2, "keepalive": 2} if threaded else {"fresh": 1}
    with ClientLoop(server.port, before, **clients) as loop:
        if threaded:
            # The sweeper (once a second) finds the hang 3..4 s after it began. A 2.8 s request
            # started at 1.5 s is still running then, and never over --timeout itself: the
            # draining worker must let it finish.
            time.sleep(max(0.0, hung_since + 1.5 - time.monotonic()))
            napper.start()
        hanger.join(20)
        if threaded:
            cause = rf"Worker {stuck} of app is recycling \(timeout\)"
        else:
            cause = rf"Worker {stuck} of app sent no heartbeat for \d+s \(--timeout 1s\)"
        assert server.wait_for(cause, 10), server.log()
        assert server.wait_for(rf"Worker {stuck} exited", 10), server.log()
        assert loop.saw_new_pid.wait(10), f"no new worker served:\n{server.log()}"
        if threaded:
            napper.join(10)
    log = server.log()
    assert STACK.search(log), log
    if threaded:
        assert answers["hang"][0] == 504, answers
        assert answers["nap"] == (200, str(stuck).encode()), answers
        assert re.search(r"Request GET /hang has run for [\d.]+s \(over --timeout 3s\)", log), log
    else:
        # The loop was stuck: nobody can answer; the connection dies with the worker.
        assert isinstance(answers["hang"], (http.client.RemoteDisconnected, ConnectionResetError)), answers
    assert loop.failures == [], loop.failures[:5]
    assert loop.pids, "the client loop was never served"
    data = status(sock)
    site = data["sites"][0]
    assert site["restarts"] == {"timeout": 1}, site
    assert stuck not in pids_of(data)
    assert len(site["workers"]) == int(workers)
    assert server.proc.poll() is None


def slow_download(port: int, target: str, deadline: float = 15.0) -> int:
    """Read a response at about 6 MB/s through a small receive window; returns the bytes read."""
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        client.settimeout(5)
        client.connect(("127.0.0.1", port))
        client.sendall(f"GET /?{target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        received = b""
        got = 0
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            try:
                data = client.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            if len(received) < 1024:
                received += data[:1024]
            got += len(data)
            time.sleep(0.01)
    head, _, _ = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK"), received[:200]
    return got - len(head) - 4


@pytest.mark.parametrize("app", ["download", "trickle"])
def test_a_slow_download_is_not_a_hung_request(serve: Serve, tmp_path: Path, app: str) -> None:
    """--timeout is about the app; a client taking its time is --send-timeout's business.

    20 MiB read at ~6 MB/s keeps the response going for ~3 s, past --timeout 1 plus a sweep.
    `download` is sent by the loop (sendfile) after the app returned; `trickle` is a
    generator whose thread waits for the client between chunks.
    """
    size = 20 * 1024 * 1024
    if app == "download":
        big = tmp_path / "big.bin"
        with open(big, "wb") as f:
            f.truncate(size)  # sparse: costs no disk
        target = str(big)
    else:
        target = str(size // 65536)
    server = serve(f"ops_apps:{app}", "--threads", "4", "--timeout", "1", "--control-socket", control(tmp_path))
    assert slow_download(server.port, target) == size
    assert "over --timeout" not in server.log()
    assert "recycling" not in server.log()


def test_a_draining_worker_stuck_in_an_inline_app_is_killed(serve: Serve, tmp_path: Path) -> None:
    """A recycling (or reload-retired) worker sends no heartbeats; if an inline app blocks its
    loop it cannot enforce --graceful-timeout itself, so the master must, or it lingers forever."""
    sock = control(tmp_path)
    options = "--max-requests 1 --graceful-timeout 1 --timeout 1 --log-level debug".split()
    server = serve("ops_apps:hangs", *options, "--control-socket", sock)
    with server.connect() as conn:
        conn.sendall(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
        status_code, _, body = read_response(conn)
        assert status_code == 200
        old = int(body)  # that was its one request: it is recycling, and still serves this connection
        conn.sendall(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
        assert server.wait_for(rf"deeply asleep in {old}", 10), server.log()
        assert server.wait_for(rf"Worker {old} exited \(killed by SIGKILL\)", 8), server.log()
    log = server.log()
    assert re.search(rf"Worker {old} of app is still draining", log), log
    assert STACK.search(log), log
    assert get_pid(server.port) != old
    assert old not in pids_of(status(sock))


# -- recycling limits ---------------------------------------------------------------


def test_max_requests_recycles_after_n_requests_without_a_failure(serve: Serve, tmp_path: Path) -> None:
    sock = control(tmp_path)
    server = serve("basic:pid", "--max-requests", "5", "--control-socket", sock, "--log-level", "debug")
    pids = [get_pid(server.port) for _ in range(30)]  # get_pid asserts every answer is a 200
    runs = run_lengths(pids)
    assert len(set(pids)) == len(runs), f"a pid came back: {pids}"
    assert runs[:-1] == [5] * (len(runs) - 1) and runs[-1] <= 5, runs
    # The 30th request was the last worker's 5th: it recycles too. Once it is gone, every
    # worker that served has been counted.
    assert server.wait_for(rf"Worker {pids[-1]} exited", 10), server.log()
    assert server.wait_for(r"is recycling \(max-requests\); starting its replacement", 1), server.log()
    assert status(sock)["sites"][0]["restarts"] == {"max-requests": len(runs)}


def test_max_requests_recycling_is_invisible_to_keep_alive_clients(serve: Serve, tmp_path: Path) -> None:
    server = serve("basic:pid", "--max-requests", "5", "--control-socket", control(tmp_path))
    client = KeepAliveClient(server.port)
    try:
        pids = []
        for _ in range(30):
            code, body = client.get()
            assert code == 200, (code, body)
            pids.append(int(body))
    finally:
        client.close()
    runs = run_lengths(pids)
    assert len(runs) >= 3, runs
    # A draining worker still answers a request already on its way, with "Connection: close".
    assert all(n >= 5 for n in runs[:-1]), runs


@pytest.mark.parametrize("threads", ["1", "4"])
def test_recycling_under_keep_alive_load_fails_no_request(serve: Serve, tmp_path: Path, threads: str) -> None:
    """Workers recycling every 40 requests under concurrent keep-alive clients.

    A response that went out as keep-alive (no "Connection: close") just before its
    worker began draining must not be followed by a close: the client sends its next
    request on that connection at once and would see it reset.
    """
    server = serve("basic:pid", "--max-requests", "40", "--threads", threads, "--control-socket", control(tmp_path))
    with ClientLoop(server.port, set(), path="/", fresh=1, keepalive=3) as loop:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline and len(set(loop.pids)) < 15:
            time.sleep(0.05)
    assert loop.failures == [], (len(loop.failures), loop.failures[:3])
    assert len(set(loop.pids)) >= 5, "too few recycles to prove anything"


def test_max_requests_jitter_spreads_the_limit(serve: Serve, tmp_path: Path) -> None:
    server = serve(
        "basic:pid", "--max-requests", "5", "--max-requests-jitter", "3", "--control-socket", control(tmp_path)
    )
    pids = [get_pid(server.port) for _ in range(40)]
    runs = run_lengths(pids)
    assert len(runs) >= 5, runs  # 40 requests at <= 8 a worker
    assert all(2 <= n <= 8 for n in runs[:-1]), runs


def test_max_worker_memory_recycles_a_growing_worker(serve: Serve, tmp_path: Path) -> None:
    sock = control(tmp_path)
    server = serve("ops_apps:hoards", "--max-worker-memory", "60", "--control-socket", sock, "--log-level", "debug")
    first = get_pid(server.port)
    # 20 MiB more per request: the sweeper (once a second) sees RSS past 60 MiB after a few.
    for _ in range(12):
        if server.wait_for(rf"Worker {first} of app is recycling \(memory above 60 MiB\)", 0.5):
            break
        assert get_pid(server.port) == first
    else:
        raise AssertionError(f"never recycled for memory:\n{server.log()}")
    assert server.wait_for(rf"Worker {first} exited", 10), server.log()
    fresh = get_pid(server.port)  # served by the replacement, with a 200
    assert fresh != first
    data = status(sock)
    assert data["sites"][0]["restarts"] == {"memory": 1}, data
    assert pids_of(data) == {fresh}


# -- the control socket -------------------------------------------------------------


def test_status_json_and_table_after_known_traffic(serve: Serve, tmp_path: Path) -> None:
    sock = control(tmp_path)
    server = serve("basic:pid", "--workers", "2", "--control-socket", sock)
    served: dict[int, int] = {}
    for _ in range(8):
        pid = get_pid(server.port)
        served[pid] = served.get(pid, 0) + 1

    def counted(data: dict[str, Any]) -> bool:
        workers = data["sites"][0]["workers"]
        return all(w["requests"] == served.get(w["pid"], 0) for w in workers)

    wait_for_status(sock, counted)
    data = status(sock)
    assert data["pid"] == server.proc.pid
    assert data["ready"] is True and data["draining"] is False
    [site] = data["sites"]
    assert (site["name"], site["processes"], site["threads"]) == ("main", 2, 1)
    assert site["down"] is False and site["restarts"] == {}
    assert len(site["workers"]) == 2
    assert set(served) <= pids_of(data)
    for worker in site["workers"]:
        assert worker["state"] == "ready", worker
        assert worker["requests"] == served.get(worker["pid"], 0), (worker, served)
        assert worker["in_flight"] == 0 and worker["connections"] == 0, worker
        assert worker["rss_mib"] > 1, worker  # read from /proc by the master
        assert worker["age"] >= 0
    table = corral("status", "--control-socket", sock)
    assert table.returncode == 0, table.stderr
    assert f"corral master pid {server.proc.pid}" in table.stdout
    assert "site main: 2 x 1 threads; restarts: none" in table.stdout
    for worker in site["workers"]:
        row = re.search(rf"^\s+{worker['pid']}\s+ready\s+(\d+)\s", table.stdout, re.M)
        assert row and int(row.group(1)) == worker["requests"], table.stdout


VERSIONED = """VERSION = "{version}"


def app(environ, start_response):
    body = VERSION.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


def wait_for_body(port: int, body: bytes, timeout: float = 15.0) -> list[bytes]:
    """Requests until `body` is served; returns every body seen (each must be a 200)."""
    seen: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, got = get(port)
        assert code == 200, (code, got)
        seen.append(got)
        if got == body:
            return seen
    raise AssertionError(f"never served {body!r}; saw {sorted(set(seen))}")


def test_reload_command_switches_code_and_names_the_sites(serve: Serve, tmp_path: Path) -> None:
    sock = control(tmp_path)
    module = tmp_path / "versioned.py"
    module.write_text(VERSIONED.format(version="v1"))
    server = serve("versioned:app", "--workers", "2", "--chdir", str(tmp_path), "--control-socket", sock)
    assert get(server.port) == (200, b"v1")
    old = pids_of(status(sock))

    module.write_text(VERSIONED.format(version="v2"))
    result = corral("reload", "--control-socket", sock)
    assert result.returncode == 0, result.stderr
    assert "reloading all" in result.stdout
    seen = wait_for_body(server.port, b"v2")
    assert set(seen) <= {b"v1", b"v2"}

    module.write_text(VERSIONED.format(version="v3"))
    result = corral("reload", "main", "--control-socket", sock)  # the one site by its name
    assert result.returncode == 0, result.stderr
    wait_for_body(server.port, b"v3")
    after = wait_for_status(sock, lambda d: len(pids_of(d)) == 2 and not pids_of(d) & old)
    assert not pids_of(after) & old, after

    result = corral("reload", "nosuchsite", "--control-socket", sock)
    assert result.returncode != 0
    assert "no site named 'nosuchsite'; sites: main" in result.stderr, result.stderr
    assert get(server.port) == (200, b"v3")


@pytest.mark.parametrize("graceful", [True, False], ids=["graceful", "now"])
def test_stop_command_stops_the_server(serve: Serve, tmp_path: Path, graceful: bool) -> None:
    sock = control(tmp_path)
    server = serve("ops_apps:hangs", "--threads", "2", "--graceful-timeout", "5", "--control-socket", sock)
    napper_result: dict[str, Any] = {}

    def nap() -> None:
        try:
            napper_result["nap"] = get(server.port, "/nap?3")  # still running when stop arrives
        except (OSError, http.client.HTTPException) as exc:
            napper_result["nap"] = exc

    napper = threading.Thread(target=nap)
    napper.start()
    wait_for_status(sock, lambda d: d["sites"][0]["workers"][0]["in_flight"] == 1, timeout=5)
    flag = "--graceful" if graceful else "--no-graceful"
    started = time.monotonic()
    result = corral("stop", flag, "--control-socket", sock)
    assert result.returncode == 0, result.stderr
    assert server.wait(10) == 0, server.log()
    elapsed = time.monotonic() - started
    napper.join(10)
    assert elapsed < 5, elapsed
    if graceful:
        assert napper_result["nap"][0] == 200, napper_result  # the in-flight request finished
        assert "Stop requested over the control socket (graceful)" in server.log()
    else:
        assert not isinstance(napper_result["nap"], tuple), napper_result  # cut off: that is --no-graceful
    assert not os.path.exists(sock)  # removed on the way out
    gone = corral("status", "--control-socket", sock)
    assert gone.returncode == 1


def test_silent_control_clients_do_not_stall_the_master(serve: Serve, tmp_path: Path) -> None:
    """The master's loop also reaps, replaces workers and handles signals: it must not wait
    on a control client that connected and says nothing."""
    sock = control(tmp_path)
    server = serve("basic:pid", "--control-socket", sock)
    silent = [socket.socket(socket.AF_UNIX) for _ in range(5)]
    try:
        for client in silent:
            client.connect(sock)
        started = time.monotonic()
        result = corral("status", "--control-socket", sock)
        assert result.returncode == 0, result.stderr
        assert time.monotonic() - started < 1.5
        # A half-sent line is kept until its newline arrives.
        silent[0].sendall(b'{"command": ')
        assert corral("status", "--control-socket", sock).returncode == 0
        silent[0].sendall(b'"status"}\n')
        silent[0].settimeout(5)
        assert json.loads(silent[0].recv(65536))["pid"] == server.proc.pid
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        assert server.wait(10) == 0
        assert time.monotonic() - started < 1.5
    finally:
        for client in silent:
            client.close()


def test_status_without_a_server_is_a_clear_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "none.sock")
    result = corral("status", "--control-socket", missing)
    assert result.returncode == 1
    assert result.stderr == f"corral: error: no server is running with control socket {missing}\n"
    # A socket file left behind by a killed server: nothing listens on it.
    stale = str(tmp_path / "stale.sock")
    with socket.socket(socket.AF_UNIX) as left:
        left.bind(stale)
    for command in ("status", "reload", "stop"):
        result = corral(command, "--control-socket", stale)
        assert result.returncode == 1, (command, result)
        assert f"nothing answers on control socket {stale}" in result.stderr, result.stderr


def test_stop_right_after_a_reload_does_not_wait_for_the_graceful_timeout(tmp_path: Path) -> None:
    """SIGTERM sent while workers are still forking must reach them.

    A worker forked a moment earlier may still run the master's inherited signal
    handler, which only queues the signal in the child's copy of the queue: the
    worker never learns it should stop, and the master waits the whole graceful
    timeout before it SIGKILLs it. SIGHUP then SIGTERM hits that window most times;
    three tries make a miss unlikely.
    """
    for attempt in range(3):
        sock = str(tmp_path / f"c{attempt}.sock")
        with Server(["basic:pid", "--workers", "4", "--graceful-timeout", "5", "--control-socket", sock]) as server:
            started = time.monotonic()
            server.signal(signal.SIGHUP)
            server.signal(signal.SIGTERM)
            assert server.wait(15) == 0, server.log()
            assert time.monotonic() - started < 3, server.log()
            assert "Graceful timeout" not in server.log()


# -- systemd socket activation -------------------------------------------------------


class ActivatedServer(Server):
    """`corral serve` started as systemd would: the listening socket is fd 3, LISTEN_PID is its pid.

    sh puts the socket (handed over as stdin) on fd 3, then execs corral so that $$ is
    corral's own pid.
    """

    def __init__(self, listener: socket.socket, args: Sequence[str]) -> None:
        command = " ".join(
            [
                "exec 3<&0 0</dev/null;",
                "LISTEN_PID=$$ LISTEN_FDS=1 exec",
                *(subprocess.list2cmdline([a]) for a in [sys.executable, "-m", "corral", "serve", *args]),
            ]
        )
        self._launch(["sh", "-c", command], stdin=listener.fileno())
        self.host, self.port = listener.getsockname()
        if not self.wait_for("Corral ready", 20):
            self.stop()
            raise RuntimeError("server did not become ready:\n" + self.log())


def test_socket_activation_keeps_connections_across_a_master_restart(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    args = ["ops_apps:hangs", "--control-socket", control(tmp_path)]
    first = ActivatedServer(listener, args)
    second: ActivatedServer | None = None
    waiting: socket.socket | None = None
    try:
        assert first.wait_for(rf"Listening at http://127\.0\.0\.1:{first.port} \(socket from systemd\)", 1)
        master = first.proc.pid
        assert get(first.port)[0] == 200
        first.signal(signal.SIGTERM)
        assert first.wait(15) == 0, first.log()
        # No master runs now; systemd (here: the test) still holds the socket, so the kernel
        # queues this connection instead of refusing it.
        waiting = socket.create_connection(("127.0.0.1", first.port), timeout=15)
        waiting.sendall(b"GET /queued HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        second = ActivatedServer(listener, args)
        assert second.proc.pid != master
        answer = b""
        while chunk := waiting.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer
        assert get(second.port)[0] == 200
    finally:
        if waiting is not None:
            waiting.close()
        first.stop()
        if second is not None:
            second.stop()
        listener.close()


def test_connections_racing_a_stop_are_answered_or_left_queued(tmp_path: Path) -> None:
    """A worker that accepts a connection in the very tick it begins draining still answers it.

    Connections are opened in a stream while SIGTERM arrives. Each must either get its
    answer from a draining worker, or still wait in the socket systemd (here: the test)
    holds, for the next master: one that a worker accepted and closed unanswered is lost.
    (Idle workers drained at once and exited before such a connection reached their
    registry.) Several rounds, since the window is one event-loop tick wide.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    port = listener.getsockname()[1]
    request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    lost: list[str] = []
    try:
        for _ in range(4):
            server = ActivatedServer(listener, ["basic:hello", "--workers", "4"])
            clients: list[socket.socket] = []
            try:
                stop_at = time.monotonic() + 0.15
                signalled = False
                while time.monotonic() < stop_at + 0.15:
                    if not signalled and time.monotonic() >= stop_at:
                        server.signal(signal.SIGTERM)
                        signalled = True
                    client = socket.create_connection(("127.0.0.1", port), timeout=10)
                    client.sendall(request)
                    clients.append(client)
                    if not signalled or time.monotonic() > stop_at + 0.03:
                        time.sleep(0.001)  # dense only while workers get the signal: the backlog never fills
                assert server.wait(15) == 0, server.log()
            finally:
                server.stop()
            listener.setblocking(False)
            queued = set()
            while True:  # what no worker took: the next master's to answer
                try:
                    conn, peer = listener.accept()
                except BlockingIOError:
                    break
                queued.add(peer)
                conn.close()
            listener.setblocking(True)
            for client in clients:
                name = client.getsockname()
                try:
                    answer = client.recv(65536)
                except ConnectionResetError:
                    answer = b""
                if not answer.startswith(b"HTTP/1.1 200 OK\r\n") and name not in queued:
                    lost.append(f"{name}: {answer!r}")
                client.close()
        assert not lost, lost
    finally:
        listener.close()


# -- process titles -----------------------------------------------------------------


def cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()


def test_process_titles_tell_master_and_workers_apart(serve: Serve, tmp_path: Path) -> None:
    sock = control(tmp_path)
    server = serve("basic:pid", "--workers", "2", "--control-socket", sock)
    assert cmdline(server.proc.pid) == "corral: master"
    workers = pids_of(status(sock))
    assert len(workers) == 2
    for pid in workers:
        assert cmdline(pid) == "corral: worker", pid
