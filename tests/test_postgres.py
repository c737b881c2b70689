"""PostgreSQL as Heroku runs it: a worker restarted on a fresh disk remembers everything,
a database that goes away is a cycle error until it is back, two worker processes on one
database tell each alert once and hand over on SIGKILL (after the lease) and on SIGTERM
(at once), and nothing is written to a local file.

Real servers throughout: the run's PostgreSQL (tests/conftest.py), the simulator and the
Slack stand-in over loopback for the processes, the simulator in-process on a manual
clock where data time must run faster than real time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg

from bot.notify import EVENT_TYPE
from bot.source import UsageClient
from bot.standins import restart
from bot.standins.postgres import create_database
from bot.standins.simulator import ManualClock, Simulator
from bot.standins.slack import SlackStandIn
from bot.store import Store
from bot.worker import DELIVERY_LEASE, Worker
from tests.helpers import KEYS, bot_env, produced_ids, seed_backlog, stored_ids

# -- restart without amnesia ---------------------------------------------------------------


def test_a_worker_restarted_on_a_fresh_disk_detects_a_runaway_as_fast_as_one_never_restarted(
    postgres_url: str, tmp_path: Path
) -> None:
    never = restart.spend_alert_after(postgres_url, None)
    other = create_database(os.environ["TEST_DATABASE_URL"])
    restarted = restart.spend_alert_after(other, other)  # a new dyno: nothing local survives
    # What the test would see without a durable store: SQLite on a fresh disk.
    amnesic = restart.spend_alert_after(tmp_path / "before.db", tmp_path / "after.db")
    assert never is not None and never - restart.RUNAWAY.start <= timedelta(hours=1)
    assert restarted == never
    assert amnesic is None or amnesic > never


# -- the database goes away and comes back ---------------------------------------------------


def test_a_database_that_goes_away_is_a_cycle_error_until_it_is_back(postgres_url: str) -> None:
    """Heroku Postgres restarting for maintenance, or the network to it down: each cycle
    meanwhile says what is wrong (never the password), the worker carries on, and once
    the database is back the next cycle reconnects and stores every event it missed."""
    clock = ManualClock(restart.START)
    sim = Simulator(start=restart.START - timedelta(hours=1), clock=clock, jobs_per_hour=300)
    http = httpx.Client(base_url="http://sim", transport=httpx.MockTransport(sim.handle))
    store = Store(postgres_url)
    worker = Worker(
        client=UsageClient(http, api_key="sim-key"), store=store, ruleset=restart.RULES, clock=clock
    )
    where = urlsplit(postgres_url)
    name = where.path.lstrip("/")

    def admin(sql: str) -> None:
        with psycopg.connect(os.environ["TEST_DATABASE_URL"], autocommit=True) as conn:
            conn.execute(sql)

    for _ in range(3):
        clock.advance(timedelta(minutes=1))
        assert worker.tick().errors == []
    first_good = clock()
    admin(f'alter database "{name}" allow_connections false')
    admin(f"select pg_terminate_backend(pid) from pg_stat_activity where datname = '{name}'")
    errors = []
    for _ in range(3):
        clock.advance(timedelta(minutes=1))
        report = worker.tick()  # never raises
        errors += report.errors
    assert len(errors) >= 3
    assert all(error.startswith("database error while") for error in errors), errors
    assert any("not currently accepting connections" in error for error in errors), errors
    assert where.password and not any(where.password in error for error in errors)
    admin(f'alter database "{name}" allow_connections true')
    clock.advance(timedelta(minutes=1))
    assert worker.tick().errors == []
    assert produced_ids(sim, first_good, clock()) <= stored_ids(store)
    store.close()
    http.close()


# -- two worker processes on one database -----------------------------------------------------


def holder(url: str) -> str | None:
    store = Store(url)
    try:
        row = store.db.execute(
            "select holder from leases where name = ?", [DELIVERY_LEASE]
        ).fetchone()
    finally:
        store.close()
    return row[0] if row else None


def wait_for(what: Callable[[], bool], seconds: float) -> float:
    """Seconds until `what()` held (fails after `seconds`)."""
    began = time.monotonic()
    while not what():
        assert time.monotonic() - began < seconds, "timed out"
        time.sleep(0.02)
    return time.monotonic() - began


def holds(url: str, proc: subprocess.Popen[bytes]) -> Callable[[], bool]:
    """True while `proc` holds the delivery lease (a worker's id carries its pid)."""
    return lambda: f":{proc.pid}:" in (holder(url) or "")


def test_two_workers_tell_each_alert_once_and_hand_over_on_sigkill_and_sigterm(
    postgres_url: str, tmp_path: Path
) -> None:
    """Two worker dynos on one Heroku Postgres: one judges and tells, the other only
    polls and stores. SIGKILL the first: the second takes over once the lease lapses.
    SIGTERM the second (a deploy, the daily restart): it gives the lease back on its
    way out and a third takes over at once. Every alert of a backlog is told once."""
    now = datetime.now(UTC)
    seed_backlog(postgres_url, now)
    every = 2.0  # BOT_POLL_SECONDS: a lease of three cycles, 6 s
    lease = 3 * every
    sim = Simulator(start=now - timedelta(hours=3), jobs_per_hour=120)
    here = tmp_path / "cwd"  # the workers' working directory: nothing may appear in it
    here.mkdir()
    with sim.serve() as api, SlackStandIn() as slack, (tmp_path / "stderr").open("wb") as log:
        env = bot_env(
            api.url,
            postgres_url,
            BOT_POLL_SECONDS=str(every),
            SLACK_BOT_TOKEN="xoxb-test",
            SLACK_API_URL=slack.url,
            SLACK_CHANNEL="#usage-alerts",
            LOG_LEVEL="WARNING",
        )
        # The first post is stored but its answer held back: the kill falls between the
        # post and its record, and the next worker must find it rather than post again.
        slack.timeout("chat.postMessage", seconds=3.0, commit=True)

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [sys.executable, "-m", "bot", "run"],
                env=env,
                cwd=here,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

        first = start()
        wait_for(holds(postgres_url, first), 30)
        second = start()
        wait_for(lambda: bool(slack.messages("#usage-alerts")), 30)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        took = wait_for(holds(postgres_url, second), lease + 3 * every + 10)
        assert took >= lease - every - 1  # it waited for the dead worker's lease to lapse
        third = start()
        time.sleep(2 * every)  # the third is polling and storing, not telling
        assert holds(postgres_url, second)()
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=20) == 0, (tmp_path / "stderr").read_text()[-2000:]
        # Given back on the way out: free, or already the third's.
        assert not holds(postgres_url, second)()
        handed = wait_for(holds(postgres_url, third), lease + 10)
        assert handed < lease  # at once (within a cycle), not after the lease
        wait_for(lambda: _undelivered(postgres_url) == 0, 60)
        third.send_signal(signal.SIGTERM)
        assert third.wait(timeout=20) == 0
        parents = [m for m in slack.messages("#usage-alerts") if m.event_type == EVENT_TYPE]
    # One incident (each key of the backlog fired while the one before still fired),
    # listing every key, each told once in its thread.
    (parent,) = parents
    assert sorted(m["group"][0] for m in parent.metadata["event_payload"]["members"]) == KEYS
    told = sorted(
        r.metadata["event_payload"]["group"][0]
        for r in parent.replies
        if r.metadata and r.metadata["event_payload"]["role"] == "details"
    )
    assert told == KEYS  # each once
    assert list(here.iterdir()) == []  # nothing written locally
    assert "Traceback" not in (tmp_path / "stderr").read_text()


def _undelivered(url: str) -> int:
    store = Store(url)
    try:
        return len(store.undelivered())
    finally:
        store.close()
