"""`usage-bot tune` on a realistic store: 15 days of events (what retention keeps for a 7-day
baseline) at 1,500 jobs an hour, the default failed-job-rate rule, one alert marked noise
and one expected; the time of `tune --days 7` and of one replay.

    .venv/bin/python bench/bench_tune.py [--days-stored N] [--store PATH]

`--store PATH` keeps the generated SQLite store and reuses it on the next run.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot import tune
from bot.models import EXPECTED, FIRING, NOISE, Event, EventsPage, Rule
from bot.rules import default_rules_text, parse_rules
from bot.standins.simulator import Incident, ManualClock, Simulator
from bot.store import Store

START = datetime(2026, 10, 1, tzinfo=UTC)
PAGE = 50_000


def build(path: Path, days: int) -> None:
    end = START + timedelta(days=days)
    incidents = [
        Incident(  # a mild rise, to be marked noise (proven at every budget tried)
            "failure_spike",
            end - timedelta(days=3, hours=10),
            end - timedelta(days=3, hours=8),
            model="pro",
            failure_rate=0.12,
        ),
        Incident(  # an outage of the model, to be marked expected
            "failure_spike",
            end - timedelta(days=1, hours=10),
            end - timedelta(days=1, hours=9),
            model="pro",
            failure_rate=0.5,
        ),
    ]
    sim = Simulator(start=START, clock=ManualClock(end), jobs_per_hour=1500, incidents=incidents)
    store = Store(path)
    try:
        count = 0
        for day in range(days):
            items = sim.events_until(START + timedelta(days=day + 1))
            sim.forget_before(START + timedelta(days=day + 1))
            fresh = [Event.from_api(i) for i in items]
            for i in range(0, len(fresh), PAGE):
                page = tuple(fresh[i : i + PAGE])
                store.save_events(EventsPage(len(page) + 1, page), stored_at=end)
            count += len(fresh)
        print(f"stored {count:,} events over {days} days")
    finally:
        store.close()


def mark(store: Store, rule_name: str) -> None:
    """The rule's own alerts over the span stored as told; the first marked noise, the
    last expected (as people would, for the bench)."""
    rule = rule_of(rule_name)
    end = store.newest_event_time()
    assert end is not None
    start = end - timedelta(days=7)
    told = tune.replay(tune.load(store, rule, start, end), rule, start, end)
    store.save_decisions([], told, {}, end)
    firings = [t for t in told if t.state == FIRING]
    print(f"the rule's own alerts over the last 7 days: {len(firings)}")
    for firing, verdict in ((firings[0], NOISE), (firings[-1], EXPECTED)):
        assert firing.since is not None
        store.record_verdict(rule.name, firing.group, firing.since, verdict, "U1", end)


def rule_of(name: str) -> Rule:
    return next(r for r in parse_rules(default_rules_text()).rules if r.name == name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days-stored", type=int, default=15)
    parser.add_argument("--store", type=Path, help="keep (and reuse) the store here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.store or Path(tmp) / "store.db"
        if not path.exists():
            build(path, args.days_stored)
            store = Store(path)
            try:
                mark(store, "failed-job-rate")
            finally:
                store.close()
        rule = rule_of("failed-job-rate")
        store = Store(path)
        try:
            end = store.newest_event_time()
            assert end is not None
            began = time.perf_counter()
            history = tune.load(store, rule, end - timedelta(days=7), end)
            loaded = time.perf_counter() - began
            began = time.perf_counter()
            tune.replay(history, rule, end - timedelta(days=7), end)
            one = time.perf_counter() - began
            began = time.perf_counter()
            found = tune.tune(store, rule, end, days=7)
            total = time.perf_counter() - began
        finally:
            store.close()
    knobs = ", ".join(f"{k.field} ({len(k.values(rule))})" for k in found.knobs)
    print(f"{len(history.events):,} events loaded in {loaded:.2f} s; one replay {one:.2f} s")
    print(f"tune --days 7: {len(found.trials)} replays ({knobs}) in {total:.1f} s")
    best = found.suggestion()
    print(f"suggestion: {best.setting if best else 'no setting tried is right'}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory {peak:.0f} MiB")


if __name__ == "__main__":
    main()
