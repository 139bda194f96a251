"""Replay one corpus case against a running server and compare with what the corpus expects.

A case is sent whole, one byte at a time, or in random chunks; then the client half-closes
and reads until the server closes. The answers are read as a sequence of responses (the
echo app, tests/apps/corpus_echo.py, tells what it parsed). The verdict compares the leading
2xx answers with the complete requests the corpus lists, then what follows them: nothing for
a valid case; an error answer or a close (without another 2xx) for an invalid one.
"""

from __future__ import annotations

import json
import random
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

from corpora import Case

MODES = ("whole", "bytes", "random")
_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})[^\r\n]*\r\n")
_READ_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def describe(self) -> str:
        if self.status < 400:
            return str(self.status)
        reason = self.body.decode("latin-1").strip().splitlines()[-1:]  # Corral's: title, then why
        return f"{self.status} {reason[0]}" if reason else str(self.status)


@dataclass(frozen=True)
class Outcome:
    answers: tuple[Answer, ...]
    hung: bool  # the server neither answered everything nor closed within the timeout
    garbled: bool  # bytes that do not read as responses

    def summary(self) -> str:
        """'200 400 fragment in request target': each status, an error with the reason it gave."""
        text = ", ".join(a.describe() for a in self.answers) or "no answer"
        return text + (", hung" if self.hung else "") + (", garbled" if self.garbled else "")


def pieces(case: Case, mode: str) -> Iterator[bytes]:
    data = case.data
    if mode == "whole":
        yield data
    elif mode == "bytes":
        for index in range(len(data)):
            yield data[index : index + 1]
    else:
        rng = random.Random(case.id)  # the same split on every run
        start = 0
        while start < len(data):
            size = rng.randint(1, max(1, len(data) // 4))
            yield data[start : start + size]
            start += size


def replay(address: tuple[str, int], case: Case, mode: str) -> Outcome:
    with socket.create_connection(address, timeout=_READ_TIMEOUT_S) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for piece in pieces(case, mode):
                sock.sendall(piece)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server closed early (it rejected the request): read what it said
        received, hung = _read_all(sock)
    answers, garbled = parse_answers(received, [r.method for r in case.requests])
    return Outcome(tuple(answers), hung, garbled)


def _read_all(sock: socket.socket) -> tuple[bytes, bool]:
    chunks = []
    deadline = time.monotonic() + _READ_TIMEOUT_S
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return b"".join(chunks), True
        except OSError:  # a reset after the server's last answer
            return b"".join(chunks), False
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)


def parse_answers(data: bytes, methods: list[str]) -> tuple[list[Answer], bool]:
    """The responses in `data`; an answer to HEAD (by the corpus's methods) has no body."""
    answers: list[Answer] = []
    position = 0
    while position < len(data):
        status = _STATUS.match(data, position)
        end = data.find(b"\r\n\r\n", position)
        if status is None or end < 0:
            return answers, True
        head = data[position:end].decode("latin-1").lower()
        length = re.search(r"\r\ncontent-length: *(\d+)", head)
        head_request = len(answers) < len(methods) and methods[len(answers)] == "HEAD"
        size = int(length.group(1)) if length and not head_request else 0
        body_start = end + 4
        answers.append(Answer(int(status.group(1)), data[body_start : body_start + size]))
        position = body_start + size
    return answers, False


def verdict(case: Case, outcome: Outcome) -> str:
    """'' when Corral's answers agree with the corpus, else how they differ."""
    if outcome.hung or outcome.garbled:
        return outcome.summary()
    expected = len(case.requests)
    leading = 0
    for answer in outcome.answers:
        if not 200 <= answer.status < 300:
            break
        leading += 1
    rest = outcome.answers[leading:]
    if leading != expected:
        return f"{leading} of {expected} requests answered 2xx ({outcome.summary()})"
    for answer, request in zip(outcome.answers, case.requests, strict=False):  # answers may run short
        if request.method == "HEAD":
            continue  # no body to read the parsed request from
        parsed = json.loads(answer.body)
        if parsed["method"] != request.method:
            return f"method {parsed['method']!r}, corpus {request.method!r}"
        if request.body is not None and parsed["body"].encode("latin-1") != request.body:
            return f"body {parsed['body'][:40]!r}, corpus {request.body[:40]!r}"
    if case.valid and rest:
        return f"an extra answer after the requests ({outcome.summary()})"
    if not case.valid and any(200 <= a.status < 300 for a in rest):
        return f"accepted ({outcome.summary()})"
    return ""
