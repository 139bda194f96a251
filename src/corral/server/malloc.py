"""glibc's allocator, tuned in each worker for request bodies held in memory.

A body up to --body-buffer-size is joined into one bytes object and freed after its
response. glibc's defaults let that churn hit the kernel: the mmap threshold starts at
128 KiB and moves with what is freed, and the top of the heap is given back (trimmed)
whenever 2x that threshold lies free there. Depending on the heap's state at fork,
50 connections uploading 1 MiB each ran at 4,000 or at 550 requests/s: the slow
case spent its time in page faults on memory just given back (docs/benchmarks.md).

So a worker fixes the mmap threshold above the largest in-memory body (such a body
comes from the heap and its pages are reused) and trims only once 64 MiB lie free.
The cost: a worker that served a burst of large uploads keeps up to that much freed
memory for the next burst (--max-worker-memory still recycles it). A user's own
MALLOC_* or GLIBC_TUNABLES settings win, and other C libraries are left alone.
"""

from __future__ import annotations

import ctypes
import os

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_MIB = 1024 * 1024
_MMAP_FLOOR = 4 * _MIB  # bodies a little over the limit, and other large buffers, stay on the heap too
_MMAP_CEILING = 32 * _MIB  # glibc's own maximum for the threshold on 64-bit
TRIM_THRESHOLD = 64 * _MIB

_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def mmap_threshold(body_buffer_size: int) -> int:
    """The mmap threshold for bodies of up to `body_buffer_size` bytes held in memory."""
    return max(_MMAP_FLOOR, min(_MMAP_CEILING, 2 * body_buffer_size))


def user_tuned(environ: dict[str, str] | os._Environ[str]) -> bool:
    """Whether the environment already tunes glibc's allocator (then it is not ours to)."""
    return any(name in environ for name in _USER_SETTINGS) or "glibc.malloc" in environ.get("GLIBC_TUNABLES", "")


def _glibc() -> bool:
    """Whether this process runs on glibc (what platform.libc_ver() asks first, without importing it)."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (AttributeError, ValueError, OSError):
        return False


def tune_for_bodies(body_buffer_size: int) -> bool:
    """Apply the tuning in this process; True when glibc took it."""
    if not _glibc() or user_tuned(os.environ):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    took = mallopt(_M_MMAP_THRESHOLD, mmap_threshold(body_buffer_size))
    return bool(took and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
