"""Spend's sequential tests (bot/sequential.py): the creep test's score of charged jobs."""

from __future__ import annotations

import numpy as np

from bot.sequential import CREEP_BUSY, CREEP_DAYS, counted_z

DAY = 24  # hourly buckets


def _with_days(jobs: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    """(groups, T) hourly counts -> (groups, T - a week, 1 + CREEP_DAYS): each bucket
    from a week on, then the same hour on each of the days before it."""
    span = CREEP_DAYS * DAY
    return np.stack([jobs[:, span - d * DAY : jobs.shape[1] - d * DAY] for d in range(8)], axis=-1)


def test_counted_z_scores_each_bucket_against_its_busiest_days_of_the_week() -> None:
    """Each bucket's level is the mean of the same bucket on the CREEP_BUSY busiest of
    the CREEP_DAYS days before it (a plain loop here), its z the Anscombe difference over
    the level's own error; a day not known before a bucket leaves its z undefined."""
    rng = np.random.default_rng(7)
    jobs = rng.poisson(30, size=(2, 10 * DAY)).astype(np.float64)
    jobs[1, 3 * DAY + 5] = np.nan
    z = counted_z(_with_days(jobs))
    assert z.shape == (2, 3 * DAY)
    for g in range(2):
        for i in range(3 * DAY):
            t = CREEP_DAYS * DAY + i
            days = np.array([jobs[g, t - d * DAY] for d in range(1, CREEP_DAYS + 1)])
            if np.isnan(days).any():
                assert np.isnan(z[g, i])
                continue
            level = np.sort(days)[-CREEP_BUSY:].mean()
            want = 2 * (np.sqrt(jobs[g, t] + 0.375) - np.sqrt(level + 0.375))
            assert np.isclose(z[g, i], want / np.sqrt(1 + 1 / CREEP_BUSY))
    assert np.isnan(z[1]).sum() == 3  # 4, 5 and 6 days before the three buckets it leaves out


def test_a_weeks_quiet_days_leave_the_weekdays_level_where_it_is() -> None:
    """Weekdays at 40 jobs an hour, weekends at 20, Poisson noise: a weekday's charged
    jobs score about 0 on average, not above it, as they would against a median of the
    seven days (which, with two quiet days among them, is the second-quietest weekday);
    a weekend scores well below 0, so a quiet day never counts toward a creep."""
    rng = np.random.default_rng(11)
    weeks = 40
    rate = np.tile(np.repeat([40.0] * 5 + [20.0] * 2, DAY), weeks)
    jobs = rng.poisson(rate, size=(1, rate.size)).astype(np.float64)
    z = counted_z(_with_days(jobs))[0]
    weekday = (np.arange(CREEP_DAYS * DAY, rate.size) // DAY) % 7 < 5
    assert abs(z[weekday].mean()) < 0.1
    assert z[~weekday].mean() < -2.5
    median = np.median(
        np.stack([jobs[0, CREEP_DAYS * DAY - d * DAY : rate.size - d * DAY] for d in range(1, 8)]),
        axis=0,
    )
    by_median = 2 * (np.sqrt(jobs[0, CREEP_DAYS * DAY :] + 0.375) - np.sqrt(median + 0.375))
    assert by_median[weekday].mean() > 0.3  # what the busy days' level leaves out
