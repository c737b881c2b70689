"""Speed of bot.detect against pandas rolling windows, on one batch of synthetic history.

    .venv/bin/python bench/bench_detect.py [--groups 10000] [--buckets 2880] [--window 96]

Scores groups x buckets (default 10,000 x 2,880: 30 days of 15-minute buckets) with our
plain and robust baselines plus z-scores, and times pandas' `rolling().mean()/.std()` and
`rolling().median()` (baselines only, no shift, no z) on the same data laid out as
(buckets, groups). Also times the 2-D failure-rate z-score, and the robust baselines on
bottleneck's median (what bot.detect ran before its compiled kernel), checked equal to the
kernel's. Prints seconds, ratios and (with --memory) the peak memory each step allocates.
pandas is a bench-only dependency.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from bot import detect
from bot.detect import rate_zscores, rolling_baseline, zscores

MB = 1 << 20


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    gc.collect()
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def peak_mb(fn: Callable[[], Any]) -> float:
    """MB allocated at the peak of one call, result included (tracemalloc slows calls)."""
    gc.collect()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / MB


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--groups", type=int, default=10_000)
    ap.add_argument("--buckets", type=int, default=2_880)
    ap.add_argument("--window", type=int, default=96)
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds over all steps; the best run of each step counts",
    )
    ap.add_argument("--memory", action="store_true", help="also measure peak memory per step")
    args = ap.parse_args(argv)
    g, t, w = args.groups, args.buckets, args.window
    mp = w // 2

    rng = np.random.default_rng(0)
    values = rng.gamma(20.0, 5.0, (g, t))  # skewed, like per-bucket spend
    values[rng.random((g, t)) < 0.01] = np.nan  # 1% of buckets without data
    finished = rng.poisson(50.0, (g, t)).astype(np.float64)
    failed = rng.binomial(finished.astype(np.int64), 0.02).astype(np.float64)
    frame = pd.DataFrame(values.T)  # pandas rolls along rows: (buckets, groups)
    print(
        f"{g:,} groups x {t:,} buckets, window {w}, min_periods {mp}; "
        f"one float64 array = {values.nbytes / MB:.0f} MB; {os.cpu_count()} CPUs"
    )

    def ours(method: detect.Method) -> Callable[[], Any]:
        def run() -> Any:
            center, scale = rolling_baseline(values, w, method=method, min_periods=mp)
            return center, zscores(values, center, scale, abs_floor=1e-9, rel_floor=0.0)

        return run

    def pandas_plain() -> Any:
        rolling = frame.rolling(w, min_periods=mp)
        return rolling.mean(), rolling.std()

    def pandas_median() -> Any:
        return frame.rolling(w, min_periods=mp).median()

    def rate(method: detect.Method) -> Callable[[], Any]:
        return lambda: rate_zscores(failed, finished, w, method=method, min_periods=mp)

    def single_thread(fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            saved = detect._THREADS
            detect._THREADS = 1
            try:
                return fn()
            finally:
                detect._THREADS = saved

        return run

    def on_bottleneck(fn: Callable[[], Any]) -> Callable[[], Any]:
        """fn with every moving median on bottleneck, as before the compiled kernel."""

        def run() -> Any:
            saved = detect._COMPILED_MIN_CELLS
            detect._COMPILED_MIN_CELLS = values.size + 1
            try:
                return fn()
            finally:
                detect._COMPILED_MIN_CELLS = saved

        return run

    def first_calls() -> None:
        kernel = detect._compiled_median()
        for dtype in (np.float64, np.float32):  # the centers' and the residuals' medians
            kernel(values[:2, :200].astype(dtype), w, mp, np.empty((2, 200)))

    # The kernel's one-off cost in a process: numba's import and the kernels' load from
    # their on-disk cache (their compile too, the first time after an install), on a
    # small batch. Every timed step below runs after it.
    load, _ = timed(first_calls)
    print(f"compiled median: first calls in this process {load:.2f} s (import and load)")

    steps = [  # (label, call, pandas step it is compared with)
        ("ours plain: mean/std + z", ours("plain"), "pandas rolling mean + std"),
        ("ours robust: median/MAD + z", ours("robust"), "pandas rolling median"),
        ("ours robust, one thread", single_thread(ours("robust")), "pandas rolling median"),
        ("ours robust on bottleneck", on_bottleneck(ours("robust")), "pandas rolling median"),
        (
            "ours robust on bn, one thread",
            single_thread(on_bottleneck(ours("robust"))),
            "pandas rolling median",
        ),
        ("pandas rolling mean + std", pandas_plain, None),
        ("pandas rolling median", pandas_median, None),
        ("ours rate z, plain (pooled)", rate("plain"), None),
        ("ours rate z, robust", rate("robust"), None),
        ("ours rate z, robust, one thread", single_thread(rate("robust")), None),
    ]
    # the centers (pandas: mean, median) of these steps are compared below, and the
    # robust (center, z) on the kernel with the same on bottleneck
    checked = {label for label, _, against in steps[:2]} | {against for _, _, against in steps[:2]}
    checked.add("ours robust on bottleneck")
    # Rounds over all steps, best run per step: a slow spell of the machine (shared or
    # throttled CPUs) then hits every step alike instead of whichever ran during it.
    timings = {label: float("inf") for label, _, _ in steps}
    kept: dict[str, Any] = {}
    for _ in range(args.repeat):
        for label, fn, _ in steps:
            seconds, result = timed(fn)
            timings[label] = min(timings[label], seconds)
            if label in ("ours robust: median/MAD + z", "ours robust on bottleneck"):
                kept[label + " z"] = result[1]
            if label in checked:
                kept[label] = result[0] if isinstance(result, tuple) else result
            del result
    peaks = {label: peak_mb(fn) for label, fn, _ in steps} if args.memory else {}

    print(f"\n{'step':32s} {'seconds':>8s} {'peak MB':>8s}  vs pandas")
    for label, _, against in steps:
        ratio = f"{timings[against] / timings[label]:5.1f}x faster" if against else ""
        peak = f"{peaks[label]:8.0f}" if label in peaks else f"{'-':>8s}"
        print(f"{label:32s} {timings[label]:8.2f} {peak}  {ratio}")

    # Same numbers, not just the same shape: pandas' window ends at t, ours just before.
    ours_mean, ours_median = kept["ours plain: mean/std + z"], kept["ours robust: median/MAD + z"]
    mean = kept["pandas rolling mean + std"].to_numpy().T
    median = kept["pandas rolling median"].to_numpy().T
    d_mean = np.nanmax(np.abs(ours_mean[:, 1:] - mean[:, :-1]))
    same_median = np.array_equal(ours_median[:, 1:], median[:, :-1], equal_nan=True)
    print(f"\ncheck: max |our mean - pandas mean| = {d_mean:.2e}; medians identical: {same_median}")
    robust = "ours robust: median/MAD + z"
    same_kernel = all(
        np.array_equal(kept[robust + end], kept["ours robust on bottleneck" + end], equal_nan=True)
        for end in ("", " z")
    )
    print(f"check: robust center and z on the kernel identical to bottleneck's: {same_kernel}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
