"""The bot's own work per live cycle (store + score + decide), network excluded.

4 models x 3 segments, 90 days of summary history and a week of stored events; the
default rules plus failure-rate and spend rules per (model, segment). Each cycle is fed a
pre-fetched events page, so the figure is what the bot itself costs. Run on both stores
in the same run: a SQLite file, and PostgreSQL over loopback (a throwaway server of the
machine's PostgreSQL binaries, durable settings; or BENCH_DATABASE_URL, a server the
benchmark may create a database on).

    .venv/bin/python bench/bench_cycle.py
"""

from __future__ import annotations

import statistics
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


def measure(name: str, target: str | Path) -> None:
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
    for i in range(1, CYCLES + 1):
        clock.set(START + timedelta(minutes=i))
        began = time.perf_counter()
        worker.tick()
        times.append((time.perf_counter() - began) * 1000)
    store.close()
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


class _Quiet:
    def send(self, transition_id: int, transition: object) -> None:
        pass

    def recover(self, store: object, now: object, cold: object = None) -> int:
        return 0


if __name__ == "__main__":
    main()
