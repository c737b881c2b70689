"""The detection engine over simulated traffic: windows, phases, history, incrementality."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache

import numpy as np
import pytest

from bot import baselines
from bot.detect import EVIDENCE_RATIOS
from bot.engine import (
    STEP,
    Engine,
    Frozen,
    slots_per_bucket,
    spans_of,
)
from bot.metrics import CREDITS, batch_from_events, batch_from_items
from bot.models import DailyUsage, Event, Rule, Summary
from bot.monitor import Monitor, enrich
from bot.standins.simulator import Incident, ManualClock, Simulator, stepped_creep
from bot.windows import by_phase, from_phase, window_sums
from tests.helpers import (
    FAILURES_2D,
    VOLUME_DOWN,
    engine_for,
    make_event,
    outage_stream,
    same,
)

START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
FAILURES = FAILURES_2D
SPEND = Rule(
    name="spend",
    metric="spend",
    group_by=("model",),
    bucket=3600,
    baseline=2 * 86400,
    z=4,
    min_credits=1000,
)


@cache
def traffic(days: int = 3, spike: bool = True) -> tuple[list[dict], dict]:  # type: ignore[type-arg]
    end = START + timedelta(days=days)
    incidents = [
        Incident(
            "failure_spike",
            START + timedelta(days=2, hours=14),
            START + timedelta(days=2, hours=15),
            model="pro",
            failure_rate=0.6,
        )
    ]
    sim = Simulator(
        start=START, clock=ManualClock(end), jobs_per_hour=300, incidents=incidents if spike else []
    )
    return sim.events_until(end), sim.summary(60)


def test_window_sums_and_phases_round_trip() -> None:
    x = np.arange(2 * 11, dtype=float).reshape(2, 11)
    sums = window_sums(x, 3)
    assert sums.shape == (2, 9) and sums[0, 0] == 0 + 1 + 2 and sums[1, -1] == 19 + 20 + 21
    phased = by_phase(x, 3)
    assert phased.shape == (6, 4)
    assert list(phased[2][~np.isnan(phased[2])]) == [1.0, 4.0, 7.0, 10.0]  # one phase, in time
    assert np.array_equal(from_phase(phased, 3, 11), x)


def test_a_failure_spike_fires_for_its_model_only_within_two_buckets() -> None:
    items, summary = traffic()
    transitions = Monitor(engine_for([FAILURES], items, summary)).run(
        START + timedelta(days=3), START
    )
    fired = [t for t in transitions if t.state == "firing"]
    assert [t.group for t in fired] == [("pro",)]
    spike = START + timedelta(days=2, hours=14)
    assert spike < fired[0].at <= spike + timedelta(minutes=30)
    assert fired[0].value > 0.2 and fired[0].baseline < 0.06 and fired[0].zscore > 4
    assert fired[0].window in (900, 1800, 3600)
    resolved = [t for t in transitions if t.state == "resolved"]
    assert len(resolved) == 1 and resolved[0].at > spike + timedelta(hours=1)


def test_evaluating_in_steps_gives_the_same_transitions_as_at_once() -> None:
    items, summary = traffic()
    end = START + timedelta(days=3)
    whole = Monitor(engine_for([FAILURES, SPEND], items, summary)).run(end, START)
    stepped_monitor = Monitor(engine_for([FAILURES, SPEND], items, summary))
    stepped = []
    moment = START + timedelta(days=2, hours=13)
    stepped += stepped_monitor.run(moment, START)
    while moment < end:
        moment += timedelta(minutes=7)  # ticks that do not fall on the 5-minute grid
        stepped += stepped_monitor.run(min(moment, end), START)
    assert whole and same(stepped, whole)


def test_a_fresh_install_judges_failure_rates_from_the_summary_at_once() -> None:
    items, summary = traffic(days=3, spike=False)
    last_hour = [i for i in items if i["created_at"] >= "2026-11-04T23:00:00Z"]
    engine = engine_for([FAILURES], last_hour, summary)
    evaluations = engine.evaluate(
        FAILURES, START + timedelta(days=2, hours=23, minutes=15), START + timedelta(days=3)
    )
    judged = [e for e in evaluations if math.isfinite(e.zscore)]
    assert judged, "no baseline from the daily summary"
    assert all(0.005 < e.baseline < 0.06 for e in judged)


def test_spend_needs_events_history_before_judging() -> None:
    items, _ = traffic(days=3, spike=False)
    first_hours = [i for i in items if i["created_at"] < "2026-11-02T06:00:00Z"]
    engine = engine_for([SPEND], first_hours)
    evaluations = engine.evaluate(SPEND, START, START + timedelta(hours=6))
    assert evaluations and not any(e.judged for e in evaluations)


def test_a_new_model_has_no_history_rather_than_a_zero_one() -> None:
    items, _ = traffic(days=3, spike=False)
    # "human" appears only on day 3: before that it is unknown, so its arrival is not a runaway.
    items = [i for i in items if i["model"] != "human" or i["created_at"] >= "2026-11-04"]
    engine = engine_for([SPEND], items)
    evaluations = engine.evaluate(SPEND, START + timedelta(days=2), START + timedelta(days=3))
    human = [e for e in evaluations if e.group == ("human",)]
    assert human and not any(e.breach for e in human)
    assert not any(e.judged for e in human[:12])


def test_summary_rules_judge_complete_days_only() -> None:
    rule = Rule(
        name="daily",
        metric="spend",
        source="summary",
        group_by=("model",),
        bucket=86400,
        baseline=7 * 86400,
        z=4,
    )
    _, summary = traffic(days=3, spike=False)
    engine = engine_for([rule], [], summary)
    end_date = Summary.from_api(summary).end_date
    evaluations = engine.evaluate(rule, START - timedelta(days=40), START + timedelta(days=10))
    assert evaluations
    last_day_judged = max(e.at for e in evaluations) - timedelta(days=1)
    assert last_day_judged.date() == end_date - timedelta(days=1)  # today is partial: not judged
    assert {e.at.time() for e in evaluations} == {datetime.min.time()}


def test_the_cube_forgets_old_slots_but_keeps_judging() -> None:
    items, summary = traffic()
    engine = engine_for([FAILURES], items, summary)
    before = engine.evaluate(
        FAILURES, START + timedelta(days=2, hours=14), START + timedelta(days=2, hours=15)
    )
    engine.forget_before(
        START + timedelta(days=2, hours=15) - timedelta(seconds=engine.history_seconds())
    )
    after = engine.evaluate(
        FAILURES, START + timedelta(days=2, hours=14), START + timedelta(days=2, hours=15)
    )
    assert same(after, before)


@pytest.mark.parametrize("order", ["shuffled", "reversed"])
def test_events_in_any_order_count_the_same(order: str) -> None:
    items, summary = traffic()
    mixed = (
        list(reversed(items))
        if order == "reversed"
        else [items[i] for i in np.random.default_rng(1).permutation(len(items))]
    )
    a = engine_for([FAILURES], items, summary).evaluate(FAILURES, START, START + timedelta(days=3))
    b = engine_for([FAILURES], mixed, summary).evaluate(FAILURES, START, START + timedelta(days=3))
    assert len(a) == len(b) and all(
        (x.at, x.group, x.breach) == (y.at, y.group, y.breach) for x, y in zip(a, b, strict=True)
    )
    assert STEP == 300


def test_a_segment_rule_fires_for_the_failing_segment_only() -> None:
    rule = Rule(
        name="failures-by-segment",
        metric="failure_rate",
        group_by=("metadata.segment",),
        bucket=900,
        baseline=86400,
        method="plain",
        z=4,
        min_volume=10,
        min_rate=0.05,
    )
    end = START + timedelta(days=2)
    spike = Incident(
        "failure_spike",
        START + timedelta(days=1, hours=14),
        START + timedelta(days=1, hours=15),
        segment="enterprise",
        failure_rate=0.5,
    )
    sim = Simulator(start=START, clock=ManualClock(end), jobs_per_hour=300, incidents=[spike])
    transitions = Monitor(engine_for([rule], sim.events_until(end))).run(end, START)
    fired = [t for t in transitions if t.state == "firing"]
    assert [t.key for t in fired] == [{"segment": "enterprise"}]
    assert spike.start < fired[0].at <= spike.start + timedelta(minutes=30)


def test_a_volume_rule_catches_a_model_going_silent() -> None:
    rule = VOLUME_DOWN
    # The seasonal baseline is trusted after about six days of history; before that the
    # daily rhythm hides even a drop to zero (z about -3.4 on day 5).
    items, outage, end = outage_stream(START)
    transitions = Monitor(engine_for([rule], items)).run(end, START)
    day = START + timedelta(days=9)
    fired = [t for t in transitions if t.state == "firing" and t.at >= day]
    assert [t.key for t in fired] == [{"model": "original"}]
    assert outage.start < fired[0].at <= outage.start + timedelta(hours=2)
    assert fired[0].value < fired[0].baseline / 3


def test_polls_within_a_slot_judge_as_a_fresh_engine_does_late_events_included() -> None:
    """The baselines frozen for the coming moment are only a cache: every poll's
    evaluation equals that of an engine built from the same events at once, also when
    events land in an older slot (which the frozen baselines read) or a new group starts."""
    items, summary = traffic()
    k = int((START + timedelta(days=2, hours=14, minutes=10)).timestamp()) // STEP
    mark = datetime.fromtimestamp(k * STEP, UTC)
    held = [i for i in items if i["created_at"] < _iso(mark - timedelta(minutes=8))]
    polls = [
        [i for i in items if _iso(mark - timedelta(minutes=8)) <= i["created_at"] < _iso(mark)],
        # a late event for an older slot, and a model never seen before
        [
            {**items[-1], "created_at": _iso(mark - timedelta(hours=h)), "model": "pro"}
            | {"status": "failed", "credits_used": 5000.0, "job_id": f"late-{h}"}
            for h in (2, 3, 5)
        ],
        [{**items[-1], "created_at": _iso(mark - timedelta(minutes=1)), "model": "brand-new"}],
    ]
    rules = [FAILURES, SPEND]
    live = engine_for(rules, held, summary)
    so_far = list(held)
    for batch in polls:
        live.add_events(batch_from_items(batch))
        so_far += batch
        fresh = engine_for(rules, so_far, summary)
        for rule in rules:
            got = live.evaluate(rule, mark - timedelta(seconds=STEP), mark)
            want = fresh.evaluate(rule, mark - timedelta(seconds=STEP), mark)
            assert [e.group for e in got] == [e.group for e in want]
            for a, b in zip(got, want, strict=True):
                assert same(a.value, b.value) and same(a.baseline, b.baseline), (a, b)
                assert same(a.zscore, b.zscore) and same(a.evidence, b.evidence), (a, b)
                assert (a.breach, a.judged, a.calm) == (b.breach, b.judged, b.calm)
        assert set(live.frozen) == {r.name for r in rules}


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_sunday_night_rise_is_judged_against_earlier_sundays() -> None:
    """3x spend on a Sunday night, after three weeks of history: against the same hour of
    the week it is a rise (against weekday nights, as an hour-of-day baseline saw it, it
    was not), and nothing else in the four weeks pages."""
    start = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday
    onset = start + timedelta(days=27, hours=22)  # the fourth Sunday, 22:00
    end = onset + timedelta(hours=2)
    runaway = Incident("spend_runaway", onset, onset + timedelta(hours=1), model="light", factor=3)
    sim = Simulator(
        start=start, clock=ManualClock(end), jobs_per_hour=150, incidents=[runaway], seed=3
    )
    rule = Rule(
        name="spend",
        metric="spend",
        group_by=("model",),
        bucket=3600,
        baseline=7 * 86400,
        seasonal="hour_of_day",
        z=4,
        min_credits=1000,
    )
    engine = engine_for([rule], sim.events_until(end), sim.summary(60))
    firing = [t for t in Monitor(engine).run(end, start) if t.state == "firing"]
    assert [(t.group, t.at >= onset) for t in firing] == [(("light",), True)], firing
    assert firing[0].at - onset <= timedelta(hours=1)


def test_a_first_sunday_runaway_is_counted_against_sundays_level_from_the_summary() -> None:
    """5x spend on `pro` at 03:00 on the first Sunday of events: the events hold no
    Sunday, but the summary's two months of daily totals say Sundays run at 0.6 of a
    weekday, so the evidence test's band is a Sunday's and the runaway is proven within
    20 minutes. With a summary of the events' own week (no weeks to learn from), the
    band is five weekdays' and a Saturday's and the proof takes over half an hour.
    Nothing else fires in the week."""
    start = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday
    onset = start + timedelta(days=6, hours=3)
    end = onset + timedelta(hours=1)
    runaway = Incident("spend_runaway", onset, end, model="pro", factor=5)
    sim = Simulator(
        start=start, clock=ManualClock(end), jobs_per_hour=600, incidents=[runaway], seed=4
    )
    rule = replace(SPEND, baseline=7 * 86400, seasonal="hour_of_day", min_credits=2000)
    items = sim.events_until(end)
    took = {}
    for days in (60, 7):
        transitions = Monitor(engine_for([rule], items, sim.summary(days))).run(end, start)
        assert [(t.group, t.state) for t in transitions] == [(("pro",), "firing")], transitions
        took[days] = transitions[0].at - onset
    assert timedelta(0) < took[60] <= timedelta(minutes=20) < timedelta(minutes=30) < took[7]


def test_a_per_segment_spend_rule_does_not_page_on_each_job_of_a_sparse_group() -> None:
    """Spend by model and segment with `min_credits` below one job's cost: the jobs
    without metadata (3 %, about 1 an hour on `pro`) leave most windows of their group
    empty, a scale of 0, and each single job read as a runaway (47 firings in 8 days
    before a spend scale had one job's noise as its floor). Now a job of the mean cost
    (about 280 credits) is z 2; the few firings left are windows of over 1,000 credits,
    where a third of a job was due."""
    start = datetime(2026, 10, 5, tzinfo=UTC)
    end = start + timedelta(days=8)
    sim = Simulator(start=start, clock=ManualClock(end), jobs_per_hour=300, seed=5)
    rule = replace(
        SPEND,
        group_by=("model", "metadata.segment"),
        baseline=7 * 86400,
        seasonal="hour_of_day",
        min_credits=500,
    )
    transitions = Monitor(engine_for([rule], sim.events_until(end), sim.summary(60))).run(
        end, start
    )
    sparse = [t for t in transitions if t.group[1] == "" and t.state == "firing"]
    assert len(sparse) <= 2, sparse
    assert all(t.value > 1000 for t in sparse)


def test_a_corrected_summary_day_is_read_again_for_spends_one_job_floor() -> None:
    """Spend's one-job floor comes from the summary's complete days, kept between cycles
    while they stay the same. A job every six hours leaves the group's windows mostly
    empty (a scale of 0); its next 800-credit job is z 2 while a job costs 800 credits,
    and z 20 once the same days, re-counted, say a job costs 8."""
    rule = Rule(name="s", metric="spend", group_by=("model",), bucket=900, baseline=2 * 86400)
    start = datetime(2026, 10, 5, tzinfo=UTC)
    last = start + timedelta(days=3, minutes=2)
    jobs = [make_event(i, start + timedelta(hours=6 * i), credits=800.0) for i in range(12)]
    engine = Engine([rule])
    engine.add_events(batch_from_events([*jobs, make_event(99, last, credits=800.0)]))

    def z_of_the_last_job(job_cost: float) -> float:
        days = [start.date() - timedelta(days=back) for back in range(1, 61)]
        rows = [DailyUsage(d, "pro", 10, 10, 0, 10 * job_cost) for d in days]
        engine.add_daily(rows, final_before=last.date())
        mark = last + timedelta(minutes=3)  # the mark closing the last job's slot
        (judged,) = engine.evaluate(rule, mark - timedelta(seconds=STEP), mark)
        return judged.zscore

    assert z_of_the_last_job(800.0) == pytest.approx(2.0)
    assert z_of_the_last_job(8.0) == pytest.approx(20.0)
    assert z_of_the_last_job(8.0) == pytest.approx(20.0)  # the same rows again: kept


def test_a_spend_creep_over_three_days_fires_within_its_first_day() -> None:
    """Spend on one model doubling over three days, never a jump an hour's window sees:
    the creep test (a CUSUM of the hourly scores) fires within 24 h of the onset, told
    with the run's credits against normal, and nothing fires in the ten days before."""
    start = datetime(2026, 10, 5, tzinfo=UTC)
    onset = start + timedelta(days=10, hours=9)
    end = onset + timedelta(days=1)
    steps = stepped_creep(onset, 2, "original")[:4]  # the first day of a 12-step ramp to 2x
    sim = Simulator(start=start, clock=ManualClock(end), jobs_per_hour=300, incidents=steps, seed=5)
    rule = replace(SPEND, baseline=7 * 86400, seasonal="hour_of_day", min_credits=2000)
    engine = engine_for([rule], sim.events_until(end), sim.summary(60))
    firing = [t for t in Monitor(engine).run(end, start) if t.state == "firing"]
    assert [t.group for t in firing] == [("original",)], firing
    told = firing[0]
    assert onset < told.at <= onset + timedelta(hours=24)
    assert told.window > 6 * 3600 and told.value > told.baseline + 2000  # the run, not an hour


def test_a_quiet_models_creep_after_a_weekend_is_proven_by_its_charged_jobs_within_a_day() -> None:
    """`light` (about 30 jobs an hour) doubling over three days from the Monday after a
    week with a weekend: its credits' z-scores are too noisy to sum to the threshold in a
    day (the median of a week with two quiet days sits below the weekdays, and the credits'
    scale is estimated), but its charged jobs against their busy days' level do; and
    nothing fires on the other models, whose Monday is only a Monday."""
    start = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday
    onset = start + timedelta(days=14)
    end = onset + timedelta(days=1)
    sim = Simulator(
        start=start,
        clock=ManualClock(end),
        jobs_per_hour=300,
        incidents=stepped_creep(onset, 2, "light")[:4],
        seed=3,
    )
    rule = replace(SPEND, baseline=7 * 86400, seasonal="hour_of_day", min_credits=2000)
    engine = engine_for([rule], sim.events_until(end), sim.summary(60))
    firing = [t for t in Monitor(engine).run(end, start) if t.state == "firing"]
    assert [t.group for t in firing] == [("light",)], firing
    assert onset < firing[0].at <= onset + timedelta(hours=20)


TOTAL_SPEND = Rule(name="total", metric="spend", bucket=3600, baseline=86400, z=4, min_credits=1)


def test_a_model_launched_into_a_total_counts_once_the_total_has_a_baseline_of_it() -> None:
    """`pro` starts on day 2: for a day (the rule's baseline) the account total leaves it
    out, as if it did not exist, then counts it; a range across the change is judged as
    its moments are one by one."""
    end = START + timedelta(days=4)
    before_pro = Incident("outage", START, START + timedelta(days=2), model="pro")
    sim = Simulator(start=START, clock=ManualClock(end), jobs_per_hour=300, incidents=[before_pro])
    items = sim.events_until(end)
    engine = engine_for([TOTAL_SPEND], items)
    without = engine_for([TOTAL_SPEND], [e for e in items if e["model"] != "pro"])

    def values(e: object, day: float) -> float:
        at = START + timedelta(days=day)
        (ev,) = e.evaluate(TOTAL_SPEND, at - timedelta(minutes=5), at)  # type: ignore[attr-defined]
        return float(ev.value)

    for day in (2.5, 2.9):  # pro is new: the total is the other models'
        assert values(engine, day) == pytest.approx(values(without, day))
    for day in (3.1, 3.5):  # a day of pro held: it counts
        assert values(engine, day) > 1.1 * values(without, day)
    span = engine.evaluate(TOTAL_SPEND, START + timedelta(days=2.5), START + timedelta(days=3.5))
    one_by_one = [
        ev
        for i in range(len(span))
        for ev in engine.evaluate(
            TOTAL_SPEND,
            START + timedelta(days=2.5, minutes=5 * i),
            START + timedelta(days=2.5, minutes=5 * (i + 1)),
        )
    ]
    assert same(span, one_by_one)
    assert not [ev for ev in span if ev.breach]  # the launch is no runaway


def test_a_spend_runaway_is_proven_by_its_charges_before_any_window_sees_it() -> None:
    """3x arrivals on `original` (about 13 charged jobs a minute): five minutes in, the
    first slot's charges prove it (a Poisson CUSUM of charged events against their
    normal band), while neither the 15-minute nor the hour's window breaches yet; the
    alert is told with that run's credits, window and evidence. Two quiet days before
    page nothing."""
    start = datetime(2026, 10, 5, tzinfo=UTC)
    onset = start + timedelta(days=2, hours=3)
    end = onset + timedelta(minutes=20)
    rule = replace(SPEND, baseline=86400, min_credits=2000)
    runaway = Incident("spend_runaway", onset, end, model="original", factor=3)
    sim = Simulator(
        start=start, clock=ManualClock(end), events_per_second=1.0, incidents=[runaway], seed=2
    )
    engine = engine_for([rule], sim.events_until(end), sim.summary(10))
    firing = [t for t in Monitor(engine).run(end, start) if t.state == "firing"]
    assert [(t.group, t.at) for t in firing] == [(("original",), onset + timedelta(minutes=5))]
    (ev,) = (
        e
        for e in engine.evaluate(rule, onset, onset + timedelta(minutes=5))
        if e.group == ("original",)
    )
    assert ev.breach and ev.evidence >= 1.0
    assert ev.window == 300  # the run of charges, not a window's figures
    assert ev.value - ev.baseline >= rule.min_credits
    # Its examples are the run's costliest jobs, none from the normal hour before it.
    events = [Event.from_api(i) for i in sim.events_until(end)]
    told = enrich(firing[0], engine, lambda a, b: [e for e in events if a <= e.created_at < b])
    times = {e.request_id: e.created_at for e in events}
    assert len(told.request_ids) == 10
    assert all(onset <= times[r] < firing[0].at for r in told.request_ids)


def test_spends_threshold_counts_slots_where_a_slot_holds_more_than_one_charge() -> None:
    """Spend's evidence test reads whole slots, so its chances to cross are slots: a busy
    group's threshold spreads the budget over its slots in 30 days (as the note counts
    spend's N0), a quiet group's over its charges, which are fewer."""
    rule = replace(SPEND, baseline=86400)
    end = START + timedelta(days=2, hours=3)
    k = int(end.timestamp()) // STEP
    slots = 30 * 86400 / STEP
    for pace, busy in (({"events_per_second": 1.0}, True), ({"jobs_per_hour": 6}, False)):
        sim = Simulator(start=START, clock=ManualClock(end), seed=3, **pace)  # type: ignore[arg-type]
        engine = engine_for([rule], sim.events_until(end), sim.summary(10))
        frozen = engine._freeze(rule, k, spans_of(rule))
        assert frozen.charged is not None and len(frozen.groups) == 4
        h = frozen.charged[2]
        top = math.log(len(EVIDENCE_RATIOS) * slots * len(frozen.groups) / rule.false_alerts)
        if busy:  # hundreds of charges a slot: the slots' count
            np.testing.assert_allclose(h, top)
        else:  # a charge an hour or so a model: far fewer chances than slots
            assert np.isfinite(h).all() and (h < top - 1.0).all()


def test_each_slots_normal_is_carried_from_the_slot_before_as_read_afresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Spend's evidence test weighs each slot of its run against that slot's own normal
    (charged jobs and credits). A freeze one slot after the last carries the older slots'
    normals over instead of reading them again (which would double the slot-crossing
    cycle): the same numbers."""
    items, summary = traffic()
    rule = replace(SPEND, baseline=86400, seasonal="hour_of_day")
    engine = engine_for([rule], items, summary)
    k = int((START + timedelta(days=2, hours=9, minutes=10)).timestamp()) // STEP
    spans = spans_of(rule)
    engine.frozen[rule.name] = engine._freeze(rule, k - 1, spans)
    with monkeypatch.context() as m:
        m.setattr(Engine, "_normal_charges", lambda *a: pytest.fail("read again"))
        m.setattr(Engine, "_normal_credits", lambda *a: pytest.fail("read again"))
        carried = engine._freeze(rule, k, spans)
    engine.frozen.clear()
    fresh = engine._freeze(rule, k, spans)
    assert carried.charged is not None and fresh.charged is not None
    for normals in fresh.charged[:2]:
        assert normals.shape == (len(fresh.groups), slots_per_bucket(rule))
        assert np.isfinite(normals).all()
    # The hour before 09:10 is not flat: the slots' credits normals differ.
    assert (np.ptp(fresh.charged[1], axis=1) > 0).all()
    _assert_close(list(carried.charged), list(fresh.charged))


def test_slots_before_any_is_known_are_left_out_without_changing_a_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Three days of events: the hour-of-week baselines reach weeks before the first.
    items, summary = traffic()
    spend = replace(SPEND, baseline=7 * 86400, seasonal="hour_of_day")
    by_segment = replace(FAILURES, name="by-segment", group_by=("model", "metadata.segment"))
    engine = engine_for([spend, by_segment], items, summary)
    k = int((START + timedelta(days=2, hours=15, minutes=10)).timestamp()) // STEP
    for rule in (spend, by_segment):
        spans = spans_of(rule)
        known = engine._known_from(rule)
        assert known is not None and known > engine._reach(rule, k)  # so it is left out
        short = engine._freeze(rule, k, spans)
        with monkeypatch.context() as m:
            m.setattr(Engine, "_known_from", lambda self, rule: None)
            whole = engine._freeze(rule, k, spans)
        assert short.groups == whole.groups
        _assert_close(_arrays(short), _arrays(whole))
    # And a baseline over windows that start with some nobody holds leaves them out alone.
    rows = np.full((5, 2, 400), np.nan)
    rows[CREDITS, :, 150:] = np.random.default_rng(7).poisson(40.0, (2, 250))
    cut = baselines.baseline(spend, rows, 168)
    _assert_close(list(cut), list(baselines.held_baseline(spend, rows, 168)))
    assert np.isnan(cut[0][:, :150]).all() and np.isfinite(cut[0][:, -1]).all()


def _assert_close(a: list[np.ndarray], b: list[np.ndarray]) -> None:  # type: ignore[type-arg]
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12, equal_nan=True)


def _arrays(frozen: Frozen) -> list[np.ndarray]:  # type: ignore[type-arg]
    out = [a for pair in frozen.baselines for a in pair]
    for part in (frozen.threshold, *frozen.creeps, frozen.charged):
        out += [] if part is None else [part] if isinstance(part, np.ndarray) else list(part)
    return out
