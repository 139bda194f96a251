"""AccessLog lines in both formats, from exchanges built by hand."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from corral.http.errors import HTTPError
from corral.http.request import Request
from corral.observe.access import AccessLog


def exchange(method: str = "GET", target: bytes = b"/a?b=1", status: int = 200, bytes_out: int = 5,
             received: int = 0, took: float = 0.25, **environ: str) -> Any:
    request = Request()
    request.method = method
    request.target = target
    request.path, _, request.query = target.partition(b"?")
    request.received = received
    env = {"REMOTE_ADDR": "10.0.0.7", **environ}
    return SimpleNamespace(
        environ=env, request=request, response=SimpleNamespace(code=status), bytes_out=bytes_out,
        started=time.monotonic() - took,
    )


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "access.log"


def test_json_line_has_every_field(log_path: Path) -> None:
    log = AccessLog(str(log_path), "json", site="blog")
    try:
        log(exchange("POST", b"/up?x=%22", 201, 12, 300, HTTP_USER_AGENT='curl "7"', HTTP_REFERER="http://r/"))
    finally:
        log.close()
    (line,) = lines(log_path)
    record = json.loads(line)
    assert record["site"] == "blog"
    assert record["method"] == "POST"
    assert record["path"] == "/up"
    assert record["query"] == "x=%22"
    assert record["protocol"] == "HTTP/1.1"
    assert record["status"] == 201
    assert record["bytes"] == 12
    assert record["bytes_in"] == 300
    assert 0.2 < record["duration"] < 5
    assert record["remote_addr"] == "10.0.0.7"
    assert record["user_agent"] == 'curl "7"'
    assert record["referer"] == "http://r/"
    assert re.fullmatch(r"[0-9a-f]+-1", record["request_id"])
    assert abs(time.time() - time.mktime(time.strptime(record["time"][:19], "%Y-%m-%dT%H:%M:%S"))) < 60


def test_request_ids_come_from_the_client_or_are_unique(log_path: Path) -> None:
    log = AccessLog(str(log_path), "json")
    other = AccessLog(str(log_path), "json")  # another worker
    try:
        log(exchange(HTTP_X_REQUEST_ID="abc-123"))
        log(exchange(HTTP_X_REQUEST_ID="x" * 1000))
        for _ in range(3):
            log(exchange())
            other(exchange())
    finally:
        log.close()
        other.close()
    ids = [json.loads(line)["request_id"] for line in lines(log_path)]
    assert ids[0] == "abc-123"
    assert ids[1] == "x" * 128  # cut: it goes into every line
    assert len(set(ids[2:])) == 6


def test_rejected_request_lines(log_path: Path) -> None:
    error = HTTPError("bad header")
    json_log = AccessLog(str(log_path), "json", site="blog")
    try:
        json_log(None, error=error, peer="::1:4000")  # how connection.py writes an IPv6 peer
        json_log(None, error=error, peer="192.0.2.1:5555")
    finally:
        json_log.close()
    first, second = (json.loads(line) for line in lines(log_path))
    assert second["remote_addr"] == "192.0.2.1"
    assert second["status"] == error.status
    assert second["method"] is None and second["error"] == "bad header"
    assert first["remote_addr"] == "::1"


def test_combined_format(log_path: Path) -> None:
    log = AccessLog(str(log_path))
    try:
        log(exchange("GET", b'/q?a="b"', 200, 42, HTTP_USER_AGENT="ua\\x", HTTP_REFERER="http://r/"))
        log(exchange("HEAD", b"/", 304, 0))
        log(None, error=HTTPError("nope"), peer="192.0.2.1:5555")
    finally:
        log.close()
    ok, empty, rejected = lines(log_path)
    match = re.fullmatch(
        r'10\.0\.0\.7 - - \[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] "GET /q\?a=%22b%22 HTTP/1\.1" 200 42 '
        r'"http://r/" "ua\\\\x" (\d+\.\d{3})',
        ok,
    )
    assert match, ok
    assert 0.2 < float(match.group(2)) < 5
    assert '"HEAD / HTTP/1.1" 304 - "-" "-"' in empty
    assert rejected.startswith('192.0.2.1 - - [') and '"-" 400 -' in rejected


def test_unknown_format_is_refused(log_path: Path) -> None:
    with pytest.raises(ValueError, match="combined, json"):
        AccessLog(str(log_path), "xml")
    assert not log_path.exists()
