"""Parse bind addresses and create listening sockets (in the master, before forking)."""

from __future__ import annotations

import os
import socket
import stat
from dataclasses import dataclass


class BindError(Exception):
    """A bind address that is malformed or cannot be listened on."""


@dataclass(frozen=True)
class Address:
    family: socket.AddressFamily
    host: str  # or the path for AF_UNIX
    port: int

    def url(self, sock: socket.socket | None = None, scheme: str = "http") -> str:
        if self.family == socket.AF_UNIX:
            return f"unix:{self.host}"
        port = sock.getsockname()[1] if sock is not None else self.port
        host = f"[{self.host}]" if self.family == socket.AF_INET6 else self.host
        return f"{scheme}://{host}:{port}"


def parse_bind(text: str) -> Address:
    """`HOST:PORT`, `[IPv6]:PORT`, `:PORT` (all IPv4 interfaces) or `unix:/path`."""
    if text.startswith("unix:"):
        path = text[5:]
        if not path:
            raise BindError(f"bind {text!r}: unix: needs a socket path")
        return Address(socket.AF_UNIX, path, 0)
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        family = socket.AF_INET6
        if not sep:
            raise BindError(f"bind {text!r}: expected [IPv6]:PORT")
    else:
        host, sep, port = text.rpartition(":")
        family = socket.AF_INET
        if not sep:
            raise BindError(f"bind {text!r}: expected HOST:PORT, [IPv6]:PORT or unix:PATH")
        host = host or "0.0.0.0"
        if ":" in host:
            raise BindError(f"bind {text!r}: write IPv6 addresses in brackets, as [::1]:8000")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise BindError(f"bind {text!r}: {port!r} is not a port number")
    return Address(family, host, int(port))


def listen(address: Address, backlog: int) -> socket.socket:
    try:
        if address.family == socket.AF_UNIX:
            _remove_stale_unix_socket(address.host)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(address.host)
        else:
            sock = socket.socket(address.family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if address.family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address.host, address.port))
        sock.listen(backlog)
    except OSError as exc:
        raise BindError(f"cannot listen on {address.url()}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    os.set_inheritable(sock.fileno(), True)
    return sock


def _remove_stale_unix_socket(path: str) -> None:
    """A socket file left by a previous run blocks bind(); anything else is not ours to delete."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise BindError(f"cannot listen on unix:{path}: the path exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        os.unlink(path)  # nobody listens: stale
    else:
        raise BindError(f"cannot listen on unix:{path}: another server is listening there")
    finally:
        probe.close()
