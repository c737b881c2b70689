"""Budgets: spend to date per calendar period, a forecast to the period's end, and the
decisions those make (thresholds crossed, forecast warnings). Pure: the time is an
argument and the data arrives as arrays; no I/O.

Spend comes from two sources. Stored events give the shape in 15-minute slots, so a
period may start at any zone's midnight; the daily summary is the API's own count per
UTC day and model, so where it knows more (before the bot was installed, or events lost
to a gap) the missing credits are spread over that day's slots in the events' shape
(evenly when there are none). Segment and customer scopes have events only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from bot.coverage import overlaps
from bot.metrics import CREDITS, FloatArray, UsageCube
from bot.models import (
    FORECAST,
    SCOPE_KEYS,
    THRESHOLD,
    Budget,
    BudgetEvent,
    BudgetForecast,
    BudgetState,
    Gap,
    Marks,
)

SLOT = 900  # seconds; every time zone's midnight falls on a 15-minute boundary
HISTORY_DAYS = 28  # days of history the weekday profile is drawn from
PROFILE_DAYS = 14  # history needed for a weekday profile (two of each weekday)
PACE_DAYS = 3  # history needed for a recent daily pace; less falls back to linear
MIN_DATA = 6 * 3600  # no forecast from less data than this
Z80 = 1.2816  # the interval is the central 80%
RESOLVE_BELOW = 0.97  # a forecast warning ends when the projection falls under 97%


def lookback(budgets: Sequence[Budget]) -> timedelta:
    """How much history budgets need: the longest period plus the profile's history."""
    if not budgets:
        return timedelta(0)
    longest = max({"day": 1, "week": 7, "month": 31}[b.period] for b in budgets)
    return timedelta(days=longest + HISTORY_DAYS + 1)


# -- periods ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    start: datetime  # UTC
    end: datetime  # UTC, exclusive
    label: str  # "2026-11", "2026-W48" or "2026-11-29": part of idempotency keys
    zone: ZoneInfo


def period_of(budget: Budget, now: datetime) -> Period:
    """The calendar period of `budget` that contains `now`, in the budget's zone."""
    zone = ZoneInfo(budget.timezone)
    today = now.astimezone(zone).date()
    if budget.period == "day":
        first, after, label = today, today + timedelta(days=1), today.isoformat()
    elif budget.period == "week":
        first = today - timedelta(days=today.weekday())
        after = first + timedelta(days=7)
        year, week, _ = first.isocalendar()
        label = f"{year}-W{week:02d}"
    else:
        first = today.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
        label = f"{first:%Y-%m}"
    return Period(midnight(first, zone), midnight(after, zone), label, zone)


def midnight(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant `day` begins in `zone` (DST changes happen at night, not at 0:00,
    in all but a few zones; there zoneinfo picks the first valid reading)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def slot_of(moment: datetime) -> int:
    return int(moment.timestamp()) // SLOT


# -- spend per slot ----------------------------------------------------------------------


def scope_rows(cube: UsageCube, scope: Sequence[tuple[str, str]]) -> list[int]:
    """The cube's fine groups (model, segment, customer) inside `scope`."""
    wanted = {SCOPE_KEYS.index(key): value for key, value in scope}
    return [
        row
        for row, group in enumerate(cube.groups)
        if all(group[i] == value for i, value in wanted.items())
    ]


def spend_slots(
    cube: UsageCube,
    scope: Sequence[tuple[str, str]],
    daily: Mapping[date, float] | None,
    lo: int,
    now: datetime,
    measure: int = CREDITS,
) -> tuple[FloatArray, np.ndarray]:
    """Credits (or another cube field) per slot for [lo, now's slot], and which slots
    are known.

    `daily` is the summary's figure per UTC day for this scope (None when the summary
    cannot speak for it). A slot is known when events covered it or its day has a figure.
    Today's figure is as of the last summary poll while events run to `now`: what a gap
    lost today shows once the summary's count exceeds the events held (an underestimate
    by at most the events since that poll, never a double count).
    """
    hi = slot_of(now) + 1
    per_day = 86400 // SLOT
    day_lo, day_hi = lo - lo % per_day, hi + (-hi) % per_day  # whole UTC days
    rows = scope_rows(cube, scope)
    credits = cube.counts(day_lo, day_hi)[measure][rows].sum(axis=0)
    covered = cube.covered_from if cube.covered_from is not None else day_hi
    known = np.arange(day_lo, day_hi) >= covered
    if daily:
        for start in range(day_lo, day_hi, per_day):
            figure = daily.get(datetime.fromtimestamp(start * SLOT, UTC).date())
            if figure is None:
                continue
            span = slice(start - day_lo, min(start + per_day, hi) - day_lo)
            missing = figure - credits[span].sum()
            if missing > 1e-9:
                shape = credits[span]
                weights = shape / shape.sum() if shape.sum() > 0 else np.ones(len(shape))
                credits[span] += missing * weights / weights.sum()
            known[span] = True
    known[hi - day_lo :] = False  # the future is not known, whatever the summary says
    return credits[lo - day_lo : hi - day_lo], known[lo - day_lo : hi - day_lo]


# -- forecast ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Forecast:
    projected: float  # credits expected by the period's end
    low: float  # the 80% interval
    high: float
    method: str  # "weekday profile" | "recent pace" | "linear pace"
    crossing: date | None  # the local day the limit is (or is expected to be) crossed


@dataclass(frozen=True)
class BudgetStatus:
    budget: Budget
    period: Period
    at: datetime
    spent: float
    forecast: Forecast | None  # None: not enough data yet
    data_from: datetime | None  # earliest moment of the period the figures cover
    daily: tuple[tuple[date, float], ...] = field(default=())  # local days of the period
    estimated: bool = False  # a known events gap falls in the period (see BudgetState)

    @property
    def used(self) -> float:
        """Spent as a percentage of the limit."""
        return 100.0 * self.spent / self.budget.limit


def status(
    budget: Budget,
    cube: UsageCube,
    daily: Mapping[date, float] | None,
    now: datetime,
    gaps: Sequence[Gap] = (),
) -> BudgetStatus:
    """Spend to date and the forecast for the period containing `now`.

    `gaps` are the store's known events gaps: one inside the period makes the spend an
    estimate.
    """
    period = period_of(budget, now)
    zone = period.zone
    today = now.astimezone(zone).date()
    first_day = min(today - timedelta(days=HISTORY_DAYS), period.start.astimezone(zone).date())
    lo = slot_of(midnight(first_day, zone))
    credits, known = spend_slots(cube, budget.scope, daily, lo, now)
    now_slot = slot_of(now)

    def index(moment: datetime) -> int:
        return slot_of(moment) - lo

    start = index(period.start)
    spent = float(credits[start:].sum())
    known_in_period = np.flatnonzero(known[start : now_slot - lo + 1])
    data_from = (
        datetime.fromtimestamp((lo + start + int(known_in_period[0])) * SLOT, UTC)
        if len(known_in_period)
        else None
    )
    days: list[tuple[date, float, bool]] = []  # complete local days: total, fully known
    day = first_day
    while day < today:
        a, b = index(midnight(day, zone)), index(midnight(day + timedelta(days=1), zone))
        days.append((day, float(credits[a:b].sum()), bool(known[a:b].all())))
        day += timedelta(days=1)
    in_period = tuple(
        (d, total) for d, total, _ in days if d >= period.start.astimezone(zone).date()
    )
    today_start = index(midnight(today, zone))
    spent_today = float(credits[today_start:].sum())
    in_period += ((today, spent_today),)
    forecast = None
    if budget.forecast:
        forecast = project(
            history=[(d, total) for d, total, ok in days[-HISTORY_DAYS:] if ok],
            spent=spent,
            known_seconds=float(known[start:].sum() * SLOT),
            now=now,
            period=period,
            limit=budget.limit,
            in_period=in_period,
        )
    estimated = overlaps(gaps, period.start, now)
    return BudgetStatus(budget, period, now, spent, forecast, data_from, in_period, estimated)


def project(
    *,
    history: Sequence[tuple[date, float]],
    spent: float,
    known_seconds: float,
    now: datetime,
    period: Period,
    limit: float,
    in_period: Sequence[tuple[date, float]] = (),
) -> Forecast | None:
    """Spend expected by the period's end.

    Two weeks of history give a weekday profile: each weekday's share of a typical week,
    times the recent level (the last 7 days, deseasonalised; no trend is extrapolated,
    so a steady rise is followed with a lag of about half a week). A few days give a
    recent daily pace; less, the period's own linear pace. The interval adds day-to-day
    noise and the uncertainty of the level (its own noise and how far weekly means
    wander).
    """
    zone = period.zone
    local_now = now.astimezone(zone)
    today = local_now.date()
    day_start = midnight(today, zone)
    day_length = (midnight(today + timedelta(days=1), zone) - day_start).total_seconds()
    left_today = 1.0 - (now - day_start).total_seconds() / day_length
    future = []  # local days after today that end inside the period
    day = today + timedelta(days=1)
    while midnight(day, zone) < period.end:
        future.append(day)
        day += timedelta(days=1)
    totals = np.array([total for _, total in history])
    if len(history) >= PROFILE_DAYS:
        method = "weekday profile"
        expected, sd, sd_level = _weekday_model(history, [today, *future])
    elif len(history) >= PACE_DAYS:
        method = "recent pace"
        recent = totals[-7:]
        expected = np.full(1 + len(future), recent.mean())
        sd = float(recent.std(ddof=1))
        sd_level = sd / np.sqrt(len(recent)) + 0.1 * float(recent.mean())
    elif known_seconds >= MIN_DATA:
        method = "linear pace"
        pace = spent / known_seconds * 86400.0
        expected = np.full(1 + len(future), pace)
        sd = sd_level = 0.5 * pace  # wide until there are days to measure the noise by
    else:
        return None
    # Today: what is usually left of the day. Later days: their whole expected total.
    remaining = np.concatenate(([expected[0] * left_today], expected[1:]))
    projected = spent + float(remaining.sum())
    weights = np.concatenate(([left_today], np.ones(len(future))))
    days_left = float(weights.sum())
    # Day-to-day noise adds up like a random walk; an error in the level repeats daily.
    spread = Z80 * float(np.sqrt(days_left * sd**2 + (days_left * sd_level) ** 2))
    crossing = _crossing(in_period, remaining, [today, *future], limit)
    return Forecast(
        projected=projected,
        low=max(spent, projected - spread),
        high=projected + spread,
        method=method,
        crossing=crossing,
    )


def _weekday_model(
    history: Sequence[tuple[date, float]], ahead: Sequence[date]
) -> tuple[FloatArray, float, float]:
    """Expected totals for the days `ahead`; the day-to-day noise and the uncertainty of
    the level (both as sd of a day's total)."""
    totals = np.array([total for _, total in history])
    weekdays = np.array([d.weekday() for d, _ in history])
    mean = totals.mean()
    if mean <= 0:
        return np.zeros(len(ahead)), 0.0, 0.0
    shape = np.ones(7)
    for w in range(7):
        picked = totals[weekdays == w]
        if len(picked):
            shape[w] = picked.mean() / mean
    shape = np.where(shape > 0, shape, 1e-6)
    level = totals / shape[weekdays]  # deseasonalised daily totals
    base = level[-7:].mean()
    noise = float(level.std(ddof=1))
    # How much the weekly level itself wanders: the spread of whole weeks' means.
    weeks = [
        level[len(level) - 7 * (i + 1) : len(level) - 7 * i].mean() for i in range(len(level) // 7)
    ]
    drift = float(np.std(weeks, ddof=1)) if len(weeks) > 1 else noise
    expected = np.array([base * shape[d.weekday()] for d in ahead])
    return expected, noise, float(np.sqrt(noise**2 / 7 + drift**2))


def _crossing(
    in_period: Sequence[tuple[date, float]],
    remaining: FloatArray,
    ahead: Sequence[date],
    limit: float,
) -> date | None:
    """The local day the cumulative spend reaches `limit`: past, today, or expected.
    `in_period` ends with today so far; `ahead` starts with the rest of today."""
    total = 0.0
    for day, amount in [*in_period, *zip(ahead, remaining, strict=True)]:
        total += float(amount)
        if total >= limit:
            return day
    return None


# -- decisions ---------------------------------------------------------------------------


def decide(now_status: BudgetStatus, marks: Marks) -> list[BudgetEvent]:
    """The events `now_status` makes, given what was told: each threshold once per period
    (lowest first), a forecast warning when the projection reaches the limit, and its end
    when the projection falls back under it (or the period ends)."""
    budget, period, at = now_status.budget, now_status.period, now_status.at
    events: list[BudgetEvent] = []

    def event(kind: str, state: str, threshold: float, label: str) -> BudgetEvent:
        forecast = now_status.forecast
        return BudgetEvent(
            budget.name,
            kind,
            state,
            label,
            threshold,
            at,
            now_status.spent,
            budget.limit,
            forecast.projected if forecast else None,
            forecast.crossing if forecast else None,
        )

    firing = marks.forecast_period is not None
    if marks.forecast_period not in (None, period.label):
        events.append(event(FORECAST, "resolved", 100.0, marks.forecast_period or ""))
        firing = False
    for threshold in budget.thresholds:
        if threshold not in marks.crossed and now_status.used >= threshold:
            events.append(event(THRESHOLD, "crossed", threshold, period.label))
    forecast = now_status.forecast
    if forecast is not None and budget.forecast:
        over = forecast.projected >= budget.limit
        if not firing and over and now_status.spent < budget.limit:
            events.append(event(FORECAST, "firing", 100.0, period.label))
        elif firing and forecast.projected < RESOLVE_BELOW * budget.limit:
            events.append(event(FORECAST, "resolved", 100.0, period.label))
    return events


# -- the state as JSON (query budget --json, GET /budget, hook bodies, post payloads) ----


def budget_state(state: BudgetStatus) -> BudgetState:
    """A budget's state as shown: credits, percent, money, forecast (rounded)."""
    budget, period, forecast = state.budget, state.period, state.forecast
    return BudgetState(
        budget=budget.name,
        scope=budget.scope,
        period_kind=budget.period,
        period_label=period.label,
        period_start=period.start,
        period_end=period.end,
        timezone=budget.timezone,
        at=state.at,
        limit_credits=round(budget.limit, 4),
        spent_credits=round(state.spent, 4),
        used_percent=round(state.used, 2),
        thresholds_percent=budget.thresholds,
        credit_price=budget.credit_price,
        currency=budget.currency if budget.credit_price else None,
        data_from=state.data_from,
        forecast=None
        if forecast is None
        else BudgetForecast(
            projected_credits=round(forecast.projected, 4),
            low_credits=round(forecast.low, 4),
            high_credits=round(forecast.high, 4),
            method=forecast.method,
            limit_reached_on=forecast.crossing,
        ),
        daily_credits=tuple((day, round(total, 4)) for day, total in state.daily),
        estimated=state.estimated,
    )


def as_json(state: BudgetStatus) -> dict[str, Any]:
    """A budget's state for other automation: credits, percent, money, forecast."""
    return budget_state(state).to_json()


def hook_body(event: BudgetEvent, state: BudgetStatus) -> dict[str, Any]:
    """What the enforcement hook receives for a threshold crossing."""
    return {
        "type": "budget.threshold",
        "idempotency_key": event.key,
        "threshold_percent": event.threshold,
        **{k: v for k, v in as_json(state).items() if k != "daily_credits"},
    }
