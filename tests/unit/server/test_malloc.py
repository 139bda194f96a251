"""The worker's allocator tuning (server/malloc.py): what it sets, and that glibc takes it."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from corral.server import malloc

MIB = 1024 * 1024


def test_the_mmap_threshold_sits_above_the_largest_body_held_in_memory() -> None:
    assert malloc.mmap_threshold(1 * MIB) == 4 * MIB  # the floor
    assert malloc.mmap_threshold(8 * MIB) == 16 * MIB
    assert malloc.mmap_threshold(1024 * MIB) == 32 * MIB  # glibc's ceiling


@pytest.mark.parametrize("environ", [
    {"MALLOC_ARENA_MAX": "2"},  # not one of the settings we would change
    {"GLIBC_TUNABLES": "glibc.rtld.optional_static_tls=512"},
    {},
])
def test_other_settings_leave_the_tuning_to_us(environ: dict[str, str]) -> None:
    assert not malloc.user_tuned(environ)


@pytest.mark.parametrize("environ", [
    {"MALLOC_TRIM_THRESHOLD_": "0"},
    {"MALLOC_MMAP_THRESHOLD_": "131072"},
    {"MALLOC_TOP_PAD_": "0"},
    {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"},
])
def test_a_users_own_allocator_settings_win(environ: dict[str, str]) -> None:
    assert malloc.user_tuned(environ)


# In a fresh interpreter: how many MiB of 16 live 1 MiB bodies, then of two 8 MiB ones, glibc
# serves by mmap (mallinfo2's hblkhd). Its defaults mmap a 1 MiB block, and munmap it at
# free(): the next body faults its pages in again. Tuned, such blocks come from the heap.
PROBE = """
import ctypes, sys
from corral.server import malloc
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
tuned = malloc.tune_for_bodies(1024 * 1024) if sys.argv[1] == "tuned" else None
def mmapped():
    return libc.mallinfo2().hblkhd >> 20
start = mmapped()
bodies = [bytes(1 << 20) for _ in range(16)]
small = mmapped() - start
large = [bytes(8 << 20) for _ in range(2)]
print(tuned, small, mmapped() - start - small)
"""


def glibc_at_least(major: int, minor: int) -> bool:
    name, version = platform.libc_ver()
    return name == "glibc" and tuple(int(part) for part in version.split(".")[:2]) >= (major, minor)


@pytest.mark.skipif(not glibc_at_least(2, 33),
                    reason="the tuning is for glibc's allocator; mallinfo2 came in glibc 2.33")
def test_tuned_bodies_come_from_the_heap_and_larger_blocks_still_by_mmap() -> None:
    def mapped(mode: str) -> tuple[str, int, int]:
        env = {"PATH": "/usr/bin:/bin"}  # no MALLOC_* from the caller's environment
        out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=env,
                             check=True, timeout=30).stdout.split()
        return out[0], int(out[1]), int(out[2])

    assert mapped("default") == ("None", 16, 16)
    assert mapped("tuned") == ("True", 0, 16)  # above the 4 MiB threshold: mmap, as before
