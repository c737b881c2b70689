"""Soak: many fast cycles against the simulator, watching memory, database size and file
descriptors. Data time moves 5 minutes a cycle, so 20,000 cycles are 69 days: retention
has to keep the file bounded. tests/test_soak.py runs a reduced form in CI.

    .venv/bin/python bench/bench_soak.py [--cycles 20000]     (or: make soak)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bot.notify import ConsoleNotifier
from bot.rules import default_rules_text, parse_rules
from bot.source import UsageClient
from bot.standins.probes import Discard, open_fds, rss_mib
from bot.standins.simulator import Incident, ManualClock, Simulator
from bot.store import Store
from bot.worker import Worker


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=20_000)
    args = parser.parse_args()
    start = datetime(2026, 9, 1, tzinfo=UTC)
    clock = ManualClock(start)
    # An hour-long failure spike every fifth day keeps alerts firing and resolving.
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
    samples: list[tuple[float, float, float, int]] = []  # data day, RSS MiB, DB MiB, fds
    errors = gaps = 0
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "soak.db"
        store = Store(db)
        told = Discard()
        with httpx.Client(base_url="http://sim", transport=httpx.MockTransport(sim.handle)) as http:
            worker = Worker(
                client=UsageClient(http, api_key="sim-key"),
                store=store,
                ruleset=ruleset,
                clock=clock,
                notifier=ConsoleNotifier({r.name: r for r in ruleset.rules}, out=told),
            )
            began = time.perf_counter()
            marks = sorted({args.cycles // 10 * i for i in range(1, 11)} | {1, 100, 1000})
            print(
                f"{'cycle':>7} {'data day':>8} {'RSS MiB':>8} {'DB MiB':>7} {'events':>8} "
                f"{'fds':>4} {'s':>6}"
            )
            for cycle in range(1, args.cycles + 1):
                clock.advance(timedelta(minutes=5))
                errors += len(worker.tick().errors)
                if cycle % 288 == 0:  # daily: the simulator forgets what the bot stored
                    sim.forget_before(clock() - timedelta(days=2))
                    sim.requests.clear()  # and its request log: the harness's memory
                if cycle % 72 == 0:  # every 6 hours of data time
                    size = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 2**20
                    day = (clock() - start) / timedelta(days=1)
                    samples.append((day, rss_mib(), size, open_fds()))
                    gaps = max(gaps, len(store.gaps()))
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
    print(
        f"{transitions} alert transitions ({told.lines} console lines), {errors} cycle errors, "
        f"{gaps} events gaps"
    )
    if len(samples) >= 3:
        third = len(samples) // 3
        rss = [s[1] for s in samples]
        parts = [rss[:third], rss[third : 2 * third], rss[2 * third :]]
        print(
            "RSS median by thirds of the run: "
            + " / ".join(f"{statistics.median(p):.1f}" for p in parts)
            + f" MiB (min {min(rss):.1f}, max {max(rss):.1f})"
        )
        print("data week: RSS median and max (MiB), database at its end (MiB), open fds")
        for week in range(int(samples[-1][0] // 7) + 1):
            these = [s for s in samples if week * 7 <= s[0] < (week + 1) * 7]
            if these:
                print(
                    f"  {week + 1:>2}: {statistics.median(s[1] for s in these):6.1f} "
                    f"{max(s[1] for s in these):6.1f}  {these[-1][2]:6.1f}  "
                    f"{max(s[3] for s in these)}"
                )


if __name__ == "__main__":
    main()
