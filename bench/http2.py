"""Hello world over HTTP/2 (h2c, prior knowledge), Corral beside granian, with h2load.
(Not bench/h2.py: run from bench/, that name would shadow the h2 library itself.)

    python bench/http2.py [--duration S] [--clients N] [--streams 1 100] [--servers corral granian gunicorn]

Each server runs one worker with bench/apps.py:hello (13 bytes), started afresh for each
measurement and pinned to CPU 1; h2load (Debian's nghttp2-client: `apt-get install
nghttp2-client`) runs on CPU 0 with N clients (connections) and 1, then 100, concurrent
streams per connection (`-m`). A line per server and stream count: req/s, mean latency,
the server's CPU per request (user+sys of its process tree over the measured run, from
/proc, as bench/run.py reads it: the fair figure when h2load's own core is the limit),
and the ratio of throughput to the first server's. Servers missing from the venv are skipped with a note.
granian runs as `granian --interface wsgi --http 2`; gunicorn (27.x, gthread: its sync
worker does not take HTTP/2) as `--http-protocols h2,h1 --http2-cleartext prior-knowledge`;
Corral as `corral serve --http2`.
Smoke run: `python bench/http2.py --duration 2 --clients 2`.
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from run import cpu_seconds, process_tree

HOST = "127.0.0.1"
BENCH = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def command(name: str, bin_dir: Path, port: int) -> list[str] | None:
    if name == "corral":
        return [sys.executable, "-m", "corral", "serve", "apps:hello", "--bind", f"{HOST}:{port}",
                "--http2", "--workers", "1"]
    if name == "granian":
        exe = bin_dir / "granian"
        if not exe.exists():
            return None
        return [str(exe), "--interface", "wsgi", "--http", "2", "--host", HOST, "--port", str(port),
                "--workers", "1", "apps:hello"]
    if name == "gunicorn":
        # gunicorn's own HTTP/2 (27.x, on the h2 library); its sync worker does not take it.
        exe = bin_dir / "gunicorn"
        if not exe.exists():
            return None
        return [str(exe), "--http-protocols", "h2,h1", "--http2-cleartext", "prior-knowledge",
                "--worker-class", "gthread", "--workers", "1", "--bind", f"{HOST}:{port}", "apps:hello"]
    raise SystemExit(f"unknown server {name!r} (corral, granian, gunicorn)")


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)  # (a server we did not write: no readiness line to wait for)
    raise RuntimeError("server did not listen in time")


def h2load(port: int, duration: int, clients: int, streams: int) -> tuple[float, str]:
    done = subprocess.run(
        ["taskset", "-c", "0", "h2load", "-c", str(clients), "-m", str(streams), "-D", str(duration),
         f"http://{HOST}:{port}/"],
        capture_output=True, text=True, timeout=duration + 30,
    )
    out = done.stdout + done.stderr
    rate = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    latency = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", out)
    failed = re.search(r"(\d+) failed", out)
    if rate is None:
        raise RuntimeError("h2load printed no rate:\n" + out)
    note = f"mean {latency.group(1) if latency else '?'}, failed {failed.group(1) if failed else '?'}"
    return float(rate.group(1)), note


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds (h2load -D takes whole seconds)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--servers", nargs="+", default=["corral", "granian", "gunicorn"])
    parser.add_argument("--venv", type=Path, default=Path(sys.executable).parent.parent)
    args = parser.parse_args()
    if shutil.which("h2load") is None:
        print("h2load not found: apt-get install nghttp2-client", file=sys.stderr)
        return 2
    for streams in args.streams:
        reference = None
        for name in args.servers:
            port = free_port()
            cmd = command(name, args.venv / "bin", port)
            if cmd is None:
                print(f"{name}: not installed in {args.venv}, skipped")
                continue
            proc = subprocess.Popen(["taskset", "-c", "1", *cmd], cwd=BENCH,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_listening(port, proc)
                h2load(port, 1, args.clients, streams)  # warm-up
                tree = process_tree(proc.pid)
                cpu_before = cpu_seconds(tree)
                rate, note = h2load(port, args.duration, args.clients, streams)
                cpu_us = (cpu_seconds(tree) - cpu_before) * 1e6 / max(rate * args.duration, 1)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            reference = reference or rate
            print(f"h2 hello, {streams:>3} streams/conn  {name:<8} {rate:>10.0f} req/s  "
                  f"({note}, {cpu_us:.1f} us CPU/req)  ratio {rate / reference:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
