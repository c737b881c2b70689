"""Soak, reduced for CI: 2,500 cycles of the worker on a real SQLite file against the
simulator, 15 minutes of data time a cycle (26 days), alerts firing and resolving every
few days. Memory stays flat after warm-up, the file stops growing once retention starts
pruning (events older than 9 days, hourly in data time), and no file descriptor leaks.

`make soak` runs the full form (bench/bench_soak.py: 20,000 cycles, the default rules).
Here the rules look back one day instead of seven, so that the events kept (8 days, the
floor, plus a day) are reached, and passed, within the minute CI can spare.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bot.models import PollConfig, Rule, RuleSet, parse_time
from bot.notify import ConsoleNotifier
from bot.source import UsageClient
from bot.standins.probes import Discard, live_rss_mib, open_fds
from bot.standins.simulator import Incident, ManualClock, Simulator
from bot.store import Store
from bot.worker import MIN_EVENTS_KEPT, Worker

START = datetime(2026, 9, 7, tzinfo=UTC)  # a Monday
STEP = timedelta(minutes=15)
CYCLES = 2_500
SAMPLE_EVERY = 24  # cycles: every 6 hours of data time
# 60 jobs an hour: at the afternoon peak 15 minutes bring about 60 events, so a page of
# 100 always reaches back to the previous poll (a gap would leave the file smaller than
# it should be).
JOBS_PER_HOUR = 60
RULES = RuleSet(
    poll=PollConfig(events_every=900, summary_every=6 * 3600, summary_days=7),
    rules=(
        Rule(
            name="failed-job-rate",
            metric="failure_rate",
            group_by=("model",),
            bucket=900,
            baseline=86400,
            method="plain",
            z=4,
            min_volume=10,
            min_rate=0.05,
        ),
        Rule(name="total-spend", metric="spend", bucket=3600, baseline=86400, min_credits=2000),
    ),
)
# An hour of failing `original` jobs at the daily peak, every third day.
INCIDENTS = [
    Incident(
        "failure_spike",
        START + timedelta(days=d, hours=14),
        START + timedelta(days=d, hours=15),
        model="original",
        failure_rate=0.6,
    )
    for d in range(1, 26, 3)
]


def test_a_long_run_keeps_memory_file_and_descriptors_flat(tmp_path: Path) -> None:
    clock = ManualClock(START)
    sim = Simulator(start=START, clock=clock, jobs_per_hour=JOBS_PER_HOUR, incidents=INCIDENTS)
    db = tmp_path / "soak.db"
    store = Store(db)
    told = Discard()
    samples: list[tuple[float, float, float, int]] = []  # data day, RSS MiB, file MiB, fds
    errors: list[str] = []
    gaps = 0
    with httpx.Client(base_url="http://sim", transport=httpx.MockTransport(sim.handle)) as http:
        worker = Worker(
            client=UsageClient(http, api_key="sim-key"),
            store=store,
            ruleset=RULES,
            clock=clock,
            notifier=ConsoleNotifier({r.name: r for r in RULES.rules}, out=told),
        )
        for cycle in range(1, CYCLES + 1):
            clock.advance(STEP)
            report = worker.tick()
            errors += report.errors
            if cycle % 96 == 0:  # daily: the simulator forgets what the bot has stored,
                sim.forget_before(clock() - timedelta(days=2))
                sim.requests.clear()  # and its request log (the harness's memory, not ours)
            if cycle % SAMPLE_EVERY == 0:
                size = sum(p.stat().st_size for p in tmp_path.iterdir()) / 2**20
                day = (clock() - START) / timedelta(days=1)
                samples.append((day, live_rss_mib(), size, open_fds()))
                gaps = max(gaps, len(store.gaps()))  # before a week's pruning drops them
        oldest = store.db.execute("select min(created_at) from events").fetchone()[0]
        transitions = store.transitions(10_000)
        intact = store.integrity_ok()
        store.close()
    now = clock()
    rss = [s[1] for s in samples]
    sizes = [(day, size) for day, _, size, _ in samples]
    kept = MIN_EVENTS_KEPT + timedelta(days=1)
    # Warm-up lasts until the events kept (and the engine's counts of them) are full and
    # pruning has run a day; from then on the bot holds no more than it did.
    held = [r for (day, _, _, _), r in zip(samples, rss, strict=True) if day >= kept.days + 1]
    half = len(held) // 2
    settled, late = held[:half], held[half:]
    full_at = next(size for day, size in sizes if day >= kept.days + 1)  # a day of pruning
    fds = [s[3] for s in samples]
    print(
        f"\nsoak: {CYCLES} cycles, {(now - START).days} days; live RSS {rss[0]:.1f} MiB at "
        f"first, after warm-up median {statistics.median(settled):.1f} then "
        f"{statistics.median(late):.1f} MiB (max {max(rss):.1f}); file {full_at:.1f} MiB at "
        f"day {kept.days + 1}, {sizes[-1][1]:.1f} MiB at the end (max "
        f"{max(s for _, s in sizes):.1f}); fds {min(fds)}..{max(fds)}; "
        f"{len(transitions)} transitions"
    )

    # The run itself was sound: no failing cycle, no gap, alerts fired and resolved.
    assert errors == []
    assert gaps == 0 and intact
    states = [t.state for t in transitions]
    assert states.count("firing") >= 3 and states.count("resolved") >= 3
    assert told.lines > 0

    # Memory: after warm-up the second half holds no more than the first, give or take
    # 3 MiB. The live RSS (the allocator's free pages given back) is a weekly sawtooth of
    # 93 to 98 MiB here, its halves' medians under 1 MiB apart; they are about 800
    # cycles apart, so a leak of 5 KiB a cycle fails (checked by hoarding 5 KiB a tick).
    assert statistics.median(late) <= statistics.median(settled) + 3, rss

    # The file: events older than the retention window are gone, and once pruning runs
    # the file stops growing (without it, the last 5 days would add half again).
    assert parse_time(oldest) >= now - kept - timedelta(hours=2)
    assert max(size for day, size in sizes if day >= kept.days + 1) <= full_at * 1.10, sizes

    # Descriptors: the database, its WAL and shared memory; none more after the first day.
    assert max(fds[4:]) <= fds[3], fds
