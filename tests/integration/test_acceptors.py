"""Multi-site: once traffic shows which sites are busy, only those accept; the rest get handoffs."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from pathlib import Path

from helpers import Server

CONFIG = """
bind = ["127.0.0.1:0"]
control-socket = "{control}"
[sites.busy]
app = "basic:pid"
hosts = ["busy.test"]
[sites.quiet]
app = "basic:hello"
hosts = ["quiet.test"]
"""


def _get(server: Server, host: str, conn: http.client.HTTPConnection) -> bytes:
    conn.request("GET", "/", headers={"Host": host})
    response = conn.getresponse()
    assert response.status == 200
    return response.read()


def _status(control: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "corral", "status", "--json", "--control-socket", str(control)],
        capture_output=True, text=True, timeout=10, check=True,
    )
    return json.loads(out.stdout)


def test_quiet_sites_stop_accepting_and_still_get_their_requests(tmp_path: Path) -> None:
    control = tmp_path / "control.sock"
    config = tmp_path / "corral.toml"
    config.write_text(CONFIG.format(control=control))
    with Server(["--config", str(config)]) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        deadline = time.monotonic() + 15
        quiet_accepting = True
        while time.monotonic() < deadline and quiet_accepting:
            for _ in range(300):
                _get(server, "busy.test", conn)
            sites = {site["name"]: site for site in _status(control)["sites"]}
            quiet_accepting = any(w["accepting"] for w in sites["quiet"]["workers"])
            assert all(w["accepting"] for w in sites["busy"]["workers"])
        conn.close()
        assert not quiet_accepting, server.log()
        # New connections for the quiet site are accepted by the busy site's worker and handed on.
        for _ in range(20):
            fresh = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            assert _get(server, "quiet.test", fresh) == b"Hello, World!"
            fresh.close()
