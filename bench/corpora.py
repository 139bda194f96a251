"""The imported request corpora (gunicorn's, llhttp's) against Corral, gunicorn and waitress, side by side.

    python bench/corpora.py [--venv VENV] [--servers corral gunicorn waitress]

Each server runs tests/apps/corpus_echo.py with one worker; every case (a Host added where
an HTTP/1.1 head has none, as in tests/integration/test_corpora.py) is sent whole, byte by
byte and in random chunks. Printed per server and corpus: how many cases the server answers
as the corpus expects, how many it answers otherwise, and how many get different answers
depending on how the bytes arrive (a framing bug wherever it shows). Cases gunicorn's own
suite runs with non-default settings are left out.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import corpora  # noqa: E402
import corpora_replay  # noqa: E402

HOST = "127.0.0.1"
APPS = ROOT / "tests" / "apps"


def command(server: str, bin_dir: Path, port: int) -> list[str]:
    if server == "corral":
        return [str(bin_dir / "corral"), "serve", "corpus_echo:app", "--bind", f"{HOST}:{port}", "--workers", "1"]
    if server == "gunicorn":
        return [str(bin_dir / "gunicorn"), "--workers", "1", "--bind", f"{HOST}:{port}", "corpus_echo:app"]
    if server == "waitress":
        return [str(bin_dir / "waitress-serve"), f"--listen={HOST}:{port}", "corpus_echo:app"]
    raise ValueError(server)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running(server: str, bin_dir: Path) -> Iterator[int]:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(APPS))
    proc = subprocess.Popen(command(server, bin_dir, port), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                conn = http.client.HTTPConnection(HOST, port, timeout=1)
                conn.request("GET", "/")
                conn.getresponse().read()
                conn.close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{server} did not start") from None
                time.sleep(0.1)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def tally(port: int) -> dict[str, list[int]]:
    """{corpus: [agree, differ, mode-dependent]}"""
    counts: dict[str, list[int]] = {"gunicorn": [0, 0, 0], "llhttp": [0, 0, 0]}
    for case in corpora.all_cases():
        if case.settings:
            continue
        case = case.with_host()
        verdicts = {corpora_replay.verdict(case, corpora_replay.replay((HOST, port), case, mode))
                    for mode in corpora_replay.MODES}
        row = counts[case.id.split("/", 1)[0]]
        if len(verdicts) > 1:
            row[2] += 1
        elif verdicts == {""}:
            row[0] += 1
        else:
            row[1] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=Path(sys.prefix), help="venv whose bin/ has the servers")
    parser.add_argument("--servers", nargs="+", default=["corral", "gunicorn", "waitress"])
    args = parser.parse_args(argv)
    bin_dir = args.venv / "bin"
    print(f"{'server':10} {'corpus':9} {'agree':>6} {'differ':>7} {'by split':>9}")
    for server in args.servers:
        try:
            with running(server, bin_dir) as port:
                counts = tally(port)
        except (RuntimeError, FileNotFoundError) as exc:
            print(f"{server:10} skipped: {exc}")
            continue
        for name, (agree, differ, split) in counts.items():
            print(f"{server:10} {name:9} {agree:6} {differ:7} {split:9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
