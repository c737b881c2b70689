"""A compiled trailing-window median for bot.detect's large batches (numba).

`lagged_median(src, window, min_count, out)` writes into `out` what
`bottleneck.move_median(src, window, min_count=min_count, axis=1)` shifted one bucket
right gives: out[:, t] is the median of the non-NaN values of src[:, t-window:t] (clipped
at the start), NaN where there are fewer than `min_count` of them, and out[:, 0] is NaN.
Same numbers as bottleneck, bit for bit (only a zero's sign may differ): an odd count
gives the middle value, an even one (lower + upper) / 2 in float64; float32 input gives
that median rounded to float32, as bottleneck's float32 output does.

How: bottleneck keeps two heaps, O(log window) per step but with a pointer chase and a
hard-to-predict branch at every level. Here the window stays in arrival order (a ring of
`window` slots) and only the median is tracked, with the counts of values below it and
up to it, and its nearest neighbours below and above while they are known. A step
updates those counts; when the median's rank has left them (on random data at about
every other step), the median moves to its neighbour, and only a neighbour not known
costs a scan of the ring: a branch-free max or min over ~100 integers, a few SIMD
instructions. Floats are compared as integers (their bits, the negatives' flipped), which
orders them the same, -0.0 before 0.0, and vectorises without floating-point reduction
rules; NaN becomes the largest integer, which no scan takes for a value. About 3x
bottleneck's speed on the bench's data (16 against 50 ns a bucket on one core).

Imported by bot.detect only for batches big enough to pay numba's import and the
kernel's first load (cached on disk after the first compile).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt

_F = TypeVar("_F", bound=Callable[..., Any])

# Per-bucket result states in `_median_keys`.
_UNDEFINED, _ODD, _EVEN = 0, 1, 2


def _kernel(fn: _F) -> _F:
    """Compiled without the GIL (bot.detect runs row chunks on threads), cached on disk."""
    return cast(_F, numba.njit(nogil=True, cache=True)(fn))


def _inlined(fn: _F) -> _F:
    return cast(_F, numba.njit(nogil=True, cache=True, inline="always")(fn))


@_inlined
def _max_below(ring: Any, m: Any, lowest: Any) -> Any:
    best = lowest
    for i in range(ring.shape[0]):
        v = ring[i]
        best = max(best, v if v < m else lowest)
    return best


@_inlined
def _min_above(ring: Any, m: Any, highest: Any) -> Any:
    best = highest
    for i in range(ring.shape[0]):
        v = ring[i]
        best = min(best, v if v > m else highest)
    return best


@_inlined
def _count_equal(ring: Any, m: Any) -> int:
    count = 0
    for i in range(ring.shape[0]):
        count += ring[i] == m
    return count


@_kernel
def _median_keys(
    keys: Any, ring: Any, min_count: int, lowest: Any, highest: Any, lo: Any, hi: Any, state: Any
) -> None:
    """For t >= 1: lo[t], hi[t] = the lower and upper middle of the keys in
    keys[t-len(ring):t] other than `highest` (a missing value), and state[t] whether
    there are fewer than min_count of them, an odd or an even number. state[0] = undefined.
    """
    win = ring.shape[0]
    ring[:] = highest
    n = 0  # valid keys in the ring
    m = highest  # the lower middle (once n >= min_count; a pivot before)
    n_lt = 0  # valid keys < m
    n_le = 0  # valid keys <= m
    # m's neighbours as far as known: the largest key below m and the smallest above,
    # each with its count, 0 when not known. A move of m to a known neighbour needs no
    # scan, and the key it leaves becomes the neighbour on the other side.
    below = lowest
    n_below = 0
    above = highest
    n_above = 0
    state[0] = _UNDEFINED
    slot = 0
    for t in range(1, keys.shape[0]):
        old = ring[slot]
        new = keys[t - 1]
        ring[slot] = new
        slot += 1
        if slot == win:
            slot = 0
        old_ok = old != highest
        new_ok = new != highest
        n -= int(old_ok)
        if n == 0:
            if not new_ok:
                state[t] = _UNDEFINED
                continue
            m = new  # start again from the only value
            n_lt = 0
            n_le = 0
            n_below = 0
            n_above = 0
            old_ok = False
        n += int(new_ok)
        if old_ok:
            if old < m:
                n_lt -= 1
                n_le -= 1
                if old == below and n_below:
                    n_below -= 1
            elif old == m:
                n_le -= 1
            elif old == above and n_above:
                n_above -= 1
        if new_ok:
            if new < m:
                n_lt += 1
                n_le += 1
                if n_below:
                    if new > below:
                        below = new
                        n_below = 1
                    elif new == below:
                        n_below += 1
            elif new == m:
                n_le += 1
            elif n_above:
                if new < above:
                    above = new
                    n_above = 1
                elif new == above:
                    n_above += 1
        if n < min_count:
            state[t] = _UNDEFINED
            continue
        k = (n - 1) >> 1  # the lower middle's rank
        while k < n_lt:  # m moves down to the largest key below it
            if n_below == 0:
                below = _max_below(ring, m, lowest)
                n_below = _count_equal(ring, below)
            if n_le > n_lt:  # m is in the ring: the next key above
                above = m
                n_above = n_le - n_lt
            m = below
            n_le = n_lt
            n_lt -= n_below
            n_below = 0
        while k >= n_le:  # m moves up to the smallest key above it
            if n_above == 0:
                above = _min_above(ring, m, highest)
                n_above = _count_equal(ring, above)
            if n_le > n_lt:
                below = m
                n_below = n_le - n_lt
            m = above
            n_lt = n_le
            n_le += n_above
            n_above = 0
        lo[t] = m
        if n & 1:
            state[t] = _ODD
            hi[t] = m
        else:
            state[t] = _EVEN
            if k + 1 < n_le:  # m again
                hi[t] = m
            else:
                if n_above == 0:
                    above = _min_above(ring, m, highest)
                    n_above = _count_equal(ring, above)
                hi[t] = above


@_kernel
def _lagged_median_f64(src: Any, window: int, min_count: int, out: Any) -> None:
    rows, length = src.shape
    flip = np.int64(0x7FFFFFFFFFFFFFFF)  # also the missing key (a NaN's bits)
    lowest = np.int64(-0x8000000000000000)
    keys = np.empty(length, np.int64)
    lo = np.empty(length, np.int64)
    hi = np.empty(length, np.int64)
    lo_f = lo.view(np.float64)
    hi_f = hi.view(np.float64)
    state = np.empty(length, np.int8)
    ring = np.empty(min(window, length), np.int64)
    for r in range(rows):
        row = src[r]
        bits = row.view(np.int64)
        for t in range(length):
            b = bits[t]
            keys[t] = flip if row[t] != row[t] else b ^ ((b >> 63) & flip)
        _median_keys(keys, ring, min_count, lowest, flip, lo, hi, state)
        res = out[r]
        for t in range(length):
            s = state[t]
            if s == _UNDEFINED:
                res[t] = np.nan
                continue
            b = lo[t]
            lo[t] = b ^ ((b >> 63) & flip)
            b = hi[t]
            hi[t] = b ^ ((b >> 63) & flip)
            res[t] = lo_f[t] if s == _ODD else (lo_f[t] + hi_f[t]) / 2.0


@_kernel
def _lagged_median_f32(src: Any, window: int, min_count: int, out: Any) -> None:
    rows, length = src.shape
    flip = np.int32(0x7FFFFFFF)
    lowest = np.int32(-0x80000000)
    keys = np.empty(length, np.int32)
    lo = np.empty(length, np.int32)
    hi = np.empty(length, np.int32)
    lo_f = lo.view(np.float32)
    hi_f = hi.view(np.float32)
    state = np.empty(length, np.int8)
    ring = np.empty(min(window, length), np.int32)
    for r in range(rows):
        row = src[r]
        bits = row.view(np.int32)
        for t in range(length):
            b = bits[t]
            keys[t] = flip if row[t] != row[t] else b ^ ((b >> 31) & flip)
        _median_keys(keys, ring, min_count, lowest, flip, lo, hi, state)
        res = out[r]
        for t in range(length):
            s = state[t]
            if s == _UNDEFINED:
                res[t] = np.nan
                continue
            b = lo[t]
            lo[t] = b ^ ((b >> 31) & flip)
            b = hi[t]
            hi[t] = b ^ ((b >> 31) & flip)
            if s == _ODD:
                res[t] = lo_f[t]
            else:  # as bottleneck: the mean in float64, the result in float32
                mean = (np.float64(lo_f[t]) + np.float64(hi_f[t])) / 2.0
                res[t] = np.float32(mean)


def lagged_median(
    src: npt.NDArray[np.floating[Any]], window: int, min_count: int, out: npt.NDArray[np.float64]
) -> None:
    """out[r, t] = median of the non-NaN src[r, t-window:t], NaN below min_count of them.

    src: C-contiguous (rows, buckets) float64 or float32; out: float64, same shape,
    C-contiguous rows. Releases the GIL.
    """
    if src.dtype == np.float32:
        _lagged_median_f32(src, window, min_count, out)
    else:
        _lagged_median_f64(src, window, min_count, out)
