"""Detection maths: trailing baselines, z-scores and breach masks for bucketed usage.

Sits between store and alerts in poll -> store -> detect -> decide -> notify: it takes
(groups, buckets) arrays of one rule's history, NaN for "no data", and returns arrays
of the same shape. Pure numpy and bottleneck, and for big batches the compiled moving
median of bot/_movemedian.py (numba); no I/O, no clock, no other bot module.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any, Literal

import bottleneck as bn
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Method = Literal["robust", "plain"]
Direction = Literal["up", "down", "both"]

# MAD of a normal distribution is 0.6745 sigma; this turns a MAD into a sigma.
MAD_TO_SIGMA = 1.4826

# Anscombe (1948): asin(sqrt((f + 3/8) / (n + 3/4))) has variance ~ 1 / (4n + 2) whatever
# the true rate, and its 3/8 pseudo-count keeps a zero-failure baseline off zero.
_ANSCOMBE_F = 0.375
_ANSCOMBE_N = 0.75

# Rows per bottleneck call are chunked to about this many cells (16 MB of float64): big
# enough to amortise the call, small enough to keep temporaries small and threads busy.
_CHUNK_CELLS = 1 << 21
# Threads for the chunks; bottleneck releases the GIL, so each CPU takes a chunk.
_THREADS = os.cpu_count() or 1
# From this many cells on, a 2-D moving median runs on the compiled kernel of
# bot/_movemedian.py (same numbers, ~3x faster than bottleneck's) rather than on
# bottleneck: below it numba's one-off import and kernel load (~1 s, and a few seconds the
# first time, when the kernel is compiled and cached on disk) would not pay. The live
# worker's rules stay below it.
_COMPILED_MIN_CELLS = 1 << 20

_Mover = Callable[..., FloatArray]


def rolling_baseline(
    values: npt.ArrayLike,
    window: int,
    *,
    method: Method = "robust",
    min_periods: int | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Center and scale of the trailing `window` buckets before each bucket (t excluded).

    Args:
        values: (groups, buckets); NaN marks a bucket without data.
        window: trailing buckets per baseline, `values[:, t-window:t]`.
        method: "robust" gives the median and a MAD-based sigma, "plain" the mean and the
            sample standard deviation (ddof=1).
        min_periods: valid points a window needs, else NaN (default `max(2, window // 2)`).

    Returns:
        (center, scale), float64 arrays shaped like `values`.

    The robust scale is 1.4826 x the trailing median of |x_s - center_s|, each point's
    distance from its own trailing median: an exact windowed MAD would need every window
    re-sorted around its own median, which no moving-window primitive gives. On steady
    data it matches the MAD (centre noise inflates it by ~sqrt(1 + 1.57 / window)); after
    a level shift or under a trend it measures the one-step prediction error, which is
    the noise a z-score should be judged against. It is defined from about
    2 x min_periods buckets of history onwards.
    """
    x = _as_2d(values)
    mp = _min_periods(window, min_periods)
    if method == "robust":
        center = _lagged(bn.move_median, x, window, mp)
        scale = _lagged(bn.move_median, _abs_resid32(x, center), window, mp)
        scale *= MAD_TO_SIGMA
        return center, scale
    if method == "plain":
        # bottleneck keeps running sums; centring on a past value keeps them small.
        offset = _first_valid(x)
        shifted = x - offset
        center = _lagged(bn.move_mean, shifted, window, mp)
        center += offset
        scale = _lagged(bn.move_std, shifted, window, mp, ddof=1)
        return center, scale
    raise ValueError(f"unknown method {method!r}; expected 'robust' or 'plain'")


def seasonal_baseline(
    values: npt.ArrayLike,
    period: int,
    window: int,
    *,
    seasons: int | None = None,
    min_seasons: int = 3,
    method: Method = "robust",
    min_periods: int | None = None,
    scale_periods: int | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Baseline from the same phase of earlier periods where that predicts better.

    The seasonal center at t is the median (robust) or mean (plain) of t - period,
    t - 2 period, ... t - seasons x period: the same hour on earlier days (hourly buckets,
    period 24) or the same weekday (daily buckets, period 7). Its scale is the spread of
    the seasonal residuals x_s - center_s over the trailing `window` buckets (1.4826 x
    median |residual|, or their root mean square for "plain"): a few same-phase points
    say little about noise, the recent residuals of every phase say a lot.

    Each bucket takes the seasonal baseline where it is defined (min_seasons same-phase
    points, min_periods residuals) and its scale is below `rolling_baseline`'s, i.e.
    where it has been the better predictor of the recent past; elsewhere, including the
    first seasons of history, it takes `rolling_baseline`. A group with a daily rhythm
    gets the seasonal baseline; a flat one, where same-phase averages are only noisier,
    keeps the trailing one.

    Args:
        values: (groups, buckets); NaN marks a bucket without data.
        period: buckets per season.
        window: trailing buckets for the residual scale and for the trailing baseline.
        seasons: earlier periods the center looks back (default `max(min_seasons,
            window // period)`).
        min_seasons: valid same-phase points the seasonal center needs.
        method: "robust" or "plain", as in `rolling_baseline`.
        min_periods: as in `rolling_baseline`, for the residual scale and the fallback.
        scale_periods: seasonal residuals the seasonal scale needs (default: min_seasons
            periods of them, at most `window`).

    Returns:
        (center, scale), float64 arrays shaped like `values`.
    """
    x = _as_2d(values)
    if period < 1:
        raise ValueError(f"period must be >= 1, got {period}")
    n_seasons = max(min_seasons, window // period) if seasons is None else seasons
    if not 1 <= min_seasons <= n_seasons:
        raise ValueError(f"need 1 <= min_seasons <= seasons, got {min_seasons}, {n_seasons}")
    if method not in ("robust", "plain"):
        raise ValueError(f"unknown method {method!r}; expected 'robust' or 'plain'")
    mp = _min_periods(window, min_periods)
    groups, buckets = x.shape
    cycles = -(-buckets // period)
    # Pad to whole periods so that (groups, cycles, period) is a view: moving along the
    # cycle axis then visits one phase at a time, all phases and groups in one call.
    padded = np.full((groups, cycles * period), np.nan)
    padded[:, :buckets] = x
    folded = padded.reshape(groups, cycles, period)
    mover = bn.move_median if method == "robust" else bn.move_mean
    center = _lagged(mover, folded, n_seasons, min_seasons).reshape(groups, cycles * period)[
        :, :buckets
    ]
    # The seasonal scale is trusted only from `min_seasons` periods of residuals on: one
    # day of them is a noisy, often too small estimate, and the smaller scale is what
    # wins the choice below, so an early, lucky one would page on ordinary noise.
    scale_mp = min(
        window, max(mp, min_seasons * period if scale_periods is None else scale_periods)
    )
    if method == "robust":
        scale = _lagged(bn.move_median, _abs_resid32(x, center), window, scale_mp)
        scale *= MAD_TO_SIGMA
    else:
        resid = np.subtract(x, center)
        np.square(resid, out=resid)
        scale = _lagged(bn.move_mean, resid, window, scale_mp)
        del resid
        # bottleneck's running sums can leave a mean of squares a hair below zero.
        np.maximum(scale, 0.0, out=scale)
        np.sqrt(scale, out=scale)
    base_center, base_scale = rolling_baseline(x, window, method=method, min_periods=mp)
    # NaN compares False both ways: a seasonal NaN keeps the trailing baseline, a
    # trailing NaN (a recent gap) takes a defined seasonal one.
    seasonal = ~np.isnan(center) & ~(scale >= base_scale) & ~np.isnan(scale)
    np.copyto(base_center, center, where=seasonal)
    np.copyto(base_scale, scale, where=seasonal)
    return base_center, base_scale


def zscores(
    values: npt.ArrayLike,
    center: npt.ArrayLike,
    scale: npt.ArrayLike,
    *,
    abs_floor: float,
    rel_floor: float,
) -> FloatArray:
    """(x - center) / max(scale, rel_floor * |center|, abs_floor), NaN wherever undefined.

    The floors are what keeps a flat or nearly flat history quiet: with scale 0 a change
    has to exceed `rel_floor` of the level (or `abs_floor` in the metric's units) per
    unit of z. `abs_floor` must be > 0 so nothing is ever divided by zero; the result
    holds no inf (non-finite inputs give NaN).
    """
    if not abs_floor > 0:
        raise ValueError(f"abs_floor must be > 0, got {abs_floor}")
    if not rel_floor >= 0:
        raise ValueError(f"rel_floor must be >= 0, got {rel_floor}")
    x = _as_2d(values)
    c = np.asarray(center, dtype=np.float64)
    # np.maximum propagates NaN, so a NaN scale stays NaN instead of becoming the floor.
    denom = np.maximum(scale, abs_floor, dtype=np.float64)
    if rel_floor > 0:
        level = np.abs(c)
        level *= rel_floor
        np.maximum(denom, level, out=denom)
        del level
    z = np.subtract(x, c)
    z /= denom
    np.copyto(z, np.nan, where=np.isinf(z))  # only inf inputs get here: denom >= abs_floor
    return z


def rate_zscores(
    failed: npt.ArrayLike,
    finished: npt.ArrayLike,
    window: int,
    *,
    method: Method = "robust",
    min_periods: int | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Failure rate per bucket, its trailing baseline and a volume-aware z-score: the
    first three of `rate_scores`."""
    rate, base_rate, z, _ = rate_scores(
        failed, finished, window, method=method, min_periods=min_periods
    )
    return rate, base_rate, z


def rate_scores(
    failed: npt.ArrayLike,
    finished: npt.ArrayLike,
    window: int,
    *,
    method: Method = "robust",
    min_periods: int | None = None,
    band: float = 2.0,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Failure rate per bucket, its trailing baseline, a volume-aware z-score, and the
    top of the baseline's normal band.

    Rates are compared on Anscombe's arcsine scale g = asin(sqrt((f + 3/8) / (n + 3/4))),
    where binomial noise has variance 1 / (4n + 2) for any rate. So

        z = (g_t - g0_t) / sqrt(1 / (4 n_t + 2) + tau_t^2)

    where g0 is the trailing baseline and tau^2 the spread of past rates beyond binomial
    noise (a day that simply runs hotter than another), floored at 0. One failure out of
    2 jobs against a 2% baseline scores ~2.0 (the exact binomial tail is z ~ 1.75) while
    400 out of 2,000 scores ~29; a baseline with no failures at all is still a positive
    rate (the 3/8 pseudo-count), so a single failure is never infinitely surprising.

    Args:
        failed: (groups, buckets) failed jobs per bucket.
        finished: jobs that finished (failed + completed) per bucket; buckets with 0 or
            NaN finished jobs have no rate and are skipped by the baselines.
        window: trailing buckets of the baseline (the current bucket is excluded).
        method: "plain" pools the window, g0 = g(sum f / sum n) (with the same pseudo-
            counts), and tau^2 = mean(residual^2) - mean(binomial variance); "robust" takes
            the median of the per-bucket g, which an incident in the window cannot drag,
            and tau^2 = (1.4826 median |residual|)^2 - median(binomial variance). Residuals
            are each bucket's distance from its own trailing baseline. The robust baseline
            reads high when buckets hold only a handful of jobs (their smoothed rates sit
            above the true one); prefer "plain" for sparse groups.
        min_periods: buckets with jobs a window needs (default `max(2, window // 2)`);
            z is defined from about 2 x min_periods such buckets onwards.

    Returns:
        (rate, base_rate, z, top): the raw rate f / n, the baseline rate sin(g0)^2, z,
        and sin(g0 + band * tau)^2, the highest rate the baseline's own wander reaches
        (what a test that assumes independent failures should take as normal); NaN
        where a bucket has no jobs or the baseline is not yet defined.

    The caller gates what z may page on, e.g.
    `breaches(z, threshold, "up") & (finished >= min_volume) & (rate >= min_rate)`: tiny
    buckets then never alert, and neither do rates too low to matter however unusual.
    """
    g0, tau2 = rate_baseline(failed, finished, window, method=method, min_periods=min_periods)
    return rate_against(failed, finished, g0, tau2, band=band)


def rate_baseline(
    failed: npt.ArrayLike,
    finished: npt.ArrayLike,
    window: int,
    *,
    method: Method = "robust",
    min_periods: int | None = None,
) -> tuple[FloatArray, FloatArray]:
    """The trailing baseline of `rate_scores` on the arcsine scale: (g0, tau^2), each
    bucket's from the `window` buckets before it (so never from the bucket itself)."""
    f = _as_2d(failed)
    n = _as_2d(finished)
    if f.shape != n.shape:
        raise ValueError(f"failed {f.shape} and finished {n.shape} differ in shape")
    mp = _min_periods(window, min_periods)
    has_jobs = n > 0  # False for NaN too
    g = _anscombe(f, n)
    np.copyto(g, np.nan, where=~has_jobs)  # a boolean index is several times slower
    if method == "robust":
        g0 = _lagged(bn.move_median, g, window, mp)
    elif method == "plain":
        f_sum = _lagged(bn.move_sum, np.where(has_jobs, f, np.nan), window, mp)
        n_sum = _lagged(bn.move_sum, np.where(has_jobs, n, np.nan), window, mp)
        g0 = _anscombe(f_sum, n_sum)
        del f_sum, n_sum
    else:
        raise ValueError(f"unknown method {method!r}; expected 'robust' or 'plain'")
    # Binomial variance of the buckets that have a residual (jobs and a baseline), so
    # that tau^2 subtracts like from like; float32 is ample for a variance.
    past_binom = np.empty(f.shape, dtype=np.float32)
    np.multiply(n, 4.0, out=past_binom, casting="same_kind")
    past_binom += 2.0
    np.reciprocal(past_binom, out=past_binom)
    np.copyto(past_binom, np.nan, where=~has_jobs | np.isnan(g0))
    if method == "robust":
        tau2 = _lagged(bn.move_median, _abs_resid32(g, g0), window, mp)
        tau2 *= MAD_TO_SIGMA
        np.square(tau2, out=tau2)
        tau2 -= _lagged(bn.move_median, past_binom, window, mp)
    else:
        resid = np.subtract(g, g0)
        np.square(resid, out=resid)
        tau2 = _lagged(bn.move_mean, resid, window, mp)
        del resid
        tau2 -= _lagged(bn.move_mean, past_binom, window, mp)
    del past_binom
    np.maximum(tau2, 0.0, out=tau2)  # NaN stays NaN
    return g0, tau2


def rate_against(
    failed: npt.ArrayLike,
    finished: npt.ArrayLike,
    g0: npt.ArrayLike,
    tau2: npt.ArrayLike,
    *,
    band: float = 2.0,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """`rate_scores` of buckets against a baseline (g0, tau^2) from `rate_baseline`:
    (rate, base_rate, z, top), every array broadcast to the buckets' shape."""
    f = np.asarray(failed, dtype=np.float64)
    n = np.asarray(finished, dtype=np.float64)
    has_jobs = n > 0  # False for NaN too
    rate = np.full(f.shape, np.nan)
    np.divide(f, n, out=rate, where=has_jobs)
    g = _anscombe(f, n)
    np.copyto(g, np.nan, where=~has_jobs)
    g0 = np.broadcast_to(np.asarray(g0, dtype=np.float64), f.shape)
    tau2 = np.asarray(tau2, dtype=np.float64)
    top = np.sin(np.minimum(g0 + band * np.sqrt(tau2), np.pi / 2)) ** 2
    with np.errstate(divide="ignore"):
        spread = np.sqrt(tau2 + np.reciprocal(4.0 * n + 2.0))
    z = g  # reuse: g is not needed any more
    z -= g0
    z /= spread
    base_rate = np.square(np.sin(g0))
    return rate, base_rate, z, np.broadcast_to(top, f.shape)


# The rises the evidence test weighs: a failure rate grown to r times its baseline. One
# CUSUM per alternative, each near the fastest possible for a rise of about that size
# (Lorden); their threshold pays ln(len) for watching several.
EVIDENCE_RATIOS = (2.0, 4.0, 8.0, 16.0, 32.0)
EVIDENCE_MIN_H = 3.0  # nats: a group too quiet for the budget formula still needs this
SECONDS_PER_30_DAYS = 30 * 86400


def jobs_per_30_days(finished: npt.ArrayLike, window: int, slot_seconds: float) -> FloatArray:
    """Each slot's trailing pace as jobs per 30 days: the mean of `finished` (per-slot
    counts, NaN where unknown) over the `window` slots ending at that slot. NaN until a
    quarter of the window is known."""
    x = _as_2d(finished)
    mean = bn.move_mean(x, window=window, min_count=max(1, window // 4), axis=-1)
    return np.asarray(mean * (SECONDS_PER_30_DAYS / slot_seconds), dtype=np.float64)


def evidence_threshold(
    jobs_per_30_days: npt.ArrayLike, groups: int, false_alerts: float
) -> FloatArray:
    """The CUSUM threshold h (nats) for a budget of `false_alerts` per 30 days shared by
    `groups` groups: h = ln(K * N0 * groups / false_alerts), N0 the group's finished jobs
    in 30 days and K the number of alternatives (usage-bot's reading of Wald's bound:
    the in-control run length is at least about e^h jobs). NaN where N0 is unknown."""
    n0 = np.asarray(jobs_per_30_days, dtype=np.float64)
    k = len(EVIDENCE_RATIOS)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.log(k * np.maximum(n0, 1.0) * max(groups, 1) / false_alerts)
    return np.where(np.isfinite(n0), np.maximum(h, EVIDENCE_MIN_H), np.nan)


def bernoulli_evidence(
    failed: npt.ArrayLike,
    finished: npt.ArrayLike,
    p0: npt.ArrayLike,
    h: npt.ArrayLike,
    *,
    floor: float = 0.0,
) -> tuple[FloatArray, FloatArray]:
    """Sequential evidence that a failure rate rose above its baseline `p0`.

    Each finished job adds x ln(p1 / p0) + (1 - x) ln((1 - p1) / (1 - p0)) (x = 1 if it
    failed) to a one-sided CUSUM S = max(0, S + llr), one per alternative p1 = r p0 (r in
    EVIDENCE_RATIOS, at least `floor`): a strong rise proves itself in a few jobs, a weak
    one accumulates. Counted per slot, so S at the newest slot is the largest sum over a
    run of the newest slots.

    Args:
        failed, finished: (..., slots) counts, oldest first; NaN counts as no jobs.
        p0: (...) the baseline rate; h: (...) the threshold in nats (`evidence_threshold`).
        floor: no alternative below this rate (the rule's `min_rate`).

    Returns:
        (evidence, rate): the largest S over the alternatives divided by h (1 or more
        proves the rise), and the failure rate over the run of newest slots that S sums
        (what the rise is, so far). NaN where p0 or h is unknown, or no slot has jobs.
    """
    f = nan_as_zero(failed)
    n = nan_as_zero(finished)
    ok = np.maximum(n - f, 0.0)
    base = np.clip(np.asarray(p0, dtype=np.float64), 1e-6, 0.99)[..., None]
    # A run's llr is a ln(p1 / p0) per failed job plus b ln((1 - p1) / (1 - p0)) per job
    # that did not: every alternative's sums over the newest 1, 2, ... slots come from
    # the same two running totals, all alternatives at once (axis -2).
    p1 = np.clip(np.maximum(base * np.asarray(EVIDENCE_RATIOS), floor), None, 0.995)
    rises = p1 > base
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.log(np.where(rises, p1 / base, 1.0))[..., None]
        b = np.log(np.where(rises, (1.0 - p1) / (1.0 - base), 1.0))[..., None]
        newest_first_f = np.cumsum(f[..., ::-1], axis=-1)
        newest_first_n = np.cumsum(n[..., ::-1], axis=-1)
        newest_first_ok = np.cumsum(ok[..., ::-1], axis=-1)
        runs = a * newest_first_f[..., None, :] + b * newest_first_ok[..., None, :]
        flat = runs.reshape(*runs.shape[:-2], -1)  # alternatives in order, runs within each
        best = flat.max(axis=-1, initial=0.0)
        # The run of the first alternative reaching `best`; all slots while none is above 0.
        length = np.where(best > 0.0, flat.argmax(axis=-1) % f.shape[-1], f.shape[-1] - 1)
        length = length[..., None]
        rate = (
            np.take_along_axis(newest_first_f, length, -1)
            / np.take_along_axis(newest_first_n, length, -1)
        )[..., 0]
        out: FloatArray = best / np.asarray(h, dtype=np.float64)
    unknown = ~np.isfinite(np.asarray(p0, dtype=np.float64) + np.zeros_like(best))
    out[unknown] = np.nan
    rate[unknown] = np.nan
    return out, rate


def poisson_evidence(
    counts: npt.ArrayLike, expected: npt.ArrayLike, h: npt.ArrayLike
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Sequential evidence that a count's rate (charged jobs) rose above normal.

    Each step with n counts where `expected` were normal adds n ln r - (r - 1) expected
    to a one-sided CUSUM S = max(0, S + llr), one per alternative rate r x normal (r in
    EVIDENCE_RATIOS): the exact Poisson likelihood ratio, so a burst of a few jobs at a
    quiet hour weighs what it is worth (a Gaussian approximation of the same counts
    would call two jobs where 0.1 were due a certain runaway). S at the newest step is
    the largest sum over a run of the newest steps.

    Args:
        counts, expected: (..., steps), oldest first; a step with nothing expected and
            nothing counted (not held) adds nothing.
        h: (...) the threshold in nats (`evidence_threshold`).

    Returns:
        (evidence, steps): the largest S over the alternatives divided by h (1 or more
        proves the rise), NaN where h is; and how many of the newest steps its run
        holds (at least 1).
    """
    n = nan_as_zero(counts)
    lam = np.broadcast_to(nan_as_zero(expected), n.shape)
    newest_first_n = np.cumsum(n[..., ::-1], axis=-1)  # over the newest 1, 2, ... steps
    newest_first_lam = np.cumsum(lam[..., ::-1], axis=-1)
    best = np.zeros(n.shape[:-1])
    length = np.zeros(n.shape[:-1], dtype=np.int64)
    for ratio in EVIDENCE_RATIOS:
        runs = newest_first_n * math.log(ratio) - (ratio - 1.0) * newest_first_lam
        top = runs.max(axis=-1, initial=0.0)
        length = np.where(top > best, runs.argmax(axis=-1), length)
        np.maximum(best, top, out=best)
    with np.errstate(invalid="ignore"):
        out: FloatArray = best / np.asarray(h, dtype=np.float64)
    return out, length + 1


def breaches(z: npt.ArrayLike, threshold: float, direction: Direction = "both") -> BoolArray:
    """Mask of z-scores beyond `threshold` in `direction`; NaN is never a breach.

    "up" is z > threshold, "down" is z < -threshold, "both" is |z| > threshold.
    """
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    zz = np.asarray(z, dtype=np.float64)
    if direction == "up":
        return np.greater(zz, threshold)
    if direction == "down":
        return np.less(zz, -threshold)
    if direction == "both":
        return np.greater(np.abs(zz), threshold)
    raise ValueError(f"unknown direction {direction!r}; expected 'up', 'down' or 'both'")


# -- helpers ----------------------------------------------------------------------------


def nan_as_zero(values: npt.ArrayLike) -> FloatArray:
    """The values as float64 with NaN (not held) as 0: `np.nan_to_num` without its
    infinity checks, which cost four times the work on the small arrays judged at every
    poll."""
    a = np.asarray(values, dtype=np.float64)
    out: FloatArray = np.where(np.isnan(a), 0.0, a)
    return out


def _as_2d(values: npt.ArrayLike) -> FloatArray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D (groups, buckets) array, got shape {x.shape}")
    return x


def _min_periods(window: int, min_periods: int | None) -> int:
    if window < 2:
        raise ValueError(f"window must be >= 2, got {window}")
    mp = max(2, window // 2) if min_periods is None else min_periods
    if not 2 <= mp <= window:
        raise ValueError(f"min_periods must be in 2..window ({window}), got {mp}")
    return mp


def _first_valid(x: FloatArray) -> FloatArray:
    """Each row's first finite value (0 for an empty row), as a (groups, 1) column."""
    finite = np.isfinite(x)
    idx = np.argmax(finite, axis=1, keepdims=True)
    first = np.take_along_axis(x, idx, axis=1)
    return np.where(np.take_along_axis(finite, idx, axis=1), first, 0.0)


def _abs_resid32(x: FloatArray, center: FloatArray) -> npt.NDArray[np.float32]:
    """|x - center| computed in float64, stored in float32.

    The scale needs a few significant digits, not sixteen, and bottleneck's median runs
    ~15% faster on float32 while the array takes half the memory.
    """
    resid = np.empty(x.shape, dtype=np.float32)
    np.subtract(x, center, out=resid, casting="same_kind")
    np.abs(resid, out=resid)
    return resid


def _anscombe(failed: FloatArray, finished: FloatArray) -> FloatArray:
    """asin(sqrt((f + 3/8) / (n + 3/4))), in one new array."""
    g = np.add(failed, _ANSCOMBE_F)
    g /= finished + _ANSCOMBE_N
    with np.errstate(invalid="ignore"):  # negative counts are garbage in, NaN out
        np.sqrt(g, out=g)
    np.arcsin(g, out=g)
    return g


def _lagged(
    mover: _Mover, x: npt.NDArray[np.floating[Any]], window: int, min_count: int, **kw: Any
) -> FloatArray:
    """`mover` along axis 1 over x[:, t-window:t] for every t: the window ends before t.

    bottleneck runs on contiguous rows (a strided x[:, :-1] view runs ~1.5x slower) and
    each result is shifted one step right. Rows go in chunks of a few MB, so bottleneck's
    own output never costs a second full-size array; rows are independent and
    bottleneck releases the GIL, so chunks run on all CPUs, each row exactly as in a
    single call. A 2-D float median of `_COMPILED_MIN_CELLS` or more runs on
    bot/_movemedian.py's kernel instead, which gives bottleneck's numbers and writes
    the shifted result straight into `out`.
    """
    src = np.ascontiguousarray(x)
    length = src.shape[1]
    if min_count > length - 1:  # no window can hold min_count points yet
        return np.full(src.shape, np.nan)
    out = np.empty(src.shape)
    # bottleneck rejects a window longer than the axis; windows are clipped at the start
    # of the data anyway, so the shorter window gives the same numbers.
    win = min(window, length)
    rows = src.shape[0]
    step = max(1, _CHUNK_CELLS // max(1, src[:1].size))
    compiled = (
        _compiled_median()
        if mover is bn.move_median
        and src.ndim == 2
        and src.size >= _COMPILED_MIN_CELLS
        and src.dtype in (np.float64, np.float32)
        else None
    )

    def run(lo: int) -> None:
        if compiled is not None:
            compiled(src[lo : lo + step], win, min_count, out[lo : lo + step])
            return
        moved = mover(src[lo : lo + step], win, min_count=min_count, axis=1, **kw)
        out[lo : lo + step, 1:] = moved[:, :-1]

    if compiled is None:
        out[:, :1] = np.nan
    starts = range(0, rows, step)
    workers = min(_THREADS, len(starts))
    if workers < 2:
        for lo in starts:
            run(lo)
        return out
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for job in [pool.submit(run, lo) for lo in starts]:
            job.result()
    return out


@cache
def _compiled_median() -> Callable[[Any, int, int, FloatArray], None] | None:
    """bot/_movemedian.py's `lagged_median`, imported (with numba) on first use; None
    where numba is not installed (the `fast` extra), and bottleneck does the work."""
    try:
        from bot import _movemedian
    except ImportError:
        return None
    return _movemedian.lagged_median
