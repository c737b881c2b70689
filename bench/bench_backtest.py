"""Backtest throughput: 1,000,000 events through `usage-bot backtest`'s path, against
merely parsing the same JSON Lines with the standard json module.

    .venv/bin/python bench/bench_backtest.py [--events N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot import backtest
from bot.rules import default_rules_text, parse_rules
from bot.standins.simulator import Incident, ManualClock, Simulator


def write_events(path: Path, target: int) -> int:
    start = datetime(2026, 10, 1, tzinfo=UTC)
    per_day = 2 * 24 * 1500  # about two events per job at 1,500 jobs/hour
    days = max(1, round(target / per_day))
    end = start + timedelta(days=days)
    spike = Incident(
        "failure_spike",
        end - timedelta(days=1, hours=10),
        end - timedelta(days=1, hours=9),
        model="pro",
        failure_rate=0.5,
    )
    sim = Simulator(start=start, clock=ManualClock(end), jobs_per_hour=1500, incidents=[spike])
    count = 0
    with path.open("w") as out:
        for day in range(days):
            chunk_end = start + timedelta(days=day + 1)
            for item in sim.events_until(chunk_end):
                if item["created_at"] >= (chunk_end - timedelta(days=1)).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ):
                    out.write(json.dumps(item) + "\n")
                    count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    rules = parse_rules(default_rules_text()).rules
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        count = write_events(path, args.events)
        size = path.stat().st_size
        began = time.perf_counter()
        with path.open("rb") as handle:
            for line in handle:
                json.loads(line)
        parse = time.perf_counter() - began
        began = time.perf_counter()
        recording = backtest.load(rules, path)
        loaded = time.perf_counter() - began
        transitions = backtest.run(recording)
        total = time.perf_counter() - began
    print(f"{count:,} events ({size / 2**20:.0f} MiB), {len(transitions)} transitions")
    print(f"  json.loads only:  {parse:6.2f} s  ({count / parse:,.0f} events/s)")
    print(f"  backtest load:    {loaded:6.2f} s")
    print(
        f"  backtest total:   {total:6.2f} s  ({count / total:,.0f} events/s), "
        f"{total / parse:.2f}x the parse time"
    )


if __name__ == "__main__":
    main()
