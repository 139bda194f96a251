"""A raw HTTP/2 client for tests: the `h2` library over a blocking socket, with deadlines."""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings


@dataclass
class Reply:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    ended: bool = False
    reset: int | None = None  # the RST_STREAM error code, when the server reset it


class H2Client:
    """One connection (h2c prior knowledge, or TLS with ALPN h2 when `context` is given)."""

    def __init__(
        self,
        port: int,
        context: ssl.SSLContext | None = None,
        settings: dict[int, int] | None = None,
        auto_ack: bool = True,
        timeout: float = 5.0,
        upgrade: bytes | None = None,
    ) -> None:
        """`upgrade`: an HTTP/1.1 request head to send with `Upgrade: h2c` (RFC 7540 3.2) instead
        of the preface; its fields end with CRLF, the upgrade's own are added. `self.switch` is
        then the server's answer to it up to the end of its head; a 101 makes its response
        stream 1's."""
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if context is not None:
            context.set_alpn_protocols(["h2"])
            self.sock: socket.socket = context.wrap_socket(raw, server_hostname="127.0.0.1")
            assert self.sock.selected_alpn_protocol() == "h2"  # type: ignore[attr-defined]
        else:
            self.sock = raw
        self.timeout = timeout
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        if settings:
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.auto_ack = auto_ack
        self.replies: dict[int, Reply] = {}
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.closed = False
        self.settings_seen = False
        self.switch = b""
        if upgrade is not None:
            encoded = self.conn.initiate_upgrade_connection()  # (our preface waits for the 101)
            assert encoded is not None
            asks = b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: " + encoded
            self.sock.sendall(upgrade + asks + b"\r\n\r\n")
            self.switch = self._read_head(timeout)
            if not self.switch.startswith(b"HTTP/1.1 101 "):
                return  # answered over HTTP/1.1: the caller reads the rest from self.sock
            self.replies[1] = Reply()
        else:
            self.conn.initiate_connection()
        self.flush()
        deadline = time.monotonic() + timeout
        while not self.settings_seen and time.monotonic() < deadline:  # the server's SETTINGS first
            self.read_events(deadline - time.monotonic())

    def _read_head(self, timeout: float) -> bytes:
        """The HTTP/1.1 answer's bytes up to its blank line (one at a time: what follows is HTTP/2)."""
        self.sock.settimeout(timeout)
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            byte = self.sock.recv(1)
            if not byte:
                break
            head += byte
        return head

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(
        self, path: str, method: str = "GET", body: bytes | None = None, headers: list[tuple[str, str]] | None = None,
        end: bool = True, authority: str = "example.test",
    ) -> int:
        sid: int = self.conn.get_next_available_stream_id()
        fields = [(":method", method), (":path", path), (":scheme", "http"), (":authority", authority)]
        fields += headers or []
        self.conn.send_headers(sid, [(n.encode(), v.encode()) for n, v in fields], end_stream=end and body is None)
        self.replies[sid] = Reply()
        if body is not None:
            self.send_body(sid, body, end)
        self.flush()
        return sid

    def send_body(self, sid: int, body: bytes, end: bool = True) -> None:
        """DATA frames as the server's windows allow (reading its WINDOW_UPDATEs meanwhile)."""
        view = memoryview(body)
        while view:
            size = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size, len(view))
            if size <= 0:
                self.flush()
                if not self.read_events():
                    return
                continue
            self.conn.send_data(sid, bytes(view[:size]))
            view = view[size:]
        if end:
            self.conn.end_stream(sid)
        self.flush()

    def read_events(self, timeout: float | None = None) -> bool:
        """Read once and handle what came; False when the server closed the connection."""
        self.sock.settimeout(timeout if timeout is not None else self.timeout)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            data = b""
        if not data:
            self.closed = True
            return False
        for event in self.conn.receive_data(data):
            self.handle(event)
        self.flush()
        return True

    def handle(self, event: Any) -> None:
        sid = getattr(event, "stream_id", None)
        reply = self.replies.get(sid) if sid else None
        if isinstance(event, h2.events.ResponseReceived) and reply is not None:
            for name, value in event.headers:
                if name == b":status":
                    reply.status = int(value)
                else:
                    reply.headers[name.decode()] = value.decode()
        elif isinstance(event, h2.events.DataReceived) and reply is not None:
            reply.body += event.data
            if self.auto_ack:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded) and reply is not None:
            reply.ended = True
        elif isinstance(event, h2.events.StreamReset) and reply is not None:
            reply.reset = event.error_code
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self.settings_seen = True
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event

    def wait(self, *sids: int, timeout: float = 5.0) -> list[Reply]:
        deadline = time.monotonic() + timeout
        while not all(self.replies[s].ended or self.replies[s].reset is not None for s in sids):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"streams {sids} not done: {[self.replies[s] for s in sids]}")
            if not self.read_events(left):
                break
        return [self.replies[s] for s in sids]

    def wait_closed(self, timeout: float = 5.0) -> None:
        """Read until the server closes the connection (or the deadline: TimeoutError)."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the server kept the connection open")
            try:
                self.read_events(left)
            except TimeoutError:
                continue
            except Exception:  # a frame h2 refuses after GOAWAY: the server is closing
                self.closed = True

    def get(self, path: str, **kwargs: Any) -> Reply:
        sid = self.request(path, **kwargs)
        return self.wait(sid)[0]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> H2Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
