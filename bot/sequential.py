"""A spend rule's sequential tests, each proving a rise by the run of newest data
that makes it (`engine` feeds them and tells what they prove):

- the creep test: a one-sided CUSUM of its buckets' z-scores, S = max(0, S + z -
  REFERENCE), proving a level shift that builds over days once S reaches THRESHOLD. It
  runs on two scores: the credits' z-scores against the rule's own baseline, and the
  charged jobs' against the same bucket of the busy days of the last week
  (`busy_days`, `counted_scores`), whose noise is Poisson's, known rather than
  estimated, unless the days' levels wander beyond it;
- the evidence test: a Poisson CUSUM of its charged events against the top of their
  normal band (`detect.poisson_evidence`), proving a runaway in minutes.

Pure numpy, no I/O.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from bot import detect
from bot.metrics import CHARGED, CREDITS

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
# evidence (S over its threshold), and the run's credits, normal credits, z and seconds
Run = tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]

# Against a reference of half a sigma, ordinary hours drift S back to 0; a rise of one
# sigma sustained for a day (a 2x creep over three days, by its first day's end) reaches
# the threshold.
CREEP_REFERENCE = 0.5
CREEP_THRESHOLD = 12.0
# Each bucket adds at most this many sigmas: a creep is many moderate hours, and a runaway
# of an hour or three (told by the windows) must not hold the creep test up for days.
CREEP_CLIP = 3.0


# The charged jobs' normal level for a bucket: the mean of the same bucket on the BUSY
# busiest of the last DAYS days. A week's two quiet days then leave the weekdays' level
# alone, where a median of the seven sits well below it (by half an hour's noise),
# and a quiet day is judged against busy ones, which errs quiet.
CREEP_DAYS = 7
CREEP_BUSY = 5


def busy_days(jobs: FloatArray) -> tuple[FloatArray, FloatArray]:
    """How far each bucket's charged jobs are above their busy days' level, and how far
    those days spread: (..., 1 + CREEP_DAYS) counts, a bucket's then the same bucket's on
    each of the CREEP_DAYS days before it -> (rise, spread), each (...), NaN where a day
    is not known. Both on the scale 2 sqrt(n + 3/8) (Anscombe's), where Poisson noise is
    1 at any level: `spread` is the busy days' sample variance, about 1 unless the days'
    levels wander beyond Poisson noise (`counted_scores` pools it)."""
    days = np.sort(jobs[..., 1:], axis=-1)[..., CREEP_DAYS - CREEP_BUSY :]  # NaN sorts last
    level = days.mean(axis=-1)
    rise: FloatArray = 2.0 * (np.sqrt(jobs[..., 0] + 0.375) - np.sqrt(level + 0.375))
    spread: FloatArray = np.var(2.0 * np.sqrt(days + 0.375), axis=-1, ddof=1)
    return rise, spread


def counted_scores(rise: FloatArray, spread: FloatArray, per_day: int) -> FloatArray:
    """The creep test's scores of charged jobs over (..., buckets) of one run of buckets
    (`busy_days`), `per_day` buckets a day: each rise over its noise. That is Poisson's,
    widened by the level's own error (a mean of CREEP_BUSY days) and by how far the busy
    days' levels wander beyond Poisson noise, pooled over the run's buckets and counted
    beyond a standard error of the pool. A day's wander moves all its buckets at once, so
    each bucket carries a day's worth of it. Where the days wander, a busy day is what
    the data have, not a creep, and the credits' test (their scale estimated from the
    week) is the one left to prove it."""
    finite = np.isfinite(spread)
    count = finite.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = np.where(finite, spread, 0.0).sum(axis=-1, keepdims=True) / count
        # A sample variance of CREEP_BUSY days has variance 2 / (CREEP_BUSY - 1) here; the
        # same hour on the run's next days shares most of its busy days, so the pool
        # holds about a day of buckets' worth of them.
        error = np.sqrt(2.0 / ((CREEP_BUSY - 1) * np.minimum(count, per_day)))
        wander = np.maximum(pooled - 1.0 - error, 0.0)
        noise = np.sqrt((1.0 + per_day * wander) * (1.0 + 1.0 / CREEP_BUSY))
        scores: FloatArray = rise / noise
    return scores


def creep(
    bucket: float, z: FloatArray, value: FloatArray, baseline: FloatArray, settled: BoolArray
) -> Run:
    """The creep test of a rule of `bucket` seconds over (groups, moments, buckets)
    arrays of each moment's whole buckets before it, oldest first, counting the `settled`
    ones only: (evidence, run credits, run normal credits, run z, run seconds), each
    (groups, moments). The run is the buckets since S last was 0; its z is their
    z-scores' sum over the root of their count (a mean shift in sigmas)."""
    ok = settled & np.isfinite(z + value + baseline)
    step = np.where(ok, np.minimum(z, CREEP_CLIP) - CREEP_REFERENCE, 0.0)
    # S at the newest bucket is X_D - min(X_0..X_D), X the running sum of the steps
    # (X_0 = 0); its run is the buckets after the last moment S was 0, where X was lowest.
    totals = [running(a) for a in (step, ok, np.where(ok, value, 0.0), np.where(ok, baseline, 0.0))]
    totals.append(running(np.where(ok, z, 0.0)))
    sums = totals[0]
    start = sums.shape[-1] - 1 - np.argmin(sums[..., ::-1], axis=-1)[..., None]
    total, count, spent, normal, zs = (
        a[..., -1] - np.take_along_axis(a, start, axis=-1)[..., 0] for a in totals
    )
    run_z = zs / np.sqrt(np.maximum(count, 1.0))
    return total / CREEP_THRESHOLD, spent, normal, run_z, count * bucket


def burst(
    slots: FloatArray,
    known: BoolArray,
    lam: FloatArray,
    normal: FloatArray,
    h: FloatArray,
    seen: FloatArray,
    slot_seconds: int,
) -> Run:
    """A spend rule's evidence test over (fields, ..., slots) counts, oldest first, zero
    where not `known`: the Poisson CUSUM of charged events against `lam` normal ones in
    each slot ((..., slots), each slot its own season's; `detect.poisson_evidence`), of
    which the data reach the share `seen` of each slot of `slot_seconds`. (evidence, run
    credits, run normal credits (`normal` credits in each slot, (..., slots), as `lam`),
    run z, run seconds), each (...): the run is the newest slots S sums. Its z compares
    the run's charged events with those due on the square-root scale, where Poisson
    noise is 1/2."""
    share = np.where(known, seen, 0.0)
    newest = lam[..., -1:]
    due = _or_newest(lam) * share
    charged = slots[CHARGED]
    evidence, length = detect.poisson_evidence(charged, due, h)
    evidence[~np.isfinite(newest[..., 0])] = np.nan

    def over_run(x: FloatArray) -> FloatArray:
        sums = np.cumsum(x[..., ::-1], axis=-1)
        return np.take_along_axis(sums, (length - 1)[..., None], axis=-1)[..., 0]

    events, expected = over_run(charged), over_run(detect.nan_as_zero(due))
    z = 2.0 * (np.sqrt(events) - np.sqrt(expected))
    spent, usual = over_run(slots[CREDITS]), over_run(_or_newest(normal) * share)
    seconds = (length * slot_seconds).astype(np.float64)
    return evidence, spent, usual, z, seconds


def _or_newest(per_slot: FloatArray) -> FloatArray:
    """Each slot's normal, (..., slots); an older slot whose normal is unknown (its moment
    had no baseline) takes the newest's."""
    filled: FloatArray = np.where(np.isfinite(per_slot), per_slot, per_slot[..., -1:])
    return filled


def running(x: npt.ArrayLike) -> FloatArray:
    """Running sums along the last axis with a leading 0: (..., n) -> (..., n + 1)."""
    a = np.asarray(x, dtype=np.float64)
    out = np.zeros((*a.shape[:-1], a.shape[-1] + 1))
    np.cumsum(a, axis=-1, out=out[..., 1:])
    return out
