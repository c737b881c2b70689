"""Feedback on alerts: Expected / Noise recorded per episode with who and when (the last
click wins), shown once on the parent. The clicks through both transports are in
test_slack.py (signed HTTP) and test_socket_mode.py (Socket Mode)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

from bot import messages
from bot.commands import handle_action
from bot.models import EXPECTED, NOISE, Rule
from bot.store import Store
from tests.helpers import T0, make_firing

RULE = Rule(
    name="failed-job-rate",
    metric="failure_rate",
    group_by=("model",),
    bucket=900,
    baseline=2 * 86400,
    method="plain",
    z=4,
    min_volume=10,
    min_rate=0.05,
    recover_for=2,
)


# -- the click -------------------------------------------------------------------------


def click(
    action_id: str, user: str, blocks: list[dict[str, Any]], value: str | None = None
) -> dict[str, Any]:
    """A `block_actions` payload for a button of `blocks` (the parent as Slack holds it)."""
    if value is None:
        buttons = next(b for b in blocks if b["type"] == "actions")["elements"]
        value = next(e for e in buttons if e["action_id"] == action_id)["value"]
    return {
        "type": "block_actions",
        "user": {"id": user},
        "channel": {"id": "C0ALERTS"},
        "container": {"channel_id": "C0ALERTS", "message_ts": "1795400000.000100"},
        "message": {"ts": "1795400000.000100", "text": "FIRING", "blocks": blocks},
        "actions": [{"action_id": action_id, "value": value}],
    }


def notes(blocks: list[dict[str, Any]] | None, block_id: str) -> list[str]:
    return [str(b["elements"][0]["text"]) for b in blocks or [] if b.get("block_id") == block_id]


def test_every_parent_carries_expected_and_noise_naming_its_episode() -> None:
    firing = replace(make_firing(T0 + timedelta(minutes=15)), since=T0)
    blocks = messages.parent_blocks(firing, RULE)
    (actions,) = [b for b in blocks if b["type"] == "actions"]
    ids = [e["action_id"] for e in actions["elements"]]  # type: ignore[index]
    assert ids == ["usage_ack", "usage_silence_1h", "usage_silence_24h", "usage_expected"] + [
        "usage_noise"
    ]
    labels = [e["text"]["text"] for e in actions["elements"]]  # type: ignore[index]
    assert labels[3:] == ["Expected", "Noise"]
    value = json.loads(actions["elements"][3]["value"])  # type: ignore[index]
    assert value == {"rule": "failed-job-rate", "group": ["pro"], "since": "2026-11-23T00:00:00Z"}
    resolved = replace(firing, state="resolved", at=T0 + timedelta(hours=1))
    after = messages.parent_blocks(firing, RULE, resolved=resolved, feedback="Marked it")
    (kept,) = [b for b in after if b["type"] == "actions"]
    assert [e["action_id"] for e in kept["elements"]] == ["usage_expected", "usage_noise"]  # type: ignore[index]
    assert notes(after, messages.FEEDBACK_NOTE) == ["Marked it"]


def test_a_verdict_is_recorded_with_who_and_when_and_the_last_click_wins() -> None:
    store = Store(None)
    try:
        firing = replace(make_firing(T0 + timedelta(minutes=15)), since=T0)
        blocks = messages.parent_blocks(firing, RULE)
        at = T0 + timedelta(minutes=40)
        first = handle_action(click(messages.MARK_NOISE, "U1", blocks), store=store, now=at)
        assert first.text == ":mute: Marked noise by <@U1> at 00:40 UTC"
        assert notes(first.blocks, messages.FEEDBACK_NOTE) == [first.text]
        said = store.feedback("failed-job-rate", ("pro",), T0)
        assert said is not None
        assert (said.verdict, said.verdict_by, said.verdict_at) == (NOISE, "U1", at)

        # U2 disagrees on the parent as U1's click left it: the last click wins, the
        # parent shows one feedback line (U2's), and U2 hears whose verdict was replaced.
        later = at + timedelta(minutes=5)
        assert first.blocks is not None
        second = handle_action(
            click(messages.MARK_EXPECTED, "U2", first.blocks), store=store, now=later
        )
        line = ":ballot_box_with_check: Marked expected by <@U2> at 00:45 UTC"
        assert notes(second.blocks, messages.FEEDBACK_NOTE) == [line]
        assert second.text == f"{line} (it was marked noise by <@U1>; the last click counts)"
        said = store.feedback("failed-job-rate", ("pro",), T0)
        assert said is not None and (said.verdict, said.verdict_by) == (EXPECTED, "U2")

        # An acknowledgement is a note of its own: both show, each once.
        assert second.blocks is not None
        third = handle_action(click(messages.ACK, "U3", second.blocks), store=store, now=later)
        assert notes(third.blocks, messages.FEEDBACK_NOTE) == [line]
        assert notes(third.blocks, messages.ACK_NOTE) == [
            ":eyes: Acknowledged by <@U3> at 00:45 UTC"
        ]
        said = store.feedback("failed-job-rate", ("pro",), T0)
        assert said is not None and (said.acked_by, said.acked_at) == ("U3", later)
    finally:
        store.close()


def test_each_episode_of_a_key_gets_its_own_verdict() -> None:
    store = Store(None)
    try:
        # pro's first episode began at T0, its second a day later; the first one's
        # parent is marked after the second began.
        first, second = make_firing(T0), make_firing(T0 + timedelta(days=1))
        store.save_decisions([], [first, second], {}, T0)
        blocks = messages.parent_blocks(first, RULE)
        later = T0 + timedelta(days=1, hours=1)
        handle_action(click(messages.MARK_NOISE, "U1", blocks), store=store, now=later)
        said = store.feedback("failed-job-rate", ("pro",), T0)
        assert said is not None and said.verdict == NOISE
        assert store.feedback("failed-job-rate", ("pro",), T0 + timedelta(days=1)) is None
        # A parent posted before the buttons named their episode: the key's latest one.
        store.save_decisions([], [make_firing(T0 + timedelta(days=2))], {}, T0)
        old_value = json.dumps({"rule": "failed-job-rate", "group": ["pro"]})
        blocks = messages.parent_blocks(make_firing(), RULE)
        handle_action(click(messages.MARK_EXPECTED, "U1", blocks, old_value), store=store, now=T0)
        said = store.feedback("failed-job-rate", ("pro",), T0 + timedelta(days=2))
        assert said is not None and said.verdict == EXPECTED
    finally:
        store.close()
