"""Budgets: periods in time zones, spend from events and the summary, the forecast, and
the decisions (each threshold once per period, forecast warnings that end)."""

from __future__ import annotations

import bisect
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from bot.budget import SLOT, decide, period_of, spend_slots, status
from bot.metrics import KIND_COMPLETED, EventBatch, UsageCube
from bot.models import FORECAST, THRESHOLD, Budget, Marks


def cube_of(points: list[tuple[datetime, float, str]]) -> UsageCube:
    """A 15-minute cube from (time, credits, model) points."""
    cube = UsageCube(SLOT)
    if points:
        cube.add(_batch(points))
    return cube


def daily_spend(
    first: date, days: int, per_day: float | list[float], model: str = "pro"
) -> list[tuple[datetime, float, str]]:
    """Spend spread over 24 hourly events a day (UTC)."""
    points = []
    for i in range(days):
        amount = per_day[i] if isinstance(per_day, list) else per_day
        start = datetime(first.year, first.month, first.day, tzinfo=UTC) + timedelta(days=i)
        points += [(start + timedelta(hours=h, minutes=5), amount / 24, model) for h in range(24)]
    return points


# -- periods -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "zone", "now", "label", "start", "end"),
    [
        ("month", "UTC", "2026-11-29T10:00:00", "2026-11", "2026-11-01T00:00", "2026-12-01T00:00"),
        # 23:30 UTC on the 30th is already December in Berlin (UTC+1 in winter)
        (
            "month",
            "Europe/Berlin",
            "2026-11-30T23:30:00",
            "2026-12",
            "2026-11-30T23:00",
            "2026-12-31T23:00",
        ),
        # ...and still November in Los Angeles until 08:00 UTC on the 1st
        (
            "month",
            "America/Los_Angeles",
            "2026-12-01T07:59:00",
            "2026-11",
            "2026-11-01T07:00",
            "2026-12-01T08:00",
        ),
        # October in Berlin spans the DST change: starts at UTC+2, ends at UTC+1
        (
            "month",
            "Europe/Berlin",
            "2026-10-15T12:00:00",
            "2026-10",
            "2026-09-30T22:00",
            "2026-10-31T23:00",
        ),
        ("week", "UTC", "2026-11-29T23:59:00", "2026-W48", "2026-11-23T00:00", "2026-11-30T00:00"),
        # the DST day in Berlin has 25 hours
        (
            "day",
            "Europe/Berlin",
            "2026-10-25T12:00:00",
            "2026-10-25",
            "2026-10-24T22:00",
            "2026-10-25T23:00",
        ),
        # 31 December to 1 January
        ("day", "UTC", "2026-12-31T23:59:59", "2026-12-31", "2026-12-31T00:00", "2027-01-01T00:00"),
    ],
)
def test_period_of(period: str, zone: str, now: str, label: str, start: str, end: str) -> None:
    budget = Budget("b", 100.0, period=period, timezone=zone)
    got = period_of(budget, datetime.fromisoformat(now).replace(tzinfo=UTC))
    assert got.label == label
    assert got.start == datetime.fromisoformat(start).replace(tzinfo=UTC)
    assert got.end == datetime.fromisoformat(end).replace(tzinfo=UTC)


def test_a_month_end_in_a_zone_counts_spend_to_the_right_month() -> None:
    """Spend at 23:30 on 30 November in Los Angeles is November's, though it is
    1 December in UTC; an hour later in Berlin's time it is December's there."""
    late = datetime(2026, 12, 1, 7, 30, tzinfo=UTC)  # 23:30 PST on 30 November
    cube = cube_of([(late, 500.0, "pro")])
    la = Budget("la", 1000.0, timezone="America/Los_Angeles")
    berlin = Budget("berlin", 1000.0, timezone="Europe/Berlin")
    assert status(la, cube, None, late + timedelta(minutes=20)).spent == pytest.approx(500.0)
    after = datetime(2026, 12, 1, 8, 10, tzinfo=UTC)  # December in LA now
    assert status(la, cube, None, after).spent == 0.0
    assert status(berlin, cube, None, after).spent == pytest.approx(500.0)


# -- spend from events and the summary ------------------------------------------------------


def test_the_summary_fills_in_days_without_events_and_gaps() -> None:
    now = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
    # events only from the 9th on, and on the 9th a gap lost half the day's credits
    cube = cube_of(daily_spend(date(2026, 11, 9), 1, 480.0) + [(now, 10.0, "pro")])
    summary = {date(2026, 11, d): 1000.0 for d in range(1, 10)}
    lo = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp()) // SLOT
    credits, known = spend_slots(cube, [("model", "pro")], summary, lo, now)
    per_day = credits[: 9 * 96].reshape(9, 96).sum(axis=1)
    assert per_day == pytest.approx([1000.0] * 9)  # the summary's figures, gap filled
    assert known[: 9 * 96].all()
    assert credits[9 * 96 :].sum() == pytest.approx(10.0)  # today: events only so far
    # the missing 520 of the 9th follow the events' shape: hourly, not smeared over slots
    ninth = credits[8 * 96 : 9 * 96]
    assert (ninth > 0).sum() == 24
    # a segment scope has no summary: days before events are unknown, not zero
    credits, known = spend_slots(cube, [("segment", "enterprise")], None, lo, now)
    assert not known[: 8 * 96].any() and known[8 * 96 :].all()


# -- thresholds and the forecast over a simulated month ---------------------------------------


def run_month(
    budget: Budget, per_day: list[float], first: date, every: timedelta = timedelta(hours=1)
) -> list[tuple[datetime, str, str, float, date | None]]:
    """Evaluate a budget every `every` through a month of spend, carrying the marks the
    worker would store; return the events in order (at, kind, state, threshold, day)."""
    history_start = first - timedelta(days=35)
    points = daily_spend(history_start, 35 + len(per_day), [per_day[0]] * 35 + per_day)
    events = []
    marks = Marks()
    now = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = now + timedelta(days=len(per_day))
    cube = UsageCube(SLOT)
    times = [at for at, _, _ in points]
    label = ""
    fed = 0
    while now < end:
        upto = bisect.bisect_right(times, now)
        if upto > fed:
            cube.add(_batch(points[fed:upto]))  # what the worker would have stored by now
        fed = upto
        state = status(budget, cube, None, now)
        if marks.crossed and state.period.label != label:
            marks = Marks(frozenset(), marks.forecast_period)  # a new period begins
        label = state.period.label
        for event in decide(state, marks):
            events.append((now, event.kind, event.state, event.threshold, event.crossing))
            if event.kind == THRESHOLD:
                marks = Marks(marks.crossed | {event.threshold}, marks.forecast_period)
            else:
                firing = event.period if event.state == "firing" else None
                marks = Marks(marks.crossed, firing)
        now += every
    return events


def _batch(points: list[tuple[datetime, float, str]]) -> EventBatch:
    return EventBatch(
        epoch=np.array([at.timestamp() for at, _, _ in points]),
        group=[(model, "enterprise", "acme") for _, _, model in points],
        kind=np.full(len(points), KIND_COMPLETED, dtype=np.int8),
        credits=np.array([credits for _, credits, _ in points]),
    )


def test_thresholds_fire_once_each_in_order_and_the_forecast_warns_days_ahead() -> None:
    """A steadily rising account (100 -> 245 credits a day over November) against a
    limit it crosses on the 27th: 50%, 80%, 100% each once, in order; the forecast
    warns days before the limit is reached, naming a day near the 27th."""
    per_day = [100.0 + 5.0 * i for i in range(30)]
    limit = sum(per_day[:26]) + per_day[26] / 2  # reached at noon on the 27th
    budget = Budget("pro-monthly", limit, scope=(("model", "pro"),))
    events = run_month(budget, per_day, date(2026, 11, 1))
    thresholds = [(t, th) for t, kind, _, th, _ in events if kind == THRESHOLD]
    assert [th for _, th in thresholds] == [50.0, 80.0, 100.0]
    assert thresholds[-1][0].date() == date(2026, 11, 27)
    warnings = [(t, day) for t, kind, state, _, day in events if kind == FORECAST]
    assert warnings, "the forecast never warned"
    first_warning, expected_day = warnings[0]
    assert events[[e[1] for e in events].index(FORECAST)][2] == "firing"
    assert (date(2026, 11, 27) - first_warning.date()).days >= 4
    assert expected_day is not None and abs((expected_day - date(2026, 11, 27)).days) <= 3


def test_a_flat_account_gets_no_forecast_warning() -> None:
    rng = np.random.default_rng(7)
    per_day = list(1000.0 * rng.uniform(0.8, 1.2, 30))
    budget = Budget("flat", 30 * 1000.0 * 1.15)  # 15% headroom over the flat pace
    events = run_month(budget, per_day, date(2026, 11, 1))
    assert [e for e in events if e[1] == FORECAST] == []
    assert [e[3] for e in events if e[1] == THRESHOLD] == [50.0, 80.0]


def test_the_weekly_rhythm_is_in_the_forecast() -> None:
    """Weekends at a fifth of weekday spend: a weekday profile projects the rest of
    the month from the days actually left, not a flat pace."""
    first = date(2026, 11, 1)
    history_start = first - timedelta(days=35)
    amounts = [
        200.0 if (history_start + timedelta(days=i)).weekday() >= 5 else 1000.0
        for i in range(35 + 30)
    ]
    now = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)  # a Friday begins
    cube = cube_of([p for p in daily_spend(history_start, 65, amounts) if p[0] < now])
    got = status(Budget("b", 10**6), cube, None, now)
    assert got.forecast is not None and got.forecast.method == "weekday profile"
    truth = sum(amounts[35:])
    assert got.forecast.projected == pytest.approx(truth, rel=0.005)
    flat_pace = got.spent / 19 * 30  # what a linear pace says: 4% too high
    assert flat_pace > 1.03 * truth


def test_a_forecast_warning_ends_when_the_projection_falls_back() -> None:
    """Spend jumps, the forecast warns; spend falls back to nothing, the warning ends
    before the period does (resolution is judged below 97% of the limit)."""
    per_day = [1000.0] * 10 + [3000.0] * 3 + [0.0] * 17
    budget = Budget("b", 40000.0, thresholds=(100.0,))
    events = run_month(budget, per_day, date(2026, 11, 1))
    states = [(e[2], e[0].day) for e in events if e[1] == FORECAST]
    assert [s for s, _ in states] == ["firing", "resolved"]
    assert states[1][1] < 30


def test_too_little_data_gives_no_forecast() -> None:
    now = datetime(2026, 11, 5, 3, 0, tzinfo=UTC)
    cube = cube_of([(now - timedelta(hours=2), 100.0, "pro")])
    got = status(Budget("b", 1000.0), cube, None, now)
    assert got.forecast is None
    assert decide(got, Marks()) == []  # and nothing to tell


def test_a_day_budget_on_the_dst_change_counts_all_25_hours() -> None:
    """25 October 2026 in Berlin runs from 22:00 UTC on the 24th to 23:00 UTC on the
    25th: a day budget there counts 25 hourly events, the UTC day 24."""
    start = datetime(2026, 10, 24, 20, 30, tzinfo=UTC)
    cube = cube_of([(start + timedelta(hours=h), 1.0, "pro") for h in range(30)])
    end_of_day = datetime(2026, 10, 25, 22, 59, tzinfo=UTC)
    berlin = status(
        Budget("b", 100.0, period="day", timezone="Europe/Berlin"), cube, None, end_of_day
    )
    utc = status(Budget("u", 100.0, period="day"), cube, None, end_of_day)
    assert berlin.spent == pytest.approx(25.0)  # 22:30 on the 24th .. 22:30 on the 25th
    assert utc.spent == pytest.approx(23.0)  # 00:30 .. 22:30 UTC on the 25th
