"""The grouping plan, pure: which incident each pending transition is told in, and when
(group_wait, group_interval and inhibition in data time). Table-style, explicit `now`."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.grouping import Scope, lead, partition, plan, scope_of
from bot.models import (
    FIRING,
    FOLD,
    JOIN,
    OPEN,
    RESOLVED,
    AlertGroup,
    Grouping,
    Rule,
    Transition,
)
from bot.rules import default_rules_text, load_rules, parse_rules

T = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
CHANNEL = "#usage-alerts"

FAILS = Rule("failed-job-rate", "failure_rate", group_by=("model",))
SPEND = Rule("spend-per-model", "spend", group_by=("model",))
TOTAL = Rule("total-failure-rate", "failure_rate")
SEGMENTS = Rule("failed-by-segment", "failure_rate", group_by=("model", "metadata.segment"))


def scopes(*rules: Rule) -> dict[str, Scope]:
    return {r.name: scope_of(r, CHANNEL) for r in rules}


def tr(
    rule: Rule,
    *group: str,
    state: str = FIRING,
    at: datetime = T,
    z: float = 6.0,
) -> Transition:
    return Transition(
        rule=rule.name,
        group=tuple(group),
        group_by=rule.group_by,
        state=state,
        at=at,
        value=0.4,
        baseline=0.02,
        zscore=z,
        volume=20.0,
        since=at,
        peak_zscore=z,
        peak_value=0.4,
    )


def numbered(*transitions: Transition) -> list[tuple[int, Transition]]:
    return [(i + 1, t) for i, t in enumerate(transitions)]


def members(group: AlertGroup) -> list[tuple[str, tuple[str, ...], str, str]]:
    return [(m.rule, m.group, m.state, m.how) for m in group.members]


def test_keys_firing_in_one_step_open_one_incident_listing_them_all() -> None:
    pending = numbered(*(tr(FAILS, m) for m in ("human", "light", "original", "pro")))
    result = plan(pending, [], scopes(FAILS), inhibit=True, now=T)
    assert result.due == (1, 2, 3, 4)
    (group,) = result.changed
    assert group.partition == "failed-job-rate" and group.opened_by == 1
    assert group.id == pending[0][1].idempotency_key  # stable across databases
    assert [m.group for m in group.members] == [("human",), ("light",), ("original",), ("pro",)]
    assert {m.how for m in group.members} == {OPEN}


def test_group_wait_holds_the_first_key_and_what_fits_it_until_judged_that_far() -> None:
    waited = replace(FAILS, grouping=Grouping(wait=300.0))
    first = numbered(tr(waited, "light"), tr(waited, "original"), tr(SPEND, "pro"))
    held = plan(first, [], scopes(waited, SPEND), inhibit=True, now=T + MIN)
    assert held.due == (3,)  # another rule's alert does not wait for it
    assert [g.partition for g in held.changed] == ["spend-per-model"]
    later = [
        *first[:2],
        (4, tr(waited, "pro", at=T + 5 * MIN)),
        (5, tr(waited, "human", at=T + 10 * MIN)),
    ]
    told = plan(later[:3], [], scopes(waited, SPEND), inhibit=True, now=T + 5 * MIN)
    assert told.due == (1, 2, 4)
    (group,) = told.changed
    assert [m.group for m in group.members] == [("light",), ("original",), ("pro",)]
    assert group.updated_at == T + 5 * MIN
    # Judged later than the wait: it joins the incident already told.
    joined = plan(later[3:], [group], scopes(waited, SPEND), inhibit=True, now=T + 10 * MIN)
    (group,) = joined.changed
    assert [m.how for m in group.members] == [OPEN, OPEN, OPEN, JOIN]


def test_a_key_that_fires_later_joins_the_firing_incident() -> None:
    opened = plan(numbered(tr(FAILS, "pro")), [], scopes(FAILS), inhibit=True, now=T).changed
    joined = plan(
        [(2, tr(FAILS, "light", at=T + 15 * MIN))],
        opened,
        scopes(FAILS),
        inhibit=True,
        now=T + 15 * MIN,
    )
    assert joined.due == (2,)
    (group,) = joined.changed
    assert members(group) == [
        ("failed-job-rate", ("pro",), FIRING, OPEN),
        ("failed-job-rate", ("light",), FIRING, JOIN),
    ]


def test_two_rules_are_two_incidents_unless_they_name_one_group() -> None:
    pending = numbered(tr(FAILS, "pro"), tr(SPEND, "pro"))
    apart = plan(pending, [], scopes(FAILS, SPEND), inhibit=True, now=T)
    assert sorted(g.partition for g in apart.changed) == ["failed-job-rate", "spend-per-model"]
    named = [replace(r, grouping=Grouping(group="pro-health")) for r in (FAILS, SPEND)]
    together = plan(
        numbered(tr(named[0], "pro"), tr(named[1], "pro")), [], scopes(*named), inhibit=True, now=T
    )
    (group,) = together.changed
    assert group.partition == "pro-health" and len(group.members) == 2


def test_grouping_by_a_field_keeps_its_values_apart() -> None:
    split = replace(SEGMENTS, grouping=Grouping(by=("model",)))
    pending = numbered(
        tr(split, "pro", "enterprise"), tr(split, "pro", "free"), tr(split, "light", "free")
    )
    result = plan(pending, [], scopes(split), inhibit=True, now=T)
    by_partition = {g.partition: [m.group for m in g.members] for g in result.changed}
    assert by_partition == {
        "failed-by-segment|model=pro": [("pro", "enterprise"), ("pro", "free")],
        "failed-by-segment|model=light": [("light", "free")],
    }


def test_resolves_count_down_and_the_last_one_resolves_the_incident() -> None:
    (group,) = plan(
        numbered(tr(FAILS, "pro"), tr(FAILS, "light")), [], scopes(FAILS), inhibit=True, now=T
    ).changed
    first = plan(
        [(3, tr(FAILS, "pro", state=RESOLVED, at=T + 30 * MIN))],
        [group],
        scopes(FAILS),
        inhibit=True,
        now=T + 30 * MIN,
    )
    (group,) = first.changed
    assert group.status == FIRING and [m.state for m in group.members] == [RESOLVED, FIRING]
    assert group.members[0].resolved_tid == 3
    last = plan(
        [(4, tr(FAILS, "light", state=RESOLVED, at=T + 40 * MIN))],
        [group],
        scopes(FAILS),
        inhibit=True,
        now=T + 40 * MIN,
    )
    (group,) = last.changed
    assert group.status == RESOLVED and last.due == (4,)
    # A key firing after that opens a new incident.
    again = plan(
        [(5, tr(FAILS, "pro", at=T + 60 * MIN))],
        [group],
        scopes(FAILS),
        inhibit=True,
        now=T + 60 * MIN,
    )
    (new,) = again.changed
    assert new.id != group.id and new.opened_by == 5


@pytest.mark.parametrize("inhibit", [True, False])
def test_an_account_wide_alert_takes_in_the_per_model_alerts_of_its_metric(inhibit: bool) -> None:
    pending = numbered(tr(FAILS, "light"), tr(FAILS, "pro"), tr(TOTAL), tr(SPEND, "pro"))
    result = plan(pending, [], scopes(FAILS, TOTAL, SPEND), inhibit=inhibit, now=T)
    groups = {g.partition: g for g in result.changed}
    if inhibit:
        assert sorted(groups) == ["failed-job-rate", "spend-per-model"]
        incident = groups["failed-job-rate"]
        assert [m.rule for m in incident.members] == [FAILS.name, FAILS.name, TOTAL.name]
        assert lead(incident, scopes(FAILS, TOTAL)).rule == TOTAL.name
    else:
        assert sorted(groups) == ["failed-job-rate", "spend-per-model", "total-failure-rate"]


def test_per_model_alerts_fold_into_a_firing_account_wide_incident() -> None:
    rules = scopes(FAILS, TOTAL, SEGMENTS)
    (group,) = plan(numbered(tr(TOTAL)), [], rules, inhibit=True, now=T).changed
    later = [
        (2, tr(FAILS, "pro", at=T + 5 * MIN)),
        (3, tr(SEGMENTS, "light", "free", at=T + 5 * MIN)),
    ]
    result = plan(later, [group], rules, inhibit=True, now=T + 5 * MIN)
    (group,) = result.changed
    assert [(m.rule, m.how) for m in group.members] == [
        (TOTAL.name, OPEN),
        (FAILS.name, FOLD),
        (SEGMENTS.name, FOLD),
    ]
    # Off: each opens its own incident.
    (alone,) = plan(numbered(tr(TOTAL)), [], rules, inhibit=False, now=T).changed
    apart = plan(later, [alone], rules, inhibit=False, now=T + 5 * MIN)
    assert len(apart.changed) == 2 and all(g.id != alone.id for g in apart.changed)


def test_an_account_wide_alert_joins_an_incident_of_its_metric_already_told() -> None:
    rules = scopes(FAILS, TOTAL)
    (group,) = plan(numbered(tr(FAILS, "pro")), [], rules, inhibit=True, now=T).changed
    result = plan([(2, tr(TOTAL, at=T + 5 * MIN))], [group], rules, inhibit=True, now=T + 5 * MIN)
    (group,) = result.changed
    assert [(m.rule, m.how) for m in group.members] == [(FAILS.name, OPEN), (TOTAL.name, JOIN)]


def test_no_folding_across_channels() -> None:
    elsewhere = replace(FAILS, channel="#team-pro")
    rules = scopes(elsewhere, TOTAL)
    result = plan(numbered(tr(TOTAL), tr(elsewhere, "pro")), [], rules, inhibit=True, now=T)
    assert sorted(g.channel for g in result.changed) == ["#team-pro", CHANNEL]


def test_group_interval_batches_the_changes_of_a_told_incident() -> None:
    slow = replace(FAILS, grouping=Grouping(interval=900.0))
    rules = scopes(slow)
    (group,) = plan(numbered(tr(slow, "pro")), [], rules, inhibit=True, now=T).changed
    pending = [
        (2, tr(slow, "light", at=T + 5 * MIN)),
        (3, tr(slow, "light", state=RESOLVED, at=T + 10 * MIN)),
        (4, tr(slow, "human", at=T + 10 * MIN)),
    ]
    early = plan(pending, [group], rules, inhibit=True, now=T + 10 * MIN)
    assert early.due == () and early.changed == ()  # light's resolve waits behind its firing
    due = plan(pending, [group], rules, inhibit=True, now=T + 15 * MIN)
    assert due.due == (2, 3, 4)  # told together, in order
    (group,) = due.changed
    assert [(m.group, m.state) for m in group.members] == [
        (("pro",), FIRING),
        (("light",), RESOLVED),
        (("human",), FIRING),
    ]


def test_reminders_go_to_the_incident_and_an_untold_key_is_told_as_it_fires() -> None:
    (group,) = plan(numbered(tr(FAILS, "pro")), [], scopes(FAILS), inhibit=True, now=T).changed
    pending = [
        (2, tr(FAILS, "pro", state="reminder", at=T + 4 * 60 * MIN)),
        (3, tr(FAILS, "light", state="reminder", at=T + 4 * 60 * MIN)),
    ]
    result = plan(pending, [group], scopes(FAILS), inhibit=True, now=T + 4 * 60 * MIN)
    assert result.due == (2, 3)
    (group,) = result.changed
    assert [(m.group, m.how, m.fired_tid) for m in group.members] == [
        (("pro",), OPEN, 1),
        (("light",), JOIN, 3),
    ]


def test_routes_already_made_are_kept_and_strays_pass_through() -> None:
    (group,) = plan(
        numbered(tr(FAILS, "pro"), tr(FAILS, "light")), [], scopes(FAILS), inhibit=True, now=T
    ).changed
    pending = [
        (2, tr(FAILS, "light")),  # routed before, not told yet (Slack was down)
        (7, tr(FAILS, "human", state=RESOLVED, at=T + MIN)),  # told before incidents existed
        (8, tr(Rule("gone", "spend"), state=FIRING, at=T + MIN)),  # its rule was removed
    ]
    result = plan(pending, [group], scopes(FAILS), inhibit=True, now=T + MIN)
    assert result.due == (2, 7, 8) and result.changed == ()


def test_partition_names_the_group_and_its_by_values() -> None:
    split = scope_of(replace(SEGMENTS, grouping=Grouping(group="failures", by=("model",))), None)
    assert partition(split, SEGMENTS.group_by, ("pro", "free")) == "failures|model=pro"
    assert scope_of(TOTAL, None).account_wide and scope_of(TOTAL, None).channel == ""


def test_rules_yaml_grouping_fills_its_defaults() -> None:
    """rules.yaml's `grouping` (tests/data/rules/good/grouping.yaml; the bad files next to
    it hold each mistake with its exact error) and the defaults when it says nothing."""
    ruleset = load_rules(Path(__file__).parent / "data" / "rules" / "good" / "grouping.yaml")
    assert ruleset.inhibit is False
    strict, loose, total = (r.grouping for r in ruleset.rules)
    assert strict == loose == Grouping(group="failures", by=("model",), wait=300.0, interval=0.0)
    assert total == Grouping(group="total-spend", wait=600.0, interval=900.0)
    defaults = parse_rules(default_rules_text())
    assert defaults.inhibit is True
    unsaid = parse_rules("rules: [{name: r, metric: spend}]")  # no grouping section at all
    assert unsaid.inhibit is True
    assert unsaid.rules[0].grouping == Grouping(group="r", by=(), wait=0.0, interval=300.0)
    assert {r.grouping for r in defaults.rules} == {
        Grouping(group=r.name, wait=0.0, interval=300.0) for r in defaults.rules
    }
    assert Rule("r", "spend").grouping == Grouping()  # a rule made in code: its own name
    assert scope_of(Rule("r", "spend"), "#a").family == "r"
