"""What a `GET /metrics` scrape costs on a store the worker has filled for a week.

A poll log of 120,000 rows (two endpoints every 5 s, 2% errors: what the retention keeps),
5,000 delivered alert transitions, 100,000 events; then the collector's first scrape
(which reads the whole poll log once) and the steady ones after it. Usage:
`python bench/bench_metrics.py`.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.api_schema import EVENTS_PATH, SUMMARY_PATH
from bot.exposition import registry_for, render
from bot.models import format_time
from bot.store import Store

POLLS = 120_000
TRANSITIONS = 5_000
EVENTS = 100_000


def fill(store: Store, now: datetime) -> None:
    polls = []
    for i in range(POLLS):
        at = format_time(now - timedelta(seconds=5 * (POLLS - i)))
        failed = i % 50 == 0
        polls.append(
            {
                "endpoint": SUMMARY_PATH if i % 20 == 0 else EVENTS_PATH,
                "started_at": at,
                "finished_at": at,
                "duration_ms": 40.0,
                "status": "error" if failed else "ok",
                "http_status": 429 if failed else 200,
                "error_code": "rate_limited" if failed else None,
                "request_id": f"req_{i:08d}",
                "items_seen": 20,
                "items_new": 3,
            }
        )
    with store.db.transaction():
        store.db.insert_all("polls", polls)
        store.db.insert_all(
            "alert_transitions",
            (
                {
                    "rule": f"rule-{i % 6}",
                    "group_key": f'["g{i}"]',
                    "state": "firing",
                    "at": format_time(now - timedelta(minutes=i)),
                    "created_at": format_time(now - timedelta(minutes=i)),
                    "notified_at": format_time(now - timedelta(minutes=i)),
                    "key": f"k{i}",
                }
                for i in range(TRANSITIONS)
            ),
        )
        store.db.insert_all(
            "events",
            (
                {"id": f"evt_{i:08d}", "created_at": format_time(now - timedelta(seconds=6 * i))}
                for i in range(EVENTS)
            ),
        )


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "bench.db")
        store = Store(path)
        fill(store, datetime.now(UTC))
        store.close()
        registry = registry_for(path)
        started = time.perf_counter()
        body = render(registry)
        first = (time.perf_counter() - started) * 1000
        steady = []
        for _ in range(50):
            started = time.perf_counter()
            render(registry)
            steady.append((time.perf_counter() - started) * 1000)
        print(
            f"{POLLS:,} poll-log rows, {TRANSITIONS:,} transitions, {EVENTS:,} events: "
            f"first scrape {first:.1f} ms, then median {statistics.median(steady):.1f} ms "
            f"(max {max(steady):.1f}); {len(body):,} bytes"
        )


if __name__ == "__main__":
    main()
