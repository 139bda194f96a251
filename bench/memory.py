"""What Corral's master and worker hold in memory, per process, after a short load.

    python bench/memory.py [--python PY] [--requests N] [--maps] [-- EXTRA SERVE ARGS]

Starts ``corral serve apps:hello --workers 1 --threads 1`` from ``bench/`` with the given
interpreter (default: this one), sends N keep-alive requests (default 2000), then prints for
the master and each worker: VmRSS (what bench/run.py sums), Pss (shared pages divided among
the processes that map them), Shared_Clean and Private_Dirty (pages only this process has
written: what a fork does not share), from /proc/PID/status and /proc/PID/smaps_rollup.
``--maps`` adds the largest mappings of each process (the mypyc library, libpython, libcrypto,
uvloop, the heap...). Extra arguments after ``--`` go to ``corral serve``.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
READY_TIMEOUT = 30.0
FIELDS = ("Pss", "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def rollup(pid: int) -> dict[str, int]:
    """KiB per field of smaps_rollup, plus VmRSS from status."""
    values = {m.group(1): int(m.group(2))
              for m in re.finditer(r"^(\w+):\s+(\d+) kB", Path(f"/proc/{pid}/smaps_rollup").read_text(), re.M)}
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    values["VmRSS"] = int(match.group(1)) if match else 0
    return values


def mappings(pid: int) -> list[tuple[str, int, int]]:
    """(name, Rss KiB, Private_Dirty KiB) per mapped file (anonymous memory as [anon]), largest first."""
    rss: collections.Counter[str] = collections.Counter()
    dirty: collections.Counter[str] = collections.Counter()
    name = "[anon]"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            parts = line.split()
            name = os.path.basename(parts[5]) if len(parts) > 5 else "[anon]"
        elif line.startswith("Rss:"):
            rss[name] += int(line.split()[1])
        elif line.startswith("Private_Dirty:"):
            dirty[name] += int(line.split()[1])
    return [(n, kib, dirty[n]) for n, kib in rss.most_common()]


def load(port: int, requests: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(requests):
        conn.request("GET", "/")
        conn.getresponse().read()
    conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--maps", action="store_true")
    parser.add_argument("extra", nargs="*")
    args = parser.parse_args()
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(BENCH))
    cmd = [args.python, "-m", "corral", "serve", "apps:hello", "--workers", "1", "--threads", "1",
           "--bind", f"127.0.0.1:{port}", *args.extra]
    server = subprocess.Popen(cmd, cwd=BENCH, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        assert server.stderr is not None
        for line in server.stderr:  # "Listening at" is logged once the worker accepts
            if "Listening at" in line:
                break
            if time.monotonic() > deadline:
                raise SystemExit("corral did not become ready")
        else:
            raise SystemExit("corral exited before it was ready")
        load(port, args.requests)
        time.sleep(0.5)  # let the heartbeat and the sweeper run once
        total = 0
        for pid in [server.pid, *children(server.pid)]:
            values = rollup(pid)
            total += values["VmRSS"]
            role = "master" if pid == server.pid else "worker"
            shown = "  ".join(f"{f} {values.get(f, 0) / 1024:.1f}" for f in FIELDS)
            print(f"{role} {pid}: VmRSS {values['VmRSS'] / 1024:.1f} MiB  {shown}")
            if args.maps:
                for name, kib, dirty in mappings(pid)[:12]:
                    print(f"    {kib / 1024:6.2f} MiB resident  {dirty / 1024:6.2f} private dirty  {name}")
        print(f"sum of VmRSS: {total / 1024:.1f} MiB")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
