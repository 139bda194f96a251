"""The Django deployment the docs describe, from their own snippets, never serves DEBUG = True.

The config blocks are taken from docs/django.md and docs/production.md (fenced blocks
recognised by their first comment line), their paths moved under a temporary root,
and served against a real `startproject` whose production settings module is the one
docs/django.md shows. In each, a request with a Host outside ALLOWED_HOSTS must get
Django's plain 400, not the debug page that dumps the settings. Every nginx block of
the docs must pass `nginx -t` on the nginx this machine has (Debian 12's is 1.22).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli_config import clean_env

from django_project import create_django_project
from helpers import NGINX, NGINX_STREAM_MODULE, Server, docs_paths_under

pytest.importorskip("django")
pytest.importorskip("whitenoise")

DOCS = Path(__file__).parent.parent.parent / "docs"
HOST = "www.example.com"  # in the docs' DJANGO_ALLOWED_HOSTS


def block(page: str, first_line: str) -> str:
    """The one fenced block of docs/`page` whose first line is `first_line`."""
    found = [body for body in re.findall(r"^```[a-z]*\n(.*?)^```$", (DOCS / page).read_text(), re.S | re.M)
             if body.startswith(first_line + "\n")]
    assert len(found) == 1, f"docs/{page} must have exactly one block starting {first_line!r}"
    return found[0]


def command_line(page: str, line: str) -> list[str]:
    """A command line that docs/`page` shows exactly so, as argv."""
    assert line in (DOCS / page).read_text().splitlines(), f"docs/{page} no longer shows {line!r}"
    return shlex.split(line)


class Layout:
    """The docs' absolute paths (/srv/mysite, /etc/corral, /run/corral) under a short temporary root."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, text: str) -> str:
        return docs_paths_under(self.root, text)

    @property
    def project(self) -> Path:
        return self.root / "srv/mysite"


@pytest.fixture(scope="module")
def layout() -> Iterator[Layout]:
    # Unix socket paths are limited to 107 bytes: pytest's tmp_path is too deep.
    made = Layout(Path(tempfile.mkdtemp(prefix="corral-dj-", dir="/tmp")))
    create_django_project(made.project)
    settings = block("django.md", "# mysite/settings_prod.py")
    assert "DEBUG = False" in settings
    (made.project / "mysite/settings_prod.py").write_text(settings)
    (made.root / "etc/corral").mkdir(parents=True)
    env_file = made.root / "etc/corral/mysite.env"
    env_file.write_text(block("django.md", "# /etc/corral/mysite.env  (chmod 600)"))
    env_file.chmod(0o600)
    (made.root / "run/corral/control").mkdir(parents=True)
    yield made
    shutil.rmtree(made.root, ignore_errors=True)


def unix_request(path: Path, host: str, target: str = "/") -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(15)
        sock.connect(str(path))
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def assert_debug_off(raw_bad_host: bytes, raw_good: bytes, server: Server) -> None:
    assert raw_bad_host.startswith(b"HTTP/1.1 400 "), raw_bad_host[:300]
    # The debug page would name the exception and dump the settings; the production 400 is plain.
    assert b"DisallowedHost" not in raw_bad_host and b"SECRET_KEY" not in raw_bad_host
    assert raw_good.startswith(b"HTTP/1.1 200 ") and b"csrfmiddlewaretoken" in raw_good, raw_good[:300]
    assert "DEBUG = True" not in server.log(), server.log()


def serve(args: list[str], cwd: Path) -> Server:
    return Server(args, cwd=cwd, timeout=30)


def doc_bind(config: Path, profile: str | None = None) -> str:
    """The one unix: bind the config gives (tests.helpers.Server adds a TCP one unless told a --bind)."""
    data = tomllib.loads(config.read_text())
    binds = (data["profile"][profile] if profile else data)["bind"]
    assert len(binds) == 1 and binds[0].startswith("unix:"), binds
    return str(binds[0])


def test_django_md_corral_toml_prod_profile(layout: Layout) -> None:
    toml = block("django.md", "# corral.toml")
    # Beside the project rather than in it, so the other tests' command lines do not pick it up.
    config = layout.root / "etc/corral/django-md.toml"
    config.write_text(layout.path(toml))
    check = subprocess.run([sys.executable, "-m", "corral", "check", "--config", str(config), "--profile", "prod"],
                           cwd=layout.project, capture_output=True, text=True, timeout=60, env=clean_env())
    assert check.returncode == 0 and "warning" not in check.stderr, check.stderr + check.stdout
    bind = doc_bind(config, "prod")
    server = serve(["--config", str(config), "--profile", "prod", "--workers", "1", "--bind", bind], layout.project)
    sock = Path(bind.removeprefix("unix:"))
    try:
        assert_debug_off(unix_request(sock, "evil.example"), unix_request(sock, HOST, "/admin/login/"), server)
    finally:
        server.stop()


def test_production_md_corral_toml(layout: Layout) -> None:
    toml = block("production.md", "# /etc/corral/corral.toml: what corral.service runs (docs/production.md).")
    config = layout.root / "etc/corral/corral.toml"
    config.write_text(layout.path(toml))
    bind = doc_bind(config)
    server = serve(["--config", str(config), "--workers", "1", "--bind", bind], Path("/"))
    sock = Path(bind.removeprefix("unix:"))
    try:
        assert_debug_off(unix_request(sock, "evil.example"), unix_request(sock, HOST, "/admin/login/"), server)
    finally:
        server.stop()


@pytest.mark.parametrize("argv", [
    command_line("django.md", "corral serve --settings mysite.settings_prod --env-file /etc/corral/mysite.env"),
    # The env file alone selects the production settings over wsgi.py's setdefault.
    ["corral", "serve", "mysite.wsgi", "--env-file", "/etc/corral/mysite.env"],
], ids=["settings-and-env-file", "env-file-only"])
def test_django_md_command_lines(layout: Layout, argv: list[str]) -> None:
    assert argv[:2] == ["corral", "serve"]
    args = [layout.path(arg) for arg in argv[2:]]
    server = serve([*args, "--workers", "1", "--bind", "127.0.0.1:0"], layout.project)
    try:
        bad = server.request(b"GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n", timeout=15)
        good = server.request(f"GET /admin/login/ HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode(),
                              timeout=15)
        assert_debug_off(bad, good, server)
    finally:
        server.stop()


NGINX_MAIN = """{user}
{modules}
worker_processes 1;
pid {root}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 64; }}
{http}
"""
# A block of the docs is an http {} server block, or a top-level stream {} block (PROXY protocol).
HTTP_CONTEXT = """http {{
    access_log off;
    include {conf};
}}"""


def nginx_blocks() -> list[tuple[str, int, str]]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        for number, body in enumerate(re.findall(r"^```nginx\n(.*?)^```$", page.read_text(), re.S | re.M), 1):
            found.append((page.name, number, body))
    return found


@pytest.mark.parametrize(("page", "number", "text"), nginx_blocks(), ids=lambda v: str(v)[:20])
def test_docs_nginx_blocks_pass_nginx_t(tmp_path: Path, page: str, number: int, text: str) -> None:
    if not os.access(NGINX, os.X_OK):
        pytest.skip(f"nginx is not installed at {NGINX} (.ci/run installs it)")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificate for nginx -t (.ci/run installs it)")
    layout = Layout(tmp_path)
    ssl_dir = tmp_path / "etc/ssl/mysite"
    ssl_dir.mkdir(parents=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", f"/CN={HOST}", "-keyout", str(ssl_dir / "privkey.pem"),
                    "-out", str(ssl_dir / "fullchain.pem")], check=True, capture_output=True, timeout=30)
    conf = tmp_path / "site.conf"
    conf.write_text(layout.path(text))
    main = tmp_path / "nginx.conf"
    stream = text.lstrip().startswith("stream {")
    if stream and not os.path.exists(NGINX_STREAM_MODULE):
        pytest.skip(f"nginx's stream module is not installed at {NGINX_STREAM_MODULE} (.ci/run installs it)")
    main.write_text(NGINX_MAIN.format(
        root=tmp_path,
        user="user root;" if os.geteuid() == 0 else "",
        modules=f"load_module {NGINX_STREAM_MODULE};" if stream else "",
        http=f"include {conf};" if stream else HTTP_CONTEXT.format(conf=conf),
    ))
    result = subprocess.run([NGINX, "-t", "-p", f"{tmp_path}/", "-c", str(main), "-e", "stderr"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"docs/{page} nginx block {number} fails nginx -t:\n{result.stderr}"
    assert "test is successful" in result.stderr
