"""A rule's normal level, and how far each window is from it: every window's baseline
from the windows before it (the same hour on earlier days, or of the week, where the rule
is seasonal), and the windows scored against it. The engine cuts the windows and judges
by the scores.

Pure numpy, no I/O.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from bot import detect
from bot.metrics import CHARGED, CREDITS, FAILED, FINISHED, JOBS
from bot.models import Rule

FloatArray = npt.NDArray[np.float64]
Baseline = tuple[FloatArray, FloatArray]  # center and spread, on the metric's judging scale
Banded = tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]  # ..., band


class Days(NamedTuple):
    """What the daily summary says of each window's day, (rows, buckets) each: the day's
    level in its week (`weekday_level`) and the mean credits of one completed job
    (`job_cost`)."""

    level: FloatArray
    job_cost: FloatArray

    def apply(self, shape: Callable[[FloatArray], FloatArray]) -> Days:
        """Both arrays cut or laid out as the windows are."""
        return Days(shape(self.level), shape(self.job_cost))


DAY = 86400
# The evidence test of a spend rule watching a rise (over SHORT_WINDOW too) counts its
# charged events (`metrics.CHARGED`) against the top of their normal band for the same 15 minutes
# of earlier days: their mean plus COUNT_BAND times the uncertainty of a day's level
# (how far it wanders beyond Poisson noise, and the error of a mean of a few days), at
# least COUNT_FLOOR. A busy hour the history knows is normal, not a runaway.
CHARGES = "charges"  # the engine's own metric for those counts (`_charged_rule`)
COUNT_BAND = 2.0
COUNT_FLOOR = 0.5
SEASON_SECONDS = {"hour_of_day": DAY, "weekday": 7 * DAY}
MIN_SEASONS = 3
# Weeks of the same hour an `hour_of_day` rule's hour-of-week baseline takes (from the
# third on), and days of its residuals it needs before its scale is trusted.
WEEKS = 3
WEEKLY_SCALE_DAYS = 3
# Floors for spend and volume z-scores, on the square-root scale: a move must exceed
# REL_FLOOR of the level per unit of z, so a flat history (or one rebuilt from daily totals)
# does not page on noise; ABS_FLOOR keeps near-empty series quiet.
REL_FLOOR = 0.05
ABS_FLOOR = 0.5
# A day's level in its week (`weekday_level`), from the daily summary: months of daily
# totals say how much quieter the account's Sundays are long before its events hold
# weeks of them. It reads LEVEL_WEEKS weeks of days at least LEVEL_LAG days old (a
# worker whose summary polls lag a day or two reads the same days a backtest does),
# and needs LEVEL_MIN_WEEKS of each weekday.
LEVEL_WEEKS = 8
LEVEL_LAG = 7
LEVEL_MIN_WEEKS = 3
LEVEL_CLIP = (0.1, 10.0)


def buckets_of_history(rule: Rule) -> int:
    """Buckets a rule looks back: its baseline, or the seasons a seasonal baseline needs."""
    window = max(3, int(rule.baseline // rule.bucket))
    if rule.seasonal != "none":
        period = int(SEASON_SECONDS[rule.seasonal] // rule.bucket)
        window = max(window, period * max(MIN_SEASONS, window // period))
    return window


def min_periods_of(window: int) -> int:
    # Enough points for a median and MAD to mean something, without going blind for days.
    return min(window, max(3, min(window // 4, 24)))


def baseline(rule: Rule, windows: FloatArray, history: int, days: Days | None = None) -> Baseline:
    """The baseline of every window from the `history` windows before it, for
    (fields, rows, buckets) windows where each row is one series in time (one group's
    one phase): a failure rate's (g0, tau^2) on the arcsine scale
    (`detect.rate_baseline`), else (center, scale) on the square-root scale.

    The windows before the first one any row holds are left out: they change no
    number (moving windows skip NaN, and same-phase windows stay a period apart),
    and a young account's rules reach weeks back into nothing at every slot.

    `days`: what the daily summary says of each window's day; None: nothing (every day
    alike, and a job's cost unknown)."""
    start = int(np.argmax(np.isfinite(windows).any(axis=(0, 1))))  # 0: none held
    held_days = None if days is None else days.apply(lambda a: a[..., start:])
    center, spread = held_baseline(rule, windows[..., start:], history, held_days)
    if start == 0:
        return center, spread
    pad = ((0, 0), (start, 0))
    return (
        np.pad(center, pad, constant_values=np.nan),
        np.pad(spread, pad, constant_values=np.nan),
    )


def held_baseline(
    rule: Rule, windows: FloatArray, history: int, days: Days | None = None
) -> Baseline:
    """`baseline` of windows the first of which some row holds."""
    method: detect.Method = "plain" if rule.method == "plain" else "robust"
    mp = min_periods_of(history)
    if rule.metric == "failure_rate":
        return detect.rate_baseline(
            windows[FAILED], windows[FINISHED], history, method=method, min_periods=mp
        )
    if rule.metric == CHARGES:
        if days is None:
            return _charged_baseline(rule, series_of(rule, windows), history, mp)
        levels = days.level
        # Every earlier day's counts scaled to the judged day's level, as though it had
        # been a day like it: a Sunday's band is not five weekdays' and a Saturday's, nor
        # widened by their difference. Scaling is linear in the mean and, on the
        # square-root scale, in the spread, so it is done once for all days.
        mean, spread = _charged_baseline(rule, series_of(rule, windows) / levels, history, mp)
        return mean * levels, spread * np.sqrt(levels)
    # Spend and job counts are (compound) Poisson: their noise grows with the level, so
    # a night-time runaway would drown in daytime noise. On the square-root scale the
    # noise is about level-free (Anscombe), and one scale serves every hour.
    root = np.sqrt(np.maximum(series_of(rule, windows), 0.0))
    center, scale = _root_baseline(rule, root, history, method, mp)
    if rule.metric == "spend" and days is not None:
        # Spend comes a job at a time: on the square-root scale one job's charge is worth
        # a noise of half the root of its cost at any level, as one job is to a count.
        # No real spread is below it; a group whose history is mostly empty windows
        # (a scale of 0) would otherwise call its next single job a runaway.
        scale = np.maximum(scale, 0.5 * np.sqrt(days.job_cost))
    return center, scale


def _root_baseline(
    rule: Rule, root: FloatArray, history: int, method: detect.Method, mp: int
) -> Baseline:
    """A spend or volume rule's baseline on the square-root scale, before the floors."""
    if rule.seasonal == "none":
        return detect.rolling_baseline(root, history, method=method, min_periods=mp)
    period = int(SEASON_SECONDS[rule.seasonal] // rule.bucket)
    center, scale = detect.seasonal_baseline(
        root,
        period,
        history,
        method=method,
        min_periods=mp,
        min_seasons=MIN_SEASONS,
        seasons=max(MIN_SEASONS, history // period),
    )
    week = 7 * period
    if rule.seasonal == "hour_of_day" and np.isfinite(root[:, : -WEEKS * week]).any():
        # The same hour of the week, once WEEKS weeks of it are held, where it has
        # predicted the recent past better: Sunday night is not judged by weekdays.
        weekly = detect.seasonal_baseline(
            root,
            week,
            history,
            method=method,
            min_periods=mp,
            min_seasons=WEEKS,
            seasons=WEEKS,
            scale_periods=WEEKLY_SCALE_DAYS * period,
        )
        # Its scale, though, stays the daily one's, the larger: a median of three
        # weeks is a noisy centre, and the smaller of two noisy scales would page on it.
        better = weekly[1] < scale  # NaN compares False: the daily one stays
        np.copyto(center, weekly[0], where=better)
    return center, scale


def _charged_baseline(rule: Rule, counts: FloatArray, history: int, min_periods: int) -> Baseline:
    """The normal level of charged-job counts and its spread. The Poisson test needs
    their mean, which a median (or a mean on the square-root scale) of a few quiet
    nights puts far too low: no job on four nights of seven is a median of 0. Their
    spread is judged on the square-root scale, as the credits' is, where Poisson
    noise is 1/2 at any level: the spread of the counts themselves would let the
    busy afternoons' noise widen the band of every quiet night. Both plain (mean and
    root mean square): a past runaway then widens the band, which errs quiet, and
    moving means cost a fraction of moving medians at every slot."""
    root = np.sqrt(np.maximum(counts, 0.0))
    if rule.seasonal == "none":
        mean = detect.rolling_baseline(counts, history, method="plain", min_periods=min_periods)
        spread = detect.rolling_baseline(root, history, method="plain", min_periods=min_periods)
        return mean[0], spread[1]
    period = int(SEASON_SECONDS[rule.seasonal] // rule.bucket)
    mean, spread = (
        detect.seasonal_baseline(
            x,
            period,
            history,
            method="plain",
            min_periods=min_periods,
            min_seasons=MIN_SEASONS,
            seasons=count_seasons(rule),
        )
        for x in (counts, root)
    )
    return mean[0], spread[1]


def against(rule: Rule, windows: FloatArray, baseline: Baseline) -> Banded:
    """value, baseline, z, volume and band of (fields, rows, buckets) windows against
    their `baseline`. `band` is the top of a failure rate's normal band
    (`detect.rate_against`), what the evidence test takes as normal; the baseline
    again for other metrics."""
    if rule.metric == "failure_rate":
        rate, base, z, top = detect.rate_against(windows[FAILED], windows[FINISHED], *baseline)
        return rate, base, z, windows[FINISHED], top
    series = series_of(rule, windows)
    center, scale = baseline
    if rule.metric == CHARGES:  # the evidence test's normal counts: `_charged_baseline`
        # How far a day's level wanders beyond Poisson noise, and the error of a mean
        # of a few days, both on the square-root scale.
        wander = np.maximum(np.square(scale) - 0.25, 0.0) + 0.25 / count_seasons(rule)
        root = np.sqrt(np.maximum(center, 0.0)) + COUNT_BAND * np.sqrt(wander)
        top = np.maximum(np.square(root), COUNT_FLOOR)
        return series, center, np.full_like(series, np.nan), series, top
    root = np.sqrt(np.maximum(series, 0.0))
    z = detect.zscores(root, center, scale, abs_floor=ABS_FLOOR, rel_floor=REL_FLOOR)
    level = np.square(center)
    return series, level, z, series, level


def count_seasons(rule: Rule) -> int:
    """The earlier windows whose mean is a charged count's normal level."""
    history = buckets_of_history(rule)
    if rule.seasonal == "none":
        return history
    return max(MIN_SEASONS, history // int(SEASON_SECONDS[rule.seasonal] // rule.bucket))


def weekday_level(totals: Mapping[date, float], day: date) -> float:
    """`day`'s level against its week's mean, from the daily `totals` before it: the
    median of its weekday over the LEVEL_WEEKS weeks ending LEVEL_LAG days before it,
    over the mean of the seven weekdays' medians. 1 (a day like any other) until
    LEVEL_MIN_WEEKS of each weekday are known. Medians: a past runaway's day is not a
    weekday's level."""
    by_weekday: list[list[float]] = [[] for _ in range(7)]
    for earlier in _weeks_before(day):
        if (total := totals.get(earlier)) is not None:
            by_weekday[earlier.weekday()].append(total)
    if min(map(len, by_weekday)) < LEVEL_MIN_WEEKS:
        return 1.0
    medians = [statistics.median(values) for values in by_weekday]
    week = sum(medians) / 7
    if week <= 0:
        return 1.0
    low, high = LEVEL_CLIP
    return min(max(medians[day.weekday()] / week, low), high)


def job_cost(days: Mapping[date, tuple[float, float]], day: date) -> float:
    """The mean credits of one completed job, from the daily (completed jobs, credits)
    of the LEVEL_WEEKS weeks ending LEVEL_LAG days before `day` (as `weekday_level`
    reads them); 1 where no job completed."""
    jobs = credits = 0.0
    for earlier in _weeks_before(day):
        completed, spent = days.get(earlier, (0.0, 0.0))
        jobs += completed
        credits += spent
    return credits / jobs if jobs > 0 and credits > 0 else 1.0


def _weeks_before(day: date) -> list[date]:
    """The days `day`'s figures are read from: LEVEL_WEEKS weeks ending LEVEL_LAG days
    before it."""
    first = LEVEL_LAG + 1
    return [day - timedelta(days=back) for back in range(first, first + 7 * LEVEL_WEEKS)]


def series_of(rule: Rule, windows: FloatArray) -> FloatArray:
    """The figure a spend or volume rule judges: credits, or jobs started (charged
    events for a spend rule's evidence test)."""
    series: FloatArray = windows[series_field(rule)]
    return series


def series_field(rule: Rule) -> int:
    return {"spend": CREDITS, CHARGES: CHARGED}.get(rule.metric, JOBS)
