"""The bot's own work per live cycle (store + score + decide), network excluded.

4 models x 3 segments, 90 days of summary history and a week of stored events; the
default rules plus failure-rate and spend rules per (model, segment). Each cycle is fed a
pre-fetched events page, so the figure is what the bot itself costs. Run on both stores
in the same run: a SQLite file, and PostgreSQL over loopback (a throwaway server of the
machine's PostgreSQL binaries, durable settings; or BENCH_DATABASE_URL, a server the
benchmark may create a database on).

    .venv/bin/python bench/bench_cycle.py
    .venv/bin/python bench/bench_cycle.py --round-trips   # and count them on PostgreSQL

With --round-trips, libpq's protocol trace of the PostgreSQL run counts the times the
bot waits for the server each cycle: each Sync (a statement, or a pipeline of them), each
Flush (a read inside a pipelined transaction) and each simple Query (psycopg's BEGIN and
COMMIT outside a pipeline). Tracing slows the cycle a little; its times are shown apart.
"""

from __future__ import annotations

import collections
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.models import Event, EventsPage, Rule, RuleSet, Summary
from bot.rules import default_rules_text, parse_rules
from bot.standins import postgres
from bot.standins.simulator import ManualClock, Simulator
from bot.store import Store
from bot.worker import Worker

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CYCLES = 200


class PrefetchedClient:
    """Hands the worker pages fetched before timing started."""

    def __init__(self, pages: list[EventsPage], summary: Summary) -> None:
        self.pages = pages
        self.summary_body = summary

    def events(self, limit: int) -> EventsPage:
        return self.pages.pop(0)

    def summary(self, days: int) -> Summary:
        return self.summary_body


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, postgres.admin_url() as admin:
        folder = Path(tmp)
        for name, target in (
            ("SQLite", folder / "bench.db"),
            ("PostgreSQL", postgres.create_database(admin, "bench")),
        ):
            measure(name, target)
        if "--round-trips" in sys.argv[1:]:
            trace = folder / "libpq.trace"
            measure("PostgreSQL, traced", postgres.create_database(admin, "bench"), trace)


def measure(name: str, target: str | Path, trace: Path | None = None) -> None:
    clock = ManualClock(START)
    sim = Simulator(start=START - timedelta(days=8), clock=clock, jobs_per_hour=300)
    history = [Event.from_api(i) for i in reversed(sim.events_until(START))]
    summary = Summary.from_api(sim.summary(90))
    pages = []
    for i in range(1, CYCLES + 2):
        clock.set(START + timedelta(minutes=i))
        body = sim.events_page(100)
        pages.append(EventsPage(100, tuple(Event.from_api(x) for x in body["items"])))
    base = parse_rules(default_rules_text())
    extra = (
        Rule(
            name="failures-by-segment",
            metric="failure_rate",
            group_by=("model", "metadata.segment"),
            bucket=900,
            baseline=7 * 86400,
            method="plain",
            min_volume=10,
            min_rate=0.05,
        ),
        Rule(
            name="spend-by-segment",
            metric="spend",
            group_by=("model", "metadata.segment"),
            bucket=3600,
            baseline=7 * 86400,
            seasonal="hour_of_day",
            min_credits=2000,
        ),
    )
    ruleset = RuleSet(poll=base.poll, rules=base.rules + extra)
    store = Store(target)
    store.save_events(EventsPage(len(history) + 1, tuple(history)), stored_at=START)
    store.save_summary(summary, polled_at=START)
    if store.engine == "postgres":
        # The planner's statistics of the week just loaded, as autovacuum gathers them
        # within a minute of a bulk load on a running server: without them the hourly
        # prune's `created_at < ?` is planned as a scan of the whole table (30-45 ms).
        store.db.execute("analyze")
    clock.set(START)
    worker = Worker(
        client=PrefetchedClient(pages, summary),
        store=store,  # type: ignore[arg-type]
        ruleset=ruleset,
        clock=clock,
        notifier=_Quiet(),
    )
    began = time.perf_counter()
    worker.prepare(START)
    restore = time.perf_counter() - began
    times = []
    trips = RoundTrips(store, trace) if trace is not None else None
    for i in range(1, CYCLES + 1):
        clock.set(START + timedelta(minutes=i))
        began = time.perf_counter()
        worker.tick()
        times.append((time.perf_counter() - began) * 1000)
        if trips is not None:
            trips.cycle_done()
    store.close()
    if trips is not None:
        trips.file.close()
    times.sort()
    print(
        f"{name}: {len(history):,} stored events, 90 days of summary, "
        f"{len(ruleset.rules)} rules, {CYCLES} cycles"
    )
    print(f"  rebuild from the store at start: {restore * 1000:.0f} ms")
    print(
        f"  cycle ms: median {statistics.median(times):.1f}, p95 {times[int(0.95 * CYCLES)]:.1f}, "
        f"max {times[-1]:.1f}"
    )
    if trips is not None:
        counts = collections.Counter(trips.counts)
        print(
            f"  round trips per cycle: median {statistics.median(trips.counts):g}; "
            f"cycles per count: {dict(sorted(counts.items()))}"
        )


class RoundTrips:
    """Counts, per cycle, the times the store's connection waited for PostgreSQL."""

    WAIT = re.compile(r"^F\t\d+\t(\w+)", re.MULTILINE)

    def __init__(self, store: Store, path: Path) -> None:
        from psycopg import pq

        self.file = path.open("w")
        pgconn = store.db.conn.pgconn  # type: ignore[attr-defined]
        pgconn.trace(self.file.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        self.path, self.read_to = path, 0
        self.counts: list[int] = []

    def cycle_done(self) -> None:
        self.file.flush()
        size = os.path.getsize(self.path)
        with self.path.open() as file:
            file.seek(self.read_to)
            text = file.read(size - self.read_to)
        self.read_to = size
        waits, sent = 0, False
        for kind in self.WAIT.findall(text):
            if kind in ("Sync", "Query") or (kind == "Flush" and sent):
                waits, sent = waits + 1, False
            elif kind != "Flush":
                sent = True  # Parse, Bind, Describe, Execute: a statement on its way
        self.counts.append(waits)


class _Quiet:
    def send(self, transition_id: int, transition: object) -> None:
        pass

    def recover(self, store: object, now: object, cold: object = None) -> int:
        return 0


if __name__ == "__main__":
    main()
