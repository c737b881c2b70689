"""Budget events and the digest in Slack: the real WebClient against the stand-in; one
message per event even when Slack's answer is lost; the digest's chart in its thread."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.models import THRESHOLD, BudgetEvent
from bot.notify import POST_EVENT_TYPE, SlackNotifier, deliver, make_web_clients
from bot.standins.slack import SlackStandIn
from bot.store import Store

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
CHANNEL = "#billing"


class Wall:
    def __init__(self) -> None:
        self.now = NOW.timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(channels={"usage": "C0USAGE01", "billing": "C0BILL001"}) as standin:
        yield standin


def status_json(spent: float) -> dict[str, object]:
    return {
        "budget": "pro-monthly",
        "scope": {"model": "pro"},
        "period": {"kind": "month", "label": "2026-11", "timezone": "UTC"},
        "limit_credits": 1000.0,
        "spent_credits": spent,
        "used_percent": spent / 10,
        "credit_price": 0.5,
        "currency": "USD",
        "forecast": {
            "projected_credits": 1300.0,
            "low_credits": 1200.0,
            "high_credits": 1400.0,
            "method": "weekday profile",
            "limit_reached_on": "2026-11-27",
        },
        "daily_credits": [["2026-11-23", 400.0], ["2026-11-24", 420.0]],
    }


def queue_threshold(store: Store, threshold: float) -> None:
    event = BudgetEvent(
        "pro-monthly", THRESHOLD, "crossed", "2026-11", threshold, NOW, 820.0, 1000.0
    )
    store.save_budget_events([((event,), CHANNEL, status_json(820.0))], {}, NOW)


def notifier_for(store: Store, slack: SlackStandIn, wall: Wall) -> SlackNotifier:
    reader, poster = make_web_clients("xoxb-test", slack.url, timeout=3)
    return SlackNotifier(
        reader=reader, poster=poster, store=store, rules={}, default_channel="#usage", wall=wall
    )


def test_a_threshold_post_whose_answer_is_lost_is_found_not_posted_again(
    slack: SlackStandIn, tmp_path: Path
) -> None:
    store, wall = Store(tmp_path / "bot.db"), Wall()
    notifier = notifier_for(store, slack, wall)
    queue_threshold(store, 80.0)
    queue_threshold(store, 80.0)  # decided twice (a second worker): queued once
    slack.post_then_drop()
    assert deliver(store, notifier, NOW, wall) == 0
    assert len(slack.messages(CHANNEL)) == 1  # Slack has it; we do not know that yet
    wall.now += 3600
    assert deliver(store, notifier, NOW, wall) == 1
    (message,) = slack.messages(CHANNEL)
    assert message.metadata["event_type"] == POST_EVENT_TYPE
    text = message.text or ""
    assert "pro-monthly" in text and "passed 80% of its limit" in text
    assert "820 ($410.00) of 1,000 ($500.00)" in text
    assert "the limit would be reached on Fri 27 Nov" in text
    assert store.undelivered_posts(wall()) == []
    store.close()


def test_thresholds_crossed_together_are_one_post_and_one_queued_before_still_goes_out(
    slack: SlackStandIn, tmp_path: Path
) -> None:
    store, wall = Store(tmp_path / "bot.db"), Wall()
    notifier = notifier_for(store, slack, wall)
    crossed = [
        BudgetEvent("pro-monthly", THRESHOLD, "crossed", "2026-11", t, NOW, 1020.0, 1000.0)
        for t in (50.0, 80.0, 100.0)
    ]
    assert store.save_budget_events([(tuple(crossed), CHANNEL, status_json(1020.0))], {}, NOW)
    # A post queued by the version that told each event alone: {"event": ...}.
    old = BudgetEvent("account", THRESHOLD, "crossed", "2026-11", 50.0, NOW, 510.0, 1000.0)
    payload = {"event": old.to_json(), "status": {**status_json(510.0), "budget": "account"}}
    assert store.queue_post(f"budget:{old.key}", "budget", CHANNEL, payload, NOW)
    assert deliver(store, notifier, NOW, wall) == 2
    both, alone = slack.messages(CHANNEL)
    assert (both.text or "").startswith(
        ":rotating_light: Budget *pro-monthly* (model pro) passed 50%, 80% and 100% of its limit."
    )
    meta = both.metadata["event_payload"]
    assert meta["delivery"] == "budget:pro-monthly:2026-11:50+80+100"
    assert [e["threshold"] for e in meta["events"]] == [50.0, 80.0, 100.0]
    assert "*account* (model pro) passed 50% of its limit." in (alone.text or "")
    assert alone.metadata["event_payload"]["event"] == old.to_json()
    store.close()


def test_the_digest_is_one_message_with_its_chart_in_the_thread(
    slack: SlackStandIn, tmp_path: Path
) -> None:
    store, wall = Store(tmp_path / "bot.db"), Wall()
    notifier = notifier_for(store, slack, wall)
    payload = {
        "day": "2026-11-23",
        "timezone": "UTC",
        "at": "2026-11-24T09:00:00Z",
        "models": [
            {
                "model": "pro",
                "jobs": 10,
                "finished": 10,
                "failed": 1,
                "credits": 300.0,
                "median_7d": 200.0,
            }
        ],
        "budgets": [status_json(820.0)],
        "alerts": [
            {
                "rule": "failed-job-rate",
                "group": ["pro"],
                "since": "2026-11-24T08:00:00Z",
                "link": "https://slack.com/archives/C1/p123",
            }
        ],
        "chart": {"days": ["2026-11-22", "2026-11-23"], "credits": {"pro": [100.0, 300.0]}},
    }
    assert store.queue_post("digest:2026-11-24:#usage", "digest", None, payload, NOW)
    assert not store.queue_post("digest:2026-11-24:#usage", "digest", None, payload, NOW)
    assert deliver(store, notifier, NOW, wall) == 1
    assert deliver(store, notifier, NOW, wall) == 0
    (message,) = slack.messages("#usage")
    text = message.text or ""
    assert "Usage digest for Monday 23 November 2026" in text
    assert "+50%" in text  # 300 against a median of 200
    assert "10.0%" in text  # 1 failed of 10 finished
    assert "<https://slack.com/archives/C1/p123|thread>" in text and "firing for 1 h" in text
    assert [f.thread_ts for f in slack.files] == [message.ts]
    assert slack.files[0].content.startswith(b"\x89PNG")
    assert json.loads(json.dumps(message.metadata))["event_payload"]["kind"] == "digest"
    store.close()
