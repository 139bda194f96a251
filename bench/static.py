"""Static files: Corral's static map beside WhiteNoise under Corral, granian's static route and nginx.

One worker each, the same directory, two files: 4 KiB (where per-request overhead shows) and
1 MiB (where the copy shows: sendfile vs reads). wrk drives keep-alive GETs of one file, as
bench/run.py does (same pinning, warm-up, rounds and CPU/RSS accounting, imported from it).

    python bench/static.py                               # both files, every server
    python bench/static.py --files 4k --servers corral nginx --reps 1 --duration 2

Servers (the first given is the reference for the ratios):

* ``corral``      ``corral serve apps:hello --workers 1 --static /static=DIR``
* ``whitenoise``  ``corral serve`` of ``WhiteNoise(apps.hello, root=DIR, prefix="static/")``, one thread
* ``granian``     ``granian --interface wsgi --workers 1 --static-path-route /static --static-path-mount DIR``
* ``nginx``       ``worker_processes 1``, ``location /static/ { alias DIR/; }``, sendfile on, access log off

whitenoise and granian come from the venv (``bench/setup.sh``), nginx from PATH.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from run import (
    BENCH_DIR,
    HOST,
    LOAD_CPU,
    READY_TIMEOUT_S,
    SERVER_CPU,
    RoundError,
    Sample,
    Settings,
    can_pin,
    corral_build,
    cpu_seconds,
    free_port,
    log_tail,
    median_sample,
    note,
    parse_seconds,
    pinned,
    process_tree,
    rss_mib,
    run_wrk,
    stop,
)

FILES = {"4k": 4 * 1024, "1m": 1024 * 1024}


@dataclass(frozen=True)
class StaticServer:
    name: str
    build: Callable[[Path, Path, Path, int], list[str]]  # (bin_dir, root, work, port) -> argv
    missing: Callable[[Path], str | None]


def _corral(bin_dir: Path, root: Path, work: Path, port: int) -> list[str]:
    return [str(bin_dir / "corral"), "serve", "apps:hello", "--bind", f"{HOST}:{port}", "--workers", "1",
            "--threads", "1", "--static", f"/static={root}"]


def _whitenoise(bin_dir: Path, root: Path, work: Path, port: int) -> list[str]:
    (work / "wn_app.py").write_text(
        "from whitenoise import WhiteNoise\nfrom apps import hello\n\n"
        f"app = WhiteNoise(hello, root={str(root)!r}, prefix='static/')\n")
    return [str(bin_dir / "corral"), "serve", "wn_app:app", "--bind", f"{HOST}:{port}", "--workers", "1",
            "--threads", "1"]


def _granian(bin_dir: Path, root: Path, work: Path, port: int) -> list[str]:
    return [str(bin_dir / "granian"), "--interface", "wsgi", "--host", HOST, "--port", str(port), "--workers", "1",
            "--static-path-route", "/static", "--static-path-mount", str(root), "apps:hello"]


def _nginx(bin_dir: Path, root: Path, work: Path, port: int) -> list[str]:
    conf = work / "nginx.conf"
    conf.write_text(
        f"worker_processes 1;\ndaemon off;\npid {work}/nginx.pid;\nerror_log {work}/nginx-error.log warn;\n"
        "events { worker_connections 1024; }\n"
        "http {\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 1000000;\n"
        f"  client_body_temp_path {work}/nginx-body;\n  proxy_temp_path {work}/nginx-proxy;\n"
        f"  fastcgi_temp_path {work}/nginx-fcgi;\n  uwsgi_temp_path {work}/nginx-uwsgi;\n"
        f"  scgi_temp_path {work}/nginx-scgi;\n"
        f"  server {{\n    listen {HOST}:{port};\n    location /static/ {{ alias {root}/; etag on; }}\n  }}\n}}\n")
    return [shutil.which("nginx") or "nginx", "-e", str(work / "nginx-error.log"), "-p", str(work), "-c", str(conf)]


def _needs(executable: str, module: str | None = None) -> Callable[[Path], str | None]:
    def missing(bin_dir: Path) -> str | None:
        exe = bin_dir / executable
        if not os.access(exe, os.X_OK):
            return f"not installed ({exe} missing)"
        if module and subprocess.run([str(bin_dir / "python"), "-c", f"import {module}"],
                                     capture_output=True).returncode != 0:
            return f"not installed (python cannot import {module})"
        return None
    return missing


def _nginx_missing(bin_dir: Path) -> str | None:
    return None if shutil.which("nginx") else "nginx is not on PATH (apt-get install -y nginx)"


SERVERS = {
    server.name: server
    for server in (
        StaticServer("corral", _corral, _needs("corral")),
        StaticServer("whitenoise", _whitenoise, _needs("corral", "whitenoise")),
        StaticServer("granian", _granian, _needs("granian")),
        StaticServer("nginx", _nginx, _nginx_missing),
    )
}


def make_root(work: Path) -> Path:
    root = work / "root"
    root.mkdir(mode=0o755)
    for name, size in FILES.items():
        (root / f"{name}.bin").write_bytes(os.urandom(size))
        (root / f"{name}.bin").chmod(0o644)
    return root


def wait_file(proc: subprocess.Popen[bytes], port: int, path: str, size: int, log: Path) -> None:
    """Return once GET `path` answers 200 with the whole file; RoundError otherwise."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RoundError(f"exited with status {proc.returncode}: {log_tail(log)}")
        conn = http.client.HTTPConnection(HOST, port, timeout=1)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
        except OSError:
            time.sleep(0.1)  # not listening yet: these servers have no readiness signal we can share
            continue
        finally:
            conn.close()
        if response.status != 200 or len(body) != size:
            raise RoundError(f"GET {path} answered {response.status} with {len(body)} bytes")
        return
    raise RoundError(f"not ready after {READY_TIMEOUT_S:.0f}s: {log_tail(log)}")


@contextmanager
def running(server: StaticServer, root: Path, settings: Settings, work: Path,
            path: str, size: int) -> Iterator[tuple[int, int]]:
    port = free_port()
    log = work / f"{server.name}.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(work), str(BENCH_DIR)) if p))
    argv = pinned(SERVER_CPU, server.build(settings.bin_dir, root, work, port), settings)
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=BENCH_DIR, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_file(proc, port, path, size, log)
        yield proc.pid, port
    finally:
        stop(proc)


def measure(server: StaticServer, root: Path, file: str, settings: Settings, work: Path) -> Sample:
    path = f"/static/{file}.bin"
    with running(server, root, settings, work, path, FILES[file]) as (pid, port):
        def wrk(seconds: int) -> list[str]:
            return pinned(LOAD_CPU, ["wrk", "-t1", f"-c{settings.connections}", f"-d{seconds}s", "--latency",
                                     f"http://{HOST}:{port}{path}"], settings)
        run_wrk(wrk(settings.warmup_s), settings.warmup_s)
        before = cpu_seconds(process_tree(pid))
        result = run_wrk(wrk(settings.duration_s), settings.duration_s)
        tree = process_tree(pid)
        cpu = cpu_seconds(tree) - before
        rss = rss_mib(tree)
    if result.non_2xx or not result.requests:
        raise RoundError(f"{result.non_2xx} non-2xx responses of {result.requests}")
    return Sample(result.rps, result.p50_ms, result.p99_ms, 1e6 * cpu / result.requests, rss, result.socket_errors)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Static files: Corral beside WhiteNoise, granian and nginx.")
    parser.add_argument("--files", nargs="+", choices=list(FILES), default=list(FILES))
    parser.add_argument("--servers", nargs="+", choices=list(SERVERS), default=list(SERVERS))
    parser.add_argument("--reps", type=int, default=int(os.environ.get("REPS", "3")))
    parser.add_argument("--duration", type=parse_seconds, default=parse_seconds(os.environ.get("DUR", "4")))
    parser.add_argument("--warmup", type=parse_seconds, default=1)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--venv", type=Path, default=Path(sys.prefix))
    parser.add_argument("--no-pin", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        note("wrk is not installed: apt-get install -y wrk (or run bench/setup.sh)")
        return 2
    pin = not args.no_pin and can_pin()
    settings = Settings(bin_dir=args.venv.resolve() / "bin", reps=max(1, args.reps), duration_s=args.duration,
                        warmup_s=args.warmup, connections=args.connections, pin=pin, verbose=False)
    note(f"{corral_build(settings)}, from {settings.bin_dir}; {'pinned' if pin else 'not pinned'}")
    lineup = [name for name in dict.fromkeys(args.servers)]
    skipped = {name: reason for name in lineup if (reason := SERVERS[name].missing(settings.bin_dir))}
    for name, reason in skipped.items():
        note(f"skip: {name}: {reason}")
    print(f"{'file':<6} {'server':<12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>10} {'RSS MiB':>8}")
    with tempfile.TemporaryDirectory(prefix="corral-bench-static-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # nginx's workers run as another user (nobody) when started as root
        root = make_root(work)
        for file in args.files:
            results: dict[str, Sample] = {}
            samples: dict[str, list[Sample]] = {name: [] for name in lineup if name not in skipped}
            for rep in range(settings.reps):  # interleaved rounds, as bench/run.py does
                for name in samples:
                    try:
                        samples[name].append(measure(SERVERS[name], root, file, settings, work))
                    except (RoundError, subprocess.TimeoutExpired) as exc:
                        note(f"  {file} {name} round {rep + 1}: failed: {exc}")
            for name in lineup:
                if samples.get(name):
                    r = results[name] = median_sample(samples[name])
                    print(f"{file:<6} {name:<12} {r.rps:>9.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} "
                          f"{r.cpu_us:>10.1f} {r.rss_mib:>8.1f}", flush=True)
                else:
                    print(f"{file:<6} {name:<12} {'-':>9}  {skipped.get(name, 'failed')}", flush=True)
            ref = results.get(lineup[0])
            for name, other in results.items():
                if ref is not None and name != lineup[0] and other.rps > 0 and other.cpu_us > 0:
                    print(f"  ratio {lineup[0]}/{name}: req/s {ref.rps / other.rps:.2f}x, "
                          f"CPU/req {ref.cpu_us / other.cpu_us:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
