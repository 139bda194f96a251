"""Listening sockets of a real `corral serve`: unix socket mode and owner, SO_REUSEPORT."""

from __future__ import annotations

import grp
import os
import pwd
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import APPS, Server, read_until_close

Serve = Callable[..., Server]
ROOT = os.geteuid() == 0


def unix_get(path: Path, target: str = "/pid") -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        return read_until_close(sock)


def tcp_get(port: int, target: str = "/pid") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        return read_until_close(sock)


def corral(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(APPS))
    return subprocess.run(
        [sys.executable, "-m", "corral", *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("corral: error:")]


# -- unix sockets ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "mode"), [((), 0o660), (("--socket-mode", "600"), 0o600), (("--socket-mode", "0o666"), 0o666)]
)
def test_unix_socket_mode(serve: Serve, tmp_path: Path, flags: tuple[str, ...], mode: int) -> None:
    path = tmp_path / "corral.sock"
    server = serve("wsgi_apps:app", "--bind", f"unix:{path}", *flags)
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode
    assert unix_get(path).startswith(b"HTTP/1.1 200")
    assert server.stop() == 0
    assert not path.exists()


def test_the_mode_from_corral_toml(serve: Serve, tmp_path: Path) -> None:
    path = tmp_path / "corral.sock"
    (tmp_path / "corral.toml").write_text('app = "wsgi_apps:app"\nsocket-mode = "0600"\n')
    serve("--bind", f"unix:{path}", cwd=tmp_path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.skipif(not ROOT, reason="giving a socket to another user needs root")
def test_unix_socket_owner(serve: Serve, tmp_path: Path) -> None:
    path = tmp_path / "corral.sock"
    serve("wsgi_apps:app", "--bind", f"unix:{path}", "--socket-owner", "nobody:nogroup")
    info = os.stat(path)
    assert info.st_uid == pwd.getpwnam("nobody").pw_uid
    assert info.st_gid == grp.getgrnam("nogroup").gr_gid
    assert stat.S_IMODE(info.st_mode) == 0o660
    assert unix_get(path).startswith(b"HTTP/1.1 200")


def test_an_unknown_owner_fails_the_start_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "corral.sock"
    result = corral("serve", "wsgi_apps:app", "--bind", f"unix:{path}", "--socket-owner", "www-nobody-here:nogroup")
    assert result.returncode == 1
    assert errors(result.stderr) == [
        "corral: error: --socket-owner 'www-nobody-here:nogroup': no user named 'www-nobody-here' on this machine"
    ], result.stderr
    assert not path.exists()


def test_a_stale_socket_file_is_replaced_but_a_live_one_is_not(serve: Serve, tmp_path: Path) -> None:
    path = tmp_path / "corral.sock"
    left = socket.socket(socket.AF_UNIX)
    left.bind(str(path))  # what a server killed with SIGKILL leaves behind
    left.close()
    serve("wsgi_apps:app", "--bind", f"unix:{path}")
    assert unix_get(path).startswith(b"HTTP/1.1 200")
    result = corral("serve", "wsgi_apps:app", "--bind", f"unix:{path}")
    assert result.returncode == 1
    assert errors(result.stderr) == [
        f"corral: error: cannot listen on unix:{path}: another server is listening there"
    ], result.stderr
    assert unix_get(path).startswith(b"HTTP/1.1 200"), "the running server keeps its socket"


# -- SO_REUSEPORT ------------------------------------------------------------------------------


def test_reuse_port_lets_two_servers_share_a_port(serve: Serve, tmp_path: Path) -> None:
    first = serve("wsgi_apps:app", "--reuse-port", "--control-socket", str(tmp_path / "first.sock"))
    port = first.port
    control = str(tmp_path / "second.sock")
    second = serve("wsgi_apps:app", "--reuse-port", "--bind", f"127.0.0.1:{port}", "--control-socket", control)
    assert f"Listening at http://127.0.0.1:{port}" in second.log()
    pids = set()
    for _ in range(40):  # new connections: the kernel spreads them over both servers
        raw = tcp_get(port)
        assert raw.startswith(b"HTTP/1.1 200"), raw
        pids.add(int(raw.partition(b"\r\n\r\n")[2]))
        if len(pids) == 2:
            break
    assert len(pids) == 2, "both servers answered"
    assert first.stop() == 0
    for _ in range(5):
        assert tcp_get(port).startswith(b"HTTP/1.1 200"), "the other one goes on alone"


def test_without_reuse_port_a_second_server_cannot_listen(serve: Serve) -> None:
    first = serve("wsgi_apps:app")
    result = corral("serve", "wsgi_apps:app", "--bind", f"127.0.0.1:{first.port}", "--reuse-port")
    assert result.returncode == 1
    assert errors(result.stderr) == [
        f"corral: error: cannot listen on http://127.0.0.1:{first.port}: Address already in use"
    ], result.stderr
    assert tcp_get(first.port).startswith(b"HTTP/1.1 200")
