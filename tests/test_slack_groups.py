"""Incidents in Slack: keys that fire together are one parent with a details reply each,
a key firing later joins it, resolves count down and the last one resolves the parent;
rules are grouped apart unless they share a group; an account-wide alert takes in the
per-model alerts of its metric (inhibition) unless that is turned off. Exactly once,
adopted on a fresh database, one worker at a time.

The real WebClient against the Slack stand-in over loopback, the worker against the
simulator (every model failing from 10:00 to 10:30: light and original fire at 10:05,
pro at 10:10, human at 10:15, all resolve by 11:40), real SQLite files and PostgreSQL.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.models import Grouping, PollConfig, Rule
from bot.notify import EVENT_TYPE
from bot.standins.simulator import Incident, ManualClock, Simulator
from bot.standins.slack import Message, SlackStandIn
from bot.store import Store
from tests.helpers import SlackRig, second_looks

START = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # a Monday
OUTAGE = Incident(
    "failure_spike",
    START + timedelta(hours=10),
    START + timedelta(hours=10, minutes=30),
    failure_rate=0.6,
)
MODELS = {"human", "light", "original", "pro"}
FAILS = Rule(
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
TOTAL = replace(FAILS, name="total-failure-rate", group_by=(), severity="warning")
STRICT = replace(FAILS, name="failed-job-rate-strict", z=3, severity="warning")
POLL = PollConfig(events_every=60, summary_every=3600)
CHANNEL = "#usage-alerts"


class Rig(SlackRig):
    """One worker: its store, its Slack clients; Slack, the API and the clock outlive it."""

    def __init__(
        self,
        db: str | Path,
        slack: SlackStandIn,
        sim: Simulator,
        clock: ManualClock,
        rules: tuple[Rule, ...] = (FAILS,),
        *,
        inhibit: bool = True,
    ) -> None:
        super().__init__(db, slack, sim, clock, rules, poll=POLL, channel=CHANNEL, inhibit=inhibit)


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn() as standin:
        yield standin


@pytest.fixture
def world() -> tuple[Simulator, ManualClock]:
    clock = ManualClock(START + timedelta(hours=9, minutes=30))
    return Simulator(start=START, clock=clock, jobs_per_hour=600, incidents=[OUTAGE]), clock


def parents(slack: SlackStandIn) -> list[Message]:
    return [m for m in slack.messages(CHANNEL) if m.event_type == EVENT_TYPE]


def payload(message: Message) -> dict[str, Any]:
    return message.metadata["event_payload"] if message.metadata else {}


def keys(parent: Message) -> set[tuple[str, tuple[str, ...]]]:
    return {(m["rule"], tuple(m["group"])) for m in payload(parent)["members"]}


def told(parent: Message, role: str) -> Counter[tuple[str, tuple[str, ...]]]:
    """How often each key got a reply of `role` (details, resolve) in the parent's thread."""
    return Counter(
        (payload(r)["rule"], tuple(payload(r)["group"]))
        for r in parent.replies
        if payload(r).get("role") == role
    )


def models(*rules: Rule) -> set[tuple[str, tuple[str, ...]]]:
    return {(rule.name, (m,) if rule.group_by else ()) for rule in rules for m in MODELS}


def assert_told_once(parent: Message, expected: set[tuple[str, tuple[str, ...]]]) -> None:
    """Every key listed on the parent, one details reply and one resolve each, and the
    parent edited to say the incident resolved."""
    assert keys(parent) == expected
    assert told(parent, "details") == {key: 1 for key in expected}
    assert told(parent, "resolve") == {key: 1 for key in expected}
    assert payload(parent)["state"] == "resolved"
    assert "resolved after" in str(parent.blocks)


# -- one incident --------------------------------------------------------------------------


def test_an_outage_on_every_model_is_one_parent_naming_each_with_its_details_and_one_resolve(
    slack: SlackStandIn, world: tuple[Simulator, ManualClock], tmp_path: Path
) -> None:
    sim, clock = world
    waits = replace(FAILS, grouping=Grouping(wait=600.0))  # pro and human fire 5, 10 min later
    rig = Rig(tmp_path / "bot.db", slack, sim, clock, (waits,))
    rig.run_until(START + timedelta(hours=10, minutes=12))
    assert parents(slack) == []  # 10:05 + 10 min of wait: judged through 10:15 first
    rig.run_until(START + timedelta(hours=11, minutes=50))
    rig.close()
    (parent,) = parents(slack)
    first = parent.revisions[0]
    shown = str(first.blocks)
    assert "*failed-job-rate* is firing for 4 models: light, original, pro, human" in shown
    assert "<!here>" in shown  # critical: on-call is mentioned once, on the parent
    assert {m["how"] for m in first.metadata["event_payload"]["members"]} == {"open"}
    assert_told_once(parent, models(waits))
    failed = {e["request_id"]: e for e in sim.events_until(clock()) if e["status"] == "failed"}
    for reply in parent.replies:
        if payload(reply).get("role") == "details":
            (model,) = payload(reply)["group"]
            assert f"*failed-job-rate for model {model}*" in str(reply.blocks)
            listed = [r for r in failed if r in str(reply.blocks)]
            assert listed and all(failed[r]["model"] == model for r in listed)
    counted = [str(r.blocks) for r in parent.revisions]
    assert any("of 4 resolved" in text for text in counted)  # counted down as keys recover
    counts = [
        re.search(r"(\d of 4|All 4) resolved\.$", r.text or "")
        for r in parent.replies
        if payload(r).get("role") == "resolve"
    ]
    assert [c[1] for c in counts if c] == ["1 of 4", "2 of 4", "3 of 4", "All 4"]
    assert {f.thread_ts for f in slack.files} == {parent.ts}  # each key's chart, in the thread


def test_a_key_that_fires_later_joins_the_firing_incident(
    slack: SlackStandIn, world: tuple[Simulator, ManualClock], tmp_path: Path
) -> None:
    sim, clock = world
    rig = Rig(tmp_path / "bot.db", slack, sim, clock)  # group_wait 0s: told at 10:05
    rig.run_until(START + timedelta(hours=11, minutes=50))
    rig.close()
    (parent,) = parents(slack)
    first = parent.revisions[0]
    assert {tuple(m["group"]) for m in first.metadata["event_payload"]["members"]} == {
        ("light",),
        ("original",),
    }
    assert "is firing for 2 models: light, original" in str(first.blocks)
    joined = [r for r in parent.replies if "joined at" in str(r.blocks)]
    assert sorted(payload(r)["group"][0] for r in joined) == ["human", "pro"]
    # Each join edited the parent to list the key, still firing, before anything resolved.
    listing = [str(r.blocks) for r in parent.revisions]
    assert any(
        "4 models: light, original, pro, human" in t and "resolved" not in t for t in listing
    )
    assert_told_once(parent, models(FAILS))


def test_two_rules_are_two_incidents_unless_they_share_a_group(
    slack: SlackStandIn, world: tuple[Simulator, ManualClock], tmp_path: Path
) -> None:
    sim, clock = world
    rig = Rig(tmp_path / "apart.db", slack, sim, clock, (FAILS, STRICT))
    rig.run_until(START + timedelta(hours=11, minutes=50))
    rig.close()
    apart = parents(slack)
    assert sorted(payload(p)["partition"] for p in apart) == [FAILS.name, STRICT.name]
    for parent in apart:
        rule = payload(parent)["rule"]
        assert {k[0] for k in keys(parent)} == {rule}
        assert_told_once(parent, keys(parent))

    shared = tuple(replace(r, grouping=Grouping(group="failures")) for r in (FAILS, STRICT))
    with SlackStandIn() as other:
        clock.set(START + timedelta(hours=9, minutes=30))
        again = Rig(tmp_path / "shared.db", other, sim, clock, shared)
        again.run_until(START + timedelta(hours=11, minutes=50))
        again.close()
        (parent,) = parents(other)
    assert payload(parent)["partition"] == "failures"
    assert_told_once(parent, {*keys(apart[0]), *keys(apart[1])})
    assert "*failed-job-rate-strict* for" in str(parent.revisions[0].blocks)


@pytest.mark.parametrize("inhibit", [True, False])
def test_an_account_wide_alert_folds_in_the_per_model_alerts_of_its_metric(
    inhibit: bool, slack: SlackStandIn, world: tuple[Simulator, ManualClock], tmp_path: Path
) -> None:
    sim, clock = world
    rig = Rig(tmp_path / "bot.db", slack, sim, clock, (FAILS, TOTAL), inhibit=inhibit)
    rig.run_until(START + timedelta(hours=11, minutes=50))
    rig.close()
    found = parents(slack)
    if not inhibit:  # each rule its own incident, each told as ever
        assert sorted(payload(p)["partition"] for p in found) == [FAILS.name, TOTAL.name]
        return
    (parent,) = found
    assert payload(parent)["rule"] == TOTAL.name  # the account-wide alert heads it
    head = str(parent.revisions[0].blocks)
    assert "*total-failure-rate* is firing for the account, with *failed-job-rate* for" in head
    assert "<!here>" in head  # a critical per-model alert in it: on-call is mentioned
    later = [r for r in parent.replies if "joined at" in str(r.blocks)]
    assert sorted(payload(r)["group"][0] for r in later) == ["human", "pro"]
    assert_told_once(parent, models(FAILS, TOTAL))


# -- exactly once, adoption, two workers ---------------------------------------------------


def test_a_crash_between_the_incident_post_and_its_record_posts_no_second_parent(
    slack: SlackStandIn,
    world: tuple[Simulator, ManualClock],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim, clock = world
    rig = Rig(tmp_path / "bot.db", slack, sim, clock)
    real_done = Store.delivery_done

    def die(self, transition_id, step, channel, ts):  # type: ignore[no-untyped-def]
        raise SystemExit("killed right after the post")

    monkeypatch.setattr(Store, "delivery_done", die)
    with pytest.raises(SystemExit):
        rig.run_until(START + timedelta(hours=10, minutes=20))
    rig.close()
    monkeypatch.setattr(Store, "delivery_done", real_done)
    assert len(parents(slack)) == 1
    began = time.time()
    restarted = Rig(tmp_path / "bot.db", slack, sim, clock)  # same file: a restart
    restarted.wall.now += 3600
    restarted.run_until(START + timedelta(hours=11, minutes=50))
    restarted.close()
    assert [r.method for r in second_looks(slack, began - 2 * 3600)][:1] == [
        "conversations.history"
    ]
    (parent,) = parents(slack)
    assert_told_once(parent, models(FAILS))


def test_a_lost_answer_to_a_join_is_found_again_not_posted_twice(
    slack: SlackStandIn, world: tuple[Simulator, ManualClock], tmp_path: Path
) -> None:
    sim, clock = world
    rig = Rig(tmp_path / "bot.db", slack, sim, clock)
    rig.run_until(START + timedelta(hours=10, minutes=8))  # told at 10:05 with two models
    slack.post_then_drop()  # pro joins at 10:10: Slack posts its details, the bot never hears
    rig.run_until(START + timedelta(hours=10, minutes=12))
    assert rig.store.undelivered()
    rig.wall.now += 3600
    rig.run_until(START + timedelta(hours=11, minutes=50))
    rig.close()
    (parent,) = parents(slack)
    assert_told_once(parent, models(FAILS))
    assert any(r.method == "conversations.replies" for r in slack.requests)  # looked first


def test_a_fresh_database_adopts_the_incident_and_resolves_it_in_its_thread(
    slack: SlackStandIn, world: tuple[Simulator, ManualClock], database: str | Path, tmp_path: Path
) -> None:
    sim, clock = world
    first = Rig(tmp_path / "first.db", slack, sim, clock, (FAILS, TOTAL))
    first.run_until(START + timedelta(hours=10, minutes=7))  # told; pro and human not yet
    first.close()
    (parent,) = parents(slack)
    told_first = keys(parent)
    late = models(FAILS, TOTAL) - told_first
    assert ("failed-job-rate", ("human",)) in late and len(told_first) >= 2
    # The dyno restarts on an empty disk (SQLite) or an empty database (PostgreSQL).
    second = Rig(database, slack, sim, clock, (FAILS, TOTAL))
    second.worker.prepare()
    adopted = second.store.open_groups()
    assert [g.ts for g in adopted] == [parent.ts] and len(adopted[0].members) == len(told_first)
    second.run_until(START + timedelta(hours=11, minutes=50))  # the late keys join it
    refired = Counter(
        (t.rule, t.group) for t in second.store.transitions(100) if t.state == "firing"
    )
    second.close()
    (parent,) = parents(slack)
    assert keys(parent) == models(FAILS, TOTAL) and payload(parent)["state"] == "resolved"
    # Adopted keys are not told again; the late ones (judged afresh) are told in the same
    # thread each time they fire, and resolve.
    details, resolves = told(parent, "details"), told(parent, "resolve")
    assert set(refired) <= late | told_first and late <= set(refired)
    assert all(refired[key] == details[key] for key in late)
    assert set(details) == set(resolves) == models(FAILS, TOTAL)
    assert details == resolves
    assert "*total-failure-rate* resolved after" in str(parent.blocks)


def test_two_workers_on_one_database_tell_the_incident_once(
    slack: SlackStandIn, world: tuple[Simulator, ManualClock], database: str | Path
) -> None:
    sim, clock = world
    first = Rig(database, slack, sim, clock)
    second = Rig(database, slack, sim, clock)
    turn = 0
    while clock() < START + timedelta(hours=11, minutes=50):
        clock.advance(timedelta(minutes=2))
        turn += 1
        for rig in (first, second) if turn % 2 else (second, first):
            rig.worker.tick()
    holders = {first.worker._had_lease, second.worker._had_lease}
    first.close()
    second.close()
    (parent,) = parents(slack)
    assert_told_once(parent, models(FAILS))
    assert holders == {True, False}


def test_the_incident_buttons_acknowledge_and_silence_every_key_in_it(
    slack: SlackStandIn, world: tuple[Simulator, ManualClock], tmp_path: Path
) -> None:
    from bot.commands import handle_action

    sim, clock = world
    rig = Rig(tmp_path / "bot.db", slack, sim, clock, (replace(FAILS, remind_every=1200),))
    rig.run_until(START + timedelta(hours=10, minutes=8))  # light and original: told
    (parent,) = parents(slack)
    buttons = next(b for b in parent.blocks if b["type"] == "actions")["elements"]
    value = {e["action_id"]: e["value"] for e in buttons}

    def click(action: str) -> None:
        handle_action(
            {
                "user": {"id": "U123"},
                "channel": {"id": parent.channel},
                "message": {"ts": parent.ts, "blocks": parent.blocks},
                "actions": [{"action_id": action, "value": value[action]}],
            },
            store=rig.store,
            now=clock(),
        )

    click("usage_ack")
    acked = clock()
    rig.run_until(START + timedelta(hours=11, minutes=0))  # pro and human join it
    # Every key of the incident is acknowledged, those that joined after the click too,
    # and none is reminded of; the parent, edited as they joined, still says so.
    assert {rig.store.acknowledgement(*key) for key in models(FAILS)} == {("U123", acked)}
    (parent,) = parents(slack)
    assert not [r for r in parent.replies if "Still firing" in (r.text or "")]
    assert "4 models" in str(parent.blocks) and "Acknowledged by <@U123>" in str(parent.blocks)
    click("usage_silence_1h")
    assert all(rig.store.silenced(*key, clock()) for key in models(FAILS))
    rig.close()
