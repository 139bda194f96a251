"""Faults beside gunicorn: tests/integration/test_faults.py's scenarios, run against Corral,
gunicorn's sync worker and gunicorn's gthread worker (8 threads), printed side by side.

    python bench/faults.py --venv /tmp/benchenv              # full size (minutes; run it alone)
    python bench/faults.py --venv VENV --resets 300 --slowloris 20 --slow-readers 5 \\
        --probes 20 --kill-seconds 1 --master-wait 3         # a smoke run (seconds)

Scenarios (``--scenarios``), each on a fresh server running tests/apps/fault_apps.py:

``resets``  (1 worker) ``--resets`` client resets (SO_LINGER 0), a third mid-head, mid-body
    and mid-response, after a warm-up: the worker's RSS and open fds before and after.
``slow``  (1 worker) ``--slowloris`` connections that never finish their head plus
    ``--slow-readers`` that never read a 2 MiB response: a normal client's p50/p99 (a fresh
    connection per request) alone and beside them, how many it got served, when the slow ones
    are closed, connections beyond the limit. Corral: ``--header-timeout``, ``--send-timeout``,
    ``--max-connections``. gunicorn has none of these: its ``--timeout`` (the arbiter kills a
    worker silent that long: the sync worker blocked on one client) and ``--keep-alive``; gthread
    also ``--worker-connections`` (stops accepting; no 503).
``kill-worker``  (2 workers) one worker SIGKILLed under load: requests lost on it and elsewhere,
    time until a new worker process exists and until it serves.
``kill-master``  (2 workers) the master SIGKILLed: when each worker exits (or that it doesn't
    within ``--master-wait``), and whether the port is still served.

Servers are started from ``<venv>/bin`` (``corral``, ``gunicorn``). Processes left behind (a
worker that outlives its master) are killed through their process group at the end of each run.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fault_probes import (  # noqa: E402
    Address,
    children,
    closed_by,
    exit_times,
    fds,
    reset_storm,
    rss_kib,
    settled,
    slow_reader,
    slowloris,
)
from helpers import read_response  # noqa: E402

HOST = "127.0.0.1"
APPS = ROOT / "tests" / "apps"
READY_TIMEOUT = 30.0
FD_SLACK = 2  # fds a worker may open and close on its own (heartbeat, log handler)
Row = dict[str, str]  # metric -> its figure, for one server


@dataclass(frozen=True)
class Limits:
    """The slow-client limits each server is given (where it has the setting)."""

    header_timeout: float
    send_timeout: float
    keepalive: float
    max_connections: int
    gunicorn_timeout: float


def limit_flags(server: str, limits: Limits) -> list[str]:
    """What each server has for slow clients (gunicorn: no header or send timeout, no 503)."""
    if server == "corral":
        return ["--header-timeout", f"{limits.header_timeout:g}", "--send-timeout", f"{limits.send_timeout:g}",
                "--keepalive-timeout", f"{limits.keepalive:g}", "--max-connections", str(limits.max_connections)]
    flags = ["--timeout", f"{limits.gunicorn_timeout:g}", "--keep-alive", f"{limits.keepalive:g}"]
    if server == "gunicorn-gthread":
        flags += ["--worker-connections", str(limits.max_connections)]
    return flags


def command(server: str, bin_dir: Path, workers: int, limits: Limits | None) -> list[str]:
    bind = f"{HOST}:0"
    flags = limit_flags(server, limits) if limits else []
    if server == "corral":
        return [str(bin_dir / "corral"), "serve", "fault_apps:app", "--bind", bind, "--workers", str(workers),
                "--threads", "1", *flags]
    argv = [str(bin_dir / "gunicorn"), "--workers", str(workers), "--bind", bind]
    if server == "gunicorn-gthread":
        argv += ["--worker-class", "gthread", "--threads", "8"]
    elif server != "gunicorn":
        raise ValueError(server)
    return [*argv, *flags, "fault_apps:app"]


KEEPALIVE = {"corral": True, "gunicorn": False, "gunicorn-gthread": True}  # sync closes after each response
READY = {"corral": r"Corral ready", "gunicorn": r"Booting worker with pid", "gunicorn-gthread": r"Booting worker"}
LISTENING = re.compile(r"Listening at:? https?://\S+:(\d+)")


@dataclass
class Running:
    name: str
    port: int
    master: int
    log: list[str]

    @property
    def address(self) -> Address:
        return HOST, self.port

    def workers(self, count: int) -> list[int]:
        deadline = time.monotonic() + 10
        while len(pids := children(self.master)) < count and time.monotonic() < deadline:
            time.sleep(0.05)  # /proc offers no event for a new child
        return pids


@contextmanager
def running(server: str, bin_dir: Path, workers: int, limits: Limits | None = None) -> Iterator[Running]:
    env = dict(os.environ, PYTHONPATH=str(APPS))
    proc = subprocess.Popen(command(server, bin_dir, workers, limits), env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    log: list[str] = []
    port: list[int] = []
    ready = threading.Semaphore(0)

    def read_log() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line)
            if found := LISTENING.search(line):
                port.append(int(found.group(1)))
            if re.search(READY[server], line):
                ready.release()

    threading.Thread(target=read_log, daemon=True).start()
    try:
        readies = 1 if server == "corral" else workers  # gunicorn logs each worker's boot
        if not all(ready.acquire(timeout=READY_TIMEOUT) for _ in range(readies)) or not port:
            raise SystemExit(f"faults: {server} did not become ready:\n{''.join(log[-20:])}")
        run = Running(server, port[0], proc.pid, log)
        if probe(run.address, 10.0) is None:  # (a gunicorn worker imports the app after its boot line)
            raise SystemExit(f"faults: {server} does not answer:\n{''.join(log[-20:])}")
        yield run
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):  # the group: workers that outlived a killed master too
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(15)
                deadline = time.monotonic() + 5
                while group_alive(proc.pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if not group_alive(proc.pid):
                    break
            except subprocess.TimeoutExpired:
                continue
        proc.wait()


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


# -- the normal client -------------------------------------------------------------------------


def probe(address: Address, timeout: float, path: str = "/ok") -> float | None:
    """One request on a fresh connection: its latency in ms, or None if it failed or took longer."""
    started = time.perf_counter()
    return None if fetch(address, timeout, path) is None else (time.perf_counter() - started) * 1000


def fetch(address: Address, timeout: float, path: str) -> bytes | None:
    """GET `path` on a fresh connection: the body of its 200, or None."""
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
            status, _, body = read_response(sock, timeout)
    except (OSError, ValueError):
        return None
    return body if status == 200 else None


@dataclass
class Probes:
    served: list[float]  # latencies in ms
    failed: int

    def cells(self, label: str) -> Row:
        if not self.served:
            return {f"{label}: served": f"0 of {self.failed}", f"{label}: p50 / p99 ms": "-"}
        ordered = sorted(self.served)
        p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
        return {f"{label}: served": f"{len(ordered)} of {len(ordered) + self.failed}",
                f"{label}: p50 / p99 ms": f"{statistics.median(ordered):.2f} / {p99:.2f}"}


def probes(address: Address, count: int, timeout: float, seconds: float) -> Probes:
    """Up to `count` probes, one after another, for at most `seconds`."""
    result = Probes([], 0)
    deadline = time.monotonic() + seconds
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        took = probe(address, timeout)
        if took is None:
            result.failed += 1
        else:
            result.served.append(took)
    return result


# -- scenarios ---------------------------------------------------------------------------------


def scenario_resets(run: Running, args: argparse.Namespace) -> Row:
    [pid] = run.workers(1)
    warm_errors = reset_storm(run.address, args.warmup_resets)
    probe(run.address, 5.0)
    base_fds, base_rss = settled(pid, fds(pid), 1.0), rss_kib(pid)
    started = time.monotonic()
    errors = reset_storm(run.address, args.resets)
    took = time.monotonic() - started
    served = probe(run.address, 5.0) is not None
    after_fds = settled(pid, base_fds + FD_SLACK, 5.0) if pid in children(run.master) else 0
    after_rss = rss_kib(pid) if pid in children(run.master) else 0
    return {
        "resets sent": f"{args.warmup_resets:,} warm-up + {args.resets:,} in {took:.1f} s",
        "client-side failures": f"{warm_errors} + {errors}",
        "worker RSS KiB before -> after": f"{base_rss:,} -> {after_rss:,} ({after_rss - base_rss:+,})",
        "worker fds before -> after": f"{base_fds} -> {after_fds} ({after_fds - base_fds:+d})",
        "same worker, still serving": f"{'yes' if pid in children(run.master) else 'NO'}, {'yes' if served else 'NO'}",
    }


def open_many(make: Callable[[Address], socket.socket], address: Address,
              count: int) -> tuple[list[socket.socket], int]:
    opened: list[socket.socket] = []
    failed = 0
    for _ in range(count):
        try:
            opened.append(make(address))
        except OSError:
            failed += 1
    return opened, failed


def beyond_limit(address: Address, count: int, seconds: float = 2.0) -> str:
    """`count` more connections, each sending a GET: how they are answered within `seconds`."""
    socks, failed = open_many(lambda a: socket.create_connection(a, timeout=seconds), address, count)
    answers: dict[str, int] = {}
    for sock in socks:
        try:
            sock.sendall(b"GET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        except OSError:
            pass
    deadline = time.monotonic() + seconds  # one deadline for all: a server that never answers costs it once
    for sock in socks:
        try:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            head = sock.recv(12)
            key = head[9:12].decode("latin-1") if head else "closed"
        except TimeoutError:
            key = "no answer"
        except OSError:
            key = "reset"
        answers[key] = answers.get(key, 0) + 1
        sock.close()
    if failed:
        answers["connect failed"] = failed
    return ", ".join(f"{n} {key}" for key, n in sorted(answers.items()))


def spread(times: list[float]) -> str:
    if not times:
        return "none"
    return f"{len(times)}: first {min(times):.1f} s, median {statistics.median(times):.1f} s, last {max(times):.1f} s"


def held_fds(run: Running, base: int, until: float, since: float) -> tuple[int, float | None]:
    """The most fds the server's workers held over `base` until `until` (monotonic), and when
    (seconds after `since`) they were last back within FD_SLACK of it and stayed there: the
    server's own view of its slow connections, slow readers included (a client that read to
    learn of a close would stop being slow)."""
    peak, back = 0, None
    while time.monotonic() < until:
        held = sum(fds(pid) for pid in children(run.master)) - base
        peak = max(peak, held)
        if held > FD_SLACK:
            back = None
        elif back is None:
            back = time.monotonic() - since
        time.sleep(0.25)  # /proc offers no event for a closed fd
    return peak, back


def scenario_slow(run: Running, args: argparse.Namespace, limits: Limits) -> Row:
    [pid] = run.workers(1)
    base_fds = fds(pid)
    alone = probes(run.address, args.probes, args.probe_timeout, args.probe_seconds)
    opened_at = time.monotonic()
    lorises, loris_failed = open_many(slowloris, run.address, args.slowloris)
    readers, reader_failed = open_many(slow_reader, run.address, args.slow_readers)
    took = time.monotonic() - opened_at
    beside = probes(run.address, args.probes, args.probe_timeout, args.probe_seconds)
    extra = beyond_limit(run.address, args.extra) if args.extra else "-"
    longest = limits.gunicorn_timeout if run.name.startswith("gunicorn") else max(limits.header_timeout,
                                                                                   limits.send_timeout)
    watch_until = opened_at + longest + args.watch_slack
    for sock in lorises + readers:
        sock.setblocking(False)
    held: list[tuple[int, float | None]] = []
    watcher = threading.Thread(target=lambda: held.append(held_fds(run, base_fds, watch_until, opened_at)))
    watcher.start()
    loris_closes = closed_by(lorises, watch_until, since=opened_at)  # (lorises only: see held_fds)
    watcher.join()
    [(peak, back)] = held
    released = f"at {back:.1f} s" if back is not None else f"not within {watch_until - opened_at:.0f} s"
    after = probes(run.address, min(args.probes, 20), args.probe_timeout, args.probe_seconds)
    for sock in lorises + readers:
        sock.close()
    return {
        "slow connections opened": f"{len(lorises)} + {len(readers)} in {took:.1f} s"
        + (f" ({loris_failed + reader_failed} failed)" if loris_failed + reader_failed else ""),
        **alone.cells("alone"),
        **beside.cells("beside them"),
        f"{args.extra} connections more": extra,
        "slowloris closed (s after opening)": spread(loris_closes),
        "worker fds over baseline: peak, back within +2": f"+{peak}, {released}",
        "after the watch: served": after.cells("after")["after: served"],
    }


SLOW_PID = b"GET /slow-pid HTTP/1.1\r\nHost: t\r\n\r\n"
SLOW_PID_CLOSE = b"GET /slow-pid HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


class Loader(threading.Thread):
    """One client sending /slow-pid until stopped: keep-alive where the server keeps connections,
    a fresh connection per request otherwise. Each outcome: (pid answered or None, pid of the
    connection's worker as last seen, 0 when unknown)."""

    def __init__(self, run: Running, stop: threading.Event, seconds: float) -> None:
        super().__init__(daemon=True)
        self.run_, self.stop, self.deadline = run, stop, time.monotonic() + seconds
        self.outcomes: list[tuple[int | None, int, float]] = []

    def run(self) -> None:
        sock: socket.socket | None = None
        pid = 0
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            try:
                if sock is None:
                    sock, pid = socket.create_connection(self.run_.address, timeout=5), 0
                keep = KEEPALIVE[self.run_.name]
                sock.sendall(SLOW_PID if keep else SLOW_PID_CLOSE)
                status, _, body = read_response(sock, 5)
                if status != 200:
                    raise ValueError(status)
                pid = int(body)
                self.outcomes.append((pid, pid, time.monotonic()))
                if not keep:
                    sock.close()
                    sock = None
            except (OSError, ValueError):
                self.outcomes.append((None, pid, time.monotonic()))
                if sock is not None:
                    sock.close()
                sock = None
        if sock is not None:
            sock.close()


def scenario_kill_worker(run: Running, args: argparse.Namespace) -> Row:
    before = run.workers(2)
    victim, survivor = before
    stop = threading.Event()
    loaders = [Loader(run, stop, args.kill_seconds + 20) for _ in range(args.clients)]
    for loader in loaders:
        loader.start()
    deadline = time.monotonic() + 10
    while min(len(ld.outcomes) for ld in loaders) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)  # until every client has been served a few times: load is on
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    spawned = served = None
    end = killed_at + args.kill_seconds
    while time.monotonic() < end:
        if spawned is None and set(children(run.master)) - set(before):
            spawned = time.monotonic() - killed_at
        if served is None:
            got = [at for ld in loaders for pid, _, at in list(ld.outcomes) if pid and pid not in before]
            answer = None if got else fetch(run.address, 0.5, "/pid")  # fresh connections find it sooner
            if answer is not None and int(answer) not in before:
                got.append(time.monotonic())
            if got:
                served = min(got) - killed_at
        if spawned is not None and served is not None:
            break
        time.sleep(0.005)
    time.sleep(max(0.0, end - time.monotonic()))
    stop.set()
    for loader in loaders:
        loader.join(10)
    outcomes = [o for ld in loaders for o in ld.outcomes]
    failed = [(conn_pid, at) for pid, conn_pid, at in outcomes if pid is None]
    on = {"victim": 0, "survivor": 0, "unknown": 0}
    for conn_pid, _ in failed:
        on["victim" if conn_pid == victim else "survivor" if conn_pid == survivor else "unknown"] += 1
    never = f"not within {args.kill_seconds:g} s"
    return {
        "requests answered": f"{len(outcomes) - len(failed):,} from {args.clients} clients",
        "failed: on the killed worker / elsewhere / unknown": f"{on['victim']} / {on['survivor']} / {on['unknown']}",
        "new worker process after": f"{spawned * 1000:.0f} ms" if spawned is not None else never,
        "new worker first serves after": f"{served * 1000:.0f} ms" if served is not None else never,
    }


def scenario_kill_master(run: Running, args: argparse.Namespace) -> Row:
    pids = run.workers(2)
    idle = None
    if KEEPALIVE[run.name]:  # an idle keep-alive connection must not keep a worker alive
        idle = socket.create_connection(run.address, timeout=5)
        idle.sendall(b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\n")
        read_response(idle)
    killed_at = time.monotonic()
    os.kill(run.master, signal.SIGKILL)
    times = exit_times(pids, args.master_wait, killed_at)
    serves = probe(run.address, 1.0) is not None
    idle_state = "-"
    if idle is not None:
        idle.setblocking(False)
        try:
            idle_state = "closed" if idle.recv(1) == b"" else "data"
        except BlockingIOError:
            idle_state = "open"
        except OSError:
            idle_state = "reset"
        idle.close()
    cells = [f"{t:.2f} s" if t is not None else f"alive after {args.master_wait:g} s" for t in times.values()]
    return {
        "workers exited after": ", ".join(cells),
        "port still served afterwards": "yes" if serves else "no",
        "idle keep-alive connection": idle_state,
    }


# -- the table ---------------------------------------------------------------------------------


def table(title: str, rows: dict[str, Row]) -> str:
    servers = list(rows)
    metrics = list(dict.fromkeys(m for row in rows.values() for m in row))
    lines = [f"\n### {title}\n", "| | " + " | ".join(servers) + " |", "|---" * (len(servers) + 1) + "|"]
    lines += ["| " + metric + " | " + " | ".join(rows[s].get(metric, "") for s in servers) + " |" for metric in metrics]
    return "\n".join(lines)


TITLES = {
    "resets": "Client resets (1 worker)",
    "slow": "Slowloris and slow readers (1 worker)",
    "kill-worker": "A worker SIGKILLed under load (2 workers)",
    "kill-master": "The master SIGKILLed (2 workers)",
}


def run_scenario(name: str, server: str, args: argparse.Namespace) -> Row:
    bin_dir = Path(args.venv) / "bin"
    if name == "resets":
        with running(server, bin_dir, 1) as run:
            return scenario_resets(run, args)
    if name == "slow":
        limits = Limits(args.header_timeout, args.send_timeout, args.keepalive,
                        args.max_connections or args.slowloris + args.slow_readers + 50, args.gunicorn_timeout)
        with running(server, bin_dir, 1, limits) as run:
            row = scenario_slow(run, args, limits)
            return {"limits given": " ".join(limit_flags(server, limits)), **row}
    with running(server, bin_dir, 2) as run:
        return scenario_kill_worker(run, args) if name == "kill-worker" else scenario_kill_master(run, args)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", default=sys.prefix,
                        help="where bin/corral and bin/gunicorn are (default: this python's)")
    parser.add_argument("--servers", nargs="+", choices=sorted(KEEPALIVE), default=list(KEEPALIVE))
    parser.add_argument("--scenarios", nargs="+", choices=list(TITLES), default=list(TITLES))
    parser.add_argument("--resets", type=int, default=10_000)
    parser.add_argument("--warmup-resets", type=int, default=600)
    parser.add_argument("--slowloris", type=int, default=1000)
    parser.add_argument("--slow-readers", type=int, default=200)
    parser.add_argument("--extra", type=int, default=70, help="connections opened beyond the slow ones (default 70)")
    parser.add_argument("--max-connections", type=int, default=0,
                        help="Corral --max-connections, gthread --worker-connections (default: slow ones + 50)")
    parser.add_argument("--header-timeout", type=float, default=4.0, help="Corral only")
    parser.add_argument("--send-timeout", type=float, default=4.0, help="Corral only")
    parser.add_argument("--keepalive", type=float, default=5.0,
                        help="Corral --keepalive-timeout, gunicorn --keep-alive")
    parser.add_argument("--gunicorn-timeout", type=float, default=30.0, help="gunicorn --timeout (its default: 30)")
    parser.add_argument("--probes", type=int, default=300, help="normal-client requests per measurement")
    parser.add_argument("--probe-timeout", type=float, default=2.0, help="seconds before a probe counts as failed")
    parser.add_argument("--probe-seconds", type=float, default=20.0, help="ceiling for one measurement")
    parser.add_argument("--watch-slack", type=float, default=5.0, help="seconds watched beyond the longest timeout")
    parser.add_argument("--clients", type=int, default=8, help="load clients in kill-worker")
    parser.add_argument("--kill-seconds", type=float, default=5.0, help="load kept on after the kill")
    parser.add_argument("--master-wait", type=float, default=30.0, help="how long to wait for workers to exit")
    args = parser.parse_args(argv)
    for server in args.servers:
        exe = Path(args.venv) / "bin" / ("corral" if server == "corral" else "gunicorn")
        if not exe.exists():
            parser.error(f"{exe} not found: pass --venv with {server} installed")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.slowloris + args.slow_readers + args.extra + 500
    if soft < want:  # the servers inherit it
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(want, 20000)), hard))
    print(f"faults: {', '.join(args.servers)} from {args.venv}/bin")
    for name in args.scenarios:
        rows = {}
        for server in args.servers:
            started = time.monotonic()
            rows[server] = run_scenario(name, server, args)
            print(f"  {name} on {server}: {time.monotonic() - started:.1f} s", file=sys.stderr)
        print(table(TITLES[name], rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
