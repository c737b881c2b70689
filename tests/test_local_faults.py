"""Local faults: the database file turns read-only, the disk fills up, or another process
locks the file, in the middle of an incident. Each faulty cycle says what is wrong, the
worker neither crashes nor spins, nothing stored is lost or damaged, and once the fault is
lifted the next cycles store every event the API still holds, judge them and tell Slack,
once.

The worker, its real SQLite file and the real Slack client run in this process, against
the simulator (in-process transport) and the Slack stand-in (loopback HTTP). The wall clock
moves with data time, as it does in production, so the delivery lease falls due for renewal
while the fault lasts.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.api_schema import EVENTS_PATH, SUMMARY_PATH
from bot.models import PollConfig, Rule, RuleSet, parse_time
from bot.notify import EVENT_TYPE, SlackNotifier, make_web_clients
from bot.source import UsageClient
from bot.standins.simulator import Incident, ManualClock, Simulator
from bot.standins.slack import SlackStandIn
from bot.store import Store
from bot.store.database import SqliteDatabase
from bot.worker import TickReport, Worker

START = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # a Monday
SPIKE = Incident(
    "failure_spike",
    START + timedelta(hours=10),
    START + timedelta(hours=11),
    model="pro",
    failure_rate=0.6,
)
RULE = Rule(
    name="failed-job-rate",
    metric="failure_rate",
    group_by=("model",),
    bucket=900,
    baseline=7 * 86400,
    method="plain",
    z=4,
    min_volume=10,
    min_rate=0.05,
    recover_for=2,
    severity="critical",
)
RULES = RuleSet(poll=PollConfig(events_every=60, summary_every=900), rules=(RULE,))
CHANNEL = "#usage-alerts"
FIRST_TICK = START + timedelta(hours=9, minutes=46)
# Without a fault the alert fires at 10:10 (a cycle every minute): the fault covers that
# moment, so the cycles that would store the failing events and judge them are the faulty
# ones. Four cycles: at ~18 events a minute, the API's newest 100 still reach back to what
# was stored before the fault, so nothing is beyond reach once it is lifted.
FAULT_FROM = START + timedelta(hours=10, minutes=8)
FAULT_UNTIL = START + timedelta(hours=10, minutes=12)
LAST_TICK = START + timedelta(hours=12, minutes=15)  # the alert has resolved by 12:05


class Fault:
    """A local fault switched on and off around the store; `says` is what the error
    must name."""

    says: str

    def begin(self, store: Store, path: Path) -> None:
        raise NotImplementedError

    def end(self, store: Store, path: Path) -> None:
        raise NotImplementedError


class QueryOnly(Fault):
    """`PRAGMA query_only` on the store's own connection: SQLite refuses every write with
    SQLITE_READONLY, as it does for a file the process may not write. It works as root,
    which ignores chmod (CI runs as root), and it exercises the same error path: every
    INSERT, UPDATE, DELETE and lease write of the worker fails inside SQLite."""

    says = "attempt to write a readonly database"

    def begin(self, store: Store, path: Path) -> None:
        store.db.execute("PRAGMA query_only = ON")

    def end(self, store: Store, path: Path) -> None:
        store.db.execute("PRAGMA query_only = OFF")


class ReadOnlyFile(Fault):
    """The store's connection reopened with `mode=ro`, the way SQLite opens a file the
    process has no write permission for (SQLITE_OPEN_READONLY; a chmod 0444 would do this
    for a non-root user, or a disk remounted read-only). Lifted by reopening read-write,
    as a restarted worker would."""

    says = "attempt to write a readonly database"

    def begin(self, store: Store, path: Path) -> None:
        store.db.close()
        store.db = SqliteDatabase(f"file:{path}?mode=ro")

    def end(self, store: Store, path: Path) -> None:
        store.db.close()
        store.db = Store(path).db  # migrations and pragmas as at start


class DiskFull(Fault):
    """SQLITE_FULL injected with `PRAGMA max_page_count` pinned to the file's current size:
    any write that needs a new page fails with "database or disk is full", while writes
    that fit in free space still succeed (as on a real full disk)."""

    says = "database or disk is full"

    def __init__(self) -> None:
        self.limit = 0

    def begin(self, store: Store, path: Path) -> None:
        self.limit = int(store.db.execute("PRAGMA max_page_count").fetchone()[0])
        pages = int(store.db.execute("PRAGMA page_count").fetchone()[0])
        assert store.db.execute(f"PRAGMA max_page_count = {pages}").fetchone()[0] == pages

    def end(self, store: Store, path: Path) -> None:
        store.db.execute(f"PRAGMA max_page_count = {self.limit}")


class Locked(Fault):
    """Another process holds the write lock for four cycles (the store waits 0.2 s)."""

    says = "database is locked"

    def __init__(self) -> None:
        self.locker: sqlite3.Connection | None = None

    def begin(self, store: Store, path: Path) -> None:
        self.locker = sqlite3.connect(path)
        self.locker.execute("BEGIN EXCLUSIVE")

    def end(self, store: Store, path: Path) -> None:
        assert self.locker is not None
        self.locker.rollback()
        self.locker.close()


@dataclass
class Cycle:
    at: datetime
    report: TickReport
    requests: list[str] = field(default_factory=list)  # endpoints the cycle asked the API


class Rig:
    """A worker, a real SQLite file and the real Slack client, moving minute by minute."""

    def __init__(self, path: Path, slack: SlackStandIn) -> None:
        self.path = path
        self.clock = ManualClock(FIRST_TICK - timedelta(minutes=1))
        self.sim = Simulator(start=START, clock=self.clock, jobs_per_hour=300, incidents=[SPIKE])
        # Real time for delivery backoff and the lease, moving with data time.
        epoch = time.time()
        self.wall: Callable[[], float] = lambda: epoch + (self.clock() - START).total_seconds()
        self.store = Store(path, busy_timeout=0.2)
        reader, poster = make_web_clients("xoxb-test", slack.url, timeout=3)
        self.http = httpx.Client(
            base_url="http://sim", transport=httpx.MockTransport(self.sim.handle)
        )
        self.worker = Worker(
            client=UsageClient(self.http, api_key="sim-key"),
            store=self.store,
            ruleset=RULES,
            clock=self.clock,
            notifier=SlackNotifier(
                reader=reader,
                poster=poster,
                store=self.store,
                rules={RULE.name: RULE},
                default_channel=CHANNEL,
                wall=self.wall,
            ),
            wall=self.wall,
        )

    def tick(self) -> Cycle:
        """One cycle a minute later; a fault must come back in the report, never raised."""
        self.clock.advance(timedelta(minutes=1))
        asked = len(self.sim.requests)
        report = self.worker.tick()
        return Cycle(self.clock(), report, [r.endpoint for r in self.sim.requests[asked:]])

    def close(self) -> None:
        self.http.close()
        self.store.close()


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn() as standin:
        yield standin


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(QueryOnly, id="read-only (query_only)"),
        pytest.param(ReadOnlyFile, id="read-only file (mode=ro)"),
        pytest.param(DiskFull, id="disk full (SQLITE_FULL)"),
        pytest.param(Locked, id="locked by another process"),
    ],
)
def test_a_local_fault_is_told_loses_nothing_and_the_worker_recovers(
    fault: type[Fault],
    slack: SlackStandIn,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="bot")
    rig = Rig(tmp_path / "bot.db", slack)
    injected = fault()
    cycles: list[Cycle] = []
    kept: list[tuple[Any, ...]] = []
    covered_from = None
    while rig.clock() < LAST_TICK:
        if rig.clock() + timedelta(minutes=1) == FAULT_FROM:
            kept = _rows(rig.store)
            injected.begin(rig.store, rig.path)
        if rig.clock() + timedelta(minutes=1) == FAULT_UNTIL:
            assert rig.store.integrity_ok()  # checked while the fault still holds
            assert _intact(kept, rig.store)
            injected.end(rig.store, rig.path)
        cycles.append(rig.tick())
        if covered_from is None:  # what the first page reached back to
            covered_from = min(e.created_at for e in rig.store.recent_events(100))
    rig.close()
    store = Store(rig.path)  # what a restart would find
    try:
        _check(injected, cycles, kept, covered_from, rig, store, caplog, slack)
    finally:
        store.close()


def _check(
    injected: Fault,
    cycles: list[Cycle],
    kept: list[tuple[Any, ...]],
    covered_from: datetime | None,
    rig: Rig,
    store: Store,
    caplog: pytest.LogCaptureFixture,
    slack: SlackStandIn,
) -> None:
    faulty = [c for c in cycles if FAULT_FROM <= c.at < FAULT_UNTIL]
    after = [c for c in cycles if c.at >= FAULT_UNTIL]
    assert len(faulty) == 4

    # Told: every faulty cycle's report names the problem (the lease renewal included,
    # which used to raise out of tick()), and so does the log.
    for cycle in faulty:
        assert any(injected.says in error for error in cycle.report.errors), cycle
        assert cycle.report.new_events == 0
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(re.search(f"database error while .*{injected.says}", m) for m in logged)

    # No loop: one events request a cycle (a store error is not retried against the API),
    # and the summary no more often than every 15 minutes.
    assert all(c.requests.count(EVENTS_PATH) == 1 for c in faulty)
    assert sum(c.requests.count(SUMMARY_PATH) for c in faulty) <= 1

    # Recovered: every cycle after the fault is clean, and the first one catches up.
    assert all(c.report.errors == [] for c in after)
    assert after[0].report.new_events > 0

    # Nothing lost or damaged: the rows stored before the fault are intact, every event
    # the API produced after the first page's oldest second (a page may cut a second in
    # two) is stored once, and no gap was needed.
    assert covered_from is not None
    assert _intact(kept, store)
    produced = {
        item["id"]: parse_time(item["created_at"]) for item in rig.sim.events_until(LAST_TICK)
    }
    stored = {e.id: e.created_at for e in store.recent_events(100_000)}
    assert store.count_events() == len(stored) and set(stored) <= set(produced)
    assert {i for i, at in stored.items() if at > covered_from} == {
        i for i, at in produced.items() if at > covered_from
    }
    assert store.gaps() == []
    assert store.integrity_ok()

    # Judged and told once: the incident fired and resolved, the firing names failing
    # events that arrived while the fault held (stored only after it was lifted), and
    # Slack has one thread for it.
    states = [(t.state, t.group) for t in reversed(store.transitions())]
    assert states == [("firing", ("pro",)), ("resolved", ("pro",))]
    assert store.undelivered() == []
    firing = [t for t in store.transitions() if t.state == "firing"][0]
    late = store.events_between(FAULT_FROM - timedelta(minutes=1), FAULT_UNTIL)
    assert {e.request_id for e in late if e.is_failed} & set(firing.request_ids)
    (parent,) = [m for m in slack.messages(CHANNEL) if m.event_type == EVENT_TYPE]
    replies = [r.text or "" for r in parent.replies]
    assert sum("Examples behind" in r for r in replies) == 1, replies
    assert sum("Resolved at" in r for r in replies) == 1, replies
    assert parent.edited


def _rows(store: Store) -> list[tuple[Any, ...]]:
    """Every stored event and poll-log row."""
    return [
        (table, *row)
        for table in ("events", "polls")
        for row in store.db.execute(f"select * from {table} order by rowid")
    ]


def _intact(kept: list[tuple[Any, ...]], store: Store) -> bool:
    """The rows kept earlier are all still there, unchanged and in order."""
    old = set(kept)
    return [row for row in _rows(store) if row in old] == kept


def test_a_write_lock_held_briefly_elsewhere_is_waited_for_not_reported(
    slack: SlackStandIn, tmp_path: Path
) -> None:
    """The `web` process (an acknowledgement, a silence) writing at the same moment holds
    the lock for a moment: the store's busy timeout (5 s here) covers it. With a deferred
    BEGIN, a write transaction that read first failed at once with SQLITE_BUSY."""
    rig = Rig(tmp_path / "bot.db", slack)
    rig.store.db.execute("PRAGMA busy_timeout = 5000")
    for _ in range(3):
        assert rig.tick().report.errors == []
    before = rig.store.count_events()
    locker = sqlite3.connect(rig.path, isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, locker.execute, ["COMMIT"])
    release.start()
    try:
        cycle = rig.tick()
    finally:
        release.join()
        locker.close()
        rig.close()
    assert cycle.report.errors == [] and cycle.report.new_events > 0
    store = Store(rig.path)
    assert store.count_events() > before
    store.close()
