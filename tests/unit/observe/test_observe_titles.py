"""Process titles, checked in a child process (setting one changes the whole process)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from corral.observe.titles import process_title

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def run_child(code: str) -> dict[str, str]:
    script = textwrap.dedent(code) + textwrap.dedent(
        """
        import json, os, subprocess
        ps = subprocess.run(["ps", "-o", "args=", "-p", str(os.getpid())], capture_output=True, text=True).stdout
        print(json.dumps({"comm": open("/proc/self/comm").read().strip(), "ps": ps.strip()}))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_title_text() -> None:
    assert process_title("master") == "corral: master"
    assert process_title("worker", site="blog") == "corral: worker site=blog"
    assert process_title("worker", site="", gen=None) == "corral: worker"


def test_ps_shows_the_title() -> None:
    seen = run_child("from corral.observe.titles import set_title; set_title('worker', site='blog')")
    assert seen["ps"] == "corral: worker site=blog"
    assert seen["comm"] == "corral: worker"  # the kernel keeps 15 bytes


def test_without_setproctitle_the_short_name_is_still_set() -> None:
    seen = run_child(
        """
        import sys
        sys.modules["setproctitle"] = None  # as if not installed
        from corral.observe.titles import set_title
        set_title("master")
        """
    )
    assert seen["comm"] == "corral: master"
    assert "corral: master" not in seen["ps"]  # argv untouched: no setproctitle, no hack
