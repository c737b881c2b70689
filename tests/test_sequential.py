"""Spend's sequential tests (bot/sequential.py): the creep test's scores of charged jobs,
and the evidence test's normal per slot."""

from __future__ import annotations

import numpy as np

from bot.metrics import CHARGED, CREDITS
from bot.sequential import CREEP_BUSY, CREEP_DAYS, burst, busy_days, counted_scores, creep

DAY = 24  # hourly buckets
NOISE = np.sqrt(1 + 1 / CREEP_BUSY)  # Poisson's, and the error of a mean of the busy days


def _with_days(jobs: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    """(groups, T) hourly counts -> (groups, T - a week, 1 + CREEP_DAYS): each bucket
    from a week on, then the same hour on each of the days before it."""
    span = CREEP_DAYS * DAY
    return np.stack([jobs[:, span - d * DAY : jobs.shape[1] - d * DAY] for d in range(8)], axis=-1)


def _week(weeks: int, rate: float, wander: float, seed: int) -> np.ndarray:  # type: ignore[type-arg]
    """Hourly charged jobs: weekdays at `rate`, weekends at 0.6 of it, each day's level
    off by a lognormal factor of sigma `wander`, Poisson within it. (1, hours)."""
    rng = np.random.default_rng(seed)
    days = np.tile([1.0] * 5 + [0.6] * 2, weeks) * np.exp(rng.normal(0.0, wander, 7 * weeks))
    return rng.poisson(np.repeat(days * rate, DAY))[None].astype(np.float64)


def test_busy_days_are_a_buckets_five_busiest_of_the_seven_before_it() -> None:
    """Each bucket's level is the mean of the same bucket on the CREEP_BUSY busiest of the
    CREEP_DAYS days before it (a plain loop here); its rise the Anscombe difference, its
    spread those days' variance on the same scale; a day not known leaves both undefined."""
    rng = np.random.default_rng(7)
    jobs = rng.poisson(30, size=(2, 10 * DAY)).astype(np.float64)
    jobs[1, 3 * DAY + 5] = np.nan
    rise, spread = busy_days(_with_days(jobs))
    assert rise.shape == spread.shape == (2, 3 * DAY)
    for g in range(2):
        for i in range(3 * DAY):
            t = CREEP_DAYS * DAY + i
            days = np.array([jobs[g, t - d * DAY] for d in range(1, CREEP_DAYS + 1)])
            if np.isnan(days).any():
                assert np.isnan(rise[g, i]) and np.isnan(spread[g, i])
                continue
            busy = np.sort(days)[-CREEP_BUSY:]
            want = 2 * (np.sqrt(jobs[g, t] + 0.375) - np.sqrt(busy.mean() + 0.375))
            assert np.isclose(rise[g, i], want)
            assert np.isclose(spread[g, i], np.var(2 * np.sqrt(busy + 0.375), ddof=1))
    assert np.isnan(rise[1]).sum() == 3  # 4, 5 and 6 days before the three buckets it leaves out


def test_a_weeks_quiet_days_leave_the_weekdays_level_where_it_is() -> None:
    """Weekdays at 40 jobs an hour, weekends at 24, Poisson noise: a weekday's charged
    jobs rise about 0 on average, not above it, as they would against a median of the
    seven days (which, with two quiet days among them, is the second-quietest weekday);
    a weekend falls well below 0, so a quiet day never counts toward a creep."""
    jobs = _week(40, 40.0, 0.0, seed=11)
    rise = busy_days(_with_days(jobs))[0][0]
    weekday = (np.arange(CREEP_DAYS * DAY, jobs.shape[1]) // DAY) % 7 < 5
    assert abs(rise[weekday].mean()) < 0.1
    assert rise[~weekday].mean() < -2.5
    median = np.median(_with_days(jobs)[0, :, 1:], axis=-1)
    by_median = 2 * (np.sqrt(jobs[0, CREEP_DAYS * DAY :] + 0.375) - np.sqrt(median + 0.375))
    assert by_median[weekday].mean() > 0.3  # what the busy days' level leaves out


def test_poisson_days_keep_their_noise_and_wandering_days_widen_it() -> None:
    """Where the days' levels differ by Poisson noise alone, the scores are mostly the
    rises over Poisson's noise (the pool shows no wander beyond its error). Where each
    day's level wanders by 15 % at 300 jobs an hour, Poisson's noise alone would prove
    creeps on ordinary busy days; the pooled wander, a day's worth on each bucket, keeps
    every run of three days quiet."""
    for wander, seed in ((0.0, 3), (0.15, 5)):
        rise, spread = busy_days(_with_days(_week(10, 300.0, wander, seed)))
        runs = np.lib.stride_tricks.sliding_window_view(np.arange(rise.shape[-1]), 3 * DAY)
        scores = counted_scores(rise[:, runs], spread[:, runs], DAY)
        poisson = rise[:, runs] / NOISE
        if wander == 0.0:  # most runs see no wander; none sees a day's worth of 5 %
            assert np.mean(np.isclose(scores, poisson)) > 0.6
            assert (np.abs(scores) >= np.abs(poisson) / 2.5).all()
            assert np.nanmax(_evidence(poisson)) < 1.0  # and these weeks hold no creep
            continue
        assert (np.abs(scores) <= np.abs(poisson) / 3).all()
        assert np.nanmax(_evidence(poisson)) >= 1.0  # what Poisson's noise alone would say
        assert np.nanmax(_evidence(scores)) < 1.0


def _evidence(scores: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    """The creep test's evidence at the end of each run (groups, moments, buckets)."""
    ones = np.ones_like(scores)
    return creep(3600, scores, ones, ones, np.isfinite(scores))[0]


def test_the_evidence_test_weighs_each_slot_against_its_own_normal() -> None:
    """The hour before 10:00 is a busy hour (2.5 times the charges, and known to be);
    after it the last charges trail in. A run over that hour judged against the newest
    slot's normal in every slot looks like a runaway (such a run paged once in the
    suite); against each slot's own normal it is nothing. A slot whose normal is unknown
    takes the newest's."""
    charges = np.array([50.0] * 10 + [30.0, 24.0])
    slots = np.zeros((5, 1, 12))
    slots[CHARGED, 0] = charges
    slots[CREDITS, 0] = 100.0 * charges
    known, seen = np.ones((1, 12), dtype=bool), np.ones(12)
    h, normal = np.array([10.0]), np.full((1, 12), 2000.0)
    own = charges[None] + 2.0  # each slot's band top
    newest = np.full((1, 12), 22.0)
    evidence = {
        name: burst(slots, known, lam, normal, h, seen, 300)[0][0]
        for name, lam in (("own", own), ("newest", newest))
    }
    assert evidence["own"] == 0.0
    assert evidence["newest"] > 1.0  # proven, wrongly
    unknown = own.copy()
    unknown[0, :-1] = np.nan  # no band then: the newest's normal stands in
    assert burst(slots, known, unknown, normal, h, seen, 300)[0][0] > 1.0


def test_a_runs_normal_credits_add_up_each_slots_own() -> None:
    """The credits the run should have charged (the alert's "expected", what `min_credits`
    weighs the excess against) add up each slot's own normal: a runaway through a busy
    hour's last ten slots and two quiet ones expects the busy hour's credits there, not
    twelve quiet slots' worth."""
    lam = np.array([[50.0] * 10 + [20.0] * 2])
    slots = np.zeros((5, 1, 12))
    slots[CHARGED, 0] = 150.0
    slots[CREDITS, 0] = 15000.0
    known, seen = np.ones((1, 12), dtype=bool), np.ones(12)
    evidence, spent, usual, _, seconds = burst(
        slots, known, lam, 100.0 * lam, np.array([10.0]), seen, 300
    )
    assert evidence[0] > 1.0 and seconds[0] == 12 * 300
    assert spent[0] == 12 * 15000.0
    assert usual[0] == 100.0 * (10 * 50.0 + 2 * 20.0)  # 24,000 against the newest's alone
