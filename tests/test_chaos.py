"""Crash anywhere, tell everything once: a real worker process is SIGKILLed at random
moments while it delivers a backlog of alerts to Slack, restarted each time, and at the
end every alert key has exactly one parent, one details reply and one resolve."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.alerts import Transition
from bot.simulator import Simulator
from bot.slack_standin import SlackStandIn
from bot.store import Store

KEYS = [f"customer-{i:02d}" for i in range(20)]
KILLS = 30


def seed_backlog(db: Path, now: datetime) -> None:
    """Twenty alert keys that fired and resolved, all still to be told (the outbox)."""
    store = Store(db)
    transitions = []
    for i, key in enumerate(KEYS):
        at = now - timedelta(hours=2) + timedelta(minutes=5 * i)
        common = dict(
            rule="failed-job-rate",
            group=(key,),
            group_by=("model",),
            baseline=0.02,
            volume=40.0,
            since=at,
            peak_zscore=9.0,
            peak_value=0.6,
            window=900.0,
        )
        transitions.append(
            Transition(
                state="firing",
                at=at,
                value=0.6,
                zscore=9.0,
                request_ids=(f"req_{i}",),
                job_ids=(f"job_{i}",),
                **common,
            )
        )
        transitions.append(
            Transition(
                state="resolved", at=at + timedelta(minutes=30), value=0.01, zscore=0.1, **common
            )
        )
    store.save_decisions([], transitions, {}, now)
    store.close()


def test_random_sigkills_neither_lose_nor_duplicate_a_message(tmp_path: Path) -> None:
    rng = random.Random(20261129)
    now = datetime.now(UTC)
    db = tmp_path / "bot.db"
    seed_backlog(db, now)
    sim = Simulator(start=now - timedelta(hours=3), jobs_per_hour=120)
    with sim.serve() as api, SlackStandIn() as slack:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "USAGE_", "BOT_"))
        }
        env.update(
            USAGE_API_BASE_URL=api.url,
            USAGE_API_KEY="sim-key",
            SLACK_BOT_TOKEN="xoxb-test",
            SLACK_API_URL=slack.url,
            SLACK_CHANNEL="#usage-alerts",
            BOT_DB_PATH=str(db),
            BOT_POLL_SECONDS="0.05",
            LOG_LEVEL="WARNING",
        )
        kills = 0
        for _ in range(KILLS + 20):
            proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "run"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(rng.uniform(0.6, 1.6))  # start-up is ~0.6 s: kill during delivery
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(timeout=10)
            if kills >= KILLS and not _undelivered(db):
                break
        # A last clean run delivers whatever the final kill left behind.
        done = subprocess.run(
            [sys.executable, "-m", "bot", "run", "--cycles", "3"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr[-1500:]
        messages = slack.messages("#usage-alerts")
        lookups = len(slack.calls("conversations.history")) + len(
            slack.calls("conversations.replies")
        )
    assert kills >= KILLS
    assert lookups >= 1  # at least one kill fell between a post and its record
    assert _undelivered(db) == 0
    parents = [m for m in messages if m.metadata]
    by_key = {}
    for parent in parents:
        key = tuple(parent.metadata["event_payload"]["group"])
        assert key not in by_key, f"second parent for {key}"
        by_key[key] = parent
    assert sorted(k[0] for k in by_key) == KEYS
    for key, parent in by_key.items():
        replies = [r.text or "" for r in parent.replies]
        assert sum("Examples behind" in r for r in replies) == 1, (key, replies)
        assert sum("Resolved at" in r for r in replies) == 1, (key, replies)
        assert parent.edited
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _undelivered(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        sql = "select count(*) from alert_transitions where notified_at is null"
        return int(conn.execute(sql + " and failed_at is null").fetchone()[0])
