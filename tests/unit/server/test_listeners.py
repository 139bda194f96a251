"""Listening sockets: unix socket files (stale ones, mode, owner) and SO_REUSEPORT, on real sockets."""
# ruff: noqa: E501  (expected messages are kept whole, one per line, so they read as the user sees them)

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from corral.server.listeners import BindError, SocketOptions, abort_stalled_sends, listen, parse_bind, resolve_owner

ROOT = os.geteuid() == 0


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_unix_socket_gets_the_default_mode_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    old = os.umask(0o000)  # the umask would leave it 0777
    try:
        sock = listen(parse_bind(f"unix:{path}"), 16)
    finally:
        os.umask(old)
    with sock:
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        assert _mode(path) == 0o660


@pytest.mark.parametrize("mode", [0o600, 0o666, 0o700])
def test_the_mode_asked_for(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "s.sock"
    with listen(parse_bind(f"unix:{path}"), 16, SocketOptions(mode=mode)):
        assert _mode(path) == mode


def test_a_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    left = socket.socket(socket.AF_UNIX)
    left.bind(str(path))  # bound, never listening: what a killed server leaves
    left.close()
    assert path.exists()
    with listen(parse_bind(f"unix:{path}"), 16) as sock, socket.socket(socket.AF_UNIX) as client:
        client.connect(str(path))
        accepted, _ = sock.accept()  # ours now (the client is queued on our listening socket)
        accepted.close()


def test_a_socket_someone_listens_on_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(str(path))
        other.listen(1)
        with pytest.raises(BindError, match=f"cannot listen on unix:{path}: another server is listening there"):
            listen(parse_bind(f"unix:{path}"), 16)
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(path))  # still the other server's


def test_a_path_that_is_not_a_socket_is_never_deleted(tmp_path: Path) -> None:
    path = tmp_path / "important.txt"
    path.write_text("keep me")
    with pytest.raises(BindError, match="the path exists and is not a socket"):
        listen(parse_bind(f"unix:{path}"), 16)
    assert path.read_text() == "keep me"


@pytest.mark.skipif(not ROOT, reason="changing a file's owner needs root")
def test_the_owner_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    uid, gid = resolve_owner("nobody:nogroup")
    with listen(parse_bind(f"unix:{path}"), 16, SocketOptions(owner=(uid, gid), owner_name="nobody:nogroup")):
        info = os.stat(path)
        assert (info.st_uid, info.st_gid) == (uid, gid)
        assert _mode(path) == 0o660


def test_owner_names_and_ids() -> None:
    import grp
    import pwd

    nobody = pwd.getpwnam("nobody")
    assert resolve_owner("nobody") == (nobody.pw_uid, -1)  # the group is left as it is, as chown does
    assert resolve_owner(f":{grp.getgrgid(0).gr_name}") == (-1, 0)
    assert resolve_owner("1234:5678") == (1234, 5678)  # ids need not exist, as with chown


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no-such-user-here", "--socket-owner 'no-such-user-here': no user named 'no-such-user-here' on this machine"),
        ("nobody:no-such-group", "--socket-owner 'nobody:no-such-group': no group named 'no-such-group' on this machine"),
    ],
)
def test_unknown_accounts(text: str, message: str) -> None:
    with pytest.raises(BindError) as info:
        SocketOptions.from_config("0660", text, False)
    assert str(info.value) == message


def test_reuse_port_is_set_on_tcp_listeners_only_when_asked() -> None:
    address = parse_bind("127.0.0.1:0")
    with listen(address, 16) as plain, listen(address, 16, SocketOptions(reuse_port=True)) as shared:
        assert plain.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
        assert shared.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0
        port = shared.getsockname()[1]
        with listen(parse_bind(f"127.0.0.1:{port}"), 16, SocketOptions(reuse_port=True)):
            pass  # a second listener on the same port: what --reuse-port is for
        with pytest.raises(BindError, match=f"cannot listen on http://127.0.0.1:{port}: Address already in use"):
            listen(parse_bind(f"127.0.0.1:{port}"), 16)


@pytest.mark.skipif(not ROOT, reason="needs root to become another user")
def test_only_root_may_give_a_socket_away() -> None:
    """As an ordinary user (a forked child that dropped root), --socket-owner is a clear error."""
    import shutil
    import tempfile
    import warnings

    directory = tempfile.mkdtemp()
    os.chmod(directory, 0o777)
    path = os.path.join(directory, "s.sock")
    read_end, write_end = os.pipe()
    try:
        with warnings.catch_warnings():
            # fork with pytest's threads: the child only calls listen
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            message = "no error"
            try:
                os.setgid(65534)
                os.setuid(65534)
                listen(parse_bind(f"unix:{path}"), 16, SocketOptions(owner=(0, 0), owner_name="root:root"))
            except BindError as exc:
                message = str(exc)
            finally:
                os.write(write_end, message.encode())
                os._exit(0)
        os.close(write_end)
        os.waitpid(pid, 0)
        with os.fdopen(read_end, "rb") as pipe:
            message = pipe.read().decode()
        assert message == (
            f"cannot give unix:{path} to root:root: changing a socket's owner needs root (Corral runs as uid 65534)"
        )
        assert not os.path.exists(path), "the socket file is not left behind"
    finally:
        shutil.rmtree(directory)


def test_abort_stalled_sends_is_set_on_tcp_listeners_and_inherited_by_their_connections(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        abort_stalled_sends(listener, 2.5)
        with socket.create_connection(listener.getsockname()):
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 2500
    with socket.socket(socket.AF_UNIX) as unix:
        unix.bind(str(tmp_path / "s"))
        abort_stalled_sends(unix, 2.5)  # no such option for a Unix socket: left alone, no error
