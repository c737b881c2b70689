"""Slot counts into windows: the sum of a rule's `m` consecutive 5-minute slots ending
at any slot, NaN where one of them is not known, and a series split into its phases.

Pure numpy, no I/O: `engine` reads every span and baseline through these.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def window_sums(counts: FloatArray, m: int) -> FloatArray:
    """Sum of m consecutive slots: column j is slots [j, j + m) of `counts`."""
    c = np.cumsum(counts, axis=-1)
    out = c[..., m - 1 :].copy()
    out[..., 1:] -= c[..., :-m]
    return out


def gathered_windows(
    counts: FloatArray, known: BoolArray, ends: npt.NDArray[np.int64], m: int
) -> FloatArray:
    """Window sums ending at the given slot offsets: (fields, groups, *ends.shape).

    The same numbers `window_sums` gives, for just the windows asked for; a window with
    an unknown slot is NaN.
    """
    return Prefix(counts, known, tuple(range(counts.shape[0]))).windows(ends, m)


class Prefix:
    """Running totals of some count fields and of unknown slots, from which any window's
    sum is two lookups: built once, read for every span. Other fields read as NaN."""

    def __init__(self, counts: FloatArray, known: BoolArray, fields: tuple[int, ...]) -> None:
        self.fields = fields
        self.width = counts.shape[0]
        picked = counts[list(fields)]
        self.cum = np.zeros((*picked.shape[:-1], picked.shape[-1] + 1))
        np.cumsum(picked, axis=-1, out=self.cum[..., 1:])
        self.missing = np.zeros((*known.shape[:-1], known.shape[-1] + 1))
        np.cumsum(~known, axis=-1, out=self.missing[..., 1:])

    def windows(self, ends: npt.NDArray[np.int64], m: int) -> FloatArray:
        """Sums of the m slots before each offset in `ends`: (fields, groups, *ends.shape)."""
        inside = ends - m >= 0
        at, before = np.where(inside, ends, 0), np.where(inside, ends - m, 0)
        sums = np.full((self.width, *self.cum.shape[1:-1], *ends.shape), np.nan)
        picked = self.cum[..., at] - self.cum[..., before]
        unknown = (self.missing[..., at] - self.missing[..., before] > 0) | ~inside
        np.copyto(picked, np.nan, where=unknown)  # a boolean index is ~7x slower
        sums[list(self.fields)] = picked
        return sums


def window_known(known: npt.NDArray[np.bool_], m: int) -> npt.NDArray[np.bool_]:
    """True for windows whose m slots are all known."""
    unknown = window_sums((~known).astype(np.float64), m)
    return np.equal(unknown, 0.0)


def by_phase(x: FloatArray, m: int) -> FloatArray:
    """(groups, T) -> (groups * m, ceil(T / m)): each row one group's one phase, in time.

    Padding goes at the front so the newest column keeps the newest phase whole.
    """
    if m == 1:
        return x
    groups, length = x.shape
    width = -(-length // m)
    padded = np.full((groups, width * m), np.nan)
    padded[:, width * m - length :] = x
    return padded.reshape(groups, width, m).transpose(0, 2, 1).reshape(groups * m, width)


def from_phase(x: FloatArray, m: int, length: int) -> FloatArray:
    """The inverse of `by_phase` for a series of `length` columns."""
    if m == 1:
        return x
    rows, width = x.shape
    groups = rows // m
    flat = x.reshape(groups, m, width).transpose(0, 2, 1).reshape(groups, width * m)
    return flat[:, width * m - length :]
