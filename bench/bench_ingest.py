"""Polling pace figures for the README: the real worker loop (`bot.worker.run`, default
rules, no BOT_POLL_SECONDS) against the simulator over loopback HTTP, at a steady 50 and
200 events a second, for 60 s of real time each.

    .venv/bin/python bench/bench_ingest.py [--seconds 60] [--rates 50,200]

Counted over the span from the first events request to the last: the events the API made
visible in that span, how many of them the bot stored, the gaps it recorded, and the
requests it sent (events and summary) per second. The simulator runs in this process on
its own thread (like the production API, it answers while the worker works).
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.api_schema import EVENTS_PATH
from bot.rules import default_rules_text, parse_rules
from bot.source import UsageClient, make_http_client
from bot.standins.simulator import CompressedClock, Simulator
from bot.store import Store
from bot.worker import Worker, run

# 00:16 UTC: every job's completion (up to 15 min later) is inside the simulated day.
START = datetime(2026, 11, 23, 0, 16, tzinfo=UTC)


@dataclass(frozen=True)
class Figures:
    rate: float
    seconds: float
    produced: int
    stored: int
    gaps: int
    events_requests: int
    requests: int
    reasons: dict[str, int]

    @property
    def coverage(self) -> float:
        return self.stored / self.produced if self.produced else 1.0

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def measure(rate: float, seconds: float, db_path: Path) -> Figures:
    clock = CompressedClock(START, 1.0)
    sim = Simulator(start=START, clock=clock, events_per_second=rate)
    sim.events_page(1)  # generate the day so far before the clock matters
    clock.restart()
    ruleset = parse_rules(default_rules_text(), "<default rules>")
    stop = threading.Event()
    store = Store(db_path)
    with sim.serve() as server, make_http_client(server.url) as http:
        client = UsageClient(http, api_key=sim.api_key, sleep=stop.wait)
        worker = Worker(client=client, store=store, ruleset=ruleset, clock=clock)
        timer = threading.Timer(seconds, stop.set)
        timer.start()
        try:
            run(worker, every=ruleset.poll.events_every, stop=stop)
        finally:
            timer.cancel()
            worker.close()
    gaps = len(store.gaps())
    store.close()
    return figures(sim, db_path, rate, gaps)


def figures(sim: Simulator, db_path: Path, rate: float, gaps: int) -> Figures:
    """Coverage over the span of the events requests, from the simulator's request log."""
    polls = [r for r in sim.requests if r.endpoint == EVENTS_PATH and r.status == 200]
    first, last = polls[0].at, polls[-1].at
    before = {item["id"] for item in sim.events_until(first)}
    produced = {item["id"] for item in sim.events_until(last)} - before
    with sqlite3.connect(db_path) as db:
        stored = {row[0] for row in db.execute("select id from events")}
        reasons = dict(db.execute("select pace, count(*) from polls group by pace").fetchall())
    span = [r for r in sim.requests if first <= r.at <= last]
    return Figures(
        rate=rate,
        seconds=(last - first).total_seconds(),
        produced=len(produced),
        stored=len(produced & stored),
        gaps=gaps,
        events_requests=sum(1 for r in span if r.endpoint == EVENTS_PATH),
        requests=len(span),
        reasons={str(k): v for k, v in reasons.items() if k is not None},
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rates", default="50,200")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for rate in (float(r) for r in args.rates.split(",")):
            rows.append(measure(rate, args.seconds, Path(tmp) / f"ingest-{rate:g}.db"))
    print("| events/s | span | produced | stored | coverage | gaps | requests/s | paces |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for f in rows:
        paces = ", ".join(f"{k} {v}" for k, v in sorted(f.reasons.items()))
        print(
            f"| {f.rate:g} | {f.seconds:.1f} s | {f.produced:,} | {f.stored:,} | "
            f"{100 * f.coverage:.2f}% | {f.gaps} | {f.per_second:.2f} | {paces} |"
        )


if __name__ == "__main__":
    main()
