"""Detection quality of the default rules, measured on the quick labelled scenario set.

The set (bot/standins/scenarios.py QUICK: four 8-day simulator streams, about 30 s on 2 CPUs)
goes through `bot.backtest`, the live worker's detection path, and the floors below are
what on-call needs from the shipped rules: most incidents caught, each within two buckets
of its rule, and at most one false page a month. The matching rules themselves are pinned
with hand-made transitions first, so a floor failure means detection, not bookkeeping.
`python bench/scenarios.py` prints the full table these floors summarise.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from bot.models import FIRING, RESOLVED, Rule, Transition
from bot.standins.scenarios import (
    QUICK,
    Labelled,
    Report,
    Scenario,
    bucket_seconds,
    default_rules,
    false_alert_lines,
    match,
    outage,
    problem_lines,
    report,
    run_suite,
    runaway,
    spike,
)

# The quick set is generated once (the session-scoped fixture below): under `-n`, this
# file's tests share one worker (pyproject's --dist loadfile), which generates it once.

RULES: dict[str, Rule] = {rule.name: rule for rule in default_rules()}


def fired(
    rule: str, model: str | None, at: datetime, state: str = FIRING, value: float = 1.0
) -> Transition:
    """A transition as `backtest.run` reports it (model None: an account-wide rule)."""
    group_by = RULES[rule].group_by
    return Transition(
        rule=rule,
        group=() if model is None else (model,),
        group_by=group_by,
        state=state,
        at=at,
        value=value,
        baseline=0.0,
        zscore=5.0,
        volume=10.0,
        since=at,
        peak_zscore=5.0,
        peak_value=value,
    )


# --- the bookkeeping ----------------------------------------------------------------------

SPIKE = spike(3, 14, 60, "pro", 0.6)
RUNAWAY = runaway(4, 10, 60, "light", 5)
TRAP = outage(5, 2, 180, "original", "outage 3 h")
LABELLED = Scenario("labels", seed=1, days=8, incidents=(SPIKE, RUNAWAY, TRAP))


def test_firing_of_the_expected_rule_within_one_bucket_after_the_end_is_a_detection() -> None:
    end = SPIKE.incident.end + timedelta(seconds=bucket_seconds(RULES["failed-job-rate"]))
    outcomes, false = match(LABELLED, [fired("failed-job-rate", "pro", end)], RULES)
    assert false == []
    assert outcomes[0].ttd == end - SPIKE.incident.start


def test_firing_later_than_one_bucket_after_the_end_is_a_false_alert() -> None:
    late = SPIKE.incident.end + timedelta(minutes=20)
    outcomes, false = match(LABELLED, [fired("failed-job-rate", "pro", late)], RULES)
    assert outcomes[0].detection is None
    assert [t.at for t in false] == [late]


def test_firing_for_another_model_during_an_incident_is_a_false_alert() -> None:
    during = SPIKE.incident.start + timedelta(minutes=10)
    outcomes, false = match(LABELLED, [fired("failed-job-rate", "light", during)], RULES)
    assert outcomes[0].detection is None
    assert len(false) == 1


def test_other_rules_on_the_same_model_or_account_are_co_alerts_not_false() -> None:
    start = RUNAWAY.incident.start
    transitions = [
        fired("spend-per-model", "light", start + timedelta(minutes=20)),
        fired("total-spend", None, start + timedelta(minutes=25)),
        fired("daily-spend-per-model", "light", start.replace(hour=0) + timedelta(days=1)),
    ]
    outcomes, false = match(LABELLED, transitions, RULES)
    assert false == []
    assert outcomes[1].ttd == timedelta(minutes=20)
    assert [t.rule for t in outcomes[1].co_alerts] == ["total-spend", "daily-spend-per-model"]


def test_a_second_firing_for_the_same_incident_is_a_repeat_and_resolutions_are_ignored() -> None:
    start = SPIKE.incident.start
    transitions = [
        fired("failed-job-rate", "pro", start + timedelta(minutes=10)),
        fired("failed-job-rate", "pro", start + timedelta(minutes=20), state=RESOLVED),
        fired("failed-job-rate", "pro", start + timedelta(minutes=40)),
    ]
    outcomes, false = match(LABELLED, transitions, RULES)
    assert false == []
    assert outcomes[0].ttd == timedelta(minutes=10)
    assert len(outcomes[0].repeats) == 1


def test_any_alert_drawn_by_a_benign_trap_is_false_and_charged_to_it() -> None:
    during = TRAP.incident.start + timedelta(hours=1)
    outcomes, false = match(LABELLED, [fired("total-spend", None, during)], RULES)
    assert len(false) == 1
    assert outcomes[2].paged == false


# --- the floors on the quick set ----------------------------------------------------------


@pytest.fixture(scope="session")  # once, even when other tests run between these
def quick() -> Report:
    return report(run_suite(QUICK))


def test_quick_set_exercises_its_traps(quick: Report) -> None:
    """The benign traps are really in the streams: a weekend followed by a Monday, and
    quiet 15-minute windows where half or more of a handful of jobs failed."""
    for r in quick.results:
        days = r.job_events_per_day
        saturday = next(d for d in days if d.weekday() == 5)
        sunday, monday = saturday + timedelta(days=1), saturday + timedelta(days=2)
        assert monday.weekday() == 0 and {saturday, sunday, monday} <= set(days), r.scenario
        # The Monday is a weekday's traffic after a quiet weekend: the jump the spend
        # rules must not page on (weekends run at 0.6 of a weekday).
        quiet = max(days[saturday], days[sunday])
        assert days[monday] > 1.4 * quiet, (r.scenario.name, days)
        before = sorted(n for d, n in days.items() if d < saturday)  # the weekdays before
        assert days[monday] > 0.8 * before[len(before) // 2], (r.scenario.name, days)
    sparse = next(r for r in quick.results if r.scenario.jobs_per_hour < 100)
    assert sparse.half_failed_windows > 0
    assert sum(1 for r in quick.results for o in r.outcomes if o.labelled.rule is None) >= 2


def detections(quick: Report) -> list[tuple[Labelled, float]]:
    """(incident, time to detect in buckets of its rule) for every detected incident."""
    found = []
    for result in quick.results:
        for o in result.outcomes:
            if o.labelled.rule is not None and o.ttd is not None:
                bucket = bucket_seconds(RULES[o.labelled.rule])
                found.append((o.labelled, o.ttd.total_seconds() / bucket))
    return found


def test_clear_incidents_are_caught_within_two_buckets(quick: Report) -> None:
    """Half the jobs of a model failing, or spend five times its usual, pages within two
    buckets of its start. (A small rise at a quiet hour needs more evidence than two
    buckets hold at z 4: bench/scenarios.py prints how long those take.)"""
    clear = [
        (labelled, buckets)
        for labelled, buckets in detections(quick)
        if labelled.incident.failure_rate >= 0.5
        and labelled.incident.kind == "failure_spike"
        or labelled.incident.factor >= 5
        and labelled.incident.kind == "spend_runaway"
    ]
    assert len(clear) >= 4
    late = [(labelled.incident, buckets) for labelled, buckets in clear if buckets > 2]
    assert not late, "\n".join(problem_lines(quick))


def test_the_median_incident_is_caught_within_two_buckets(quick: Report) -> None:
    found = sorted(buckets for _, buckets in detections(quick))
    assert found and found[len(found) // 2] <= 2, "\n".join(problem_lines(quick))


def test_default_rules_recall_at_least_ninety_percent(quick: Report) -> None:
    recall = quick.overall.recall
    assert recall >= 0.9, f"recall {recall:.2f}:\n" + "\n".join(problem_lines(quick))


def test_default_rules_page_falsely_at_most_once_per_thirty_days(quick: Report) -> None:
    rate = quick.false_per_30_days
    assert rate <= 1.0, (
        f"{quick.false_alerts} false alerts in {quick.days} simulated days "
        f"({rate:.2f} per 30 days):\n" + "\n".join(false_alert_lines(quick))
    )
