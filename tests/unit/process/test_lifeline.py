"""die_with_parent: a child asks the kernel for SIGTERM when its parent exits."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import textwrap

import pytest

# A parent that forks a child, waits until the child has called die_with_parent, prints the
# child's pid and exits: the child would sleep for a minute unless the signal ends it.
PARENT = textwrap.dedent(
    """
    import os, signal, sys, time
    from corral.process.lifeline import die_with_parent

    me = os.getpid()
    armed_r, armed_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)  # a lingering child must not hold the test's pipes
        os.dup2(null, 2)
        ok = die_with_parent(me)  # (never called in the test process: it would follow pytest's parent)
        os.write(armed_w, b"1" if ok else b"0")
        time.sleep(60)
        os._exit(0)
    print(pid, os.read(armed_r, 1).decode(), flush=True)
    """
)


def exited_within(pid: int, seconds: float) -> bool:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True  # already gone
    try:
        return bool(select.select([fd], [], [], seconds)[0])  # a pidfd is readable once the process exits
    finally:
        os.close(fd)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_child_dies_when_its_parent_does() -> None:
    out = subprocess.run([sys.executable, "-c", PARENT], capture_output=True, timeout=10, check=True, text=True)
    pid, armed = out.stdout.split()
    assert armed == "1"  # the parent was alive when the child asked
    if not exited_within(int(pid), 2.0):
        os.kill(int(pid), 9)
        pytest.fail("the child outlived its parent")
