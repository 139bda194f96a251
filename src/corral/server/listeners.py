"""Parse bind addresses and create listening sockets (in the master, before forking)."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import stat
from collections.abc import Sequence
from dataclasses import dataclass, replace

PROXY_PREFIX = "proxy:"


class BindError(Exception):
    """A bind address that is malformed or cannot be listened on."""


@dataclass(frozen=True)
class Address:
    family: socket.AddressFamily
    host: str  # or the path for AF_UNIX
    port: int
    proxy_protocol: bool = False  # connections start with a PROXY protocol header

    def url(self, sock: socket.socket | None = None, scheme: str = "http") -> str:
        if self.family == socket.AF_UNIX:
            return f"unix:{self.host}"
        port = sock.getsockname()[1] if sock is not None else self.port
        host = f"[{self.host}]" if self.family == socket.AF_INET6 else self.host
        return f"{scheme}://{host}:{port}"


def parse_bind(text: str) -> Address:
    """`HOST:PORT`, `[IPv6]:PORT`, `:PORT` (all IPv4 interfaces) or `unix:/path`.

    Any of them after `proxy:` is a listener whose connections start with a PROXY protocol
    header: `proxy:0.0.0.0:8001`, `proxy::8001`, `proxy:[::]:8001`, `proxy:unix:/run/c.sock`.
    The remainder always holds a `:` then, so `proxy:8001` keeps its meaning of port 8001
    on the host named proxy.
    """
    rest = text[len(PROXY_PREFIX) :]
    if text.startswith(PROXY_PREFIX) and (":" in rest or not rest):
        if not rest:
            raise BindError(f"bind {text!r}: proxy: needs an address after it, as proxy:0.0.0.0:8001")
        return replace(_parse_address(rest, text), proxy_protocol=True)
    return _parse_address(text, text)


def _parse_address(text: str, shown: str) -> Address:
    """One address; errors name the bind as written (`shown`)."""
    if text.startswith("unix:"):
        path = text[5:]
        if not path:
            raise BindError(f"bind {shown!r}: unix: needs a socket path")
        return Address(socket.AF_UNIX, path, 0)
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        family = socket.AF_INET6
        if not sep:
            raise BindError(f"bind {shown!r}: expected [IPv6]:PORT")
    else:
        host, sep, port = text.rpartition(":")
        family = socket.AF_INET
        if not sep:
            raise BindError(f"bind {shown!r}: expected HOST:PORT, [IPv6]:PORT or unix:PATH")
        host = host or "0.0.0.0"
        if ":" in host:
            raise BindError(f"bind {shown!r}: write IPv6 addresses in brackets, as [::1]:8000")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise BindError(f"bind {shown!r}: {port!r} is not a port number")
    return Address(family, host, int(port))


@dataclass(frozen=True)
class SocketOptions:
    """What Corral does to the sockets it creates (systemd's are set up by their .socket unit)."""

    mode: int = 0o660  # a unix: socket file's permissions
    owner: tuple[int, int] | None = None  # (uid, gid) for a unix: socket file; -1 leaves one as is
    owner_name: str = ""  # as the user wrote it, for messages
    reuse_port: bool = False  # SO_REUSEPORT on TCP listeners

    @classmethod
    def from_config(cls, mode: str, owner: str | None, reuse_port: bool) -> SocketOptions:
        """From the settings (--socket-mode, --socket-owner, --reuse-port); BindError for an
        unknown user or group, before any socket is made."""
        resolved = resolve_owner(owner) if owner else None
        return cls(int(mode, 8), resolved, owner or "", reuse_port)


def listen(address: Address, backlog: int, options: SocketOptions | None = None) -> socket.socket:
    options = options or SocketOptions()
    if address.family == socket.AF_UNIX:
        _remove_stale_unix_socket(address.host)
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    try:
        if address.family == socket.AF_UNIX:
            sock.bind(address.host)
            # Before listen(): until then a connect() is refused, so no one gets in under the
            # umask's mode in between.
            _set_file_access(address.host, options)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if options.reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if address.family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address.host, address.port))
        sock.listen(backlog)
    except BindError:
        sock.close()
        raise
    except OSError as exc:
        hint = ""
        if address.host == "proxy" and address.family != socket.AF_UNIX:
            hint = f" (for the PROXY protocol on port {address.port}, write proxy::{address.port})"
        sock.close()
        raise BindError(f"cannot listen on {address.url()}: {exc.strerror or exc}{hint}") from None
    sock.setblocking(False)
    os.set_inheritable(sock.fileno(), True)
    return sock


def abort_stalled_sends(sock: socket.socket, seconds: float) -> None:
    """Have the kernel abort a TCP connection whose sent bytes stay unacknowledged `seconds`.

    --send-timeout for the part of a response already in the kernel's send buffer, which the
    worker cannot see: on loopback that buffer takes megabytes, so a client that never reads
    may hold its connection with nothing left in ours. A closed receive window counts too
    (Linux 5.11+ ends zero-window probing at this timeout). Accepted sockets inherit it from
    their listener, so setting it there costs nothing per connection.
    """
    if sock.family in (socket.AF_INET, socket.AF_INET6) and hasattr(socket, "TCP_USER_TIMEOUT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, max(1, round(seconds * 1000)))


def _set_file_access(path: str, options: SocketOptions) -> None:
    try:
        if options.owner is not None:
            os.chown(path, *options.owner)
        os.chmod(path, options.mode)
    except OSError as exc:
        os.unlink(path)  # ours, just made: not left behind with the wrong owner or mode
        if options.owner is not None and exc.errno == errno.EPERM:
            raise BindError(
                f"cannot give unix:{path} to {options.owner_name}: changing a socket's owner "
                f"needs root (Corral runs as uid {os.geteuid()})"
            ) from None
        raise BindError(f"cannot set the permissions of unix:{path}: {exc.strerror or exc}") from None


def resolve_owner(text: str) -> tuple[int, int]:
    """`USER[:GROUP]` or `:GROUP` (names or numeric ids) as (uid, gid); -1: leave as is."""
    import grp
    import pwd

    user, _, group = text.partition(":")
    uid = gid = -1
    if user:
        try:
            uid = int(user) if user.isdigit() else pwd.getpwnam(user).pw_uid
        except KeyError:
            raise BindError(f"--socket-owner {text!r}: no user named {user!r} on this machine") from None
    if group:
        try:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise BindError(f"--socket-owner {text!r}: no group named {group!r} on this machine") from None
    return uid, gid


def socket_url(sock: socket.socket) -> str:
    """What a listening socket is, as the log says it: http://HOST:PORT or unix:PATH."""
    where = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{where}"
    host = f"[{where[0]}]" if sock.family == socket.AF_INET6 else where[0]
    return f"http://{host}:{where[1]}"


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


def proxy_protocol_fds(
    binds: Sequence[str], everywhere: bool, sockets: Sequence[socket.socket], activated: bool
) -> frozenset[int]:
    """The listening sockets whose connections start with a PROXY protocol header.

    `everywhere` is --proxy-protocol. Sockets we bound follow their bind's `proxy:` form (one
    socket per bind, in order); sockets systemd passed match a `proxy:` bind by address.
    """
    if everywhere:
        return frozenset(sock.fileno() for sock in sockets)
    if not activated:
        pairs = zip(binds, sockets, strict=True)
        return frozenset(sock.fileno() for text, sock in pairs if parse_bind(text).proxy_protocol)
    wanted = []
    for text in binds:
        try:
            address = parse_bind(text)
        except BindError:
            continue  # with socket activation the binds are not used: not ours to refuse here
        if address.proxy_protocol:
            wanted.append(address)
    return frozenset(sock.fileno() for sock in sockets if any(_listens_on(sock, address) for address in wanted))


def _listens_on(sock: socket.socket, address: Address) -> bool:
    if sock.family != address.family:
        return False
    name = sock.getsockname()
    if address.family == socket.AF_UNIX:
        return bool(name == address.host)
    try:
        same_host = ipaddress.ip_address(name[0]) == ipaddress.ip_address(address.host)
    except ValueError:
        same_host = False  # a host name: systemd's sockets are matched by literal address only
    return same_host and name[1] == address.port
