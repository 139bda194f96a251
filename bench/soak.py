"""Soak: many requests through one Corral, with its memory and file descriptors watched.

Three phases, each on a fresh server (``corral serve apps:soak --workers 2``):

``keepalive``
    ``--requests`` GETs of a 13-byte response over keep-alive connections (default 1,000,000).
``uploads``
    ``--uploads`` POSTs of a 64 KiB body, each read in full by the app (default 100,000).
``threads``
    ``--requests`` GETs again, with ``--threads 8`` (the app runs on a thread pool).

Each phase first sends a warm-up share of its requests (first-use allocations, caches and
allocator arenas are not a leak), lets the connections close, and takes a baseline; then sends
the rest while sampling RSS and open fds of the master and every worker each ``--every``
seconds; then lets the connections close again and compares. A phase passes when no process
grew by more than ``--rss-bound`` KiB of RSS or ``--fd-bound`` fds over its baseline (a leak
grows with the count; the bounds are what a settled interpreter wanders by). The exit status
is 1 if any phase failed.

The load comes from wrk (one Lua-counted run per step: wrk stops after exactly the asked
number of responses, give or take one per connection) or, with ``--client python`` or when
wrk is missing, from a small client of our own (keep-alive sockets on threads; slower).

    python bench/soak.py                                    # the full soak (tens of minutes)
    python bench/soak.py --requests 20000 --uploads 2000 --every 1   # a smoke run, seconds
    python bench/soak.py --phases uploads --uploads 500000
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
UPLOAD_BYTES = 64 * 1024
READY_TIMEOUT = 30.0  # seconds for a server to say it is ready
SETTLE_TIMEOUT = 5.0  # seconds for closed connections to leave the workers' fd tables
GET = b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n"


@dataclass(frozen=True)
class Phase:
    name: str
    upload: bool  # POST UPLOAD_BYTES per request instead of a GET
    threads: int


PHASES = {
    "keepalive": Phase("keepalive", upload=False, threads=1),
    "uploads": Phase("uploads", upload=True, threads=1),
    "threads": Phase("threads", upload=False, threads=8),
}


@dataclass
class Sample:
    at: float  # seconds since the phase's baseline
    done: int  # requests answered so far (from the client; wrk: -1, it reports only at its end)
    rss_kib: dict[int, int]
    fds: dict[int, int]


@dataclass
class Result:
    phase: str
    requests: int  # after the warm-up
    warmup: int
    seconds: float  # the requests after the warm-up took
    errors: int
    baseline: Sample
    final: Sample
    samples: list[Sample] = field(default_factory=list)


# -- the server and its processes ----------------------------------------------------------


@contextmanager
def serving(corral: list[str], phase: Phase, workers: int) -> Iterator[tuple[int, int]]:
    """A fresh server for one phase: yields (port, master pid); stopped with SIGTERM after."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(BENCH), os.environ.get("PYTHONPATH")])))
    argv = [*corral, "serve", "apps:soak", "--bind", "127.0.0.1:0", "--workers", str(workers),
            "--threads", str(phase.threads), "--max-connections", "2000"]
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    port: list[int] = []
    ready = threading.Event()
    log: list[str] = []

    def read_log() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line)
            found = re.search(r"Listening at http://\S+:(\d+)", line)
            if found:
                port.append(int(found.group(1)))
            if "Corral ready" in line:
                ready.set()

    threading.Thread(target=read_log, daemon=True).start()
    try:
        if not ready.wait(READY_TIMEOUT) or not port:
            raise SystemExit(f"soak: the server did not become ready:\n{''.join(log[-20:])}")
        yield port[0], proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tree(master: int) -> list[int]:
    """The master and its children (the workers)."""
    try:
        with open(f"/proc/{master}/task/{master}/children") as children:
            return [master, *sorted(int(pid) for pid in children.read().split())]
    except OSError:
        return [master]


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            found = re.search(r"VmRSS:\s+(\d+)", status.read())
    except OSError:
        return 0
    return int(found.group(1)) if found else 0


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def sample(master: int, started: float, done: int) -> Sample:
    pids = tree(master)
    return Sample(time.monotonic() - started, done, {p: rss_kib(p) for p in pids}, {p: fd_count(p) for p in pids})


def settled(master: int, started: float) -> Sample:
    """A sample once the fd counts stop falling (closed connections take a moment to leave)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    last = sample(master, started, -1)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = sample(master, started, -1)
        if sum(now.fds.values()) >= sum(last.fds.values()):
            return now
        last = now
    return last


# -- the load --------------------------------------------------------------------------------


class Counter:
    def __init__(self) -> None:
        self.done = 0
        self.errors = 0
        self.lock = threading.Lock()


def wrk_load(port: int, phase: Phase, count: int, args: argparse.Namespace, work: Path, counter: Counter) -> None:
    """Exactly `count` responses with wrk: its Lua script counts them and ends wrk at the count.

    (wrk.thread:stop() would leave wrk sleeping out its -d; so the script prints its counts
    and exits. -d is only the ceiling, --max-seconds, for a server that stops answering.)
    """
    script = work / "soak.lua"
    lines = [f"local limit = {max(1, count)}", "local seen, bad = 0, 0"]
    if phase.upload:
        lines += ['wrk.method = "POST"', f'wrk.body = string.rep("x", {UPLOAD_BYTES})',
                  'wrk.headers["Content-Type"] = "application/octet-stream"']
    lines += ["function response(status, headers, body)",
              "  seen = seen + 1",
              "  if status ~= 200 then bad = bad + 1 end",
              "  if seen >= limit then",
              '    io.write(string.format("soak-count %d %d\\n", seen, bad)); io.flush(); os.exit(0)',
              "  end",
              "end"]
    script.write_text("\n".join(lines) + "\n")
    argv = ["wrk", "-t1", f"-c{min(args.connections, max(1, count))}", f"-d{args.max_seconds}s", "-s", str(script),
            f"http://127.0.0.1:{port}/"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=args.max_seconds + 60).stdout
    counted = re.search(r"soak-count (\d+) (\d+)", out)
    if counted:
        done, bad = int(counted.group(1)), int(counted.group(2))
    else:  # the ceiling came first: wrk's own summary says how far it got
        total = re.search(r"(\d+) requests in", out)
        if total is None:
            raise SystemExit(f"soak: unreadable wrk output:\n{out}")
        done = int(total.group(1))
        bad = count - done + sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
        print(f"soak: wrk reached --max-seconds {args.max_seconds} after {done:,} of {count:,} requests")
    with counter.lock:
        counter.done += done
        counter.errors += bad


def python_load(port: int, phase: Phase, count: int, connections: int, counter: Counter) -> None:
    """`count` requests over `connections` keep-alive sockets, one request at a time each."""
    if phase.upload:
        request = (b"POST / HTTP/1.1\r\nHost: soak\r\nContent-Type: application/octet-stream\r\n"
                   b"Content-Length: %d\r\n\r\n" % UPLOAD_BYTES) + b"x" * UPLOAD_BYTES
    else:
        request = GET
    left = [count]

    def take() -> bool:
        with counter.lock:
            if left[0] <= 0:
                return False
            left[0] -= 1
            return True

    def client() -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        buffered = b""
        try:
            while take():
                sock.sendall(request)
                buffered = read_one(sock, buffered)
                with counter.lock:
                    counter.done += 1
        except (OSError, ValueError):
            with counter.lock:
                counter.errors += 1
        finally:
            sock.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(min(connections, max(1, count)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def read_one(sock: socket.socket, buffered: bytes) -> bytes:
    """Read one response with a Content-Length (what apps:soak always sends); return what follows."""
    while b"\r\n\r\n" not in buffered:
        data = sock.recv(65536)
        if not data:
            raise ValueError("connection closed mid-response")
        buffered += data
    head, _, rest = buffered.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 "):
        raise ValueError(head[:60].decode("latin-1"))
    found = re.search(rb"(?i)content-length: *(\d+)", head)
    length = int(found.group(1)) if found else 0
    while len(rest) < length:
        data = sock.recv(65536)
        if not data:
            raise ValueError("connection closed mid-body")
        rest += data
    return rest[length:]


# -- one phase -------------------------------------------------------------------------------


def run_phase(phase: Phase, count: int, args: argparse.Namespace, work: Path) -> Result:
    warmup = max(1, int(count * args.warmup))
    with serving(args.corral, phase, args.workers) as (port, master):

        def load(n: int, counter: Counter) -> None:
            if args.client == "wrk":
                wrk_load(port, phase, n, args, work, counter)
            else:
                python_load(port, phase, n, args.connections, counter)

        load(warmup, Counter())
        started = time.monotonic()
        baseline = settled(master, started)
        counter = Counter()
        samples = [baseline]
        runner = threading.Thread(target=load, args=(count - warmup, counter), daemon=True)
        loaded = time.monotonic()
        runner.start()
        while runner.is_alive():
            runner.join(args.every)
            if runner.is_alive():
                samples.append(sample(master, started, counter.done if args.client == "python" else -1))
        seconds = time.monotonic() - loaded
        final = settled(master, started)
        final.done = counter.done
        samples.append(final)
        return Result(phase.name, counter.done, warmup, seconds, counter.errors, baseline, final, samples)


def report(result: Result, args: argparse.Namespace) -> bool:
    pids = list(result.baseline.rss_kib)
    names = {pid: ("master" if i == 0 else f"worker {pid}") for i, pid in enumerate(pids)}
    rate = result.requests / max(result.seconds, 1e-9)
    print(f"\n== {result.phase}: {result.warmup:,} warm-up + {result.requests:,} requests ({result.errors} errors) "
          f"in {result.seconds:.1f} s, ~{rate:,.0f} req/s")
    header = f"{'t (s)':>8} {'done':>10}  " + "  ".join(f"{names[p]:>22}" for p in pids)
    print(header)
    print(f"{'':>8} {'':>10}  " + "  ".join(f"{'RSS KiB':>13} {'fds':>8}" for _ in pids))
    for s in result.samples:
        done = "" if s.done < 0 else f"{s.done:,}"
        cells = "  ".join(f"{s.rss_kib.get(p, 0):>13,} {s.fds.get(p, 0):>8}" for p in pids)
        print(f"{s.at:>8.1f} {done:>10}  {cells}")
    ok = result.errors == 0
    for pid in pids:
        if pid not in result.final.rss_kib:
            print(f"  {names[pid]}: gone before the end (replaced?)")
            ok = False
            continue
        rss = result.final.rss_kib[pid] - result.baseline.rss_kib[pid]
        fds = result.final.fds[pid] - result.baseline.fds[pid]
        within = rss <= args.rss_bound and fds <= args.fd_bound
        ok = ok and within
        print(f"  {names[pid]:<14} growth after warm-up: RSS {rss:+,} KiB (bound {args.rss_bound:,}), "
              f"fds {fds:+d} (bound {args.fd_bound}) -> {'ok' if within else 'BEYOND THE BOUND'}")
    if result.errors:
        print(f"  {result.errors} failed requests")
    return ok


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phases", nargs="+", choices=sorted(PHASES), default=list(PHASES),
                        help="which phases to run (default: all three, in order keepalive uploads threads)")
    parser.add_argument("--requests", type=int, default=1_000_000, help="GETs per keepalive/threads phase")
    parser.add_argument("--uploads", type=int, default=100_000, help="64 KiB POSTs in the uploads phase")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=50, help="concurrent keep-alive connections")
    parser.add_argument("--warmup", type=float, default=0.1, help="share of each phase sent before the baseline")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--rss-bound", type=int, default=4096, help="KiB of RSS growth allowed per process")
    parser.add_argument("--fd-bound", type=int, default=2, help="open fds of growth allowed per process")
    parser.add_argument("--max-seconds", type=int, default=3600, help="ceiling for one load step (default 3600)")
    parser.add_argument("--client", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python")
    parser.add_argument("--corral", nargs="+", default=[sys.executable, "-m", "corral"],
                        help="how to start corral (default: this python's -m corral)")
    args = parser.parse_args(argv)
    if not 0 <= args.warmup < 1:
        parser.error("--warmup is a share: 0 <= W < 1")
    if min(args.requests, args.uploads, args.workers, args.connections) < 1 or args.every <= 0:
        parser.error("counts must be at least 1 and --every positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"soak: {args.client} client, {args.workers} workers, {args.connections} connections, "
          f"warm-up {args.warmup:.0%}, a sample every {args.every:g} s")
    ok = True
    with tempfile.TemporaryDirectory(prefix="corral-soak-") as work:
        for name in args.phases:
            phase = PHASES[name]
            count = args.uploads if phase.upload else args.requests
            ok = report(run_phase(phase, count, args, Path(work)), args) and ok
    print("\nsoak:", "every process within its bounds" if ok else "FAILED (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
