"""Start a real `corral` subprocess and talk to it with raw sockets.

Readiness comes from the server's own log line ("Corral ready"), never a sleep;
every wait has a deadline.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TESTS = Path(__file__).parent
# Debian's nginx, and its stream module (libnginx-mod-stream), as .ci/run installs them.
NGINX = "/usr/sbin/nginx"
NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
APPS = TESTS / "apps"


def docs_paths_under(root: Path, text: str) -> str:
    """A docs example (docs/production.md, docs/django.md) made runnable here: its absolute
    paths moved under `root`, its metrics port made ephemeral."""
    for path in ("/srv/mysite", "/etc/corral", "/run/corral", "/etc/ssl/mysite"):
        text = text.replace(path, f"{root}{path}")
    return text.replace("127.0.0.1:9100", "127.0.0.1:0")


class Server:
    """A running `corral serve`; stderr is collected in `self.log_lines`."""

    def __init__(
        self,
        args: Sequence[str],
        cwd: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        command: str = "serve",
        ready: str = "Corral ready",
        timeout: float = 20.0,
    ) -> None:
        cmd = [sys.executable, "-m", "corral", command, *args]
        if not any(a.startswith("--bind") or a == "-b" for a in args) and command in ("serve", "dev"):
            cmd += ["--bind", "127.0.0.1:0"]
        self._launch(cmd, env, cwd=cwd)
        if ready:
            line = self.wait_for(ready, timeout)
            if line is None:
                self.stop()
                raise RuntimeError("server did not become ready:\n" + self.log())
            match = self.wait_for(r"Listening at https?://[^\s]+:(\d+)", 1.0)
            if match:
                self.port = int(re.search(r"Listening at https?://\S+:(\d+)", match).group(1))  # type: ignore[union-attr]

    def _launch(self, cmd: Sequence[str], env: dict[str, str] | None = None, **popen: Any) -> None:
        """Start `cmd` in its own session, with tests/apps importable and no inherited
        DJANGO_SETTINGS_MODULE, and collect its stdout and stderr lines."""
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = os.pathsep.join([str(APPS), full_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        full_env.pop("DJANGO_SETTINGS_MODULE", None)
        full_env.update(env or {})
        self.proc = subprocess.Popen(list(cmd), env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True, **popen)
        self.log_lines: list[str] = []
        self.stdout_lines: list[str] = []
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._collect, args=(self.proc.stderr, self.log_lines), daemon=True),
            threading.Thread(target=self._collect, args=(self.proc.stdout, self.stdout_lines), daemon=True),
        ]
        for t in self._threads:
            t.start()
        self.port = 0
        self.host = "127.0.0.1"

    def _collect(self, stream, lines: list[str]) -> None:  # type: ignore[no-untyped-def]
        for raw in iter(stream.readline, b""):
            with self._cond:
                lines.append(raw.decode("utf-8", "replace"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 10.0, start: int = 0, stream: str = "stderr") -> str | None:
        """Wait until a log line matches `pattern` (regex); return it or None."""
        lines = self.log_lines if stream == "stderr" else self.stdout_lines
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in lines[start:]:
                    if regex.search(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not any(t.is_alive() for t in self._threads)):
                    return None
                self._cond.wait(min(remaining, 0.2))

    def log(self) -> str:
        with self._cond:
            return "".join(self.log_lines)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def connect(self, timeout: float = 5.0) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        return sock

    def request(self, raw: bytes, timeout: float = 5.0) -> bytes:
        """Send raw bytes, read until the server closes (or timeout)."""
        with self.connect(timeout) as sock:
            sock.sendall(raw)
            return read_until_close(sock, timeout)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout)
        self._close_pipes()
        return code

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._close_pipes()
        return self.proc.returncode

    def _close_pipes(self) -> None:
        for t in self._threads:
            t.join(2)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed and not any(t.is_alive() for t in self._threads):
                stream.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Launched(Server):
    """Server for any command line (a proxy, nginx, a launcher): its output collected alike."""

    def __init__(self, cmd: Sequence[str], ready: str | None = None, env: dict[str, str] | None = None,
                 pass_fds: Sequence[int] = (), timeout: float = 10.0) -> None:
        self._launch(cmd, env, pass_fds=tuple(pass_fds))
        if ready and self.wait_for(ready, timeout) is None:
            self.stop()
            raise RuntimeError(f"{cmd[0]} did not become ready:\n{self.log()}")

    def number(self, pattern: str, timeout: float = 5.0) -> int:
        """The first group of the first log line matching pattern, as an int."""
        line = self.wait_for(pattern, timeout)
        assert line is not None, self.log()
        return int(re.search(pattern, line).group(1))  # type: ignore[union-attr]


NGINX_STREAM_CONF = """
{load}
worker_processes 1;
pid {root}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 64; }}
stream {{
    server {{
        listen 127.0.0.1:{listen};
        proxy_pass 127.0.0.1:{port};
        proxy_protocol on;
    }}
}}
"""


def nginx_stream_proxy(root: Path, port: int) -> tuple[Launched, int]:
    """nginx's stream module in front of 127.0.0.1:`port`, writing PROXY v1 (docs/proxy-protocol.md):
    the running nginx and the port it listens on. Skips the test when nginx is not installed."""
    import pytest

    if not os.access(NGINX, os.X_OK):
        pytest.skip(f"nginx is not installed at {NGINX} (.ci/run installs it)")
    load = f"load_module {NGINX_STREAM_MODULE};" if os.path.exists(NGINX_STREAM_MODULE) else ""
    conf = root / "nginx.conf"
    for _attempt in range(3):  # a free port may be taken by another test in between
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            listen = int(probe.getsockname()[1])
        conf.write_text(NGINX_STREAM_CONF.format(load=load, root=root, listen=listen, port=port))
        proxy = Launched([NGINX, "-p", f"{root}/", "-c", str(conf), "-e", "stderr", "-g", "daemon off;"],
                         ready=r"start worker process|emerg")
        if "emerg" not in proxy.log():
            return proxy, listen
        proxy.stop()
        assert "Address already in use" in proxy.log(), proxy.log()
    pytest.fail("no free port for nginx")


def read_to_eof(sock: socket.socket, timeout: float = 5.0) -> tuple[bytes, bool]:
    """Everything the server sends until it closes; `closed` is False on timeout."""
    deadline = time.monotonic() + timeout
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return b"".join(chunks), False
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return b"".join(chunks), False
        except ConnectionResetError:
            return b"".join(chunks), True
        if not data:
            return b"".join(chunks), True
        chunks.append(data)


def read_until_close(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes (or the timeout)."""
    return read_to_eof(sock, timeout)[0]


def read_response(sock: socket.socket, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Read exactly one response (Content-Length or chunked framing) from a keep-alive socket."""
    sock.settimeout(timeout)
    # Closed on every path: a makefile left to the garbage collector can be collected after
    # its socket, which then warns "unclosed socket" inside whichever test runs next.
    with sock.makefile("rb") as f:
        return _read_response(f)


def _read_response(f: Any) -> tuple[int, dict[str, str], bytes]:
    status_line = f.readline()
    if not status_line:
        raise ConnectionError("connection closed before a response")
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while True:
        line = f.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        key = name.strip().lower()
        headers[key] = headers[key] + ", " + value.strip() if key in headers else value.strip()
    body = b""
    if status == 100:
        return status, headers, body
    if "content-length" in headers:
        body = f.read(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        parts = []
        while True:
            size = int(f.readline().split(b";")[0], 16)
            if size == 0:
                while f.readline() not in (b"\r\n", b""):
                    pass
                break
            parts.append(f.read(size))
            f.readline()
        body = b"".join(parts)
    return status, headers, body


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """A response head (without its blank line): the status and the headers by lower-case name."""
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers


def parse_response(raw: bytes, head_only: bool = False) -> tuple[int, dict[str, str], bytes, bool]:
    """A whole response read to the close: (status, headers, body, complete), the body unframed
    (Content-Length, chunked or close-delimited); `complete` is False when the framing was cut short
    and status is 0 when no head arrived."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return 0, {}, b"", False
    status, headers = parse_head(head)
    if head_only:
        return status, headers, rest, rest == b""
    if "content-length" in headers:
        length = int(headers["content-length"])
        return status, headers, rest[:length], len(rest) >= length
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size_line, sep, rest = rest.partition(b"\r\n")
            if not sep:
                return status, headers, body, False
            size = int(size_line, 16)
            if size == 0:
                return status, headers, body, rest.startswith(b"\r\n")
            if len(rest) < size + 2:
                return status, headers, body + rest[:size], False
            body += rest[:size]
            rest = rest[size + 2 :]
    return status, headers, rest, True  # close-delimited
