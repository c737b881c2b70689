"""`usage-bot backtest`, and the promise that it and the live worker agree."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import numpy as np
import pytest

from bot import backtest
from bot.api_schema import EVENT_SCHEMA
from bot.metrics import item_row
from bot.models import Event, RuleSet
from bot.rules import default_rules_text, parse_rules
from bot.source import UsageClient
from bot.standins.simulator import Incident, ManualClock, Simulator
from bot.store import Store
from bot.worker import Worker
from tests.helpers import same

START = datetime(2026, 11, 2, tzinfo=UTC)
SPIKE = Incident(
    "failure_spike",
    START + timedelta(days=1, hours=14),
    START + timedelta(days=1, hours=15),
    model="pro",
    failure_rate=0.6,
)


def test_worker_and_backtest_give_the_same_transitions(store: Store) -> None:
    """Run the worker tick by tick against the simulator, then backtest what it stored."""
    rules = parse_rules(default_rules_text())
    ruleset = RuleSet(poll=rules.poll, rules=rules.rules)
    clock = ManualClock(START + timedelta(days=1, hours=12))
    sim = Simulator(start=START, clock=clock, jobs_per_hour=200, incidents=[SPIKE])
    printed: list = []  # type: ignore[type-arg]

    class Collect:
        def send(self, transition_id, transition) -> None:  # type: ignore[no-untyped-def]
            printed.append(transition)

        def recover(self, store, now, cold=None) -> int:  # type: ignore[no-untyped-def]
            return 0

    with httpx.Client(base_url="http://sim", transport=httpx.MockTransport(sim.handle)) as http:
        worker = Worker(
            client=UsageClient(http, api_key="sim-key"),
            store=store,
            ruleset=ruleset,
            clock=clock,
            notifier=Collect(),
        )
        for _ in range(5 * 60):  # five hours, a cycle a minute
            clock.advance(timedelta(minutes=1))
            worker.tick()
        backfill = sim.summary(90)
    live = store.transitions(1000)[::-1]
    assert [t.state for t in live] == ["firing", "resolved"] and printed == live

    stored = [json.dumps(e.to_api()) for e in store.recent_events(1_000_000)[::-1]]
    recording = backtest.load(rules.rules, stored, backfill)
    # The backtest judges from its first event on; the worker judged from its first cycle,
    # and at every cycle the window ending then (a poll a minute, on the minute).
    replayed = [t for t in backtest.run(recording, poll_every=60) if t.at <= clock()]
    assert same(replayed, live)
    # At the 5-minute marks alone the same incident fires later, never sooner.
    marks = [t for t in backtest.run(recording) if t.at <= clock()]
    assert [t.state for t in marks] == ["firing", "resolved"]
    assert marks[0].at >= live[0].at


def write_recording(tmp_path: Path) -> tuple[Path, Path]:
    end = START + timedelta(days=2)
    sim = Simulator(start=START, clock=ManualClock(end), jobs_per_hour=200, incidents=[SPIKE])
    events = tmp_path / "events.jsonl"
    items = sim.events_until(end)
    items.reverse()  # any order is fine
    events.write_text("".join(json.dumps(i) + "\n" for i in items))
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps(sim.summary(60)))
    return events, summary


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "backtest", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_backtest_json_prints_each_transition_as_interface_md_says(tmp_path: Path) -> None:
    events, summary = write_recording(tmp_path)
    done = run_cli("--events", str(events), "--summary", str(summary), "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(x["rule"], x["state"], x["key"]) for x in lines] == [
        ("failed-job-rate", "firing", {"model": "pro"}),
        ("failed-job-rate", "resolved", {"model": "pro"}),
    ]
    fired = lines[0]
    assert set(fired) >= {"rule", "state", "at", "key", "value", "zscore", "request_ids", "job_ids"}
    assert fired["at"].endswith("Z") and fired["value"] > 0.2 and fired["zscore"] > 4
    assert 1 <= len(fired["request_ids"]) <= 10 and len(fired["job_ids"]) == len(
        fired["request_ids"]
    )
    failed = {
        item["request_id"]: item
        for item in map(json.loads, events.read_text().splitlines())
        if item["status"] == "failed" and item["model"] == "pro"
    }
    assert all(r in failed for r in fired["request_ids"])  # real failed events of that model
    times = [failed[r]["created_at"] for r in fired["request_ids"]]
    assert times == sorted(times, reverse=True)  # newest first


def test_backtest_names_the_bad_line(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"id": "e1", "created_at": "2026-11-02T10:00:00Z"}\nnot json\n')
    done = run_cli("--events", str(events), "--json")
    assert done.returncode == 1
    assert "events.jsonl:2: not an event item" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("missing", ["--events", "--summary"])
def test_backtest_reports_missing_files_clearly(tmp_path: Path, missing: str) -> None:
    events, summary = write_recording(tmp_path)
    args = {"--events": str(events), "--summary": str(summary)}
    args[missing] = str(tmp_path / "nope.json")
    done = run_cli(*[x for pair in args.items() for x in pair])
    assert done.returncode == 1 and "nope.json" in done.stderr and "Traceback" not in done.stderr


def test_the_quick_check_knows_every_field_of_the_event_schema() -> None:
    """A field added to the schema must be added to the quick check too (else its
    values would go unchecked on the quick path)."""
    assert list(backtest._PLAIN) == list(EVENT_SCHEMA["properties"])
    assert set(EVENT_SCHEMA["required"]) <= set(backtest._PLAIN)


def test_the_apis_events_take_the_quick_path() -> None:
    """The simulator's events (every status, with and without a model or metadata) and
    the worker's own exports pass the quick check: the full validator is the exception."""
    end = START + timedelta(hours=6)
    sim = Simulator(start=START, clock=ManualClock(end), jobs_per_hour=200, incidents=[SPIKE])
    items = json.loads(json.dumps(sim.events_until(end)))
    assert {i["status"] for i in items} >= {"pending", "completed", "failed"}
    stored = [Event.from_api(i).to_api() for i in items]
    odd = [{**items[0], "model": None, "metadata": None, "credits_used": 3, "status": None}]
    for item in [*items, *stored, *odd]:
        assert backtest._plain_row(item) == item_row(item)


def test_lines_past_the_quick_check_count_the_same(tmp_path: Path) -> None:
    """Events the quick check leaves to the validator (another UTC offset, a fraction of
    a second, fields left out) are counted exactly as the same events written plainly."""
    end = START + timedelta(days=1)
    sim = Simulator(start=START, clock=ManualClock(end), jobs_per_hour=200, incidents=[SPIKE])
    plain = sim.events_until(end)
    odd = []
    for n, item in enumerate(plain):
        moment = datetime.fromisoformat(item["created_at"])
        if n % 3 == 0:
            item = {
                **item,
                "created_at": moment.astimezone(
                    timezone(timedelta(hours=5, minutes=30))
                ).isoformat(),
            }
        elif n % 3 == 1:
            item = {**item, "created_at": moment.strftime("%Y-%m-%dT%H:%M:%S.000000Z")}
        if n % 5 == 0:
            item = {k: v for k, v in item.items() if k not in ("request_id", "duration_seconds")}
        odd.append(item)
    assert all(backtest._plain_row(i) is None for i in odd[::3])
    rules = parse_rules(default_rules_text()).rules
    a = backtest.load(rules, [json.dumps(i) for i in plain])
    b = backtest.load(rules, [json.dumps(i) for i in odd])
    assert (a.first, a.last, a.engine.cube.groups) == (b.first, b.last, b.engine.cube.groups)
    assert np.array_equal(a.engine.cube.data, b.engine.cube.data)
    assert backtest.run(a) == backtest.run(b)
