"""A day's level in its week, from the daily summary, and the charged counts' baseline
scaled by it (`bot.baselines`)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from bot import baselines
from bot.baselines import LEVEL_LAG, LEVEL_MIN_WEEKS, weekday_level
from bot.engine import _charged_rule
from bot.metrics import CHARGED, CREDITS, FIELDS
from bot.models import Rule

SUNDAY = date(2026, 11, 8)
WEEKDAY, WEEKEND = 100.0, 60.0
WEEK = (5 * WEEKDAY + 2 * WEEKEND) / 7


def _weeks(before: date, days: int, weekend: float = WEEKEND) -> dict[date, float]:
    """Daily totals of the `days` days before `before`: weekdays 100, weekends `weekend`."""
    totals = {}
    for back in range(1, days + 1):
        day = before - timedelta(days=back)
        totals[day] = weekend if day.weekday() >= 5 else WEEKDAY
    return totals


def test_a_days_level_is_its_weekdays_median_over_the_weeks_mean() -> None:
    totals = _weeks(SUNDAY, 90)
    assert weekday_level(totals, SUNDAY) == pytest.approx(WEEKEND / WEEK)
    assert weekday_level(totals, SUNDAY + timedelta(days=3)) == pytest.approx(WEEKDAY / WEEK)


def test_a_day_is_like_any_other_until_enough_weeks_are_known() -> None:
    enough = LEVEL_LAG + 7 * LEVEL_MIN_WEEKS
    assert weekday_level(_weeks(SUNDAY, enough), SUNDAY) == pytest.approx(WEEKEND / WEEK)
    assert weekday_level(_weeks(SUNDAY, enough - 1), SUNDAY) == 1.0
    assert weekday_level({}, SUNDAY) == 1.0
    # An account with no jobs at all has no week to compare a day with.
    assert weekday_level(_weeks(SUNDAY, 90, weekend=0.0), SUNDAY) == pytest.approx(0.1)
    assert weekday_level(dict.fromkeys(_weeks(SUNDAY, 90), 0.0), SUNDAY) == 1.0


def test_the_newest_week_and_one_odd_day_leave_a_days_level_alone() -> None:
    """Days under a week old are not read (a worker's summary may lag where a backtest's
    does not), and a runaway on one earlier Sunday does not make Sundays busy."""
    totals = _weeks(SUNDAY, 90)
    for back in range(1, LEVEL_LAG + 1):
        totals[SUNDAY - timedelta(days=back)] = 10 * WEEKDAY
    totals[SUNDAY - timedelta(days=14)] = 10 * WEEKDAY  # an earlier Sunday's runaway
    assert weekday_level(totals, SUNDAY) == pytest.approx(WEEKEND / WEEK)


def test_a_levelled_baseline_is_the_baseline_of_every_earlier_day_scaled_to_the_judged_one() -> (
    None
):
    """Scaling the counts once (divided by each window's level, the baseline times the
    judged window's) gives the same mean and spread as scaling every earlier window by
    the judged day's level over its own, window by window."""
    rule = _charged_rule(
        Rule(name="s", metric="spend", group_by=("model",), bucket=3600, seasonal="hour_of_day")
    )
    history = baselines.buckets_of_history(rule)
    n = 2 * history + 1
    rng = np.random.default_rng(7)
    per_day = 86400 // int(rule.bucket)
    levels = np.repeat(rng.uniform(0.5, 1.5, size=-(-n // per_day)), per_day)[:n][None, :]
    windows = np.zeros((len(FIELDS), 1, n))
    windows[CHARGED] = rng.poisson(20 * levels)
    days = baselines.Days(levels, np.ones_like(levels))
    center, spread = baselines.baseline(rule, windows, history, days)
    for k in (n - 1, n - 1 - per_day // 2, history + 5):
        literal = windows[..., : k + 1] * (levels[:, k : k + 1] / levels[:, : k + 1])
        want_center, want_spread = baselines.baseline(rule, literal, history)
        assert center[0, k] == pytest.approx(want_center[0, -1], rel=1e-9)
        assert spread[0, k] == pytest.approx(want_spread[0, -1], rel=1e-9)
    plain = baselines.baseline(rule, windows, history)
    assert not np.allclose(plain[0][0, -1], center[0, -1])  # the levels did something


def test_a_jobs_cost_is_the_credits_of_the_completed_jobs_of_the_weeks_before_it() -> None:
    rows = {SUNDAY - timedelta(days=back): (10.0, 6000.0) for back in range(1, 90)}
    rows[SUNDAY - timedelta(days=LEVEL_LAG + 1)] = (10.0, 16000.0)
    for back in range(1, LEVEL_LAG + 1):  # under a week old: not read
        rows[SUNDAY - timedelta(days=back)] = (1.0, 99999.0)
    days_read = 7 * baselines.LEVEL_WEEKS
    assert baselines.job_cost(rows, SUNDAY) == pytest.approx(
        (6000 * days_read + 10000) / (10 * days_read)
    )
    assert baselines.job_cost({}, SUNDAY) == 1.0


def test_spends_scale_is_never_below_one_jobs_noise() -> None:
    """A group whose windows are mostly empty has a scale of 0: its next single job of
    800 credits would be z 57 against the plain floor, where one job's noise on the
    square-root scale (half the root of its cost) makes it z 2."""
    rule = Rule(name="s", metric="spend", group_by=("model",), bucket=900)
    history = baselines.buckets_of_history(rule)
    n = 2 * history + 1
    windows = np.zeros((len(FIELDS), 1, n))
    windows[CREDITS, 0, -1] = 800.0
    for cost, want in ((800.0, 2.0), (1.0, 800**0.5 / baselines.ABS_FLOOR)):
        days = baselines.Days(np.ones((1, n)), np.full((1, n), cost))
        center, scale = baselines.baseline(rule, windows, history, days)
        z = baselines.against(rule, windows, (center, scale))[2]
        assert z[0, -1] == pytest.approx(want)
        assert (scale[0, history:] >= 0.5 * cost**0.5).all()
