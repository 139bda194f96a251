"""Fault probes shared by tests/integration/test_faults.py and bench/faults.py.

Every probe takes the server's address, not a `helpers.Server`, so the bench can aim the
same resets and slow clients at any server (Corral, gunicorn). They read only /proc and
sockets: nothing here knows which server it talks to. The routes they hit are
tests/apps/fault_apps.py's.
"""

from __future__ import annotations

import os
import re
import select
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor

Address = tuple[str, int]

RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, not FIN
MID_HEAD = b"GET /ok HTTP/1.1\r\nHost: t\r\nX-Long: " + b"a" * 200
MID_BODY = b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n" + b"b" * 4000
MID_RESPONSE = b"GET /256k HTTP/1.1\r\nHost: t\r\n\r\n"
SLOWLORIS_HEAD = b"GET /ok HTTP/1.1\r\nHost: t\r\nX-Slow: "  # a head that never ends


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+)", status.read()).group(1))  # type: ignore[union-attr]


def children(pid: int) -> list[int]:
    """The direct children of `pid` (a master's workers), sorted; [] once it is gone."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listed:
            return sorted(int(child) for child in listed.read().split())
    except OSError:
        return []


def reset_after(address: Address, data: bytes, read: int = 0) -> bool:
    """Send `data` (and read `read` bytes of the answer), then reset; False if the server
    refused, closed first or did not answer within 5 s."""
    try:
        sock = socket.create_connection(address, timeout=5)
    except OSError:
        return False
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
    try:
        sock.sendall(data)
        if read:
            return len(sock.recv(read)) == read  # the response has begun: the worker is mid-write
        return True
    except OSError:
        return False
    finally:
        sock.close()


def reset_storm(address: Address, count: int, threads: int = 8) -> int:
    """`count` resets, a third of each kind, from `threads` client threads (each waits on a round
    trip); returns how many of them failed on the client's side (see `reset_after`)."""
    kinds = [(MID_HEAD, 0), (MID_BODY, 0), (MID_RESPONSE, 1)]
    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(reset_after, address, *kinds[i % 3]) for i in range(count)]
        return sum(not future.result(30) for future in futures)


def settled(pid: int, fd_limit: int, seconds: float = 5.0) -> int:
    """The worker's fd count once it is at most `fd_limit` (or after `seconds`)."""
    deadline = time.monotonic() + seconds
    count = fds(pid)
    while count > fd_limit and time.monotonic() < deadline:
        time.sleep(0.05)  # /proc offers no event for a closed fd
        count = fds(pid)
    return count


def slowloris(address: Address) -> socket.socket:
    sock = socket.create_connection(address, timeout=5)
    sock.sendall(SLOWLORIS_HEAD)
    return sock


def slow_reader(address: Address) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    sock.settimeout(5)
    sock.connect(address)
    # More than the write buffer limit, so the response pauses and --send-timeout applies.
    sock.sendall(b"GET /2m HTTP/1.1\r\nHost: t\r\n\r\n")  # and never read it
    return sock


def closed_by(socks: list[socket.socket], deadline: float, since: float | None = None) -> list[float]:
    """When the server closed (EOF or reset) each of `socks` that it closed before `deadline`
    (monotonic): seconds after `since` (or the monotonic times themselves), in order.

    It reads what arrives, so use it on slowloris sockets (a 408, then EOF); a slow reader
    that read would stop being one.
    """
    pending = {s.fileno(): s for s in socks}
    closes: list[float] = []
    poller = select.poll()
    for fd in pending:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    while pending and time.monotonic() < deadline:
        for fd, _ in poller.poll(max(1, int((deadline - time.monotonic()) * 1000))):
            sock = pending[fd]
            try:
                while sock.recv(65536):
                    pass  # a slowloris' 408 (or a slow reader's buffered response), then EOF
            except BlockingIOError:
                continue
            except OSError:
                pass  # reset: closed too
            poller.unregister(fd)
            del pending[fd]
            closes.append(time.monotonic() - (since or 0.0))
    return closes


def exited_within(pids: list[int], seconds: float) -> list[int]:
    """The pids still alive after `seconds` (a pidfd becomes readable when its process exits)."""
    deadline = time.monotonic() + seconds
    alive = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                alive.append(pid)
        finally:
            os.close(fd)
    return alive


def exit_times(pids: list[int], seconds: float, since: float) -> dict[int, float | None]:
    """Seconds after `since` (monotonic) at which each pid exited; None if still alive after `seconds`."""
    fds_by_pid: dict[int, int] = {}
    times: dict[int, float | None] = {}
    for pid in pids:
        try:
            fds_by_pid[pid] = os.pidfd_open(pid)
        except ProcessLookupError:
            times[pid] = time.monotonic() - since  # (already gone)
    deadline = time.monotonic() + seconds
    try:
        while len(times) < len(pids) and time.monotonic() < deadline:
            waiting = [fd for pid, fd in fds_by_pid.items() if pid not in times]
            ready = select.select(waiting, [], [], max(0.0, deadline - time.monotonic()))[0]
            for pid, fd in fds_by_pid.items():
                if fd in ready:
                    times[pid] = time.monotonic() - since
    finally:
        for fd in fds_by_pid.values():
            os.close(fd)
    return {pid: times.get(pid) for pid in pids}
