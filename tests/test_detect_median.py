"""The compiled moving median (bot/_movemedian.py) against bottleneck and a naive loop,
and bot.detect's robust baselines on it against the same on bottleneck."""

from __future__ import annotations

import subprocess
import sys

import bottleneck as bn
import numpy as np
import pytest

from bot import _movemedian, detect
from bot.detect import rate_zscores, rolling_baseline, seasonal_baseline

NAN = np.nan


def bottleneck_lagged(src, window, min_count):
    """What bot.detect computed before the kernel: bottleneck's median, one step later."""
    out = np.full(src.shape, NAN)
    win = min(window, src.shape[1])
    if min_count <= win:
        out[:, 1:] = bn.move_median(src, win, min_count=min_count, axis=1)[:, :-1]
    return out


def naive_lagged(src, window, min_count):
    """np.median of the non-NaN values of src[r, t-window:t], by plain slicing."""
    out = np.full(src.shape, NAN)
    for r in range(src.shape[0]):
        for t in range(src.shape[1]):
            win = src[r, max(0, t - window) : t]
            win = win[~np.isnan(win)]
            if win.size >= min_count:
                out[r, t] = np.median(win.astype(np.float64))
    if src.dtype == np.float32:  # bottleneck hands float32 in, float32 out
        out = out.astype(np.float32).astype(np.float64)
    return out


def compiled(src, window, min_count):
    out = np.empty(src.shape)
    _movemedian.lagged_median(np.ascontiguousarray(src), window, min_count, out)
    return out


def awkward_values(rng, shape):
    """Continuous values, ties (counts, runs), infinities, signed zeros, a trend (the
    median moves at every step) and NaN, scattered and in runs."""
    kind = rng.integers(6)
    if kind == 0:
        x = rng.normal(0.0, 1e3, shape)
    elif kind == 1:
        x = rng.integers(-3, 4, shape).astype(np.float64)
    elif kind == 2:
        x = rng.choice([0.0, -0.0, 1.0, 2.5, np.inf, -np.inf, 1e308], shape)
    elif kind == 3:
        x = np.cumsum(rng.normal(0.0, 1.0, shape), axis=1)
    elif kind == 4:
        x = np.repeat(rng.normal(0.0, 1.0, (shape[0], shape[1] // 7 + 1)), 7, axis=1)
        x = x[:, : shape[1]]
    else:
        x = rng.gamma(2.0, 5.0, shape)
    x[rng.random(shape) < rng.random() * 0.7] = NAN
    for _ in range(rng.integers(3)):  # long gaps
        start = rng.integers(shape[1])
        x[:, start : start + rng.integers(1, shape[1] // 2 + 2)] = NAN
    return x


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("max_length", "max_window"), [(80, 30), (1500, 300)])
def test_the_kernel_gives_bottlenecks_numbers_bit_for_bit(dtype, max_length, max_window):
    rng = np.random.default_rng(max_length)
    for _ in range(400 if max_length < 100 else 40):
        rows, length = int(rng.integers(1, 5)), int(rng.integers(1, max_length))
        window = int(rng.integers(2, max_window))
        min_count = int(rng.integers(1, window + 1))
        with np.errstate(invalid="ignore", over="ignore"):
            x = awkward_values(rng, (rows, length)).astype(dtype)
            expected = bottleneck_lagged(x, window, min_count)
            got = compiled(x, window, min_count)
        # array_equal: NaN where NaN, otherwise equal (0.0 == -0.0: a zero's sign may differ)
        assert np.array_equal(got, expected, equal_nan=True), (x, window, min_count)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_kernel_is_the_median_of_each_window(dtype):
    rng = np.random.default_rng(5)
    x = rng.gamma(20.0, 5.0, (6, 500))
    x[rng.random(x.shape) < 0.05] = NAN
    x[2] = np.round(x[2])  # ties
    x[3, 100:300] = NAN  # a gap longer than the window
    x[4] = NAN  # no data at all
    x = x.astype(dtype)
    for window, min_count in [(96, 48), (7, 2), (2, 2), (600, 10)]:
        np.testing.assert_array_equal(
            compiled(x, window, min_count), naive_lagged(x, window, min_count)
        )


@pytest.fixture
def on_kernel(monkeypatch):
    """bot.detect's medians on the kernel at any size, and a count of the calls."""
    calls = []
    kernel = detect._compiled_median()

    def counted():
        calls.append(1)
        return kernel

    monkeypatch.setattr(detect, "_COMPILED_MIN_CELLS", 0)
    monkeypatch.setattr(detect, "_compiled_median", counted)
    return calls


def robust_everything(values):
    counts = np.abs(np.round(values))
    return (
        *rolling_baseline(values, 96, method="robust", min_periods=48),
        *rolling_baseline(values, 9, method="robust", min_periods=3),
        *seasonal_baseline(values, 24, 96, method="robust"),
        *rate_zscores(np.round(counts / 10), counts, 48, method="robust"),
    )


def test_robust_baselines_are_the_same_on_the_kernel(monkeypatch, on_kernel):
    rng = np.random.default_rng(9)
    values = rng.gamma(20.0, 5.0, (40, 700))
    values[rng.random(values.shape) < 0.01] = NAN
    values[::7] = np.round(values[::7])  # ties
    on = robust_everything(values)
    assert on_kernel  # it ran
    monkeypatch.setattr(detect, "_COMPILED_MIN_CELLS", values.size + 1)
    before = len(on_kernel)
    off = robust_everything(values)
    assert len(on_kernel) == before  # bottleneck only
    for a, b in zip(on, off, strict=True):
        np.testing.assert_array_equal(a, b)
    # and chunked over threads, one row per chunk
    monkeypatch.setattr(detect, "_COMPILED_MIN_CELLS", 0)
    monkeypatch.setattr(detect, "_CHUNK_CELLS", 1)
    monkeypatch.setattr(detect, "_THREADS", 3)
    for a, b in zip(robust_everything(values), off, strict=True):
        np.testing.assert_array_equal(a, b)


def test_robust_baseline_on_the_kernel_matches_a_naive_loop(on_kernel):
    rng = np.random.default_rng(21)
    values = rng.normal(50.0, 5.0, (5, 300))
    values[rng.random(values.shape) < 0.15] = NAN
    center, scale = rolling_baseline(values, 24, method="robust", min_periods=6)
    assert on_kernel
    ref_center = naive_lagged(values, 24, 6)
    np.testing.assert_array_equal(center, ref_center)
    resid = np.abs(values - ref_center).astype(np.float32)  # rounded as bot.detect does
    np.testing.assert_array_equal(scale, 1.4826 * naive_lagged(resid, 24, 6))


def test_small_batches_stay_on_bottleneck_without_importing_numba():
    code = (
        "import sys, numpy as np; from bot import detect; "
        "detect.rolling_baseline(np.random.default_rng(0).normal(size=(50, 2880)), 96); "
        "print('numba' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
