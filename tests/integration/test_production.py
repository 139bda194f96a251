"""docs/production.md's example configs, run for real where this machine can.

Every file in tests/data/production/ is embedded verbatim in the doc (so they
cannot drift), and each is exercised:
- nginx.conf: a real nginx (TLS, paths and ports templated) in front of Corral,
  over a Unix socket and over TCP, with corral.toml's settings;
- corral.socket / corral.service: parsed; ExecStart is run under
  systemd-socket-activate (when installed) and under a launcher that passes the
  socket exactly as systemd does (fd 3, LISTEN_FDS, LISTEN_PID), across a restart;
- corral.service is also checked by systemd-analyze verify (when installed);
- deployment.yaml: loaded into the kubernetes client's models, probes checked against
  the container's flags, and Corral run with those flags through a shutdown delay and a drain.
"""

from __future__ import annotations

import http.client
import inspect
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import helpers
from helpers import NGINX, Server, docs_paths_under, read_response
from http_client import get

DATA = Path(__file__).parent.parent / "data" / "production"
DOC = Path(__file__).parent.parent.parent / "docs" / "production.md"
HOST = "www.example.com"

# The project the examples serve (/srv/mysite), standing in for a Django site.
MYSITE_WSGI = '''import json, os, sys, time
from mysite.version import VERSION


def application(environ, start_response):
    path = environ["PATH_INFO"]
    headers = [("Content-Type", "text/plain")]
    if path == "/environ":
        body = json.dumps({k: v for k, v in environ.items() if isinstance(v, str)}).encode()
    elif path == "/echo":
        body = environ["wsgi.input"].read()
    elif path == "/version":
        body = VERSION.encode()
    elif path == "/slow":
        print("mysite: slow request started", file=sys.stderr, flush=True)
        time.sleep(float(environ.get("QUERY_STRING") or "1"))
        body = b"done"
    elif path == "/stream":
        start_response("200 OK", headers + [("X-Accel-Buffering", "no")])
        return _stream(environ.get("QUERY_STRING", ""))
    else:
        body = ("hello from " + os.environ.get("SITE_NAME", "nowhere")).encode()
    start_response("200 OK", headers + [("Content-Length", str(len(body)))])
    return [body]


def _stream(go_file):
    yield b"first chunk\\n"
    deadline = time.monotonic() + 10
    while not os.path.exists(go_file) and time.monotonic() < deadline:
        time.sleep(0.01)  # the test creates go_file once it has seen the first chunk
    yield b"second chunk\\n"
'''


# -- the doc and the files ---------------------------------------------------------------------


def test_doc_embeds_every_example_verbatim() -> None:
    doc = DOC.read_text()
    files = sorted(p for p in DATA.iterdir() if p.is_file())
    assert {p.name for p in files} == {"corral.toml", "corral.service", "corral.socket", "nginx.conf",
                                       "deployment.yaml"}
    blocks = re.findall(r"^```(ini|nginx|yaml|toml)\n(.*?)^```$", doc, re.S | re.M)
    texts = {p.read_text() for p in files}
    for path in files:
        assert path.read_text() in doc, f"docs/production.md must embed {path.name} verbatim"
    for _lang, body in blocks:  # and no config in the doc escapes the tests
        assert body in texts, f"a config block in docs/production.md is not a tested file:\n{body}"


def test_readme_links_the_doc() -> None:
    readme = (DOC.parent.parent / "README.md").read_text()
    assert "(docs/production.md)" in readme


# -- a site laid out as the examples expect, under a short temporary root ------------------------


@dataclass
class Site:
    root: Path

    def template(self, text: str) -> str:
        return docs_paths_under(self.root, text)

    @property
    def sock(self) -> Path:
        return self.root / "run/corral/corral.sock"

    @property
    def config(self) -> Path:
        return self.root / "etc/corral/corral.toml"

    version: str = "v1"

    def set_version(self, version: str) -> None:
        self.version = version
        package = self.root / "srv/mysite/mysite"
        # A .pyc written in the same second for a file of the same size would pass as fresh.
        shutil.rmtree(package / "__pycache__", ignore_errors=True)
        (package / "version.py").write_text(f"VERSION = {version!r}\n")


def make_site() -> Site:
    # Unix socket paths are limited to 107 bytes: pytest's tmp_path is too deep.
    site = Site(Path(tempfile.mkdtemp(prefix="corral-prod-", dir="/tmp")))
    package = site.root / "srv/mysite/mysite"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "wsgi.py").write_text(MYSITE_WSGI)
    site.set_version("v1")
    (site.root / "srv/mysite/staticfiles").mkdir()
    (site.root / "srv/mysite/staticfiles/site.css").write_text("body { color: green }\n")
    (site.root / "etc/corral").mkdir(parents=True)
    (site.root / "etc/corral/mysite.env").write_text("SITE_NAME=mysite\n")
    site.config.write_text(site.template((DATA / "corral.toml").read_text()))
    (site.root / "run/corral/control").mkdir(parents=True)  # systemd's RuntimeDirectory=corral/control
    return site


@pytest.fixture
def site() -> Iterator[Site]:
    made = make_site()
    yield made
    shutil.rmtree(made.root, ignore_errors=True)


class Launched(helpers.Launched):
    """helpers.Launched, ready by default when Corral says so."""

    def __init__(self, cmd: Sequence[str], ready: str | None = "Corral ready", env: dict[str, str] | None = None,
                 pass_fds: Sequence[int] = (), timeout: float = 30.0) -> None:
        super().__init__(cmd, ready, env, pass_fds, timeout)


CORRAL = [sys.executable, "-m", "corral"]
TCP_PORT = r"Listening at http://127\.0\.0\.1:(\d+)"
METRICS_PORT = r"Metrics and health checks at http://127\.0\.0\.1:(\d+)/"


def corral_argv(argv: Sequence[str], site: Site | None = None) -> list[str]:
    """An example's `corral ...` command line, run by this interpreter (paths templated)."""
    assert Path(argv[0]).name == "corral", argv
    return CORRAL + [site.template(a) if site else a for a in argv[1:]]


def unix_get(path: Path, target: str, timeout: float = 20.0) -> tuple[int, bytes]:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        status, _headers, body = read_response(sock, timeout)
        return status, body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- nginx in front of Corral ------------------------------------------------------------------


def seconds(text: str) -> float:
    return float(text.removesuffix("s"))


def test_nginx_limits_and_timeouts_agree_with_corral_toml() -> None:
    from corral.config import values

    conf = (DATA / "nginx.conf").read_text()
    directive = {m[0]: m[1] for m in re.findall(r"^\s*(\w+) ([^;]*);", conf, re.M)}
    settings = toml_settings()
    # nginx closes idle upstream connections before Corral would.
    assert seconds(directive["keepalive_timeout"]) < float(settings["keepalive-timeout"])  # type: ignore[arg-type]
    # A request Corral gives up on (--timeout: 504 and a stack trace) is not cut by nginx first.
    assert seconds(directive["proxy_read_timeout"]) > float(settings["timeout"])  # type: ignore[arg-type]
    # nginx refuses (413) what Corral would refuse, before reading it all.
    nginx_max = values.parse_size(directive["client_max_body_size"].upper())
    assert nginx_max <= values.parse_size(settings["max-body-size"])
    assert directive["proxy_http_version"] == "1.1" and directive["keepalive"] == "32"


NGINX_MAIN = """{user}
worker_processes 1;
pid {root}/nginx/nginx.pid;
error_log stderr notice;
events {{ worker_connections 256; }}
http {{
    access_log {root}/nginx/access.log;
    client_body_temp_path {root}/nginx/body;
    proxy_temp_path {root}/nginx/proxy;
    fastcgi_temp_path {root}/nginx/fastcgi;
    uwsgi_temp_path {root}/nginx/uwsgi;
    scgi_temp_path {root}/nginx/scgi;
    include {root}/nginx/mysite.conf;
}}
"""


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the example nginx.conf no longer has exactly one {old!r}"
    return text.replace(old, new)


@dataclass
class Stack:
    site: Site
    corral: Launched
    nginx: Launched
    https_port: int
    http_port: int
    metrics_port: int
    upstream: str
    tls: ssl.SSLContext

    def https(self, timeout: float = 20.0) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection("127.0.0.1", self.https_port, timeout=timeout, context=self.tls)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[http.client.HTTPResponse, bytes]:
        conn = self.https()
        try:
            conn.request(method, path, body=body, headers={"Host": HOST, **(headers or {})})
            response = conn.getresponse()
            return response, response.read()
        finally:
            conn.close()

    def metric(self, name: str, label: str = "") -> float:
        """The sum of a metric's series (those whose labels contain `label`)."""
        status, body = get(self.metrics_port, "/metrics")
        assert status == 200
        found = re.findall(rf"^{name}(?:{{([^}}]*)}})? ([0-9.e+]+)$", body.decode(), re.M)
        return sum(float(value) for labels, value in found if label in labels)

    def wait_for_metric(self, name: str, label: str, done: Callable[[float], bool], timeout: float = 15.0) -> None:
        """Counters and worker states are scraped, not announced: poll, with a deadline."""
        deadline = time.monotonic() + timeout
        while not done(self.metric(name, label)):
            assert time.monotonic() < deadline, f"{name}{{{label}}} = {self.metric(name, label)}"
            time.sleep(0.1)


def start_nginx(site: Site, upstream: str) -> tuple[Launched, int, int, ssl.SSLContext]:
    ssl_dir = site.root / "etc/ssl/mysite"
    ssl_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", f"/CN={HOST}",
                    "-addext", f"subjectAltName=DNS:{HOST},IP:127.0.0.1",
                    "-keyout", str(ssl_dir / "privkey.pem"), "-out", str(ssl_dir / "fullchain.pem")],
                   check=True, capture_output=True)
    tls = ssl.create_default_context(cafile=str(ssl_dir / "fullchain.pem"))
    (site.root / "nginx").mkdir(exist_ok=True)
    conf = site.root / "nginx/nginx.conf"
    # Running as root, nginx's workers would switch to "nobody", who cannot reach our
    # private temporary directory; a real install has the socket's group instead.
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(NGINX_MAIN.format(root=site.root, user=user))
    for _attempt in range(3):  # a free port may be taken by another test in between
        https_port, http_port = free_port(), free_port()
        text = site.template((DATA / "nginx.conf").read_text())
        text = replace_once(text, f"server unix:{site.sock};", f"server {upstream};")
        text = replace_once(text, "listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
        text = replace_once(text, "listen 80;", f"listen 127.0.0.1:{http_port};")
        (site.root / "nginx/mysite.conf").write_text(text)
        nginx = Launched([NGINX, "-p", f"{site.root}/nginx/", "-c", str(conf), "-e", "stderr", "-g", "daemon off;"],
                         ready=r"start worker process|emerg", timeout=10)
        if "emerg" not in nginx.log():
            return nginx, https_port, http_port, tls
        nginx.stop()
        assert "Address already in use" in nginx.log(), nginx.log()
    raise RuntimeError("no free ports for nginx")


@pytest.fixture(scope="module", params=["unix", "tcp"])
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    if not os.access(NGINX, os.X_OK):
        pytest.skip(f"nginx is not installed at {NGINX} (.ci/run installs it)")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificate for nginx (.ci/run installs it)")
    site = make_site()
    # corral.toml as written; over TCP, the bind a non-socket setup would use instead.
    extra = ["--bind", "127.0.0.1:0"] if request.param == "tcp" else []
    corral = Launched(CORRAL + ["serve", "--config", str(site.config), *extra])
    try:
        if request.param == "tcp":
            upstream = f"127.0.0.1:{corral.number(TCP_PORT)}"
        else:
            upstream = f"unix:{site.sock}"
        nginx, https_port, http_port, tls = start_nginx(site, upstream)
    except BaseException:
        corral.stop()
        raise
    yield Stack(site, corral, nginx, https_port, http_port, corral.number(METRICS_PORT), upstream, tls)
    nginx.stop()
    corral.stop()
    shutil.rmtree(site.root, ignore_errors=True)


def test_nginx_passes_requests_and_bodies(stack: Stack) -> None:
    response, body = stack.request("GET", "/")
    assert (response.status, body) == (200, b"hello from mysite")  # corral.toml's env-file applied
    assert response.getheader("Server", "").startswith("nginx")
    payload = os.urandom(1024 * 1024)
    response, body = stack.request("POST", "/echo", body=payload, headers={"Content-Type": "application/octet-stream"})
    assert response.status == 200 and body == payload
    response, body = stack.request("GET", "/static/site.css")  # nginx's own, from /srv/mysite/staticfiles/
    assert (response.status, body) == (200, b"body { color: green }\n")
    assert response.getheader("Cache-Control") == "max-age=604800"
    conn = http.client.HTTPConnection("127.0.0.1", stack.http_port, timeout=10)
    try:
        conn.request("GET", "/a?b=1", headers={"Host": HOST})
        redirect = conn.getresponse()
        redirect.read()
        assert (redirect.status, redirect.getheader("Location")) == (301, f"https://{HOST}/a?b=1")
    finally:
        conn.close()


def test_nginx_streams_a_chunked_response(stack: Stack) -> None:
    go = stack.site.root / f"go-{time.monotonic_ns()}"
    conn = stack.https(timeout=10)
    try:
        conn.request("GET", f"/stream?{go}", headers={"Host": HOST})
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("Transfer-Encoding") == "chunked"
        # The app holds its second chunk until it sees `go`: the first must get through alone.
        first = response.read1(65536)
        assert first == b"first chunk\n"
        go.touch()
        assert response.read() == b"second chunk\n"
    finally:
        conn.close()


def test_forwarded_headers_reach_the_app(stack: Stack) -> None:
    response, body = stack.request("GET", "/environ?q=1", headers={"X-Forwarded-For": "203.0.113.9"})
    assert response.status == 200
    environ = json.loads(body)
    assert environ["HTTP_HOST"] == HOST
    assert environ["HTTP_X_FORWARDED_HOST"] == HOST
    assert environ["HTTP_X_FORWARDED_PROTO"] == "https"
    # nginx appends the address it saw: only the last entry can be trusted.
    assert environ["HTTP_X_FORWARDED_FOR"] == "203.0.113.9, 127.0.0.1"
    # The chain is walked from the right: nginx (trusted) is passed, and so is the test client,
    # itself on 127.0.0.1 (a trusted address): its own entry names the client.
    assert environ["REMOTE_ADDR"] == "203.0.113.9" and environ["REMOTE_PORT"] == "0"
    assert environ["wsgi.url_scheme"] == "https" and environ["HTTPS"] == "on"
    assert re.fullmatch(r"unix" if stack.upstream.startswith("unix:") else r"127\.0\.0\.1:\d+", environ["corral.peer"])
    assert "HTTP_CONNECTION" not in environ  # the empty Connection header is not sent
    assert environ["QUERY_STRING"] == "q=1" and environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    request_id = environ["HTTP_X_REQUEST_ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    # The json access log (corral.toml) carries nginx's request id, so the two logs join.
    line = stack.corral.wait_for(re.escape(f'"request_id":"{request_id}"'), 5, stream="stdout")
    assert line is not None and json.loads(line)["path"] == "/environ", stack.corral.stdout_lines[-5:]


def test_nginx_keeps_upstream_connections_alive(stack: Stack) -> None:
    requests_before = stack.metric("corral_requests_total")
    connections_before = stack.metric("corral_connections_total")
    conn = stack.https()
    ports = set()
    try:
        for _ in range(30):
            conn.request("GET", "/environ", headers={"Host": HOST})
            response = conn.getresponse()
            assert response.status == 200
            ports.add(json.loads(response.read())["REMOTE_PORT"])
    finally:
        conn.close()
    if stack.upstream.startswith("127.0.0.1:"):
        assert len(ports) == 1, ports  # one upstream TCP connection, reused
    # The counters arrive with each worker's 1 s heartbeat.
    stack.wait_for_metric("corral_requests_total", "", lambda n: n >= requests_before + 30)
    assert stack.metric("corral_connections_total") - connections_before <= 1


def reload_under_load(stack: Stack, methods: Sequence[str]) -> tuple[Counter[int], list[str], list[bytes]]:
    """Two deploys (new code, then SIGHUP, as `systemctl reload` sends) while clients loop
    through nginx: GET /version, POST /echo. Returns the statuses, errors and versions seen."""
    seen: list[tuple[int, bytes]] = []
    errors: list[str] = []
    done = threading.Event()
    cond = threading.Condition()

    def client(method: str) -> None:
        conn = stack.https()
        try:
            while not done.is_set():
                if method == "GET":
                    conn.request("GET", "/version", headers={"Host": HOST})
                else:
                    conn.request("POST", "/echo", body=b"x", headers={"Host": HOST})
                response = conn.getresponse()
                body = response.read()
                with cond:
                    seen.append((response.status, body))
                    if response.status != 200:
                        errors.append(f"{method}: {response.status}")
                    cond.notify_all()
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"{method}: {exc!r}")
        finally:
            conn.close()

    def wait_for_body(body: bytes, timeout: float = 20.0) -> None:
        start = len(seen)
        with cond:
            assert cond.wait_for(lambda: any(b == body for _, b in seen[start:]), timeout), (body, errors)

    threads = [threading.Thread(target=client, args=(m,)) for m in methods]
    for t in threads:
        t.start()
    try:
        wait_for_body(stack.site.version.encode())
        for _ in range(2):
            stack.site.set_version(f"v{int(stack.site.version[1:]) + 1}")  # a deploy: new code on disk
            stack.corral.signal(signal.SIGHUP)
            wait_for_body(stack.site.version.encode())
            # Keep the load on until the old generation has drained and exited: at the latest
            # when nginx closes its idle connections to it (keepalive_timeout 20s).
            stack.wait_for_metric("corral_workers", 'state="draining"', lambda n: n == 0, timeout=30)
            stack.wait_for_metric("corral_workers", 'state="ready"', lambda n: n == 4)
        with cond:
            count = len(seen)
            cond.wait_for(lambda: len(seen) > count + 50, 10)
    finally:
        done.set()
        for t in threads:
            t.join(30)
    if errors:
        errors += [line for line in stack.nginx.log_lines if "[error]" in line]
    versions = [body for status, body in seen if status == 200 and body.startswith(b"v")]
    return Counter(status for status, _ in seen), errors, versions


def test_reload_under_load_through_nginx_fails_nothing(stack: Stack) -> None:
    """`systemctl reload` while clients go through nginx: no 502, and the new code is served."""
    first = stack.site.version
    statuses, errors, versions = reload_under_load(stack, ["GET"] * 4)
    assert not errors
    assert statuses.keys() == {200} and statuses[200] > 100, statuses
    assert versions[0] == first.encode() and versions[-1] == stack.site.version.encode() != first.encode()


def test_reload_under_load_through_nginx_posts_are_not_reset(stack: Stack) -> None:
    """nginx retries a GET on a reused connection that fails, never a POST: a retired worker
    must not close an idle connection nginx may be reusing (it waits for its idle deadline)."""
    statuses, errors, _versions = reload_under_load(stack, ["GET"] + ["POST"] * 3)
    assert not errors
    assert statuses.keys() == {200}, statuses


def test_reload_answers_requests_on_idle_keepalive_connections() -> None:
    """The same without nginx: clients that reuse an idle connection to an old worker around
    the moment it starts draining get an answer (fixed in fb62c0f: a patient drain)."""
    results: list[str] = []
    with Server(["basic:echo", "--workers", "2"]) as server:
        barrier = threading.Barrier(21)

        def client(delay: float) -> None:
            with server.connect() as sock:
                request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"
                sock.sendall(request)
                read_response(sock)
                barrier.wait(10)
                time.sleep(delay)  # idle, as a pooled connection is, while the reload happens
                try:
                    sock.sendall(request)
                    results.append(str(read_response(sock)[0]))
                except OSError as exc:
                    results.append(repr(exc))

        threads = [threading.Thread(target=client, args=(0.3 + 0.03 * i,)) for i in range(20)]
        for t in threads:
            t.start()
        barrier.wait(10)
        server.signal(signal.SIGHUP)
        for t in threads:
            t.join(20)
    assert results == ["200"] * 20, Counter(results)


# -- systemd -------------------------------------------------------------------------------------


def read_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as systemd reads it: sections of keys, each possibly repeated."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    pending = ""
    for raw in path.read_text().splitlines():
        line = (pending + " " + raw.strip()).strip() if pending else raw.strip()
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1].rstrip()
        elif line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        else:
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not a key=value line: {line!r}"
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    (value,) = unit[section][key]
    return value


def toml_settings() -> dict[str, object]:
    import tomllib

    return tomllib.loads((DATA / "corral.toml").read_text())


def test_units_agree_with_corral_toml_and_check_passes(site: Site) -> None:
    from corral.config import Config

    socket_unit, service = read_unit(DATA / "corral.socket"), read_unit(DATA / "corral.service")
    settings = toml_settings()
    listen = one(socket_unit, "Socket", "ListenStream")
    assert settings["bind"] == [f"unix:{listen}"]  # the same socket, with or without systemd
    assert int(one(socket_unit, "Socket", "Backlog")) == settings.get("backlog", Config().backlog)
    assert "corral.socket" in one(service, "Unit", "Requires").split()
    assert "corral.socket" in one(service, "Unit", "After").split()
    # The control socket lives in the service's RuntimeDirectory (so `corral status` reaches it),
    # which systemd deletes at stop: it must not hold the socket unit's file.
    runtime = Path("/run", one(service, "Service", "RuntimeDirectory"))
    assert Path(str(settings["control-socket"])).parent == runtime
    assert runtime not in Path(listen).parents and Path(listen).parent in runtime.parents
    assert one(service, "Service", "KillMode") == "mixed"
    assert one(service, "Service", "KillSignal") == "SIGTERM"
    assert float(one(service, "Service", "TimeoutStopSec")) > float(settings["graceful-timeout"]) + 1  # type: ignore[arg-type]
    assert one(service, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    argv = shlex.split(one(service, "Service", "ExecStart"))
    assert argv[1:] == ["serve", "--config", "/etc/corral/corral.toml"]
    # `corral check` with ExecStart's flags: the file parses, the app and env file load.
    check = subprocess.run([*CORRAL, "check", *[site.template(a) for a in argv[2:]]], capture_output=True, text=True,
                           timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.rstrip().endswith("OK") and "mysite.wsgi" in check.stdout, check.stdout


def exec_start(site: Site) -> list[str]:
    return corral_argv(shlex.split(one(read_unit(DATA / "corral.service"), "Service", "ExecStart")), site)


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="systemd-socket-activate is not installed (package systemd; .ci/run installs it)")
def test_systemd_socket_activation_for_real(site: Site) -> None:
    """systemd-socket-activate listens as corral.socket does and starts ExecStart on the
    first connection with the socket as fd 3; that connection is answered."""
    env = ["-E", f"PATH={os.environ['PATH']}", "-E", "PYTHONDONTWRITEBYTECODE=1"]
    launcher = Launched(["systemd-socket-activate", "-l", str(site.sock), *env, *exec_start(site)],
                        ready=r"Listening on .* as 3\.", timeout=10)
    try:
        assert unix_get(site.sock, "/") == (200, b"hello from mysite")  # queued until Corral was ready
        assert launcher.wait_for(r"Listening at unix:.*corral\.sock \(socket from systemd\)", 5), launcher.log()
        # The other ExecReload: `corral reload` through the control socket corral.toml names.
        # New workers load the new code and read the env file again.
        site.set_version("v2")
        (site.root / "etc/corral/mysite.env").write_text("SITE_NAME=mysite-v2\n")
        reload = subprocess.run([*CORRAL, "reload", "--config", str(site.config)], capture_output=True, text=True,
                                timeout=20)
        assert reload.returncode == 0, reload.stderr
        for target, expected in (("/version", b"v2"), ("/", b"hello from mysite-v2")):
            deadline = time.monotonic() + 20
            while unix_get(site.sock, target) != (200, expected):  # old workers answer until they retire
                assert time.monotonic() < deadline, launcher.log()
                time.sleep(0.05)
        status = subprocess.run([*CORRAL, "status", "--json", "--config", str(site.config)], capture_output=True,
                                text=True, timeout=20)
        assert status.returncode == 0 and json.loads(status.stdout), status.stderr
        launcher.signal(signal.SIGTERM)  # KillSignal, to the master alone (KillMode=mixed)
        assert launcher.wait(40) == 0
    finally:
        launcher.stop()
    assert site.sock.is_socket()  # systemd's file: Corral leaves it alone


LAUNCHER = """import os, sys
os.dup2(int(sys.argv[1]), 3)  # as systemd does: the first passed socket is fd 3
os.close(int(sys.argv[1]))
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""


def activate(sock: socket.socket, argv: list[str]) -> Launched:
    """Start argv with `sock` passed exactly as systemd passes a socket unit's socket."""
    return Launched([sys.executable, "-c", LAUNCHER, str(sock.fileno()), *argv[1:]], pass_fds=[sock.fileno()])


def test_restart_under_socket_activation_refuses_nothing(site: Site) -> None:
    """`systemctl restart`: the socket stays open in systemd, so connections made while the
    old Corral drains or after it is gone are not refused, and the next Corral answers them."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(2048)  # systemd's, before any Corral runs
    port = listener.getsockname()[1]
    argv = exec_start(site)
    request = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
    waiting: list[socket.socket] = []
    try:
        first = activate(listener, argv)
        try:
            assert first.wait_for(r"Listening at http://127\.0\.0\.1:\d+ \(socket from systemd\)", 5), first.log()
            assert get(port, "/") == (200, b"hello from mysite")
            slow: list[tuple[int, bytes]] = []
            in_flight = threading.Thread(target=lambda: slow.append(get(port, "/slow?1")))
            in_flight.start()
            assert first.wait_for("mysite: slow request started", 10), first.log()
            first.signal(signal.SIGTERM)  # the stop half of the restart
            assert first.wait_for("Received SIGTERM", 5)
            waiting.append(socket.create_connection(("127.0.0.1", port), timeout=20))  # while draining
            waiting[-1].sendall(request)
            in_flight.join(20)
            assert slow == [(200, b"done")]
            assert first.wait(20) == 0
        finally:
            first.stop()
        site.set_version("v2")  # tells the second Corral's answers apart
        waiting.append(socket.create_connection(("127.0.0.1", port), timeout=20))  # while none runs
        waiting[-1].sendall(request)
        second = activate(listener, argv)  # the start half
        try:
            # The first Corral may have taken the connection made while it drained, and answered it.
            assert read_response(waiting[0], 20)[::2] in ((200, b"v1"), (200, b"v2"))
            assert read_response(waiting[1], 20)[::2] == (200, b"v2")
        finally:
            second.stop()
    finally:
        for sock in waiting:
            sock.close()
        listener.close()


# -- Kubernetes ----------------------------------------------------------------------------------


def deployment() -> tuple[dict, dict, dict]:  # type: ignore[type-arg]
    docs = {doc["kind"]: doc for doc in yaml.safe_load_all((DATA / "deployment.yaml").read_text())}
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return pod, container, docs["Service"]


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_kubernetes_probes_and_grace_period_match_corral_flags() -> None:
    pod, container, service = deployment()
    argv = container["command"]
    assert argv[:2] == ["corral", "serve"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert flag(argv, "--metrics-bind") == f"0.0.0.0:{ports['metrics']}"
    assert flag(argv, "--bind") == f"0.0.0.0:{ports['http']}"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]  # metrics stay inside the cluster
    # No preStop hook (a distroless image has no sleep): Corral's own delay does its job.
    assert "lifecycle" not in container
    delay = float(flag(argv, "--shutdown-delay"))
    assert 3 <= delay <= 10, "long enough for the endpoint removal to reach every proxy"
    # The kubelet's clock runs from SIGTERM: the delay, then the drain (--graceful-timeout,
    # plus Corral's 1 s margin) must all fit before it sends SIGKILL.
    assert pod["terminationGracePeriodSeconds"] > delay + float(flag(argv, "--graceful-timeout")) + 1
    assert container["securityContext"]["runAsNonRoot"] is True
    resources = container["resources"]
    assert int(flag(argv, "--workers")) == int(resources["requests"]["cpu"])
    limit_mib = int(resources["limits"]["memory"].removesuffix("Gi")) * 1024
    assert int(flag(argv, "--workers")) * int(flag(argv, "--max-worker-memory")) < limit_mib - 100


class _Response:
    """What ApiClient.deserialize reads: an HTTP response's body."""

    def __init__(self, body: object) -> None:
        self.data = json.dumps(body)


def test_kubernetes_manifests_are_valid_api_objects() -> None:
    """Each document loads into the kubernetes client's model for its kind and serializes back
    unchanged: a misspelt or misplaced field would be dropped (and so fail), a missing required
    one raises."""
    from kubernetes.client import ApiClient

    client = ApiClient()

    def load(document: dict, kind: str) -> object:  # type: ignore[type-arg]
        # The client's own path from an API response to a model; newer clients take the
        # body's text and its content type, older ones the response object.
        if "content_type" in inspect.signature(client.deserialize).parameters:
            return client.deserialize(json.dumps(document), kind, "application/json")
        return client.deserialize(_Response(document), kind)

    documents = list(yaml.safe_load_all((DATA / "deployment.yaml").read_text()))
    assert [(d["apiVersion"], d["kind"]) for d in documents] == [("apps/v1", "Deployment"), ("v1", "Service")]
    for document in documents:
        model = load(document, f"V1{document['kind']}")
        assert client.sanitize_for_serialization(model) == document
    typo = json.loads(json.dumps(documents[0]))
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = typo["spec"]["template"]["spec"][
        "containers"][0].pop("readinessProbe")
    assert client.sanitize_for_serialization(load(typo, "V1Deployment")) != typo


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (package systemd; .ci/run installs it)")
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    corral_bin = shutil.which("corral", path=str(Path(sys.executable).parent)) or shutil.which("corral")
    assert corral_bin, "the test environment has a corral script"
    service = (DATA / "corral.service").read_text().replace("/srv/mysite/.venv/bin/corral", corral_bin)
    assert one(read_unit(DATA / "corral.service"), "Service", "Type") == "notify"
    (tmp_path / "corral.service").write_text(service)
    shutil.copy(DATA / "corral.socket", tmp_path / "corral.socket")

    def verify(*units: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["systemd-analyze", "verify", *map(str, units)], capture_output=True, text=True,
                              timeout=60)

    result = verify(tmp_path / "corral.service", tmp_path / "corral.socket")
    # verify exits 0 even when it ignores a bad line, so its warnings count too.
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    (tmp_path / "bad.service").write_text(service.replace("Type=notify", "Type=notfy"))
    assert "Failed to parse service type" in verify(tmp_path / "bad.service").stderr


def test_kubernetes_container_drains_with_probes(site: Site) -> None:
    """The container's command, run here: probes answer; on SIGTERM with a request in flight
    /readyz says 503 at once while requests are still served for --shutdown-delay, then
    new connections are refused, /healthz stays 200 until the request is done and Corral exits 0."""
    _pod, container, _service = deployment()
    argv = [a.replace("0.0.0.0:8000", "127.0.0.1:0").replace("0.0.0.0:9100", "127.0.0.1:0")
            for a in container["command"]]
    check = subprocess.run([*CORRAL, "check", *argv[2:]], cwd=site.root / "srv/mysite", capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    corral = Launched(corral_argv(argv), env={"PYTHONPATH": str(site.root / "srv/mysite")})
    try:
        port, metrics = corral.number(TCP_PORT), corral.number(METRICS_PORT)
        assert get(metrics, "/healthz")[0] == 200
        assert get(metrics, "/readyz")[0] == 200
        slow: list[tuple[int, bytes]] = []
        in_flight = threading.Thread(target=lambda: slow.append(get(port, "/slow?1.5")))
        in_flight.start()
        assert corral.wait_for("mysite: slow request started", 10), corral.log()
        corral.signal(signal.SIGTERM)  # what the kubelet sends, with no preStop hook before it
        assert corral.wait_for("Received SIGTERM", 5)
        status, body = get(metrics, "/readyz")
        assert status == 503 and b"stopping" in body, body
        assert get(port, "/version") == (200, b"v1")  # the delay: proxies that still send are answered
        assert get(metrics, "/healthz")[0] == 200  # alive: the liveness probe must not kill a drain
        assert corral.wait_for("Shutdown delay over", 10), corral.log()
        with pytest.raises(ConnectionRefusedError):
            get(port, "/")  # not socket-activated: new connections are refused at once
        in_flight.join(20)
        assert slow == [(200, b"done")]
        assert corral.wait(25) == 0
    finally:
        corral.stop()
