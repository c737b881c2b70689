"""Feedback on alerts: Expected / Noise recorded per episode with who and when (the last
click wins), shown once on the parent; the per-rule figures of `query alerts --stats`,
`/usage alerts stats` and the digest; `usage-bot tune` finding the threshold that drops
what was marked noise and keeps what was marked expected. Store-backed tests run on
SQLite and PostgreSQL (the `store` and `database` fixtures). The clicks through both
transports are in test_slack.py (signed HTTP) and test_socket_mode.py (Socket Mode)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot import backtest, digest, messages, tune
from bot.budget_book import BudgetBook
from bot.cli import main
from bot.commands import handle_action, handle_command
from bot.models import (
    EXPECTED,
    FIRING,
    NOISE,
    DigestConfig,
    Event,
    EventsPage,
    Rule,
    RuleStats,
    Transition,
)
from bot.standins.simulator import Incident, ManualClock, Simulator
from bot.store import Store
from tests.helpers import FAILURES_2D, T0, make_firing

RULE = FAILURES_2D


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


# -- the figures -----------------------------------------------------------------------

NOW = T0 + timedelta(days=7)


def record(
    store: Store,
    since: datetime,
    *,
    rule: str = "failed-job-rate",
    group: tuple[str, ...] = ("pro",),
    told_after: timedelta = timedelta(minutes=5),
) -> None:
    """One episode as the worker leaves it: fired (decided at `since` + told_after) and
    resolved an hour later."""
    firing = replace(make_firing(since + told_after, rule=rule, group=group), since=since)
    resolved = replace(firing, state="resolved", at=since + timedelta(hours=1))
    store.save_decisions([], [firing, resolved], {}, since + told_after)


def constructed_history(store: Store) -> None:
    """failed-job-rate: pro (acked after 10 min, expected), light (acked after 30 min,
    noise), pro again (noise, never acked), human (adopted from Slack after a cold start:
    no firing stored, marked expected), and one from before the week; total-spend: one
    acked after 2 min, unmarked."""
    day = timedelta(days=1)
    record(store, T0 - timedelta(hours=1))  # before the week: not counted
    store.record_verdict("failed-job-rate", ("pro",), T0 - timedelta(hours=1), NOISE, "U9", T0)
    pro, light, again = T0 + day, T0 + 2 * day, T0 + 3 * day
    record(store, pro)
    record(store, light, group=("light",))
    record(store, again)
    record(store, T0 + 4 * day, rule="total-spend", group=())
    five = timedelta(minutes=5)
    store.record_ack("failed-job-rate", ("pro",), pro, "U1", pro + five + timedelta(minutes=10))
    store.record_ack("failed-job-rate", ("pro",), pro, "U2", pro + 2 * day)  # not the first
    store.record_verdict("failed-job-rate", ("pro",), pro, EXPECTED, "U1", pro + 2 * five)
    store.record_ack("failed-job-rate", ("light",), light, "U2", light + five + 6 * five)
    store.record_verdict("failed-job-rate", ("light",), light, NOISE, "U2", light + day)
    store.record_verdict("failed-job-rate", ("pro",), again, NOISE, "U3", again + day)
    store.record_ack("total-spend", (), T0 + 4 * day, "U1", T0 + 4 * day + five + 2 * five / 5)
    store.record_verdict("failed-job-rate", ("human",), T0 + 5 * day, EXPECTED, "U4", NOW)


def test_stats_per_rule_on_a_constructed_history(store: Store) -> None:
    constructed_history(store)
    assert store.alert_stats(NOW - timedelta(days=7), NOW) == [
        RuleStats("failed-job-rate", 4, 2, 2, 2, 20 * 60.0),
        RuleStats("total-spend", 1, 1, 0, 0, 2 * 60.0),
    ]
    assert store.alert_stats(T0 + timedelta(days=3), NOW) == [
        RuleStats("failed-job-rate", 2, 0, 1, 1, None),
        RuleStats("total-spend", 1, 1, 0, 0, 2 * 60.0),
    ]
    table = handle_command("alerts stats 7", store=store, now=NOW).text
    assert "rule             alerts  acknowledged  expected  noise  median time to ack" in table
    assert "failed-job-rate       4             2         2      2              20 min" in table
    assert "total-spend           1             1         0      0               2 min" in table
    empty = handle_command("alerts stats 1", store=store, now=NOW + timedelta(days=30)).text
    assert "No alerts began in the last 1 day" in empty
    fix = handle_command("alerts stats 500", store=store, now=NOW)
    assert fix.correction and "from 1 to 90" in fix.text


def test_query_alerts_stats_in_the_terminal(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(db_path)
    # Recent: the terminal's clock is the wall clock.
    now = datetime.now(UTC).replace(microsecond=0)
    record(store, now - timedelta(days=2))
    store.record_verdict("failed-job-rate", ("pro",), now - timedelta(days=2), NOISE, "U1", now)
    record(store, now - timedelta(days=20))
    store.close()
    monkeypatch.setenv("BOT_DB_PATH", str(db_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert main(["query", "alerts", "--stats"]) == 0
    out = capsys.readouterr().out
    assert "Alerts per rule, last 7 days" in out
    assert "failed-job-rate       1             0         0      1                   -" in out
    assert main(["query", "alerts", "--stats", "--days", "30"]) == 0
    assert "failed-job-rate       2             0         0      1" in capsys.readouterr().out
    assert main(["query", "alerts", "--days", "30"]) == 2  # --days belongs to --stats
    assert "--days goes with --stats" in capsys.readouterr().err


def test_the_digest_shows_the_week_per_rule(store: Store) -> None:
    constructed_history(store)
    book = BudgetBook.load(store, (), NOW, digest=True)
    payload = digest.compose(store, book, [], DigestConfig(), NOW)
    assert payload["alert_stats"][0] == {
        "rule": "failed-job-rate",
        "alerts": 4,
        "acknowledged": 2,
        "expected": 2,
        "noise": 2,
        "median_ack_seconds": 1200.0,
    }
    text = digest.digest_text(json.loads(json.dumps(payload)))  # as queued and read back
    assert "*Alerts per rule, last 7 days*" in text
    assert "failed-job-rate       4             2         2      2              20 min" in text
    # A quiet week (and a digest queued before the figures existed) says nothing of it.
    assert "Alerts per rule" not in digest.digest_text({**payload, "alert_stats": []})
    del payload["alert_stats"]
    assert "Alerts per rule" not in digest.digest_text(payload)


# -- tune --------------------------------------------------------------------------------

START = datetime(2026, 11, 20, tzinfo=UTC)
END = START + timedelta(days=6)
# A modest rise of pro's failures (3% -> 15% for an hour) that fires at z 4, marked noise,
# and a real incident the next day (60%), marked expected; the day before, a blip (10%)
# that only a z of 3 would have told.
BLIP = Incident(
    "failure_spike",
    START + timedelta(days=3, hours=16),
    START + timedelta(days=3, hours=17),
    model="pro",
    failure_rate=0.10,
)
BUMP = Incident(
    "failure_spike",
    START + timedelta(days=4, hours=10),
    START + timedelta(days=4, hours=11),
    model="pro",
    failure_rate=0.15,
)
INCIDENT = Incident(
    "failure_spike",
    START + timedelta(days=5, hours=14),
    START + timedelta(days=5, hours=15),
    model="pro",
    failure_rate=0.6,
)


@pytest.fixture(scope="module")
def history() -> list[str]:
    """Six days of pro's events as JSON lines (the other models change nothing here)."""
    sim = Simulator(
        start=START, clock=ManualClock(END), jobs_per_hour=200, incidents=[BLIP, BUMP, INCIDENT]
    )
    return [json.dumps(i) for i in sim.events_until(END) if i.get("model") == "pro"]


def labelled(store: Store, lines: list[str], rule: Rule = RULE) -> list[Transition]:
    """The history stored, the alerts the rule made at its own settings (judged from the
    lines by `backtest`, not by the code under test) stored as the worker's outbox, the
    one on the bump's day marked noise and the incident expected. Returns the firings."""
    events = [Event.from_api(json.loads(line)) for line in lines]
    store.save_events(EventsPage(len(events) + 1, tuple(events)), stored_at=END)
    told = backtest.run(backtest.load([rule], lines))
    store.save_decisions([], told, {}, END)
    firings = [t for t in told if t.state == FIRING]
    assert [f.at.date() for f in firings] == [BUMP.start.date(), INCIDENT.start.date()]
    bump, incident = firings
    assert bump.since is not None and incident.since is not None
    store.record_verdict(rule.name, ("pro",), bump.since, NOISE, "U1", END)
    store.record_verdict(rule.name, ("pro",), incident.since, EXPECTED, "U2", END)
    return firings


def by_false_alerts(found: tune.Tuning, budget: float) -> dict[float, tuple[int, int, int, int]]:
    """The trials at one false_alerts budget, by z: (alerts, expected kept, noise
    dropped, unlabelled)."""
    return {
        dict(t.setting)["z"]: (t.alerts, t.expected_kept, t.noise_dropped, t.unlabelled)
        for t in found.trials
        if dict(t.setting)["false_alerts"] == budget
    }


def test_tune_finds_the_z_that_drops_the_noise_and_keeps_the_incident(
    store: Store, history: list[str]
) -> None:
    labelled(store, history)
    found = tune.tune(store, RULE, now=END + timedelta(hours=2), days=3)
    assert (found.expected, found.noise) == (1, 1)
    assert found.knobs == (tune.Z, tune.FALSE_ALERTS)  # a failure rate watching a rise
    assert {dict(t.setting)["false_alerts"] for t in found.trials} == {0.005, 0.05, 0.5, 5}
    assert by_false_alerts(found, RULE.false_alerts) == {
        3.0: (3, 1, 0, 1),  # the blip too, which nobody marked
        3.5: (2, 1, 0, 0),
        4.0: (2, 1, 0, 0),  # the rule's own: what was told
        4.5: (1, 1, 1, 0),
        5.0: (1, 1, 1, 0),
        6.0: (1, 1, 1, 0),
    }
    # The bump is the z-score's: a smaller budget changes nothing here, a larger one lets
    # the evidence test prove it at any z.
    assert by_false_alerts(found, 0.005) == by_false_alerts(found, RULE.false_alerts)
    assert {v[2] for v in by_false_alerts(found, 5.0).values()} == {0}
    best = found.suggestion()
    assert best is not None and best.setting == (("z", 4.5), ("false_alerts", 0.5))
    assert (RULE.z, RULE.false_alerts) == (4, 0.5)  # a suggestion: nothing changed


# A rule whose z was already raised to 6 and still tells a short rise (a quarter of pro's
# jobs failing for half an hour, marked noise): the evidence test proves it at any z.
# A tenth of the budget leaves it below the threshold; the incident is proven still.
RAISED = replace(RULE, z=6)
SHORT_RISE = Incident(
    "failure_spike",
    START + timedelta(days=4, hours=10),
    START + timedelta(days=4, hours=10, minutes=30),
    model="pro",
    failure_rate=0.25,
    sudden=True,
)


@pytest.fixture(scope="module")
def evidence_history() -> list[str]:
    """Six days of pro's events with the short rise and the incident."""
    sim = Simulator(
        start=START, clock=ManualClock(END), jobs_per_hour=200, incidents=[SHORT_RISE, INCIDENT]
    )
    return [json.dumps(i) for i in sim.events_until(END) if i.get("model") == "pro"]


def test_tune_finds_the_false_alerts_that_drops_noise_the_evidence_test_proves(
    store: Store, evidence_history: list[str]
) -> None:
    labelled(store, evidence_history, RAISED)
    found = tune.tune(store, RAISED, now=END + timedelta(hours=2), days=3)
    assert (found.expected, found.noise) == (1, 1)
    assert sorted({dict(t.setting)["z"] for t in found.trials}) == [5, 5.5, 6, 6.5, 7, 8]
    # At the rule's own budget no z tried drops the noise: the evidence test tells it.
    assert {v[1:3] for v in by_false_alerts(found, 0.5).values()} == {(1, 0)}
    # A tenth of the budget does, at every z tried, keeping the incident.
    assert set(by_false_alerts(found, 0.05).values()) == {(1, 1, 1, 0)}
    best = found.suggestion()
    assert best is not None and best.setting == (("z", 6.0), ("false_alerts", 0.05))
    text = messages.feedback.tune_suggestion(found.current, best.setting)
    assert text == (
        "Suggestion: false_alerts = 0.05 (now 0.5): it keeps every expected alert and drops "
        "the noise.\nNothing was changed: to apply it, set in the rule in rules.yaml:\n"
        "    false_alerts: 0.05"
    )
    report = messages.feedback.tune_report(
        RAISED.name,
        found.start,
        found.end,
        (found.expected, found.noise),
        found.current,
        [
            (t.setting, t.alerts, t.expected_kept, t.noise_dropped, t.unlabelled)
            for t in found.trials
        ],
    )
    assert report.splitlines()[2].split()[:3] == ["z", "false_alerts", "alerts"]
    own = [line.split() for line in report.splitlines() if "(now)" in line]
    assert own == [["6", "0.5", "(now)", "2", "1", "of", "1", "0", "of", "1", "0"]]


def test_false_alerts_is_tuned_only_where_the_evidence_test_judges(
    store: Store, history: list[str]
) -> None:
    assert tune.knobs_for(RULE) == (tune.Z, tune.FALSE_ALERTS)
    for other in (
        replace(RULE, direction="both"),
        replace(RULE, direction="down"),
        replace(RULE, source="summary"),
        replace(RULE, metric="spend"),
        replace(RULE, metric="volume"),
    ):
        assert tune.knobs_for(other) == (tune.Z,), other
    # What the engine does: the budget moves a rise's alerts, and nothing else's.
    end = END - timedelta(minutes=1)
    start = end - timedelta(days=3)
    events = [Event.from_api(json.loads(line)) for line in history]
    store.save_events(EventsPage(len(events) + 1, tuple(events)), stored_at=END)
    loaded = tune.load(store, RULE, start, end)
    for rule in (RULE, replace(RULE, direction="both")):
        low, high = (replace(rule, z=4.5, false_alerts=b, name=f"at {b}") for b in (0.005, 5))
        replayed = tune.replay_all(loaded, [low, high], start, end)
        moves = [t.at for t in replayed[low.name]] != [t.at for t in replayed[high.name]]
        assert moves == tune.has_evidence_test(rule), rule
    # Such a rule is tuned by z alone, and the report shows no false_alerts.
    labelled(store, history)
    both = replace(RULE, direction="both")
    found = tune.tune(store, both, now=END + timedelta(hours=2), days=3)
    assert found.knobs == (tune.Z,)
    assert [t.setting for t in found.trials] == [(("z", z),) for z in (3, 3.5, 4, 4.5, 5, 6)]
    assert found.current == (("z", 4.0),)


def test_one_engine_judges_each_setting_as_its_own_engine_would(history: list[str]) -> None:
    store = Store(None)
    try:
        events = [Event.from_api(json.loads(line)) for line in history]
        store.save_events(EventsPage(len(events) + 1, tuple(events)), stored_at=END)
        end = END - timedelta(minutes=1)
        start = end - timedelta(days=3)
        loaded = tune.load(store, RULE, start, end)
        tried = [(("z", 3.0), ("false_alerts", 5.0)), (("z", 4.5), ("false_alerts", 0.5))]
        tried += [(("z", 6.0), ("false_alerts", 0.005))]
        variants = [replace(tune.with_setting(RULE, s), name=f"v{i}") for i, s in enumerate(tried)]
        together = tune.replay_all(loaded, variants, start, end)
        for variant in variants:
            alone = tune.replay(loaded, replace(variant, name=RULE.name), start, end)
            assert [replace(t, rule=variant.name) for t in alone] == together[variant.name]
            assert alone  # each judged something
    finally:
        store.close()


def test_the_knobs_values_and_distances() -> None:
    assert tune.FALSE_ALERTS.values(RULE) == [0.005, 0.05, 0.5, 5.0]
    assert tune.FALSE_ALERTS.values(replace(RULE, false_alerts=5)) == [0.05, 0.5, 5.0]  # <= 30
    assert tune.FALSE_ALERTS.values(replace(RULE, false_alerts=0.3)) == [0.003, 0.03, 0.3, 3.0]
    assert tune.Z.values(replace(RULE, z=1)) == [0.5, 1.0, 1.5, 2.0, 3.0]  # none under 0.5
    assert tune.FALSE_ALERTS.distance(0.5, 0.05) == pytest.approx(1.0)
    assert tune.FALSE_ALERTS.distance(0.5, 5.0) == pytest.approx(1.0)
    assert tune.Z.distance(4.0, 5.0) == pytest.approx(2.0)  # half sigmas
    # On a tie of distance the setting whose replay alerted more is suggested.
    trials = (
        tune.Trial((("z", 4.5), ("false_alerts", 0.5)), 1, 1, 1, 0),
        tune.Trial((("z", 4.0), ("false_alerts", 0.05)), 2, 1, 1, 1),
        tune.Trial((("z", 4.0), ("false_alerts", 0.5)), 2, 1, 0, 0),
    )
    found = tune.Tuning(RULE, START, END, 1, 1, trials, (tune.Z, tune.FALSE_ALERTS))
    best = found.suggestion()
    assert best is not None and best.setting == (("z", 4.0), ("false_alerts", 0.05))


def test_tune_says_when_no_threshold_tried_is_right() -> None:
    trials = (
        tune.Trial((("z", 3.0),), 3, 2, 0, 1),
        tune.Trial((("z", 4.0),), 2, 2, 0, 0),
        tune.Trial((("z", 5.0),), 1, 1, 1, 0),
        tune.Trial((("z", 6.0),), 0, 0, 1, 0),
    )
    found = tune.Tuning(RULE, T0, NOW, expected=2, noise=1, trials=trials)
    assert found.suggestion() is None
    assert found.closest().setting == (("z", 4.0),)  # keeping what was expected comes first
    text = messages.feedback.tune_suggestion(
        found.current, None, ((("z", 4.0),), 2, 0), (found.expected, found.noise)
    )
    assert text == (
        "Suggestion: no setting tried keeps every expected alert and drops all the noise; "
        "closest: z = 4 (keeps 2 of 2 expected, drops 0 of 1 noise). Nothing was changed."
    )


def test_the_tune_command(
    database: str | Path,
    history: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "version: 1\nrules:\n  - name: failed-job-rate\n    metric: failure_rate\n"
        "    group_by: [model]\n    bucket: 15m\n    baseline: 2d\n    method: plain\n"
        "    z: 4\n    min_volume: 10\n    min_rate: 0.05\n    recover_for: 2\n"
    )
    monkeypatch.setenv("BOT_RULES_PATH", str(rules))
    for name in ("DATABASE_URL", "BOT_DB_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(
        "DATABASE_URL" if isinstance(database, str) else "BOT_DB_PATH", str(database)
    )
    store = Store(database)
    events = [Event.from_api(json.loads(line)) for line in history]
    store.save_events(EventsPage(len(events) + 1, tuple(events)), stored_at=END)
    store.close()

    assert main(["tune", "spend-per-model"]) == 1
    assert capsys.readouterr().err == (
        "usage-bot: tune: no rule named 'spend-per-model' in the rules file "
        "(rules: failed-job-rate)\n"
    )
    assert main(["tune", "failed-job-rate", "--days", "3"]) == 1  # nothing marked yet
    assert "is marked expected or noise" in capsys.readouterr().err

    store = Store(database)
    labelled(store, history)
    store.close()
    assert main(["tune", "failed-job-rate", "--days", "3"]) == 0
    assert capsys.readouterr().out == TUNE_OUTPUT  # as README's "Feedback on alerts" shows


TUNE_OUTPUT = """\
failed-job-rate judged again over the stored events of 2026-11-22 23:59 .. 2026-11-25 23:59 UTC
1 alert(s) marked expected, 1 marked noise in that span.
z    false_alerts  alerts  expected kept  noise dropped  unlabelled
---  ------------  ------  -------------  -------------  ----------
3           0.005       3         1 of 1         0 of 1           1
3            0.05       3         1 of 1         0 of 1           1
3             0.5       3         1 of 1         0 of 1           1
3               5       3         1 of 1         0 of 1           1
3.5         0.005       2         1 of 1         0 of 1           0
3.5          0.05       2         1 of 1         0 of 1           0
3.5           0.5       2         1 of 1         0 of 1           0
3.5             5       2         1 of 1         0 of 1           0
4           0.005       2         1 of 1         0 of 1           0
4            0.05       2         1 of 1         0 of 1           0
4       0.5 (now)       2         1 of 1         0 of 1           0
4               5       2         1 of 1         0 of 1           0
4.5         0.005       1         1 of 1         1 of 1           0
4.5          0.05       1         1 of 1         1 of 1           0
4.5           0.5       1         1 of 1         1 of 1           0
4.5             5       2         1 of 1         0 of 1           0
5           0.005       1         1 of 1         1 of 1           0
5            0.05       1         1 of 1         1 of 1           0
5             0.5       1         1 of 1         1 of 1           0
5               5       2         1 of 1         0 of 1           0
6           0.005       1         1 of 1         1 of 1           0
6            0.05       1         1 of 1         1 of 1           0
6             0.5       1         1 of 1         1 of 1           0
6               5       2         1 of 1         0 of 1           0
Suggestion: z = 4.5 (now 4): it keeps every expected alert and drops the noise.
Nothing was changed: to apply it, set in the rule in rules.yaml:
    z: 4.5
"""
