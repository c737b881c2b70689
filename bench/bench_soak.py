"""Soak: many fast cycles against the simulator, watching memory, database size and file
descriptors. Data time moves 5 minutes a cycle, so 20,000 cycles are 69 days: retention
has to keep the file bounded.

    .venv/bin/python bench/bench_soak.py [--cycles 20000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bot.cli import default_rules_text
from bot.config import parse_rules
from bot.simulator import Incident, ManualClock, Simulator
from bot.source import UsageClient
from bot.store import Store
from bot.worker import Worker


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Quiet:
    def send(self, transition_id: int, transition: object) -> None:
        pass

    def recover(self, store: object, now: object) -> int:
        return 0

    def send_notice(self, notice: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=20_000)
    args = parser.parse_args()
    start = datetime(2026, 9, 1, tzinfo=UTC)
    clock = ManualClock(start)
    # A week-long failure spike every so often keeps alerts firing and resolving.
    incidents = [
        Incident(
            "failure_spike",
            start + timedelta(days=d, hours=14),
            start + timedelta(days=d, hours=15),
            model="pro",
            failure_rate=0.6,
        )
        for d in range(3, 400, 5)
    ]
    sim = Simulator(start=start, clock=clock, jobs_per_hour=200, incidents=incidents)
    ruleset = parse_rules(default_rules_text())
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "soak.db"
        store = Store(db)
        with httpx.Client(base_url="http://sim", transport=httpx.MockTransport(sim.handle)) as http:
            worker = Worker(
                client=UsageClient(http, api_key="sim-key"),
                store=store,
                ruleset=ruleset,
                clock=clock,
                notifier=Quiet(),
            )  # type: ignore[arg-type]
            began = time.perf_counter()
            marks = sorted({args.cycles // 10 * i for i in range(1, 11)} | {1, 100, 1000})
            print(
                f"{'cycle':>7} {'data day':>8} {'RSS MiB':>8} {'DB MiB':>7} {'events':>8} "
                f"{'fds':>4} {'s':>6}"
            )
            for cycle in range(1, args.cycles + 1):
                clock.advance(timedelta(minutes=5))
                worker.tick()
                if cycle % 288 == 0:  # daily: the simulator forgets what the bot stored
                    sim.forget_before(clock() - timedelta(days=2))
                if cycle in marks:
                    size = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 2**20
                    print(
                        f"{cycle:>7} {(clock() - start).days:>8} {rss_mib():>8.1f} "
                        f"{size:>7.1f} {store.count_events():>8,} {open_fds():>4} "
                        f"{time.perf_counter() - began:>6.0f}",
                        flush=True,
                    )
        transitions = len(store.transitions(100_000))
        store.close()
    print(f"{transitions} alert transitions over the run")


if __name__ == "__main__":
    main()
