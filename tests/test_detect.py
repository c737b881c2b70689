"""Detection maths: baselines, z-scores, failure-rate z and breach masks (bot/detect.py)."""

from __future__ import annotations

import numpy as np
import pytest

from bot import detect
from bot.detect import breaches, rate_zscores, rolling_baseline, seasonal_baseline, zscores

NAN = np.nan


def naive_windows(values, window):
    """values[g, t-window:t] for every (g, t), by plain slicing (the reference)."""
    groups, buckets = values.shape
    for g in range(groups):
        for t in range(buckets):
            yield g, t, values[g, max(0, t - window) : t]


def naive_baseline(values, window, min_periods, method):
    center = np.full(values.shape, NAN)
    scale = np.full(values.shape, NAN)
    for g, t, win in naive_windows(values, window):
        win = win[~np.isnan(win)]
        if win.size < min_periods:
            continue
        if method == "plain":
            center[g, t], scale[g, t] = np.mean(win), np.std(win, ddof=1)
        else:
            center[g, t] = np.median(win)
    if method == "robust":  # 1.4826 x median |x_s - center_s| over the same window
        resid = np.abs(values - center)
        for g, t, win in naive_windows(resid, window):
            win = win[~np.isnan(win)]
            if win.size >= min_periods:
                scale[g, t] = 1.4826 * np.median(win)
    return center, scale


def random_history(seed=7, shape=(5, 80), nan_share=0.15):
    rng = np.random.default_rng(seed)
    values = rng.normal(50.0, 5.0, shape)
    values[rng.random(shape) < nan_share] = NAN
    return values


# -- rolling_baseline -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "expected_center"),
    [
        # window 3, min_periods 2: t=0 and t=1 lack history; t=4 never sees its own 100.
        ("robust", [NAN, NAN, 1.5, 2.0, 4.0]),  # medians of [1 2], [1 2 9], [2 9 4]
        ("plain", [NAN, NAN, 1.5, 4.0, 5.0]),  # means of the same windows
    ],
)
def test_baseline_excludes_the_current_point(method, expected_center):
    values = np.array([[1.0, 2.0, 9.0, 4.0, 100.0]])
    center, scale = rolling_baseline(values, 3, method=method, min_periods=2)
    np.testing.assert_array_equal(center[0], expected_center)
    assert np.isfinite(scale[0, 4]) and scale[0, 4] < 10  # the 100 is not in it either


def test_plain_baseline_matches_a_naive_loop():
    values = random_history()
    center, scale = rolling_baseline(values, 10, method="plain", min_periods=4)
    ref_center, ref_scale = naive_baseline(values, 10, 4, "plain")
    np.testing.assert_allclose(center, ref_center, rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(scale, ref_scale, rtol=1e-9, equal_nan=True)


def test_robust_center_is_exactly_the_window_median():
    values = random_history(seed=11)
    center, scale = rolling_baseline(values, 9, method="robust", min_periods=3)
    ref_center, ref_scale = naive_baseline(values, 9, 3, "robust")
    np.testing.assert_array_equal(center, ref_center)
    # the residuals go through float32 on their way to the median
    np.testing.assert_allclose(scale, ref_scale, rtol=1e-6, equal_nan=True)


def test_robust_scale_estimates_sigma_and_shrugs_off_outliers():
    rng = np.random.default_rng(3)
    values = rng.normal(0.0, 2.0, (4, 600))
    values[:, ::25] += 1000.0  # 4% wild points
    _, robust = rolling_baseline(values, 96, method="robust")
    _, plain = rolling_baseline(values, 96, method="plain")
    assert np.nanmedian(robust[:, 200:]) == pytest.approx(2.0, rel=0.15)
    assert np.nanmedian(plain[:, 200:]) > 50  # what the robust one is for


@pytest.mark.parametrize("method", ["robust", "plain"])
@pytest.mark.parametrize(
    ("row", "min_periods", "defined"),
    [
        # t is defined once the window before it holds min_periods numbers
        ([1.0, 2.0, NAN, 4.0, 5.0, 6.0], 2, [0, 0, 1, 1, 1, 1]),
        ([1.0, NAN, NAN, 4.0, 5.0, 6.0], 2, [0, 0, 0, 0, 0, 1]),
        ([NAN, NAN, NAN, NAN, NAN, NAN], 2, [0, 0, 0, 0, 0, 0]),
        ([1.0, 2.0, 3.0, NAN, NAN, NAN], 3, [0, 0, 0, 1, 0, 0]),
    ],
)
def test_nan_buckets_and_min_periods(method, row, min_periods, defined):
    center, _ = rolling_baseline(np.array([row]), 3, method=method, min_periods=min_periods)
    np.testing.assert_array_equal(~np.isnan(center[0]), np.array(defined, dtype=bool))


def test_window_longer_than_the_history_is_fine():
    center, scale = rolling_baseline(np.array([[1.0, 2.0, 3.0, 4.0]]), 100, min_periods=2)
    np.testing.assert_array_equal(center[0], [NAN, NAN, 1.5, 2.0])
    center, _ = rolling_baseline(np.array([[1.0]]), 10, min_periods=2)
    assert np.isnan(center).all()


def test_chunks_and_threads_give_the_same_numbers_as_one_call(monkeypatch):
    values = random_history(seed=5, shape=(37, 200))
    counts = np.abs(np.round(values))

    def everything():
        return (
            *rolling_baseline(values, 24, method="robust"),
            *rolling_baseline(values, 24, method="plain"),
            *seasonal_baseline(values, 12, 24, method="robust"),
            *rate_zscores(np.round(counts / 10), counts, 24, method="robust"),
        )

    single = everything()
    monkeypatch.setattr(detect, "_CHUNK_CELLS", 1)  # one row per chunk
    monkeypatch.setattr(detect, "_THREADS", 3)  # threads even on a one-CPU machine
    for a, b in zip(single, everything(), strict=True):
        np.testing.assert_array_equal(a, b)


# -- zscores and breaches ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "center", "scale", "expected"),
    [
        (12.0, 10.0, 1.0, 2.0),  # ordinary
        (12.0, 10.0, 0.0, 2.0 / 0.5),  # zero scale: rel_floor 5% of 10
        (1.0, 0.0, 0.0, 1.0 / 0.25),  # zero scale and level: abs_floor
        (NAN, 10.0, 1.0, NAN),
        (12.0, NAN, 1.0, NAN),
        (12.0, 10.0, NAN, NAN),
        (np.inf, 10.0, 1.0, NAN),  # never inf out
    ],
)
def test_zscores_table(x, center, scale, expected):
    z = zscores(
        np.array([[x]]), np.array([[center]]), np.array([[scale]]), abs_floor=0.25, rel_floor=0.05
    )
    np.testing.assert_array_equal(z, [[expected]])


def test_a_flat_history_gives_finite_z_and_no_breach_on_tiny_noise():
    rng = np.random.default_rng(0)
    flat = np.full((2, 200), 100.0)
    flat[1] += rng.normal(0.0, 1e-9, 200)  # float dust on a constant
    for method in ("robust", "plain"):
        center, scale = rolling_baseline(flat, 48, method=method)
        z = zscores(flat, center, scale, abs_floor=1e-6, rel_floor=0.01)
        assert np.isfinite(z[:, 48:]).all()
        assert not breaches(z, 3.0).any()
        jumped = flat.copy()
        jumped[:, -1] = 110.0  # a 10% jump is 10 rel_floor units
        z = zscores(jumped, center, scale, abs_floor=1e-6, rel_floor=0.01)
        assert breaches(z, 3.0)[:, -1].all()


def test_a_spike_breaches_in_its_own_group_only():
    rng = np.random.default_rng(1)
    values = rng.normal([[100.0], [5.0], [1e6]], [[3.0], [0.5], [1e3]], (3, 300))
    values[1, 250] += 10.0  # 20 sigma, in the middle group only
    for method in ("robust", "plain"):
        center, scale = rolling_baseline(values, 96, method=method)
        z = zscores(values, center, scale, abs_floor=1e-9, rel_floor=0.0)
        np.testing.assert_array_equal(np.argwhere(breaches(z, 6.0, "up")), [[1, 250]])


@pytest.mark.parametrize(
    ("direction", "expected"),
    [
        ("up", [0, 0, 0, 0, 0, 1, 0]),
        ("down", [1, 0, 0, 0, 0, 0, 0]),
        ("both", [1, 0, 0, 0, 0, 1, 0]),
    ],
)
def test_breaches_by_direction(direction, expected):
    z = np.array([[-5.0, -3.0, -1.0, 0.0, 3.0, 5.0, NAN]])
    np.testing.assert_array_equal(breaches(z, 3.0, direction)[0], np.array(expected, bool))


# -- rate_zscores ---------------------------------------------------------------------------


def steady_jobs(buckets=200, jobs=2000, rate=0.02, groups=2, seed=4):
    rng = np.random.default_rng(seed)
    finished = np.full((groups, buckets), float(jobs))
    failed = rng.binomial(jobs, rate, (groups, buckets)).astype(float)
    return failed, finished


@pytest.mark.parametrize("method", ["robust", "plain"])
def test_rate_z_weighs_the_volume_of_the_bucket(method):
    failed, finished = steady_jobs()
    failed[0, -1], finished[0, -1] = 400.0, 2000.0  # 20% of 2,000 against 2%
    failed[1, -1], finished[1, -1] = 1.0, 2.0  # 50%, but of 2 jobs
    rate, base, z = rate_zscores(failed, finished, 96, method=method)
    np.testing.assert_allclose(rate[:, -1], [0.2, 0.5])
    np.testing.assert_allclose(base[:, -1], 0.02, rtol=0.1)
    assert z[0, -1] > 20
    assert 0 < z[1, -1] < 3  # the exact binomial tail says z ~ 1.75
    assert np.abs(z[:, 100:-1]).max() < 4.5  # steady history stays quiet


def test_a_baseline_without_failures_does_not_make_one_failure_infinite():
    failed = np.zeros((1, 120))
    finished = np.full((1, 120), 100.0)
    failed[0, -1] = 1.0
    rate, base, z = rate_zscores(failed, finished, 48)
    assert 0 < base[0, -1] < 0.01
    assert np.isfinite(z[0, -1]) and 0 < z[0, -1] < 3


@pytest.mark.parametrize("method", ["robust", "plain"])
def test_rate_z_allows_for_buckets_that_differ_beyond_binomial_noise(method):
    # 10,000 jobs a bucket and a rate anywhere between 1% and 5%: binomial noise alone
    # (sd ~0.002) would make the 5% buckets 10-sigma events.
    rng = np.random.default_rng(8)
    finished = np.full((1, 300), 10_000.0)
    failed = np.round(finished * rng.uniform(0.01, 0.05, finished.shape))
    _, _, z = rate_zscores(failed, finished, 96, method=method)
    assert np.nanmax(np.abs(z[:, 200:])) < 3


def test_rate_baselines_match_their_definitions():
    rng = np.random.default_rng(9)
    finished = rng.integers(0, 30, (3, 60)).astype(float)
    finished[rng.random(finished.shape) < 0.1] = NAN
    failed = np.floor(np.nan_to_num(finished) * rng.random(finished.shape))
    window, mp = 8, 3
    _, plain, _ = rate_zscores(failed, finished, window, method="plain", min_periods=mp)
    _, robust, _ = rate_zscores(failed, finished, window, method="robust", min_periods=mp)
    for g, t, win_n in naive_windows(finished, window):
        win_f = failed[g, max(0, t - window) : t]
        jobs = win_n > 0
        if jobs.sum() < mp:
            assert np.isnan(plain[g, t]) and np.isnan(robust[g, t])
            continue
        pooled = (win_f[jobs].sum() + 0.375) / (win_n[jobs].sum() + 0.75)
        smoothed = (win_f[jobs] + 0.375) / (win_n[jobs] + 0.75)
        # the robust one is a median on the arcsine scale, i.e. of the smoothed rates
        median = np.sin(np.median(np.arcsin(np.sqrt(smoothed)))) ** 2
        assert plain[g, t] == pytest.approx(pooled, rel=1e-9)
        assert robust[g, t] == pytest.approx(median, rel=1e-9)


def test_buckets_without_jobs_have_no_rate():
    failed = np.array([[0.0, 1.0, 0.0, 2.0]])
    finished = np.array([[0.0, 10.0, NAN, 10.0]])
    rate, _, z = rate_zscores(failed, finished, 2, min_periods=2)
    np.testing.assert_array_equal(np.isnan(rate[0]), [True, False, True, False])
    assert np.isnan(z).all()  # never two buckets with jobs before any t


# -- seasonal_baseline ----------------------------------------------------------------------


def daily_rhythm(days=10, seed=2):
    """Hourly buckets: 100 +- 50 over the day, noise sd 1; two groups alike."""
    rng = np.random.default_rng(seed)
    hours = np.arange(days * 24)
    level = 100.0 + 50.0 * np.sin(2 * np.pi * hours / 24)
    return level + rng.normal(0.0, 1.0, (2, hours.size))


def test_a_daily_rhythm_is_not_a_breach_but_an_off_phase_spike_is():
    values = daily_rhythm()
    spike = 8 * 24 + 18  # day 8, 18:00: the daily trough, about 50
    values[1, spike] += 40.0  # 90 is an ordinary level at noon, not at 18:00
    window = 48
    center, scale = seasonal_baseline(values, 24, window, seasons=7)
    z = zscores(values, center, scale, abs_floor=1e-6, rel_floor=0.0)
    settled = 3 * 24 + window  # three seasons plus the residual window
    hits = breaches(z, 5.0)
    hits[:, :settled] = False
    np.testing.assert_array_equal(np.argwhere(hits), [[1, spike]])
    # the trailing baseline sees the whole swing as noise and misses the spike
    center, scale = rolling_baseline(values, window)
    z = zscores(values, center, scale, abs_floor=1e-6, rel_floor=0.0)
    assert not breaches(z, 5.0)[1, spike]


@pytest.mark.parametrize("method", ["robust", "plain"])
def test_seasonal_falls_back_before_three_seasons(method):
    values = daily_rhythm(days=6)
    window = 24
    seasonal = seasonal_baseline(values, 24, window, seasons=5, method=method)
    trailing = rolling_baseline(values, window, method=method)
    first = 3 * 24 + window // 2  # 3 seasons, then min_periods seasonal residuals
    for s, t in zip(seasonal, trailing, strict=True):
        np.testing.assert_array_equal(s[:, :first], t[:, :first])
        assert not np.allclose(s[:, first + 24 :], t[:, first + 24 :])


def test_seasonal_center_is_the_same_hour_on_earlier_days():
    values = np.tile(np.arange(4.0), 6)[None, :]  # period 4, no noise at all
    values[0, 20] = 99.0  # a one-off in the last cycle
    center, scale = seasonal_baseline(values, 4, 4, seasons=3, method="robust")
    np.testing.assert_array_equal(center[0, 16:20], [0.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(scale[0, 16:20], 0.0)
    z = zscores(values, center, scale, abs_floor=1e-6, rel_floor=0.05)
    assert breaches(z, 5.0, "up")[0].tolist().count(True) == 1


# -- argument checks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: rolling_baseline(np.zeros(5), 3),  # 1-D
        lambda: rolling_baseline(np.zeros((1, 5)), 1),
        lambda: rolling_baseline(np.zeros((1, 5)), 3, min_periods=4),
        lambda: rolling_baseline(np.zeros((1, 5)), 3, method="mean"),  # type: ignore[arg-type]
        lambda: seasonal_baseline(np.zeros((1, 5)), 0, 3),
        lambda: seasonal_baseline(np.zeros((1, 5)), 2, 4, seasons=2, min_seasons=3),
        lambda: zscores(
            np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2)), abs_floor=0.0, rel_floor=0.1
        ),
        lambda: rate_zscores(np.zeros((1, 3)), np.zeros((1, 4)), 2),
        lambda: breaches(np.zeros((1, 2)), 0.0),
        lambda: breaches(np.zeros((1, 2)), 3.0, "sideways"),  # type: ignore[arg-type]
    ],
)
def test_bad_arguments_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


# --- the evidence test of spend: a Poisson CUSUM of charged jobs ---------------------------


def naive_poisson_cusum(counts, expected, ratio):
    """S = max(0, S + n ln r - (r - 1) expected), step by step (the textbook recursion)."""
    s = 0.0
    for n, lam in zip(counts, expected, strict=True):
        s = max(0.0, s + n * np.log(ratio) - (ratio - 1) * lam)
    return s


def test_poisson_evidence_is_the_cusum_recursion_at_its_best_alternative() -> None:
    rng = np.random.default_rng(7)
    counts = rng.poisson(3.0, size=(50, 40)).astype(float)
    counts[:25, -6:] += rng.poisson(6.0, size=(25, 6))  # half the groups run away
    expected = np.full(counts.shape, 2.5)
    expected[:, :5] = 0.0  # steps nobody saw: nothing due, nothing counted
    counts[:, :5] = 0.0
    h = np.full(50, 12.0)
    evidence, steps = detect.poisson_evidence(counts, expected, h)
    for g in range(50):
        best = max(naive_poisson_cusum(counts[g], expected[g], r) for r in detect.EVIDENCE_RATIOS)
        assert evidence[g] == pytest.approx(best / 12.0)
        if best > 0:  # the run is the newest steps whose sum is S
            r = max(
                detect.EVIDENCE_RATIOS, key=lambda r: naive_poisson_cusum(counts[g], expected[g], r)
            )
            run = slice(40 - steps[g], 40)
            llr = counts[g, run].sum() * np.log(r) - (r - 1) * expected[g, run].sum()
            assert llr == pytest.approx(best)
    assert (evidence[:25] >= 1.0).mean() > 0.9  # a 3x runaway over 6 steps is proven
    assert (evidence[25:] < 1.0).all()


def test_poisson_evidence_weighs_a_quiet_hours_burst_by_its_odds() -> None:
    # Three jobs where a tenth of one was due: 3 ln(32) - 31 x 0.1 = 7.3 nats at best,
    # short of a threshold of 10; a Gaussian approximation of the same counts (mean 0.1,
    # variance 0.1) would have called it (2.9)^2 / 0.2 = 42 nats, a certain runaway.
    evidence, steps = detect.poisson_evidence([[0.0, 3.0]], [[0.0, 0.1]], [10.0])
    assert evidence[0] == pytest.approx((3 * np.log(32) - 31 * 0.1) / 10.0)
    assert evidence[0] < 1.0
    assert steps[0] == 1
    # Nothing counted: no evidence, whatever was due; an unknown threshold stays unknown.
    evidence, _ = detect.poisson_evidence([[0.0, 0.0]], [[5.0, 5.0]], [np.nan])
    assert np.isnan(evidence[0])
    evidence, _ = detect.poisson_evidence([[0.0, 0.0]], [[5.0, 5.0]], [10.0])
    assert evidence[0] == 0.0


# --- the evidence test of a failure rate: a Bernoulli CUSUM of finished jobs ---------------


def naive_bernoulli_cusum(failed, finished, p0, p1):
    """S = max(0, S + f ln(p1 / p0) + (n - f) ln((1 - p1) / (1 - p0))), slot by slot."""
    s = 0.0
    for f, n in zip(failed, finished, strict=True):
        s = max(0.0, s + f * np.log(p1 / p0) + (n - f) * np.log((1 - p1) / (1 - p0)))
    return s


def test_bernoulli_evidence_is_the_cusum_recursion_at_its_best_alternative() -> None:
    rng = np.random.default_rng(11)
    finished = rng.poisson(20.0, size=(40, 30)).astype(float)
    failed = rng.binomial(finished.astype(int), 0.02).astype(float)
    failed[:20, -5:] = rng.binomial(finished[:20, -5:].astype(int), 0.3)  # half start failing
    p0 = np.full(40, 0.02)
    h = np.full(40, 10.0)
    evidence, rate = detect.bernoulli_evidence(failed, finished, p0, h, floor=0.05)
    for g in range(40):
        alternatives = [min(max(0.02 * r, 0.05), 0.995) for r in detect.EVIDENCE_RATIOS]
        sums = [naive_bernoulli_cusum(failed[g], finished[g], 0.02, p1) for p1 in alternatives]
        assert evidence[g] == pytest.approx(max(sums) / 10.0)
        if max(sums) > 0:  # the rate told is that of the newest slots whose sum is S
            p1 = alternatives[int(np.argmax(sums))]
            llr = [
                failed[g, -j:].sum() * np.log(p1 / 0.02)
                + (finished[g, -j:] - failed[g, -j:]).sum() * np.log((1 - p1) / 0.98)
                for j in range(1, 31)
            ]
            j = int(np.argmax(llr)) + 1
            assert rate[g] == pytest.approx(failed[g, -j:].sum() / finished[g, -j:].sum())
    assert (evidence[:20] >= 1.0).all()  # 30 % where 2 % is normal, over 100 jobs
    assert (evidence[20:] < 1.0).all()
    # An unknown baseline: unknown evidence.
    evidence, rate = detect.bernoulli_evidence([[1.0]], [[2.0]], [np.nan], [10.0])
    assert np.isnan(evidence[0]) and np.isnan(rate[0])
