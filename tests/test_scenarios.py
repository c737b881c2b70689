"""Detection quality of the default rules, measured on the quick labelled scenario set.

The set (bot/standins/scenarios.py QUICK: five 8-day simulator streams judged at the
5-minute marks, and 75 minutes of a busy account replayed as the polling worker sees it;
about 30 s on 2 CPUs) goes through `bot.backtest`, the live worker's detection path, and
the floors below are what on-call needs from the shipped rules: most incidents caught,
each within two buckets of its rule, a busy model's failures within two minutes, every
trap quiet and at most one false page a month. The matching rules and the evidence
bound's arithmetic (../shared/detection-bound.md's worked figures) are pinned by hand
first, so a floor failure means detection, not bookkeeping. `python bench/scenarios.py`
prints the full table these floors summarise.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.models import FIRING, RESOLVED, Rule, Transition
from bot.standins.bound import (
    Traffic,
    bernoulli_kl,
    charged_bound_minutes,
    failure_bound,
    failure_bound_jobs,
    onset_bound_minutes,
    ramp_mean_multiplier,
    spend_bound,
    spend_kl,
    threshold,
)
from bot.standins.scenarios import (
    FULL,
    QUICK,
    START,
    Labelled,
    Reference,
    Report,
    Scenario,
    at,
    band,
    bucket_seconds,
    default_rules,
    false_alert_lines,
    match,
    outage,
    problem_lines,
    report,
    run_scenario,
    run_suite,
    runaway,
    spike,
    window,
    worker_pace,
)
from bot.standins.simulator import MODEL_MIX, Incident

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


def test_a_trap_window_over_every_model_is_charged_with_any_models_alert() -> None:
    weekend = window(at(5, 0), at(7, 12), "weekend")
    labelled = Scenario("w", seed=1, days=8, incidents=(weekend,))
    alert = fired("spend-per-model", "pro", at(6, 3))
    outcomes, false = match(labelled, [alert], RULES)
    assert false == [alert] and outcomes[0].paged == [alert]
    assert not weekend.simulated and weekend.kind == "trap: weekend"


# --- the evidence bound (../shared/detection-bound.md) ------------------------------------


@pytest.mark.parametrize(
    ("p1", "kl", "jobs"),
    [(0.5, 1.075, 10.5), (0.4, 0.748, 15), (0.25, 0.337, 34), (0.1, 0.053, 213)],
)
def test_the_bernoulli_bound_gives_the_worked_figures(p1: float, kl: float, jobs: float) -> None:
    """p0 3 %, 40,000 jobs a month, budget 0.5: h 11.3, and the note's table."""
    assert threshold(40_000, 0.5) == pytest.approx(11.29, abs=0.01)
    assert bernoulli_kl(0.03, p1) == pytest.approx(kl, abs=0.001)
    assert failure_bound_jobs(0.03, p1, 40_000, 0.5) == pytest.approx(jobs, rel=0.02)


def test_the_spend_bound_is_h_over_the_slot_kl_and_a_creep_takes_its_first_days_mean() -> None:
    assert spend_kl(100.0, 200.0, 5.0) == pytest.approx(400.0**2 / 400.0)
    assert ramp_mean_multiplier(3.0, 72) == pytest.approx(1 + 2 * (24 / 72) / 2)  # 1.33
    assert ramp_mean_multiplier(3.0, 12) == pytest.approx(1 + 2 * (6 + 12) / 24)  # 2.5
    assert ramp_mean_multiplier(4.0, 0) == 4.0


def _finished(model: str, minute: int, failed: bool, credits: float = 0.0) -> dict[str, Any]:
    moment = START + timedelta(minutes=minute)
    return {
        "created_at": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": model,
        "status": "failed" if failed else "completed",
        "credits_used": 0.0 if failed else credits,
    }


def test_the_failure_bound_of_an_incident_reads_p0_and_the_pace_from_the_week_before() -> None:
    """One finished job a minute, one in 20 failing, for 8 days: p0 0.05, N0 43,200."""
    events = [_finished("pro", m, failed=m % 20 == 0) for m in range(8 * 1440)]
    spike_ = Incident("failure_spike", at(7, 12), at(7, 13), model="pro", failure_rate=0.5)
    b = failure_bound(Traffic(events, {"daily": []}, START), spike_, 0.5, poll_seconds=60)
    # from midnight a week before the incident's day: 7.5 days, 10,800 jobs
    assert b.baseline == pytest.approx(0.05, abs=0.001)
    assert b.h == pytest.approx(math.log(43_200 / 0.5), abs=0.01)
    assert b.kl == pytest.approx(bernoulli_kl(0.05, 0.5), rel=0.01)
    assert b.jobs == pytest.approx(b.h / b.kl)
    assert b.volume == pytest.approx(1.0)
    assert b.minutes == pytest.approx(b.jobs / 1.0 + 1.0)


def test_the_spend_bound_of_a_steady_stream_is_h_over_the_kl_of_its_slots() -> None:
    """Slots alternating 10 and 20 credits (a job a minute): m0 15, v0 from the slots."""
    events = [
        _finished("light", m, failed=False, credits=(2 if m // 5 % 2 else 4))
        for m in range(2 * 1440)
    ]
    rise = Incident("spend_runaway", at(1, 12), at(1, 13), model="light", factor=5)
    b = spend_bound(Traffic(events, {"daily": []}, START), rise, 30, steady=True)
    slots = [20.0 if k % 2 == 0 else 10.0 for k in range(3, 288 + 144)]
    mean = sum(slots) / len(slots)
    var = sum((x - mean) ** 2 for x in slots) / (len(slots) - 1)
    assert b.baseline == pytest.approx(mean, rel=0.01)
    assert b.kl == pytest.approx(spend_kl(mean, var, 5), rel=0.02)
    assert b.h == pytest.approx(math.log(8640 / 0.5))
    assert b.minutes == pytest.approx(b.h / b.kl * 5 + 0.5, rel=0.02)
    assert b.volume == pytest.approx(1.0)
    # Jobs counted as they start, exactly (Poisson), at the same h: h / (5 ln 5 - 4) jobs
    # at a job a minute, 2.4 min, where the Gaussian form says 0.7 (KL 72 a slot where
    # the count's is 20): the note's bound is under what any count can prove.
    onset = b.h / (5 * math.log(5) - 4) + 0.5
    assert b.onset_minutes == pytest.approx(onset, rel=0.01)
    assert b.onset_minutes > 1.5 * b.minutes


def test_the_charged_bound_is_h_over_the_poisson_kl_once_the_jobs_charge() -> None:
    """A 5x step at 0.01 jobs a second, charged at once: A = 5 B and A ln(A / B) - (A - B)
    reaches h at B = h / (5 ln 5 - 4). Charged a minute after they start, a minute later.
    A 3-day ramp takes longer than a step to its end's factor."""
    rise = Incident("spend_runaway", at(1, 12), at(1, 16), model="light", factor=5)
    rates = np.full(48, 0.01)
    seconds = 10.0 / (5 * math.log(5) - 4) / 0.01  # 247 s
    at_once = charged_bound_minutes(rise, rates, np.zeros(10), 10.0)
    assert at_once == pytest.approx(seconds / 60, abs=5 / 60)
    late = charged_bound_minutes(rise, rates, np.full(10, 60.0), 10.0)
    assert late == pytest.approx(at_once + 1, abs=5 / 60)
    ramp = Incident("spend_runaway", at(1, 12), at(5, 12), model="light", factor=5, ramp_hours=72)
    slow = charged_bound_minutes(ramp, np.full(4 * 288, 0.01), np.zeros(10), 10.0)
    assert at_once + 60 < slow < math.inf
    assert charged_bound_minutes(rise, rates, np.zeros(10), 1e6) == math.inf
    # Seen as they start, a step's bound is exact, not in 5-second steps: at 2 jobs a
    # second 5x is proven in 1.2 s.
    assert onset_bound_minutes(rise, rates, 10.0) == pytest.approx(seconds / 60, rel=1e-9)
    busy = onset_bound_minutes(rise, np.full(48, 2.0), 10.0) * 60
    assert busy == pytest.approx(10.0 / (5 * math.log(5) - 4) / 2.0, rel=1e-9)
    assert onset_bound_minutes(rise, rates, 1e6) == math.inf
    assert math.isnan(onset_bound_minutes(ramp, np.full(4 * 288, 0.01), 10.0))


def test_the_replayed_worker_polls_at_its_own_pace_and_volumes_fall_in_bands() -> None:
    assert worker_pace(0.1) == 60.0  # quiet: events_every
    assert worker_pace(22.2) == pytest.approx(50 / 22.2)  # pages about half new
    assert worker_pace(1000.0) == 0.5  # never sooner than the floor and the ceiling
    assert [band(v) for v in (0.5, 1.0, 30.0, 60.0, 300.0)] == [
        "< 1/min",
        "1-10/min",
        "10/min-1/s",
        ">= 1/s",
        ">= 1/s",
    ]


def test_the_full_suite_spans_volumes_and_holds_every_kind_issue_12_names() -> None:
    """From half a finished job a minute to 5 a second per model; sudden failure spikes
    of 0.25 to 0.5, spend spikes of 5x and 10x, 2-3x creeps over 3 days, a Sunday-night
    3x after three weeks; traps: a busy hour, weekends, a big customer."""
    per_minute = [
        s.jobs_per_hour * MODEL_MIX[lab.incident.model or "original"] / 60
        for s in FULL
        for lab in s.incidents
        if lab.rule is not None
    ]
    assert min(per_minute) <= 0.5 and max(per_minute) >= 5 * 60
    labels = [lab for s in FULL for lab in s.incidents]
    sudden = {lab.incident.failure_rate for lab in labels if lab.incident.sudden}
    assert min(sudden) == 0.25 and max(sudden) == 0.5
    steps = {lab.incident.factor for lab in labels if lab.kind == "spend_runaway"}
    assert {5.0, 10.0} <= steps
    creeps = [lab.incident for lab in labels if lab.kind == "spend_creep"]
    assert creeps and all(c.ramp_hours == 72 and 2 <= c.factor <= 3 for c in creeps)
    (sunday,) = [lab.incident for lab in labels if "Sunday" in lab.note]
    assert sunday.start.weekday() == 6 and sunday.start.hour >= 20 and sunday.factor == 3
    assert sunday.start - START >= timedelta(days=20)
    traps = " ".join(lab.note for lab in labels if lab.rule is None)
    assert "busy hour" in traps and "weekend" in traps and "big customer" in traps
    assert any(s.busy_hour for s in FULL) and any(s.customer_shares for s in FULL)


def test_the_reference_engine_judges_the_same_events_in_its_own_process() -> None:
    """This very tree as the reference: the subprocess sees what the in-process run sees."""
    scenario = Scenario(
        "ref", seed=5, days=2, incidents=(spike(1, 14, 60, "pro", 0.6),), replay="marks"
    )
    tree = Path(__file__).resolve().parents[1]
    result = run_scenario(scenario, reference=Reference(tree))
    ref = result.reference
    assert ref is not None and ref.replay == "5-minute marks"
    key = [(t.rule, t.group, t.state, t.at) for t in result.transitions]
    assert key and [(t.rule, t.group, t.state, t.at) for t in ref.transitions] == key
    assert [r.jobs for r in ref.rows] == [r.jobs for r in result.rows]
    assert result.rows[0].bound == ref.rows[0].bound


# --- the floors on the quick set ----------------------------------------------------------


@pytest.fixture(scope="session")  # once, even when other tests run between these
def quick() -> Report:
    return report(run_suite(QUICK))


def test_quick_set_exercises_its_traps(quick: Report) -> None:
    """The benign traps are really in the streams: a weekend followed by a Monday, and
    quiet 15-minute windows where half or more of a handful of jobs failed."""
    for r in (r for r in quick.results if r.scenario.days >= 8):
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
    # A busy hour every weekday (the simulator's busy_hour, tests/test_simulator.py).
    busy = next(r for r in quick.results if r.scenario.busy_hour)
    assert sum("busy hour" in o.labelled.note for o in busy.outcomes) == 6  # d0-d4, d7


def test_every_trap_is_quiet(quick: Report) -> None:
    """Weekends and the Mondays after them, a busy hour every weekday, a launch, an
    outage: no alert in any of them."""
    paged = [(o.labelled.note, o.paged) for o in quick.traps if o.paged]
    assert len(quick.traps) >= 10
    assert not paged, "\n".join(false_alert_lines(quick))


def test_a_busy_models_sudden_failures_are_caught_within_two_minutes_near_the_bound(
    quick: Report,
) -> None:
    """5 and 2.8 finished jobs a second: caught on the polls that prove it, in about the
    jobs a perfect CUSUM needs (a poll brings seconds of jobs at once)."""
    busy = [row for row in quick.rows if row.bound.volume >= 60]
    assert len(busy) >= 2 and all(row.family == "failure" for row in busy)
    for row in busy:
        assert row.minutes is not None and row.minutes <= 2, row
        assert row.ratio is not None and row.ratio <= 3, row
        b = row.bound
        assert b.kl == pytest.approx(bernoulli_kl(b.baseline, row.size))
        assert b.jobs == pytest.approx(b.h / b.kl)


def detections(quick: Report) -> list[tuple[Labelled, float]]:
    """(incident, time to detect in buckets of its rule) for every detected incident."""
    found = []
    for result in quick.results:
        for o in result.outcomes:
            if o.labelled.rule is not None and o.ttd is not None:
                bucket = bucket_seconds(RULES[o.labelled.rule])
                found.append((o.labelled, o.ttd.total_seconds() / bucket))
    return found


def test_each_rows_jobs_are_the_groups_finished_jobs_to_the_firing(quick: Report) -> None:
    rows = quick.rows
    assert len(rows) == quick.overall.incidents
    for row in rows:
        if row.fired is not None:
            assert row.jobs is not None and row.jobs >= 1
            assert row.minutes == pytest.approx(
                (row.fired - row.labelled.incident.start).total_seconds() / 60
            )


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
