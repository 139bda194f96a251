"""A site's `user`/`group`: started as root, its workers run as that user; the others do not."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import Server
from http_client import get

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root (CI runs as root)")

APP = '''import os


def app(environ, start_response):
    body = f"{os.getuid()} {os.getgid()} {os.environ.get('HOME')}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''

CONFIG = """
bind = ["127.0.0.1:0"]
control-socket = "{dir}/control.sock"

[sites.confined]
app = "whoami_app:app"
chdir = "{dir}"
hosts = ["confined.test"]
user = "nobody"

[sites.plain]
app = "whoami_app:app"
chdir = "{dir}"
hosts = ["plain.test"]
"""


def _get(server: Server, host: str) -> str:
    status, body = get(server.port, headers={"Host": host}, timeout=5)
    assert status == 200
    return body.decode()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the confined user can read (pytest's own tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="corral-user-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_sites_workers_run_as_its_user(shared_dir: Path) -> None:
    tmp_path = shared_dir
    (tmp_path / "whoami_app.py").write_text(APP)
    (tmp_path / "whoami_app.py").chmod(0o644)
    config = tmp_path / "corral.toml"
    config.write_text(CONFIG.format(dir=tmp_path))
    nobody = pwd.getpwnam("nobody")
    with Server(["--config", str(config)]) as server:
        assert _get(server, "confined.test") == f"{nobody.pw_uid} {nobody.pw_gid} {nobody.pw_dir}"
        assert _get(server, "plain.test").startswith("0 0 ")
