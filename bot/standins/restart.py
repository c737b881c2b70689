"""A worker restart in the middle of a simulated day, on a store of choice: how soon a
spend runaway that starts an hour later is caught, compared with a worker that never
restarted. On Heroku a dyno restarts at least daily on a fresh disk: with SQLite the
restarted worker has lost the event history its hourly spend rule judges against; with
PostgreSQL it has not. Shared by tests/test_postgres.py and bench/bench_restart.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bot.rules import parse_rules
from bot.source import UsageClient
from bot.standins.simulator import Incident, ManualClock, Simulator
from bot.store import Store
from bot.worker import Worker

# An hourly spend rule judged against a day of stored events: what a fresh disk loses.
RULES = parse_rules(
    """
poll:
  events_every: 60s
  summary_every: 1h
rules:
  - name: spend-per-model
    metric: spend
    group_by: [model]
    bucket: 1h
    baseline: 12h
    z: 4
    direction: up
    min_credits: 100
"""
)
START = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # a Monday
RESTART = START + timedelta(hours=14)  # the daily restart
RUNAWAY = Incident(
    "spend_runaway",
    RESTART + timedelta(hours=1),  # starts an hour after the restart
    RESTART + timedelta(hours=4),
    model="pro",
    factor=10,
)
END = RESTART + timedelta(hours=3)


def spend_alert_after(first: str | Path, then: str | Path | None) -> datetime | None:
    """Run a worker on `first` from START to RESTART; then SIGKILL it (dropped, lease
    and all) and start a new one on `then` (None: the worker never restarts). When the
    runaway's spend alert (its model, from its start) fired, if it did by END."""
    clock = ManualClock(START)
    sim = Simulator(
        start=START - timedelta(hours=12), clock=clock, jobs_per_hour=200, incidents=[RUNAWAY]
    )

    def start_worker(store: Store) -> Worker:
        http = httpx.Client(base_url="http://sim", transport=httpx.MockTransport(sim.handle))
        client = UsageClient(http, api_key="sim-key")
        wall = lambda: clock().timestamp()  # noqa: E731 - real time moves with data time
        return Worker(client=client, store=store, ruleset=RULES, clock=clock, wall=wall)

    def drive(worker: Worker, until: datetime, step: timedelta) -> None:
        while clock() < until:
            clock.advance(step)
            worker.tick()

    store = Store(first)
    worker = start_worker(store)
    drive(worker, RESTART, timedelta(minutes=3))
    if then is not None:
        store.close()  # the process dies; only the database is left
        store = Store(then)
        worker = start_worker(store)
    drive(worker, END, timedelta(minutes=1))
    fired = [
        t.at
        for t in store.transitions(1000)
        if t.state == "firing" and t.group == (RUNAWAY.model,) and t.at >= RUNAWAY.start
    ]
    store.close()
    return min(fired, default=None)
