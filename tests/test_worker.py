"""The worker: cycles against the simulator, faults survived, nothing lost or doubled."""

from __future__ import annotations

import logging
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from bot.api_schema import EVENTS_PATH, SUMMARY_PATH
from bot.models import parse_time
from bot.source import UsageClient
from bot.standins.simulator import ManualClock, Simulator
from bot.store import Store
from bot.worker import Worker, refusal
from tests.helpers import RIG_RULES, RIG_START, Rig, bot_env, produced_ids, stored_ids

START, RULES = RIG_START, RIG_RULES


@pytest.fixture
def rig(store: Store) -> Iterator[Rig]:
    r = Rig(store)
    yield r
    r.http.close()


def test_the_first_tick_backfills_90_days_then_polls_events(rig: Rig) -> None:
    report = rig.tick()
    assert report.errors == []
    days = [r.params.get("days") for r in rig.sim.requests if r.endpoint == SUMMARY_PATH]
    assert days[0] == "90"
    assert rig.store.count_events() > 0
    stored_days = {
        row.date for row in rig.store.daily_usage(START.date() - timedelta(days=100), START.date())
    }
    assert len(stored_days) == 90
    assert {p["endpoint"] for p in rig.store.polls()} == {EVENTS_PATH, SUMMARY_PATH}


def test_the_summary_is_polled_less_often_than_events(rig: Rig) -> None:
    for _ in range(30):
        rig.tick()
    assert rig.hits(EVENTS_PATH) == 30
    assert rig.hits(SUMMARY_PATH) == 2  # backfill at 09:01, then 15 minutes later
    assert rig.store.polls(1)[0]["status"] == "ok"


def test_every_event_is_stored_once_however_often_it_is_seen(rig: Rig) -> None:
    rig.tick()
    covered_from = min(e.created_at for e in rig.store.recent_events(100))  # the first page
    for _ in range(90):
        rig.tick()
    expected = {
        item["id"]
        for item in rig.sim.events_until(rig.clock())
        if parse_time(item["created_at"]) >= covered_from
    }
    stored = {e.id for e in rig.store.recent_events(100_000)}
    assert stored == expected and rig.store.count_events() == len(expected)
    assert rig.store.gaps() == []


def test_it_notices_and_records_a_gap_when_polls_fall_behind(rig: Rig) -> None:
    rig.tick()
    rig.tick(timedelta(hours=3))  # ~700 events arrived; only the newest 100 can be read
    assert len(rig.store.gaps()) == 1


@pytest.mark.parametrize(
    "fault",
    [
        "500",
        "503",
        "504",
        "429",
        "429_retry_after",
        "hang",
        "drop",
        "non_json",
        "wrong_shape",
        "huge",
    ],
)
def test_a_failing_cycle_is_recorded_and_the_next_one_recovers(rig: Rig, fault: str) -> None:
    rig.tick()
    last_ok, before = rig.clock(), rig.stored()
    rig.sim.inject(fault, "events", times=-1)  # outlasts the client's retries
    report = rig.tick()
    rig.sim.clear_faults()
    missed = rig.produced(last_ok, rig.clock())  # what the failed cycle was there to fetch
    assert missed and report.errors and rig.stored() == before
    row = rig.store.polls(5)
    assert any(p["status"] == "error" and p["endpoint"] == EVENTS_PATH for p in row)
    report = rig.tick()
    assert report.errors == []
    # Nothing lost: the events of the failed cycle, and the new ones, are stored now.
    assert rig.stored() == before | rig.produced(last_ok, rig.clock()) and missed < rig.stored()


def test_transient_faults_within_the_retry_budget_lose_nothing(rig: Rig) -> None:
    rig.tick()
    last_ok, before = rig.clock(), rig.stored()
    rig.sim.inject("503", "events", times=2)
    report = rig.tick()
    assert report.errors == [] and len(rig.sleeps) == 2
    served = rig.produced(last_ok, rig.clock())
    assert served and rig.stored() == before | served


@pytest.mark.parametrize("fault", ["401", "402"])
def test_401_or_402_is_told_once_and_then_only_probed(
    rig: Rig, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    rig.tick()
    rig.sim.inject(fault, "events", times=-1)
    caplog.set_level(logging.ERROR, logger="bot.worker")
    for _ in range(12):  # 12 minutes of ticks
        rig.tick()
    told = [r for r in caplog.records if "refuses our key" in r.getMessage()]
    assert len(told) == 1
    events_hits = [r for r in rig.sim.requests if r.endpoint == EVENTS_PATH][1:]
    assert len(events_hits) == 3  # at minutes 1, 6 and 11: a probe every 5 minutes
    assert refusal(EVENTS_PATH) in rig.store.open_episodes()
    rig.sim.clear_faults()
    for _ in range(5):
        rig.tick()
    assert refusal(EVENTS_PATH) not in rig.store.open_episodes()
    notices = [(n["kind"], n["state"]) for n in all_notices(rig.store)]
    assert notices == [(refusal(EVENTS_PATH), "open"), (refusal(EVENTS_PATH), "cleared")]
    assert rig.hits(EVENTS_PATH) >= 5


def all_notices(store: Store) -> list:  # type: ignore[type-arg]
    return list(store.db.query("select kind, state from notices order by id"))  # type: ignore[arg-type]


@pytest.mark.parametrize("fault", ["wrong_shape", "non_json"])
def test_schema_drift_is_told_once_and_once_more_when_it_clears(rig: Rig, fault: str) -> None:
    rig.tick()
    rig.sim.inject(fault, "events", times=3)
    for _ in range(5):
        rig.tick()
    kinds = [(row["kind"], row["state"]) for row in all_notices(rig.store)]
    assert kinds == [
        (f"schema drift {EVENTS_PATH}", "open"),
        (f"schema drift {EVENTS_PATH}", "cleared"),
    ]


def test_a_gap_episode_is_told_once_and_clears_after_ten_quiet_minutes(rig: Rig) -> None:
    rig.tick()
    rig.tick(timedelta(hours=3))
    rig.tick(timedelta(minutes=5))  # catches up again: the 100 newest reach back to what we hold
    kinds = [(row["kind"], row["state"]) for row in all_notices(rig.store)]
    assert kinds == [("events gap", "open")]  # gaps come and go at the page limit: wait
    rig.tick(timedelta(minutes=4))
    assert len(all_notices(rig.store)) == 1
    rig.tick(timedelta(minutes=1))  # ten minutes without a gap
    kinds = [(row["kind"], row["state"]) for row in all_notices(rig.store)]
    assert kinds == [("events gap", "open"), ("events gap", "cleared")]


# -- the real process over real sockets ------------------------------------------------


@pytest.fixture
def live_sim() -> Iterator[tuple[Simulator, str]]:
    sim = Simulator(start=datetime.now(UTC) - timedelta(hours=2), hang_seconds=2.0)
    with sim.serve() as server:
        yield sim, server.url


def test_run_three_cycles_against_the_simulator(
    live_sim: tuple[Simulator, str], db_path: Path
) -> None:
    sim, url = live_sim
    done = subprocess.run(
        [sys.executable, "-m", "bot", "run", "--cycles", "3"],
        env=bot_env(url, db_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "sim-key" not in done.stderr + done.stdout
    with sqlite3.connect(db_path) as db:
        assert db.execute("select count(*) from events").fetchone()[0] > 0
        statuses = db.execute("select endpoint, status from polls").fetchall()
    assert statuses.count((EVENTS_PATH, "ok")) == 3
    assert (SUMMARY_PATH, "ok") in statuses


def test_sigterm_during_a_cycle_exits_0_with_a_sound_database(
    live_sim: tuple[Simulator, str], db_path: Path
) -> None:
    sim, url = live_sim
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        env=bot_env(url, db_path, BOT_POLL_SECONDS="0.5"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not db_path.exists() or _events(db_path) == 0:  # wait for a completed cycle
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    sim.inject("hang", "events", times=-1)  # the next cycle sits inside a request
    deadline = time.monotonic() + 10
    while not any(r.fault == "hang" for r in sim.requests):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert time.monotonic() - sent < 5.0
    assert "Traceback" not in err
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _events(db_path: Path) -> int:
    try:
        with sqlite3.connect(db_path) as db:
            return int(db.execute("select count(*) from events").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_a_database_locked_by_another_process_is_a_clear_error_then_recovers(
    db_path: Path,
) -> None:
    clock = ManualClock(START)
    sim = Simulator(start=START, clock=clock)
    store = Store(db_path, busy_timeout=0.2)
    with httpx.Client(base_url="http://sim", transport=httpx.MockTransport(sim.handle)) as http:
        worker = Worker(
            client=UsageClient(http, api_key="sim-key", sleep=lambda s: None),
            store=store,
            ruleset=RULES,
            clock=clock,
        )
        clock.advance(timedelta(minutes=1))
        worker.tick()
        last_ok, before = clock(), stored_ids(store)
        locker = sqlite3.connect(db_path)
        locker.execute("BEGIN EXCLUSIVE")  # another process holds the database
        clock.advance(timedelta(minutes=1))
        locked = worker.tick()  # the cycle reports it; the loop never dies of it
        # One error, for the step that failed, in words: not an exception's repr, no
        # traceback, nothing else in the cycle reported as failing.
        assert locked.errors == ["database error while saving events: database is locked"]
        assert locked.new_events == 0 and stored_ids(store) == before
        missed = produced_ids(sim, last_ok, clock())
        locker.rollback()
        locker.close()
        clock.advance(timedelta(minutes=1))
        report = worker.tick()
    assert report.errors == [] and missed
    assert stored_ids(store) == before | produced_ids(sim, last_ok, clock())
    assert store.integrity_ok()
    store.close()


def test_a_429_burst_is_met_with_bounded_backoff_not_a_request_storm(rig: Rig) -> None:
    rig.tick()
    rig.sim.inject("429", "events", times=-1)
    sent_before, waits_before = rig.hits(EVENTS_PATH), len(rig.sleeps)
    for _ in range(5):
        rig.tick()
    rig.sim.clear_faults()
    assert rig.hits(EVENTS_PATH) - sent_before == 5 * 4  # four tries a cycle, no more
    waits = rig.sleeps[waits_before:]
    assert len(waits) == 5 * 3 and all(1.0 <= w <= 8.0 for w in waits)  # 1-2, 2-4, 4-8 s
    assert rig.tick().errors == []  # and it recovers by itself
