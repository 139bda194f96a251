"""Hand a client connection to another site's worker over a Unix socket.

Each site has one SOCK_DGRAM socketpair made by the master: every worker holds
the sending ends of all sites, and a site's workers share its receiving end, so
the kernel gives each handed-off connection to exactly one idle reader. A
message carries the client socket (SCM_RIGHTS) and the request bytes already
read from it; bytes beyond what fits a datagram travel in a memfd passed beside
it, so no size of request is ever cut short. When a PROXY protocol header said who
the client is, that address travels too (the header itself was consumed and is
not among the bytes), so the receiving site sees the same REMOTE_ADDR.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..http.request import Request  # the master imports this module; the parser is the workers'

_INLINE_LIMIT = 32 * 1024  # request bytes sent in the datagram itself; the rest goes by memfd
# Connections waiting for a busy site are datagrams charged to the one shared send end's
# buffer: the default (~208 KiB) holds only a few dozen requests with browser-sized heads.
# Unprivileged, the kernel silently caps this at 2 x net.core.wmem_max (the kernel default
# wmem_max is 208 KiB; many hosts raise it): the rest is connection.py's back-pressure.
_SEND_BUFFER = 8 * 1024 * 1024
_HEADER = struct.Struct("!BI")  # flags, inline length
_HAS_MEMFD = 1
_PEER_ADDRESS = 2  # a (host, port) client address follows the header: port, host length, host
_PEER_LOCAL = 4  # the client is a local (Unix-socket) peer, per a PROXY header
_PEER = struct.Struct("!HB")
_PEER_LIMIT = _PEER.size + 255  # room for the longest host the length byte can say


def handoff_pair() -> tuple[socket.socket, socket.socket]:
    """(send_end, receive_end) for one site."""
    send_end, receive_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    send_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)
    for sock in (send_end, receive_end):
        sock.setblocking(False)
        os.set_inheritable(sock.fileno(), True)
    return send_end, receive_end


def send_connection(channel: socket.socket, client_fd: int, data: bytes, peername: Any = None) -> None:
    """Send the client socket and `data`; raises BlockingIOError when the site is backed up.

    `peername` is the client's address when not the socket's own peer (HTTPConnection's).
    """
    fds = [client_fd]
    inline = data
    flags, peer = _encode_peer(peername)
    memfd = -1
    if len(data) > _INLINE_LIMIT:
        memfd = os.memfd_create("corral-handoff", os.MFD_CLOEXEC)
        os.write(memfd, data)
        fds.append(memfd)
        inline = b""
        flags |= _HAS_MEMFD
    try:
        socket.send_fds(channel, [_HEADER.pack(flags, len(inline)) + peer + inline], fds)
    finally:
        if memfd >= 0:
            os.close(memfd)


def receive_connection(channel: socket.socket) -> tuple[socket.socket, bytes, Any] | None:
    """One handed-off connection (socket, bytes read, peername as sent), or None when nothing waits."""
    try:
        message, fds, _flags, _addr = socket.recv_fds(channel, _HEADER.size + _PEER_LIMIT + _INLINE_LIMIT, 2)
    except BlockingIOError:
        return None
    if not fds:
        return None
    flags, length = _HEADER.unpack_from(message)
    peername, start = _decode_peer(flags, message, _HEADER.size)
    data = message[start : start + length]
    if flags & _HAS_MEMFD and len(fds) > 1:
        memfd = fds[1]
        size = os.fstat(memfd).st_size
        data = os.pread(memfd, size, 0)
        os.close(memfd)
    client = socket.socket(fileno=fds[0])
    client.setblocking(False)
    return client, data, peername



def _encode_peer(peername: Any) -> tuple[int, bytes]:
    if isinstance(peername, tuple):
        host = str(peername[0]).encode("ascii")
        return _PEER_ADDRESS, _PEER.pack(int(peername[1]), len(host)) + host
    if peername == "":
        return _PEER_LOCAL, b""
    return 0, b""


def _decode_peer(flags: int, message: bytes, offset: int) -> tuple[Any, int]:
    """(peername, where the request bytes start)."""
    if flags & _PEER_ADDRESS:
        port, size = _PEER.unpack_from(message, offset)
        start = offset + _PEER.size
        return (message[start : start + size].decode("ascii"), port), start + size
    if flags & _PEER_LOCAL:
        return "", offset
    return None, offset


_FRAMING = (b"content-length", b"transfer-encoding")


def request_bytes(request: Request) -> bytes:
    """Re-serialize a fully received request (body re-framed with Content-Length).

    Used when a keep-alive connection moves to another site after its bytes were
    parsed here. Raises ValueError for a request whose body is still arriving.
    """
    body = b""
    if request.body is not None:
        stream = getattr(request.body, "stream", None)
        if not request.complete or stream is None:
            raise ValueError("request body still arriving")
        body = stream.read()
        stream.seek(0)
    lines = [f"{request.method} ".encode("ascii") + request.target + f" HTTP/{request.version}\r\n".encode("ascii")]
    for name, value in request.headers:
        if name.lower() not in _FRAMING:
            lines.append(name + b": " + value + b"\r\n")
    if request.body is not None:
        lines.append(b"Content-Length: %d\r\n" % len(body))
    lines.append(b"\r\n")
    return b"".join(lines) + body
