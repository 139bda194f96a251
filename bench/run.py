"""Corral beside its peers: one benchmark run on this machine, one command.

    python bench/run.py [--cases CASE ...] [--servers SERVER ...] [--reps N] [--duration S]
                        [--markdown FILE]

Every server runs one worker with the app from ``bench/apps.py`` (or a minimal Django view).
The server is pinned to CPU 1 and the load generator (wrk, one thread, 50 connections) to
CPU 0 with ``taskset``. Each server is started afresh for every round, warmed up, then
measured; rounds interleave the servers so slow drift of a shared machine spreads evenly over
all of them, and the median of the rounds is reported:

* req/s, p50 and p99 latency (from ``wrk --latency``);
* server CPU per request in microseconds: user+sys time of the server's whole process tree
  (read from /proc) over the measured run, divided by the requests wrk completed;
* RSS: the sum of the resident set sizes of the server's process tree after the load, in MiB
  (pages shared between a master and its workers are counted once per process).

The first server of a case's line-up is the reference: ``ratio A/B`` lines compare it with the
others (req/s, and CPU per request). Servers that are not installed in the venv are skipped
with a note. ``--markdown FILE`` also writes the table as Markdown (for docs/benchmarks.md).

Cases (``--cases``; default: all):

* ``hello-ka``     13-byte body, keep-alive
* ``hello-close``  13-byte body, ``Connection: close`` on every request
* ``stream-ka``    1 MiB streamed in 64 KiB chunks without Content-Length
* ``upload-ka``    1 MiB POST body read by the app
* ``django-ka``    a minimal Django view (project made with ``django-admin startproject``)
* ``hello-ka-t8``  hello-ka with thread pools: corral --threads 8 vs gunicorn gthread 8 threads
* ``tls-ka``       hello-ka over TLS (a self-signed certificate made with openssl), corral vs gunicorn
* ``tls-close``    the same with ``Connection: close``: one TLS handshake per request
* ``nginx-uds-ka``  hello through nginx (started by the bench) to the server on a Unix socket,
  upstream keep-alive: corral-nginx vs gunicorn-nginx; CPU counts nginx and the server together

Servers (``--servers`` replaces the line-up of every selected case; the first is the
reference): corral, corral-t8, gunicorn (sync), gunicorn-gthread (8 threads), waitress,
granian (wsgi interface), bjoern. They are started from ``<venv>/bin`` (``--venv``; default:
the venv of the Python running this script). Install them with ``bench/setup.sh``.

Defaults can also come from the environment: ``REPS=1 DUR=3s python bench/run.py``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"
SERVER_CPU = 1
LOAD_CPU = 0
UPLOAD_BYTES = 1024 * 1024
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One load shape: which app is served and how wrk drives it."""

    name: str
    app: str  # attribute of bench/apps.py; ignored for Django
    lineup: tuple[str, ...]  # default servers; the first is the reference for ratios
    close: bool = False  # send "Connection: close" with every request
    upload: bool = False  # POST a 1 MiB body
    django: bool = False  # serve the minimal Django project instead of bench/apps.py
    description: str = ""


PEERS = ("corral", "gunicorn", "waitress", "granian", "bjoern")
THREADED = ("corral-t8", "gunicorn-gthread")
SITES = ("corral-sites", "corral")
TLS = ("corral-tls", "gunicorn-tls")
NGINX = ("corral-nginx", "gunicorn-nginx")

CASES: dict[str, Case] = {
    case.name: case
    for case in (
        Case("hello-ka", "hello", PEERS, description="13-byte body, keep-alive"),
        Case("hello-close", "hello", PEERS, close=True, description="13-byte body, Connection: close"),
        Case("stream-ka", "stream", PEERS, description="1 MiB streamed, no Content-Length"),
        Case("upload-ka", "echo", PEERS, upload=True, description="1 MiB POST read by the app"),
        Case("django-ka", "application", PEERS, django=True, description="minimal Django view"),
        Case("hello-ka-t8", "hello", THREADED, description="hello-ka, 8-thread pools"),
        Case("sites-ka", "hello", SITES, description="hello as one site of a two-site config vs alone, keep-alive"),
        Case("sites-close", "hello", SITES, close=True, description="the same with Connection: close"),
        Case("tls-ka", "hello", TLS, description="hello over TLS, keep-alive"),
        Case("tls-close", "hello", TLS, close=True, description="hello over TLS, a handshake per request"),
        Case("nginx-uds-ka", "hello", NGINX, description="hello through nginx, Unix socket upstream, keep-alive"),
    )
}


# --------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class Target:
    """Where the WSGI callable lives: the directory to import from, module and attribute."""

    directory: Path
    module: str
    attr: str
    env: tuple[tuple[str, str], ...] = ()

    @property
    def spec(self) -> str:
        return f"{self.module}:{self.attr}"


CommandBuilder = Callable[[Path, Target, int], list[str]]


@dataclass(frozen=True)
class Server:
    """A server under test: how to start it and what must be installed for it."""

    name: str
    executable: str  # file that must exist in <venv>/bin
    build: CommandBuilder
    imports: str | None = None  # module the venv's python must import (servers with no script)
    tls: bool = False  # serves HTTPS with tls_files()
    nginx: bool = False  # listens on upstream_socket(port); nginx listens on the port (start_nginx)

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


def _corral(threads: int) -> CommandBuilder:
    def build(bin_dir: Path, target: Target, port: int) -> list[str]:
        return [str(bin_dir / "corral"), "serve", target.spec, "--bind", f"{HOST}:{port}",
                "--workers", "1", "--threads", str(threads)]
    return build


def _corral_sites(bin_dir: Path, target: Target, port: int) -> list[str]:
    """The app as one site of two (the other claims another host): what routing costs.

    Both sites' workers accept on the listener, so about half the connections land
    on the other site's worker first and are handed over.
    """
    config = Path(tempfile.gettempdir()) / f"corral-bench-sites-{port}.toml"
    config.write_text(
        f'bind = ["{HOST}:{port}"]\n'
        f'[sites.bench]\napp = "{target.spec}"\nhosts = ["{HOST}", "localhost"]\nprocesses = 1\n'
        f'[sites.other]\napp = "{target.spec}"\nhosts = ["other.test"]\nprocesses = 1\n'
    )
    return [str(bin_dir / "corral"), "serve", "--config", str(config)]


def tls_files() -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1 (made once with openssl, then reused)."""
    directory = Path(tempfile.gettempdir()) / "corral-bench-tls"
    cert, key = directory / "cert.pem", directory / "key.pem"
    if not (cert.exists() and key.exists()):
        directory.mkdir(exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-days", "30", "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=IP:{HOST}",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def _with_tls(build: CommandBuilder) -> CommandBuilder:
    """``build``'s command plus --certfile/--keyfile (the flags Corral and gunicorn share)."""
    def with_tls(bin_dir: Path, target: Target, port: int) -> list[str]:
        cert, key = tls_files()
        argv = build(bin_dir, target, port)
        spec = argv.index(target.spec) if target.spec in argv else len(argv)
        return argv[:spec] + ["--certfile", str(cert), "--keyfile", str(key)] + argv[spec:]
    return with_tls


def upstream_socket(port: int) -> Path:
    """The Unix socket a server behind nginx listens on (named by nginx's port: one per round)."""
    return Path(tempfile.gettempdir()) / f"corral-bench-upstream-{port}.sock"


def _on_upstream_socket(build: CommandBuilder) -> CommandBuilder:
    """``build``'s command with its ``--bind`` moved to upstream_socket(port) (both servers say unix:PATH)."""
    def on_socket(bin_dir: Path, target: Target, port: int) -> list[str]:
        argv = build(bin_dir, target, port)
        argv[argv.index("--bind") + 1] = f"unix:{upstream_socket(port)}"
        return argv
    return on_socket


NGINX_CONF = """worker_processes 1;
daemon off;
{user}pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {work}/nginx-body;
    proxy_temp_path {work}/nginx-proxy;
    fastcgi_temp_path {work}/nginx-fcgi;
    uwsgi_temp_path {work}/nginx-uwsgi;
    scgi_temp_path {work}/nginx-scgi;
    upstream app {{
        server unix:{socket};
        keepalive 64;                         # idle connections kept to the server, per nginx worker
        keepalive_requests 1000000;
    }}
    server {{
        listen {host}:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;           # upstream keep-alive needs HTTP/1.1 ...
            proxy_set_header Connection "";   # ... and no "Connection: close" from nginx
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


def nginx_command(port: int, work: Path) -> list[str]:
    """nginx on HOST:port in front of upstream_socket(port), as docs/proxies.md configures it."""
    conf = work / f"nginx-{port}.conf"
    # Started as root, nginx's worker would run as nobody and could not reach the server's socket.
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(NGINX_CONF.format(user=user, work=work, socket=upstream_socket(port), host=HOST, port=port))
    return [shutil.which("nginx") or "nginx", "-e", str(work / "nginx-error.log"), "-p", str(work), "-c", str(conf)]


def _gunicorn(worker_class: str, threads: int = 1) -> CommandBuilder:
    def build(bin_dir: Path, target: Target, port: int) -> list[str]:
        argv = [str(bin_dir / "gunicorn"), "--workers", "1", "--worker-class", worker_class,
                "--bind", f"{HOST}:{port}"]
        if threads > 1:
            argv += ["--threads", str(threads)]
        return argv + [target.spec]
    return build


def _waitress(bin_dir: Path, target: Target, port: int) -> list[str]:
    return [str(bin_dir / "waitress-serve"), f"--listen={HOST}:{port}", target.spec]


def _granian(bin_dir: Path, target: Target, port: int) -> list[str]:
    return [str(bin_dir / "granian"), "--interface", "wsgi", "--host", HOST, "--port", str(port),
            "--workers", "1", target.spec]


def _bjoern(bin_dir: Path, target: Target, port: int) -> list[str]:
    code = (f"import bjoern\nfrom {target.module} import {target.attr} as app\n"
            f"bjoern.run(app, {HOST!r}, {port})\n")
    return [str(bin_dir / "python"), "-c", code]


SERVERS: dict[str, Server] = {
    server.name: server
    for server in (
        Server("corral", "corral", _corral(1)),
        Server("corral-t8", "corral", _corral(8)),
        Server("corral-sites", "corral", _corral_sites),
        Server("gunicorn", "gunicorn", _gunicorn("sync")),
        Server("gunicorn-gthread", "gunicorn", _gunicorn("gthread", 8)),
        Server("corral-tls", "corral", _with_tls(_corral(1)), tls=True),
        Server("gunicorn-tls", "gunicorn", _with_tls(_gunicorn("sync")), tls=True),
        Server("corral-nginx", "corral", _on_upstream_socket(_corral(1)), nginx=True),
        Server("gunicorn-nginx", "gunicorn", _on_upstream_socket(_gunicorn("sync")), nginx=True),
        Server("waitress", "waitress-serve", _waitress),
        Server("granian", "granian", _granian),
        Server("bjoern", "python", _bjoern, imports="bjoern"),
    )
}


def missing_reason(server: Server, bin_dir: Path) -> str | None:
    """Why ``server`` cannot run from ``bin_dir``, or None when it is installed."""
    exe = bin_dir / server.executable
    if not os.access(exe, os.X_OK):
        return f"not installed ({exe} missing)"
    if server.nginx and not shutil.which("nginx"):
        return "nginx is not on PATH (apt-get install -y nginx)"
    if server.imports:
        probe = subprocess.run([str(exe), "-c", f"import {server.imports}"],
                               capture_output=True, text=True)
        if probe.returncode != 0:
            return f"not installed (python cannot import {server.imports})"
    return None


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    bin_dir: Path
    reps: int
    duration_s: int
    warmup_s: int
    connections: int
    pin: bool
    verbose: bool


def parse_seconds(text: str) -> int:
    """``4``, ``4s`` -> 4 (wrk takes whole seconds here)."""
    value = int(text.strip().rstrip("s"))
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1 second")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run Corral beside its peers (one worker each) and print a comparison table.")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES),
                        metavar="CASE", help=f"cases to run (default: all): {', '.join(CASES)}")
    parser.add_argument("--servers", nargs="+", choices=list(SERVERS), metavar="SERVER",
                        help="servers for every selected case, the first being the reference "
                             f"(default: each case's line-up): {', '.join(SERVERS)}")
    parser.add_argument("--reps", type=int, default=int(os.environ.get("REPS", "3")),
                        help="measured rounds per server; the median is reported (default 3)")
    parser.add_argument("--duration", type=parse_seconds, default=parse_seconds(os.environ.get("DUR", "4")),
                        metavar="S", help="seconds of load per round (default 4)")
    parser.add_argument("--warmup", type=parse_seconds, default=1, metavar="S",
                        help="seconds of unmeasured load before each round (default 1)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections (default 50)")
    parser.add_argument("--venv", type=Path, default=Path(sys.prefix),
                        help="venv whose bin/ holds the servers (default: this Python's)")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the table as Markdown")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and wrk with taskset")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each round's figures")
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    return args


def can_pin() -> bool:
    """True when taskset exists and both benchmark CPUs are usable by this process."""
    return shutil.which("taskset") is not None and {SERVER_CPU, LOAD_CPU} <= os.sched_getaffinity(0)


def pinned(cpu: int, argv: list[str], settings: Settings) -> list[str]:
    return ["taskset", "-c", str(cpu), *argv] if settings.pin else argv


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- app targets


def make_django_site(work: Path, bin_dir: Path) -> Path:
    """Create the minimal Django project (DEBUG off, any host, one view at /) under ``work``."""
    site = work / "djsite"
    site.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(bin_dir / "django-admin"), "startproject", "djsite", str(site)],
                   check=True, capture_output=True)
    package = site / "djsite"
    with open(package / "settings.py", "a") as settings:
        settings.write("\nDEBUG = False\nALLOWED_HOSTS = ['*']\n")
    (package / "urls.py").write_text(
        "from django.http import HttpResponse\n"
        "from django.urls import path\n\n\n"
        "def hello(request):\n"
        "    return HttpResponse(b'Hello, World!', content_type='text/plain')\n\n\n"
        "urlpatterns = [path('', hello)]\n")
    return site


def target_for(case: Case, django_site: Path | None) -> Target:
    if case.django:
        assert django_site is not None
        return Target(django_site, "djsite.wsgi", "application",
                      env=(("DJANGO_SETTINGS_MODULE", "djsite.settings"),))
    return Target(BENCH_DIR, "apps", case.app)


def write_upload_script(work: Path) -> Path:
    script = work / "post.lua"
    script.write_text(f'wrk.method = "POST"\nwrk.body = string.rep("x", {UPLOAD_BYTES})\n'
                      'wrk.headers["Content-Type"] = "application/octet-stream"\n')
    return script


# --------------------------------------------------------------------------- /proc


def process_tree(root: int) -> list[int]:
    """``root`` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """user+sys seconds of ``pids`` (all their threads; exited processes are not counted)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def rss_mib(pids: list[int]) -> float:
    """Sum of VmRSS over ``pids`` in MiB."""
    total_kib = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        total_kib += int(match.group(1)) if match else 0
    return total_kib / 1024


# --------------------------------------------------------------------------- server process


class RoundError(Exception):
    """A round that produced no figures (server failed to start, errors answered, ...)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(log: Path, lines: int = 3) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path, tls: bool = False) -> None:
    """Return once the server answers GET / with a 2xx; raise RoundError otherwise."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RoundError(f"exited with status {proc.returncode}: {log_tail(log)}")
        conn: http.client.HTTPConnection
        if tls:
            conn = http.client.HTTPSConnection(HOST, port, timeout=1, context=ssl._create_unverified_context())
        else:
            conn = http.client.HTTPConnection(HOST, port, timeout=1)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
        except OSError:
            time.sleep(0.1)
            continue
        finally:
            conn.close()
        if 200 <= response.status < 300:
            return
        raise RoundError(f"GET / answered {response.status}")
    raise RoundError(f"not ready after {READY_TIMEOUT_S:.0f}s: {log_tail(log)}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server we started: its process group, then any descendant left over."""
    leftovers = process_tree(proc.pid) if proc.poll() is None else []
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    for pid in leftovers[1:]:  # descendants that left the group (setsid) and outlived the parent
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_unix_socket(proc: subprocess.Popen[bytes], path: Path, log: Path) -> None:
    """Return once something accepts on the Unix socket ``path``; raise RoundError otherwise."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RoundError(f"exited with status {proc.returncode}: {log_tail(log)}")
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(path))
                return
            except OSError:
                time.sleep(0.05)  # another process's socket: no event to wait on
    raise RoundError(f"not listening on unix:{path} after {READY_TIMEOUT_S:.0f}s: {log_tail(log)}")


def start(argv: list[str], target: Target, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, **dict(target.env))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(target.directory), os.environ.get("PYTHONPATH")) if p)
    with open(log, "wb") as out:
        return subprocess.Popen(argv, cwd=target.directory, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


@contextmanager
def running(server: Server, target: Target, settings: Settings, work: Path) -> Iterator[tuple[list[int], int]]:
    """Start ``server`` serving ``target`` (behind nginx for an nginx server, both pinned to the
    server CPU); yield (the processes to account for, port) once it answers; stop them after."""
    port = free_port()
    log = work / f"{server.name}.log"
    proc = start(pinned(SERVER_CPU, server.build(settings.bin_dir, target, port), settings), target, log)
    procs = [proc]
    try:
        if server.nginx:
            wait_unix_socket(proc, upstream_socket(port), log)
            nginx_log = work / f"{server.name}-nginx.log"
            procs.insert(0, start(pinned(SERVER_CPU, nginx_command(port, work), settings), target, nginx_log))
            wait_ready(procs[0], port, nginx_log)
        else:
            wait_ready(proc, port, log, server.tls)
        yield [p.pid for p in procs], port
    finally:
        for each in procs:
            stop(each)


# --------------------------------------------------------------------------- wrk


@dataclass(frozen=True)
class WrkResult:
    rps: float
    requests: int
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int


def wrk_command(case: Case, server: Server, port: int, seconds: int, settings: Settings,
                upload_script: Path) -> list[str]:
    argv = ["wrk", "-t1", f"-c{settings.connections}", f"-d{seconds}s", "--latency"]
    if case.close:
        argv += ["-H", "Connection: close"]
    if case.upload:
        argv += ["-s", str(upload_script)]
    return pinned(LOAD_CPU, argv + [f"{server.scheme}://{HOST}:{port}/"], settings)


def latency_ms(output: str, percentile: str) -> float:
    match = re.search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s)\b", output, re.MULTILINE)
    if not match:
        return float("nan")
    return float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if not rps or not total:
        raise RoundError(f"unreadable wrk output: {output.strip()[-200:]!r}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return WrkResult(
        rps=float(rps.group(1)),
        requests=int(total.group(1)),
        p50_ms=latency_ms(output, "50"),
        p99_ms=latency_ms(output, "99"),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


def run_wrk(argv: list[str], seconds: int) -> WrkResult:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RoundError(f"wrk failed: {done.stderr.strip()[-200:]}")
    return parse_wrk(done.stdout)


# --------------------------------------------------------------------------- rounds


@dataclass(frozen=True)
class Sample:
    """Figures of one measured round (or the medians of several)."""

    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float
    rss_mib: float
    socket_errors: int


def measure(server: Server, case: Case, target: Target, settings: Settings, work: Path,
            upload_script: Path) -> Sample:
    """One round: start the server, warm it up, load it, read CPU and RSS, stop it."""
    with running(server, target, settings, work) as (pids, port):
        run_wrk(wrk_command(case, server, port, settings.warmup_s, settings, upload_script), settings.warmup_s)
        cpu_before = cpu_seconds([pid for root in pids for pid in process_tree(root)])
        result = run_wrk(wrk_command(case, server, port, settings.duration_s, settings, upload_script),
                         settings.duration_s)
        tree = [pid for root in pids for pid in process_tree(root)]
        cpu = cpu_seconds(tree) - cpu_before
        rss = rss_mib(tree)
    if result.non_2xx:
        raise RoundError(f"{result.non_2xx} non-2xx responses")
    if result.requests == 0:
        raise RoundError("no request completed")
    return Sample(result.rps, result.p50_ms, result.p99_ms, 1e6 * cpu / result.requests, rss,
                  result.socket_errors)


def median_sample(samples: list[Sample]) -> Sample:
    def med(values: list[float]) -> float:
        return statistics.median(values)
    return Sample(
        rps=med([s.rps for s in samples]),
        p50_ms=med([s.p50_ms for s in samples]),
        p99_ms=med([s.p99_ms for s in samples]),
        cpu_us=med([s.cpu_us for s in samples]),
        rss_mib=med([s.rss_mib for s in samples]),
        socket_errors=sum(s.socket_errors for s in samples),
    )


@dataclass
class Row:
    case: str
    server: str
    result: Sample | None = None
    note: str = ""


@dataclass
class CaseReport:
    case: Case
    lineup: list[str]
    rows: list[Row] = field(default_factory=list)

    def result(self, server: str) -> Sample | None:
        return next((row.result for row in self.rows if row.server == server), None)

    def ratios(self) -> list[str]:
        reference = self.lineup[0]
        ref = self.result(reference)
        if ref is None:
            return [f"no ratios: {reference} has no result"] if len(self.lineup) > 1 else []
        lines = []
        for other in self.lineup[1:]:
            res = self.result(other)
            if res is not None and res.rps > 0 and res.cpu_us > 0:
                lines.append(f"ratio {reference}/{other}: req/s {ref.rps / res.rps:.2f}x, "
                             f"CPU/req {ref.cpu_us / res.cpu_us:.2f}x")
        return lines


def run_case(case: Case, lineup: list[str], skipped: dict[str, str], target: Target,
             settings: Settings, work: Path, upload_script: Path) -> CaseReport:
    """Interleaved rounds over the line-up; the median of each server's rounds."""
    runnable = [name for name in lineup if name not in skipped]
    samples: dict[str, list[Sample]] = {name: [] for name in runnable}
    failures: dict[str, list[str]] = {name: [] for name in runnable}
    for rep in range(1, settings.reps + 1):
        for name in runnable:
            note(f"  {case.name} round {rep}/{settings.reps}: {name}")
            try:
                sample = measure(SERVERS[name], case, target, settings, work, upload_script)
            except (RoundError, subprocess.TimeoutExpired) as exc:
                failures[name].append(str(exc))
                note(f"    failed: {exc}")
                continue
            samples[name].append(sample)
            if settings.verbose:
                note(f"    {sample.rps:.0f} req/s, p99 {sample.p99_ms:.2f} ms, "
                     f"{sample.cpu_us:.1f} us CPU/req, {sample.rss_mib:.1f} MiB")
    report = CaseReport(case, lineup)
    for name in lineup:
        if name in skipped:
            report.rows.append(Row(case.name, name, note=f"skipped: {skipped[name]}"))
        elif samples[name]:
            result = median_sample(samples[name])
            extra = [f"{len(failures[name])} failed round(s)"] if failures[name] else []
            if result.socket_errors:
                extra.append(f"{result.socket_errors} socket errors")
            report.rows.append(Row(case.name, name, result, ", ".join(extra)))
        else:
            report.rows.append(Row(case.name, name, note=f"failed: {failures[name][-1]}"))
    return report


# --------------------------------------------------------------------------- output

COLUMNS = ("case", "server", "req/s", "p50 ms", "p99 ms", "CPU us/req", "RSS MiB", "note")


def cells(row: Row) -> list[str]:
    r = row.result
    if r is None:
        return [row.case, row.server, "-", "-", "-", "-", "-", row.note]
    return [row.case, row.server, f"{r.rps:.0f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}",
            f"{r.cpu_us:.1f}", f"{r.rss_mib:.1f}", row.note]


def text_header() -> str:
    return (f"{COLUMNS[0]:<12} {COLUMNS[1]:<17} {COLUMNS[2]:>9} {COLUMNS[3]:>8} {COLUMNS[4]:>8} "
            f"{COLUMNS[5]:>10} {COLUMNS[6]:>8}  {COLUMNS[7]}")


def text_rows(report: CaseReport) -> list[str]:
    lines = []
    for row in report.rows:
        c = cells(row)
        lines.append(f"{c[0]:<12} {c[1]:<17} {c[2]:>9} {c[3]:>8} {c[4]:>8} {c[5]:>10} {c[6]:>8}  {c[7]}"
                     .rstrip())
    return lines + [f"  {line}" for line in report.ratios()]


def machine_summary(settings: Settings) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        cpu = match.group(1).strip() if match else cpu
    except OSError:
        pass
    pin = f"server on CPU {SERVER_CPU}, wrk on CPU {LOAD_CPU}" if settings.pin else "not pinned"
    return (f"{dt.date.today().isoformat()}, {cpu}, {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}; {corral_build(settings)}; one worker per server, "
            f"wrk -t1 -c{settings.connections}, {settings.warmup_s}s warm-up + {settings.duration_s}s, "
            f"median of {settings.reps}; {pin}")


def corral_build(settings: Settings) -> str:
    """E.g. "corral 0.1.0 (compiled)": an editable install is pure Python and much slower."""
    try:
        result = subprocess.run([str(settings.bin_dir / "python"), "-m", "corral", "--version"],
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "corral not found"
    return result.stdout.strip() or "corral not found"


def write_markdown(path: Path, reports: list[CaseReport], settings: Settings) -> None:
    lines = [f"Measured {machine_summary(settings)}.", "",
             "| " + " | ".join(COLUMNS) + " |",
             "|" + "|".join(["---", "---", "---:", "---:", "---:", "---:", "---:", "---"]) + "|"]
    for report in reports:
        lines += ["| " + " | ".join(cells(row)) + " |" for row in report.rows]
    ratios = [f"- {report.case.name}: {line}" for report in reports for line in report.ratios()]
    if ratios:
        lines += ["", *ratios]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- main


def lineups(cases: list[Case], servers: list[str] | None) -> dict[str, list[str]]:
    return {case.name: list(servers) if servers else list(case.lineup) for case in cases}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        note("wrk is not installed: apt-get install -y wrk (or run bench/setup.sh)")
        return 2
    pin = not args.no_pin and can_pin()
    if not args.no_pin and not pin:
        note(f"note: taskset or CPUs {LOAD_CPU},{SERVER_CPU} unavailable; running unpinned")
    settings = Settings(bin_dir=args.venv.resolve() / "bin", reps=args.reps, duration_s=args.duration,
                        warmup_s=args.warmup, connections=args.connections, pin=pin,
                        verbose=args.verbose)
    note(f"{corral_build(settings)}, from {settings.bin_dir}")
    cases = [CASES[name] for name in dict.fromkeys(args.cases)]
    plan = lineups(cases, args.servers)
    wanted = dict.fromkeys(name for lineup in plan.values() for name in lineup)
    skipped = {name: reason for name in wanted
               if (reason := missing_reason(SERVERS[name], settings.bin_dir))}
    for name, reason in skipped.items():
        note(f"skip: {name}: {reason}")
    reports: list[CaseReport] = []
    print(text_header(), flush=True)
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        work = Path(tmp)
        upload_script = write_upload_script(work)
        django_site: Path | None = None
        for case in cases:
            if case.django and django_site is None:
                try:
                    django_site = make_django_site(work, settings.bin_dir)
                except (OSError, subprocess.CalledProcessError) as exc:
                    note(f"skip: {case.name}: cannot create the Django project ({exc})")
                    continue
            target = target_for(case, django_site)
            report = run_case(case, plan[case.name], skipped, target, settings, work, upload_script)
            reports.append(report)
            print("\n".join(text_rows(report)), flush=True)
    if args.markdown:
        write_markdown(args.markdown, reports, settings)
        note(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
