"""Safe resolution of URL paths to files under a static root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from corral.static.resolve import Root, safe_relative


@pytest.mark.parametrize(
    "rest",
    [
        b"",
        b"/",
        b"/css/",
        b"/../secret",
        b"/css/../../secret",
        b"/./app.css",
        b"/.env",
        b"/.git/config",
        b"/css/.hidden/app.css",
        b"//etc/passwd",
        b"/css//app.css",
        b"/app.css\x00.png",
        b"/..\\secret",
        b"/css\\app.css",
        b"css/app.css",
    ],
)
def test_refused_paths(rest: bytes) -> None:
    assert safe_relative(rest) is None


def test_accepted_paths() -> None:
    assert safe_relative(b"/css/app.css") == b"css/app.css"
    assert safe_relative(b"/a..b/c.d") == b"a..b/c.d"  # dots inside names are names
    assert safe_relative(b"/%2e%2e/x") == b"%2e%2e/x"  # decoded once already: a literal name


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "css").mkdir(parents=True)
    (root / "css" / "app.css").write_text("body{}")
    (root / "css" / "app.css.gz").write_bytes(b"gz")
    (root / "css" / "app.css.br").write_bytes(b"br")
    (root / "plain.txt").write_text("plain")
    (tmp_path / "outside.txt").write_text("outside")
    os.symlink(tmp_path / "outside.txt", root / "leak.txt")
    os.symlink(root / "plain.txt", root / "inside.txt")
    os.symlink(tmp_path, root / "up")
    os.mkfifo(root / "pipe")
    return root


def opened(root: Root, relative: bytes) -> str | None:
    result = root.open(relative)
    if result is None:
        return None
    fd, described = result
    try:
        return os.read(fd, 100).decode()
    finally:
        os.close(fd)


def test_files_directories_and_fifos(tree: Path) -> None:
    root = Root(str(tree), follow_symlinks=False, cache_control="", private=False)
    assert opened(root, b"plain.txt") == "plain"
    assert opened(root, b"css") is None  # a directory is never listed
    assert opened(root, b"missing") is None
    assert opened(root, b"plain.txt/x") is None
    assert opened(root, b"pipe") is None  # non-blocking open: a FIFO cannot hang the loop


def test_symlinks_leaving_the_root_are_refused_unless_allowed(tree: Path) -> None:
    strict = Root(str(tree), follow_symlinks=False, cache_control="", private=False)
    assert opened(strict, b"inside.txt") == "plain"
    assert opened(strict, b"leak.txt") is None
    assert opened(strict, b"up/outside.txt") is None
    loose = Root(str(tree), follow_symlinks=True, cache_control="", private=False)
    assert opened(loose, b"leak.txt") == "outside"
    assert opened(loose, b"up/outside.txt") == "outside"


def test_siblings_and_their_descriptions(tree: Path) -> None:
    root = Root(str(tree), follow_symlinks=False, cache_control="max-age=60", private=False)
    result = root.open(b"css/app.css")
    assert result is not None
    os.close(result[0])
    described = result[1]
    assert described.siblings == ("br", "gzip")
    assert b"Vary: Accept-Encoding\r\n" in described.block
    assert b"Content-Type: text/css; charset=utf-8\r\n" in described.block
    encoded = root.open_encoded(b"css/app.css", "gzip")
    assert encoded is not None
    assert os.read(encoded[0], 10) == b"gz"
    os.close(encoded[0])
    assert b"Content-Encoding: gzip\r\n" in encoded[1].block
    assert b"Content-Type: text/css" in encoded[1].block  # the type of what it encodes
    assert encoded[1].etag != described.etag
    plain = root.open(b"plain.txt")
    assert plain is not None
    os.close(plain[0])
    assert plain[1].siblings == () and b"Vary" not in plain[1].block


def test_a_changed_file_is_described_again(tree: Path) -> None:
    root = Root(str(tree), follow_symlinks=False, cache_control="", private=False)
    first = root.open(b"plain.txt")
    assert first is not None
    os.close(first[0])
    (tree / "plain.txt").write_text("changed, longer")
    second = root.open(b"plain.txt")
    assert second is not None
    os.close(second[0])
    assert second[1].size == len("changed, longer") and second[1].etag != first[1].etag
