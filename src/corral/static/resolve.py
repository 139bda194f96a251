"""From a URL path to an open file under a static root, refusing everything unsafe.

How this works: `safe_relative` checks the decoded path below the prefix segment by
segment (no `..` or `.`, no dotfiles, no empty segments, no NUL or backslash), so the file
is always `root + "/" + segments` and an absolute or escaping path cannot be formed. The
file is opened (non-blocking, so a FIFO cannot hang the loop) and fstat'ed: only regular
files are served, never directories. What it costs to describe a file (realpath for the
symlink rule, the precompressed siblings, the validators and the head) is kept in a
bounded cache whose entries hold while the opened file has the same identity (device,
inode, size, mtime) and for at most REVALIDATE seconds, so a hot file costs one open and
one fstat. Comparing the *opened* file's identity (not a stat of the path) means the
checks always describe the bytes actually sent.
"""

from __future__ import annotations

import os
import stat
import time
from typing import TypeGuard

from . import rules

# Seconds a file's description is trusted without redoing realpath and the sibling stats:
# a symlink swapped in a parent directory or a new .br sibling is noticed within this.
REVALIDATE = 2.0
_CACHE_LIMIT = 4096  # described files per root; beyond it the cache is cleared and refilled
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def safe_relative(rest: bytes) -> bytes | None:
    """The path below the prefix ("/css/app.css") as b"css/app.css", or None when refused."""
    if not rest or rest[0] != 0x2F:  # "/"
        return None
    relative = rest[1:]
    if not relative or relative[-1] == 0x2F or b"\x00" in relative or b"\\" in relative:
        return None  # the prefix itself or a directory: never listed
    for segment in relative.split(b"/"):
        if not segment or segment[0] == 0x2E:  # empty, ".", "..", or a dotfile (".env", ".git")
            return None
    return relative


class Described:
    """What one served file says about itself, computed once per version of the file."""

    __slots__ = ("identity", "checked", "size", "mtime", "etag", "block", "not_modified", "siblings", "encoding")

    def __init__(
        self, identity: tuple[int, int, int, int], size: int, mtime_ns: int, name: str, encoding: str,
        cache_control: str, siblings: tuple[str, ...], vary: bool,
    ) -> None:
        self.identity = identity
        self.checked = time.monotonic()
        self.size = size
        self.mtime = mtime_ns // 1_000_000_000
        self.etag = rules.make_etag(size, mtime_ns, encoding)
        self.siblings = siblings  # precompressed encodings beside the file, best first
        self.encoding = encoding
        # What a 304 repeats of a 200 (RFC 9110 15.4.5: validators, caching, Vary).
        kept = [f"ETag: {self.etag}\r\n"]
        if cache_control:
            kept.append(f"Cache-Control: {cache_control}\r\n")
        if vary:
            kept.append("Vary: Accept-Encoding\r\n")
        self.not_modified = "".join(kept).encode("latin-1")
        lines = [
            f"Content-Type: {rules.content_type(name)}\r\n",
            f"Last-Modified: {rules.http_date(self.mtime)}\r\n",
            "Accept-Ranges: bytes\r\n",
        ]
        if encoding:
            lines.append(f"Content-Encoding: {encoding}\r\n")
        # The head minus status, Date, Content-Length/Range and Connection (see serve.py).
        self.block = "".join(lines).encode("latin-1") + self.not_modified


def identity_of(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _fresh(described: Described | None, st: os.stat_result) -> TypeGuard[Described]:
    """The description still holds for the file just opened."""
    return (
        described is not None
        and described.identity == identity_of(st)
        and time.monotonic() - described.checked <= REVALIDATE
    )


class Root:
    """One static directory: opens and describes the files under it."""

    def __init__(self, directory: str, follow_symlinks: bool, cache_control: str, private: bool) -> None:
        self.directory = os.fsencode(os.path.abspath(directory))
        self.real = os.path.realpath(self.directory)
        self.follow_symlinks = follow_symlinks
        self.cache_control = cache_control
        self.private = private
        self._described: dict[bytes, Described] = {}

    def open(self, relative: bytes) -> tuple[int, Described] | None:
        """An open file descriptor and its description, or None (404: missing, refused, not a file)."""
        path = self.directory + b"/" + relative
        opened = self._open_regular(path)
        if opened is None:
            return None
        fd, st = opened
        described = self._described.get(path)
        if not _fresh(described, st):
            described = self._describe(path, st, "", self._siblings(path))
            if described is None:
                os.close(fd)
                return None
        return fd, described

    def open_encoded(self, relative: bytes, encoding: str) -> tuple[int, Described] | None:
        """The precompressed sibling for `encoding`, or None when it vanished or is refused."""
        path = self.directory + b"/" + relative
        sibling = path + dict(rules.ENCODINGS)[encoding]
        opened = self._open_regular(sibling)
        if opened is None:
            return None
        fd, st = opened
        described = self._described.get(sibling)
        if not _fresh(described, st):
            described = self._describe(sibling, st, encoding, (), name=path)
            if described is None:
                os.close(fd)
                return None
        return fd, described

    def _open_regular(self, path: bytes) -> tuple[int, os.stat_result] | None:
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except OSError:  # missing, a component not a directory, not readable, too long...
            return None
        try:
            st = os.fstat(fd)
        except OSError:
            os.close(fd)
            return None
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        return fd, st

    def _describe(
        self, path: bytes, st: os.stat_result, encoding: str, siblings: tuple[str, ...], name: bytes | None = None
    ) -> Described | None:
        if not self.follow_symlinks and not self._inside(path):
            return None
        shown = os.fsdecode(name if name is not None else path)
        described = Described(
            identity_of(st),
            st.st_size,
            st.st_mtime_ns,
            shown,
            encoding,
            rules.cache_control(shown, self.cache_control, self.private),
            siblings,
            vary=bool(siblings) or bool(encoding),
        )
        if len(self._described) >= _CACHE_LIMIT:
            self._described.clear()
        self._described[path] = described
        return described

    def _inside(self, path: bytes) -> bool:
        """The file's real path is under the root's real path (symlinks resolved)."""
        real = os.path.realpath(path)
        return real.startswith(self.real + b"/")

    def _siblings(self, path: bytes) -> tuple[str, ...]:
        found = []
        for encoding, suffix in rules.ENCODINGS:
            try:
                st = os.stat(path + suffix)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                found.append(encoding)
        return tuple(found)
