"""Process probes for soak runs (bench/bench_soak.py and tests/test_soak.py): resident
memory, open file descriptors, and a text sink that counts the lines written to it."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import io
import os
from pathlib import Path
from typing import Any

__all__ = ["Discard", "live_rss_mib", "open_fds", "rss_mib"]


def rss_mib() -> float:
    """This process's resident set size in MiB (Linux /proc; NaN elsewhere)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return float("nan")
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def live_rss_mib() -> float:
    """The resident set once garbage is collected and the C allocator has given its free
    pages back: what the process still holds. Plain RSS also counts memory freed but kept
    by glibc's arenas, which steps up and down by megabytes as numpy arrays regrow and
    SQLite's page cache churns, and would hide (or fake) a slow leak."""
    gc.collect()
    if (trim := _malloc_trim()) is not None:
        trim(0)
    return rss_mib()


@functools.cache
def _malloc_trim() -> Any:
    """glibc's malloc_trim, None elsewhere."""
    libc = ctypes.util.find_library("c")
    return None if libc is None else getattr(ctypes.CDLL(libc), "malloc_trim", None)


def open_fds() -> int:
    """How many file descriptors this process has open (Linux /proc)."""
    return len(os.listdir("/proc/self/fd"))


class Discard(io.TextIOBase):
    """Where the console notifier's alerts go: counted, not kept."""

    def __init__(self) -> None:
        self.lines = 0

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        return len(text)
