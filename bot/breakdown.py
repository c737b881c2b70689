"""What drives an alert: the excess of a failure rate or of spend over its baseline,
split by error code, output format, segment and customer (and model, when the alert is
not about one), the biggest parts named with their share, like a cost anomaly's root
causes.

Sits beside `alerts`: notify and `/usage model` ask `explain` (or `last_day`) with the
store's counter (`Store.tallies`) and word the result with `messages.breakdown`. Pure:
counts in, ranked parts out; the time is an argument, the reader is passed in.

**Failures.** The window holds F failed of N finished jobs; the baseline rate is b. The
excess is F - b*N: the failed jobs above what the baseline rate expects of those jobs.
For a dimension the jobs themselves carry (model, output format, segment, customer), a
value v's part is its own excess over the same rate, F_v - b*N_v. An error code is only
on failed jobs, so its expected failures are b*N split by the code's share s_c of the
failures in the reference history: F_c - b*N*s_c.

**Spend.** The window holds C credits; the baseline is B credits. The excess is C - B. A
value's part is its credits over its expected share of the baseline, C_v - B*s_v, where
s_v is its share of the credits in the reference history (a value new since then owns
all its credits).

The reference history is the rule's `baseline` span before the window (at most a week:
shares need no more, and a week of events is what the store keeps); when it holds no
failures (no credits) at all, the window's own mix stands in for the shares. Either way
the expected parts of a dimension's values add up to b*N (B), so their parts add up to
the whole excess, exactly. Values pushing the way the whole goes are its contributors,
largest first: the first `TOP` are named with their share (part / excess), the rest add
up to *others*, and the values pushing the other way (failing less than the baseline,
spending under their share) to an *offset*. Named, others and offset add up to 100 %; with
an offset the named shares can pass 100 %.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.models import DIMENSIONS, Rule, Tally, Transition

TOP = 3  # values named per dimension
DAY = timedelta(days=1)
LAST_DAY_REFERENCE = timedelta(days=7)  # what the last day is held against (`last_day`)
MAX_REFERENCE = timedelta(days=7)  # the reference history an alert's shares come from, at most
METRICS = ("failure_rate", "spend")  # the rules a breakdown explains

# (start, end, where: dimension -> value, by: dimension) -> one tally per value
TallyReader = Callable[[datetime, datetime, Mapping[str, str], str], Sequence[Tally]]

# group_by fields (bot.models.GROUP_KEYS) as the dimensions they fix
_FIELD_DIMENSION = {
    "model": "model",
    "metadata.segment": "segment",
    "metadata.customer_id": "customer",
}


@dataclass(frozen=True)
class Part:
    """One value's failed jobs (credits) in the window and what the baseline expects."""

    value: str  # "" when the events carry none
    observed: float
    expected: float

    @property
    def excess(self) -> float:
        return self.observed - self.expected


@dataclass(frozen=True)
class Split:
    """One dimension's contributors to the excess: the largest named, the rest summed."""

    dimension: str
    top: tuple[Part, ...]  # contributors, largest part first
    others: float  # the parts of the contributors not named
    others_count: int
    offset: float  # the parts of the values pushing against the excess
    offset_count: int

    @property
    def total(self) -> float:
        """The excess this split accounts for: the whole excess, up to rounding."""
        return sum(part.excess for part in self.top) + self.others + self.offset


@dataclass(frozen=True)
class Breakdown:
    """An excess over the baseline in [start, end) and its split by dimension."""

    metric: str  # failure_rate | spend
    start: datetime
    end: datetime
    observed: float  # failed jobs (failure_rate) or credits (spend) in the window
    expected: float  # what the baseline expects of the window
    baseline: float  # the baseline rate (failure_rate) or credits (spend)
    finished: int  # finished jobs in the window
    splits: tuple[Split, ...]

    @property
    def excess(self) -> float:
        return self.observed - self.expected

    def share(self, amount: float) -> float:
        """`amount` as a fraction of the excess."""
        return amount / self.excess if self.excess else 0.0


def split(
    dimension: str,
    observed: Mapping[str, float],
    expected: Mapping[str, float],
    top: int = TOP,
    whole: float | None = None,
) -> Split:
    """Rank the values of one dimension by their part of the excess: `whole`, or observed
    minus expected summed over the values (whose way decides which push with it)."""
    parts = [
        Part(value, observed.get(value, 0.0), expected.get(value, 0.0))
        for value in sorted(set(observed) | set(expected))
    ]
    if whole is None:
        whole = math.fsum(p.observed for p in parts) - math.fsum(p.expected for p in parts)
    sign = 1.0 if whole >= 0 else -1.0
    ahead = sorted(
        (p for p in parts if p.excess * sign > 0), key=lambda p: (-abs(p.excess), p.value)
    )
    against = [p for p in parts if p.excess * sign < 0]
    named, rest = ahead[:top], ahead[top:]
    return Split(
        dimension,
        tuple(named),
        math.fsum(p.excess for p in rest),
        len(rest),
        math.fsum(p.excess for p in against),
        len(against),
    )


def failures(
    window: Mapping[str, Sequence[Tally]],
    reference: Mapping[str, Sequence[Tally]],
    rate: float,
    start: datetime,
    end: datetime,
    top: int = TOP,
) -> Breakdown:
    """The failed jobs above `rate` in the window, split by each dimension of `window`
    (tallies per dimension, each a partition of the same events; `reference` gives the
    error codes' shares)."""
    failed, finished = _totals(window)
    expected_all = rate * finished
    splits = []
    for dimension, tallies in window.items():
        seen = {t.value: float(t.failed) for t in tallies}
        if dimension == "error_code":
            seen = {value: count for value, count in seen.items() if count}
            weights = _shares(
                {t.value: float(t.failed) for t in reference.get(dimension, ())}, seen
            )
            expected = {value: expected_all * w for value, w in weights.items()}
        else:
            expected = {t.value: rate * t.finished for t in tallies}
        if _carried(seen, expected) and (expected or not expected_all):
            splits.append(split(dimension, seen, expected, top, failed - expected_all))
    return Breakdown(
        "failure_rate", start, end, failed, expected_all, rate, finished, tuple(splits)
    )


def spend(
    window: Mapping[str, Sequence[Tally]],
    reference: Mapping[str, Sequence[Tally]],
    baseline: float,
    start: datetime,
    end: datetime,
    top: int = TOP,
) -> Breakdown:
    """The credits above `baseline` in the window, split by each dimension of `window`
    (tallies per dimension, each a partition of the same events; `reference` gives each
    value's expected share)."""
    splits = []
    credits = math.fsum(t.credits for t in next(iter(window.values()), ()))
    for dimension, tallies in window.items():
        seen = {t.value: t.credits for t in tallies}
        weights = _shares({t.value: t.credits for t in reference.get(dimension, ())}, seen)
        expected = {value: baseline * w for value, w in weights.items()}
        # Without a share to draw on (no credits then or now) nothing can be attributed.
        if _carried(seen, expected) and (expected or not baseline):
            splits.append(split(dimension, seen, expected, top, credits - baseline))
    _, finished = _totals(window)
    return Breakdown("spend", start, end, credits, baseline, baseline, finished, tuple(splits))


def _totals(window: Mapping[str, Sequence[Tally]]) -> tuple[int, int]:
    """Failed and finished jobs in the window (any dimension's tallies count them all)."""
    first = next(iter(window.values()), ())
    return sum(t.failed for t in first), sum(t.finished for t in first)


def _shares(reference: Mapping[str, float], fallback: Mapping[str, float]) -> dict[str, float]:
    """Each value's share of the reference's total (of `fallback`'s when it has none)."""
    for amounts in (reference, fallback):
        total = math.fsum(v for v in amounts.values() if v > 0)
        if total > 0:
            return {value: amount / total for value, amount in amounts.items() if amount > 0}
    return {}


def _carried(observed: Mapping[str, float], expected: Mapping[str, float]) -> bool:
    """Does the dimension say anything: some event carries a value of it?"""
    return any(value for value in (*observed, *expected))


def dimensions(metric: str, fixed: Iterable[str] = ()) -> tuple[str, ...]:
    """The dimensions a breakdown splits by: those the group leaves open (a model's alert
    is not split by model); error codes only for failures (a failed job costs nothing)."""
    shut = {*fixed, *(() if metric == "failure_rate" else ("error_code",))}
    return tuple(d for d in DIMENSIONS if d not in shut)


def where(group_by: Sequence[str], group: Sequence[str]) -> dict[str, str]:
    """The group's values by dimension: what the window's events are filtered on."""
    return {_FIELD_DIMENSION.get(f, f): v for f, v in zip(group_by, group, strict=True)}


def explain(t: Transition, rule: Rule, tallies: TallyReader, top: int = TOP) -> Breakdown | None:
    """What drives a failure-rate or spend alert: its excess in the window the transition
    judged (`at` back `window`), the reference history the rule's `baseline` before it
    (at most MAX_REFERENCE). None for other rules, or when the baseline is unknown."""
    if rule.metric not in METRICS or not math.isfinite(t.baseline):
        return None
    end = t.at
    start = end - timedelta(seconds=t.window or rule.bucket)
    before = start - min(timedelta(seconds=rule.baseline), MAX_REFERENCE)
    scope = where(t.group_by, t.group)
    window = {d: tallies(start, end, scope, d) for d in dimensions(rule.metric, scope)}
    if rule.metric == "failure_rate":
        reference = {"error_code": tallies(before, start, scope, "error_code")}
        if "error_code" not in window:
            reference = {}
        return failures(window, reference, t.baseline, start, end, top)
    reference = {d: tallies(before, start, scope, d) for d in window}
    return spend(window, reference, t.baseline, start, end, top)


def last_day(
    scope: Mapping[str, str],
    end: datetime,
    tallies: TallyReader,
    since: datetime | None = None,
    top: int = TOP,
) -> tuple[Breakdown, Breakdown] | None:
    """Failures and spend of the 24 hours before `end` against the 7 days before them
    (their failure rate, their mean daily credits and each value's share of those), or
    against the part of them after `since` (the oldest stored event); None when those
    days hold no finished job to compare with. What `/usage model` shows when no failure
    or spend alert is open on the model."""
    start = end - DAY
    before = max(start - LAST_DAY_REFERENCE, since or start - LAST_DAY_REFERENCE)
    if before >= start:
        return None
    found = dimensions("failure_rate", scope)
    window = {d: tallies(start, end, scope, d) for d in found}
    reference = {d: tallies(before, start, scope, d) for d in found}
    failed, finished = _totals(reference)
    if not finished:
        return None
    credits = math.fsum(t.credits for t in next(iter(reference.values()))) * (
        DAY / (start - before)
    )
    costs = {d: window[d] for d in dimensions("spend", scope)}
    return (
        failures(window, reference, failed / finished, start, end, top),
        spend(costs, reference, credits, start, end, top),
    )
