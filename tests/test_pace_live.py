"""The events poll's pace end to end: the real `run()` loop and the real httpx client
against the simulator over loopback HTTP, default rules, in real time."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from bot.api_schema import EVENTS_PATH
from bot.models import RuleSet
from bot.pace import BACKING_OFF
from bot.rules import default_rules_text, parse_rules
from bot.source import UsageClient, make_http_client
from bot.standins.simulator import CompressedClock, RequestRecord, Simulator
from bot.store import Store
from bot.worker import Worker, run

START = datetime(2026, 11, 23, 0, 16, tzinfo=UTC)  # completions trail jobs by <= 15 min
DEFAULT_RULES = parse_rules(default_rules_text(), "<default rules>")


@dataclass
class Live:
    sim: Simulator
    worker: Worker
    db_path: Path

    def events_requests(self) -> list[RequestRecord]:
        return [r for r in list(self.sim.requests) if r.endpoint == EVENTS_PATH]

    def seconds(self) -> float:
        """Real seconds since the first events request (the simulator's clock runs 1x)."""
        polls = self.events_requests()
        return (self.sim.now() - polls[0].at).total_seconds() if polls else 0.0

    def wait_for(self, condition: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, "timed out waiting for the worker"
            time.sleep(0.05)


@contextmanager
def live_worker(tmp_path: Path, *, rate: float, ruleset: RuleSet = DEFAULT_RULES) -> Iterator[Live]:
    clock = CompressedClock(START, 1.0)
    sim = Simulator(start=START, clock=clock, events_per_second=rate)
    sim.events_page(1)  # generate the simulated day so far before the clock matters
    clock.restart()
    stop = threading.Event()
    db_path = tmp_path / "pace.db"
    workers: list[Worker] = []
    with sim.serve() as server, make_http_client(server.url) as http:

        def loop() -> None:  # SQLite wants the store used on the thread that opened it
            store = Store(db_path)
            client = UsageClient(http, api_key=sim.api_key, sleep=stop.wait)
            workers.append(Worker(client=client, store=store, ruleset=ruleset, clock=clock))
            try:
                run(workers[0], every=ruleset.poll.events_every, stop=stop)
            finally:
                store.close()

        thread = threading.Thread(target=loop)
        thread.start()
        try:
            while not workers:
                time.sleep(0.01)
            yield Live(sim, workers[0], db_path)
        finally:
            stop.set()
            thread.join(timeout=30)
    assert not thread.is_alive()


def count_gaps(db_path: Path) -> int:
    with sqlite3.connect(db_path) as db:
        return int(db.execute("select count(*) from event_gaps").fetchone()[0])


def stored_ids(db_path: Path) -> set[str]:
    with sqlite3.connect(db_path) as db:
        return {row[0] for row in db.execute("select id from events")}


def test_50_events_a_second_are_all_stored_at_about_one_request_a_second_then_a_429_burst_is_met_at_most_one_a_second(  # noqa: E501
    tmp_path: Path,
) -> None:
    with live_worker(tmp_path, rate=50.0) as live:
        live.wait_for(lambda: live.seconds() >= 12.0, timeout=60)
        steady = live.events_requests()
        first, last = steady[0].at, steady[-1].at
        span = (last - first).total_seconds()
        requests = [r for r in list(live.sim.requests) if first <= r.at <= last]
        gaps = count_gaps(live.db_path)  # before the burst, which may well open one
        # The API's 429 burst, no Retry-After: three answers in a row.
        live.sim.inject("429", "events", times=3)
        live.wait_for(lambda: live.events_requests()[-1].status == 429, timeout=10)
        live.wait_for(lambda: live.events_requests()[-1].status == 200, timeout=60)
        recovered = len(live.events_requests())
        live.wait_for(lambda: len(live.events_requests()) >= recovered + 4, timeout=30)
        after = live.events_requests()
        pace = live.worker.pace
    with sqlite3.connect(live.db_path) as db:
        reasons = {row[0] for row in db.execute("select pace from polls where pace is not null")}
    produced = {e["id"] for e in live.sim.events_until(last)} - {
        e["id"] for e in live.sim.events_until(first)
    }
    stored = stored_ids(live.db_path)
    assert span >= 11.0 and len(produced) >= 40 * span  # a steady 50 events/s
    coverage = len(produced & stored) / len(produced)
    assert coverage >= 0.99, f"{coverage:.2%} of {len(produced)} events stored"
    assert gaps == 0
    assert len(requests) / span <= 2.0, f"{len(requests)} requests in {span:.1f}s"
    # The burst: from its first 429 to the first good answer, one request a second at most.
    start = next(i for i, r in enumerate(after) if r.status == 429)
    end = next(i for i in range(start, len(after)) if after[i].status == 200)
    burst = after[start : end + 1]
    spacing = [(b.at - a.at).total_seconds() for a, b in zip(burst, burst[1:], strict=False)]
    assert len(burst) == 4 and min(spacing) >= 0.95, spacing
    # Then back to pace: the polls after it come about a second apart, not 8-16 s.
    tail = after[end:]
    tail_spacing = [(b.at - a.at).total_seconds() for a, b in zip(tail, tail[1:], strict=False)]
    assert max(tail_spacing[1:]) < 2.5, tail_spacing
    assert pace is not None and pace.reason != BACKING_OFF and pace.delay < 2.5
    assert {"catching up", "keeping pace"} <= reasons


def test_a_quiet_account_gets_one_events_request_per_events_every(tmp_path: Path) -> None:
    ruleset = replace(DEFAULT_RULES, poll=replace(DEFAULT_RULES.poll, events_every=1.0))
    with live_worker(tmp_path, rate=0.05, ruleset=ruleset) as live:  # 3 events a minute
        live.wait_for(lambda: len(live.events_requests()) >= 6, timeout=30)
        polls = live.events_requests()
    spacing = [(b.at - a.at).total_seconds() for a, b in zip(polls, polls[1:], strict=False)]
    assert all(0.95 <= s < 1.6 for s in spacing), spacing  # no busy loop, no dawdling
    with sqlite3.connect(live.db_path) as db:
        paces = db.execute(
            "select next_poll_seconds, pace from polls where endpoint = ? order by id",
            [EVENTS_PATH],
        ).fetchall()
    assert paces and all(row == (1.0, "quiet") for row in paces), paces
