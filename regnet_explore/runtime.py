"""Process-level settings that make CPU inference and training faster.

glibc hands every allocation above 128 KiB to ``mmap`` and gives it back on ``free``: each stage's fresh (N, 64)
buffers then cost page faults and kernel zeroing on every frame, which on this project's hot path (300k points,
40k pillars) is slower than the arithmetic itself. Raising the mmap and trim thresholds keeps freed memory in the
heap for reuse, as jemalloc/tcmalloc do (what it gains per stage: ``benchmarks/inference.py --default-allocator``
against the default run).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
THRESHOLD = 1 << 30


@functools.cache
def tune_allocator() -> bool:
    """Keep freed memory for reuse (glibc only; elsewhere nothing happens). Returns whether it applied."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, THRESHOLD))
    except (OSError, AttributeError):  # not glibc (musl, macOS): keep the defaults
        return False
