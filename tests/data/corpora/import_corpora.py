"""Copy other projects' public HTTP request corpora into tests/data/corpora/, unmodified.

    python tests/data/corpora/import_corpora.py [--gunicorn REPO] [--llhttp REPO]

REPO is a git repository (a clone, or a bare mirror) of https://github.com/benoitc/gunicorn
or https://github.com/nodejs/llhttp; without one the script clones it from GitHub. Files
are taken from the repository's HEAD and written as they are, beside the project's licence
and a SOURCE file naming the repository and commit, so the attribution travels with the
data. tests/corpus.py reads them; nothing here interprets them.

  gunicorn/  tests/requests/{valid,invalid}/*.http (raw requests) and *.py (expectations)
  llhttp/    test/request/*.md (requests with llhttp's expected parse log)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = {
    "gunicorn": ("https://github.com/benoitc/gunicorn", ["tests/requests/valid", "tests/requests/invalid"],
                 ["LICENSE", "NOTICE"]),
    "llhttp": ("https://github.com/nodejs/llhttp", ["test/request"], ["LICENSE"]),
}


def git(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True).stdout


@contextmanager
def repository(name: str, given: Path | None) -> Iterator[Path]:
    if given is not None:
        yield given
        return
    url = SOURCES[name][0]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["git", "clone", "--quiet", "--depth", "1", url, tmp], check=True)
        yield Path(tmp)


def import_corpus(name: str, repo: Path) -> int:
    url, directories, licences = SOURCES[name]
    commit = git(repo, "rev-parse", "HEAD").decode().strip()
    target = HERE / name
    shutil.rmtree(target, ignore_errors=True)
    count = 0
    for directory in directories:
        for path in git(repo, "ls-tree", "-r", "--name-only", "HEAD", directory).decode().splitlines():
            if not path.endswith((".http", ".py", ".md")):
                continue
            out = target / Path(path).relative_to(Path(directory).parent)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(git(repo, "show", f"HEAD:{path}"))
            count += 1
    for licence in licences:
        (target / licence).write_bytes(git(repo, "show", f"HEAD:{licence}"))
    (target / "SOURCE").write_text(
        f"Imported unmodified from {url} at commit {commit}\n"
        f"({', '.join(directories)}) by tests/data/corpora/import_corpora.py.\n"
        f"Licence: {', '.join(licences)} in this directory.\n"
    )
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gunicorn", type=Path, help="a git repository of gunicorn (default: clone it)")
    parser.add_argument("--llhttp", type=Path, help="a git repository of llhttp (default: clone it)")
    args = parser.parse_args(argv)
    for name in SOURCES:
        with repository(name, getattr(args, name)) as repo:
            print(f"{name}: {import_corpus(name, repo)} files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
