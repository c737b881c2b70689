"""Process probes for soak runs (bench/bench_soak.py and tests/test_soak.py): resident
memory, open file descriptors, and a text sink that counts the lines written to it."""

from __future__ import annotations

import io
import os
from pathlib import Path

__all__ = ["Discard", "open_fds", "rss_mib"]


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
