"""`usage-bot query`: the terminal answers, from a real store file."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from bot.cli import main
from bot.models import AlertState, EventsPage
from bot.store import Store
from tests.helpers import T0, event_series, make_event, make_firing


@pytest.fixture
def filled(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    store = Store(db_path)
    events = [*event_series(5), make_event(99, T0 + timedelta(minutes=9), status="failed")]
    store.save_events(EventsPage(100, tuple(reversed(events))), stored_at=T0)
    firing = make_firing()
    store.save_decisions(
        [AlertState("failed-job-rate", ("pro",), "firing", 1, 0, T0, 6.2, 0.4)],
        [firing],
        {"failed-job-rate": T0},
        T0,
    )
    store.close()
    monkeypatch.setenv("BOT_DB_PATH", str(db_path))
    for name in ("BOT_POLL_SECONDS", "SLACK_BOT_TOKEN", "LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    return db_path


def test_query_events_lists_request_and_job_ids(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["query", "events", "--limit", "3"]) == 0
    out = capsys.readouterr().out
    assert "req_000099" in out and "job_000099" in out and "failed" in out
    assert "req_000001" not in out  # only the newest three


def test_query_alerts_shows_open_alerts(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "alerts"]) == 0
    out = capsys.readouterr().out
    assert "1 open alert(s)" in out and "failed-job-rate [pro]" in out
    assert "firing   failed-job-rate for model pro" in out


def test_query_summary_on_an_empty_store_says_so(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["query", "summary", "--days", "7"]) == 0
    assert "no summary stored yet" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args", [["query", "summary", "--days", "500"], ["query", "events", "--limit", "0"]]
)
def test_out_of_range_arguments_are_refused_with_the_range(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(args)
    assert caught.value.code == 2
    assert "must be a whole number" in capsys.readouterr().err


def test_query_segment_and_model_give_the_slash_commands_answers(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["query", "segment", "enterprise", "--days", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Segment enterprise, last 2 days") and "```" not in out
    assert "total" in out and "credits per day" in out
    # the rules (rules.yaml, or the embedded defaults) say which open alert to break down
    assert main(["query", "model", "pro"]) == 0
    out = capsys.readouterr().out
    assert "What drives failed-job-rate [pro] (the 15 min ending 00:00 UTC): " in out
    assert main(["query", "model", "nosuch"]) == 1  # a correction, on stderr
    captured = capsys.readouterr()
    assert captured.out == "" and "nosuch" in captured.err


def test_query_budget_json_is_one_document_for_automation(
    filled: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rules = tmp_path / "rules.yaml"
    monkeypatch.setattr("bot.cli.utc_now", lambda: T0 + timedelta(hours=1))  # in that month
    rules.write_text(
        "rules: []\nbudgets:\n  - {name: ent, limit: 600, scope: {segment: enterprise}}\n"
    )
    monkeypatch.setenv("BOT_RULES_PATH", str(rules))
    assert main(["query", "budget", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    (state,) = document["budgets"]
    assert state["budget"] == "ent" and state["scope"] == {"segment": "enterprise"}
    assert state["spent_credits"] == 360.0 and state["used_percent"] == 60.0  # 6 events x 60
    assert main(["query", "budget"]) == 0
    assert "ent" in capsys.readouterr().out
