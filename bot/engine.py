"""The detection engine: rules over the usage held, judged at fixed moments of data time.

Sits after `store` and before `alerts`: `metrics` counts events into 5-minute slots,
`windows` sums them into windows, `detect` and `sequential` score each rule's groups
against their trailing history, and `monitor.Monitor` walks the alert states over these
verdicts. The live worker and `usage-bot backtest` both drive a `Monitor`, so the same
data gives the same transitions. No I/O; the time is always an argument.

Evaluation moments are the multiples of `STEP` in data time. At each, an events rule
judges the trailing window of one `bucket` ending there, so a spike is judged as soon as
the window holds enough evidence rather than when a calendar bucket closes. Its baseline
is the windows one, two, ... buckets earlier (never overlapping the one judged).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from bot import baselines, detect, sequential
from bot.baselines import (
    CHARGES,
    DAY,
    WEEKS,
    Banded,
    Baseline,
    buckets_of_history,
    series_field,
)
from bot.coverage import overlaps
from bot.metrics import (
    CHARGED,
    FAILED,
    FIELDS,
    FINISHED,
    GROUP_FIELDS,
    NONE,
    EventBatch,
    UsageCube,
    daily_slot_counts,
)
from bot.models import (
    TOTAL,
    DailyUsage,
    Evaluation,
    Gap,
    Rule,
)
from bot.sequential import Run
from bot.windows import Prefix, by_phase, from_phase, gathered_windows, window_known, window_sums

RECOVER_FRACTION = 0.5  # an alert resolves once |z| stays under half its threshold
RATE_SPANS = (1, 2, 4)  # a failure rate is judged over 1, 2 and 4 buckets
# A spend or volume rule watching a rise is also judged over this window when its bucket
# is longer: a runaway then shows within minutes, not when an hour's bucket fills.
SHORT_WINDOW = 900
# The evidence test reads the newest RECENT_SLOTS slots in steps of RECENT_STEP seconds: its
# run may then start at the onset, not at the slot's start among its earlier, normal jobs.
RECENT_STEP = 5
RECENT_SLOTS = 2
# The creep test (`sequential.creep`) reads the last CREEP_SPAN seconds of whole buckets.
CREEP_SPAN = 3 * 86400
STEP = 300  # seconds between evaluations; also the slot size. Buckets are multiples of it.
EPOCH = date(1970, 1, 1)  # day numbers count from it

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
AlertKey = tuple[str, tuple[str, ...]]
Scores = tuple[FloatArray, FloatArray, FloatArray, FloatArray]  # value, baseline, z, volume
Flags = tuple[BoolArray, BoolArray, BoolArray]  # breach, judged, calm
Groups = list[tuple[str, ...]]
# groups, per span (value, baseline, z, volume, band), a failure rate's evidence and its
# run's rate, a spend rule's runs (the evidence test's, the creep test's)
Judged = tuple[Groups, list[Banded], FloatArray | None, FloatArray | None, tuple[Run, ...]]


def slots_per_bucket(rule: Rule) -> int:
    return max(1, int(rule.bucket) // STEP)


def spans_of(rule: Rule) -> tuple[int, ...]:
    """The windows (seconds) an events rule is judged over, its own bucket first."""
    if rule.metric == "failure_rate":
        return tuple(int(rule.bucket) * n for n in RATE_SPANS)
    if rule.direction == "up" and rule.bucket > SHORT_WINDOW:
        return (int(rule.bucket), SHORT_WINDOW)
    return (int(rule.bucket),)


def reach_buckets(rule: Rule) -> int:
    """Buckets before a moment that its baseline reads. Each window of the history was
    itself judged against as much again (robust scale, rate spread): two histories back
    make every evaluation independent of where the held data happen to start. An
    `hour_of_day` rule also reads WEEKS weeks back for the same hour of the week."""
    history = buckets_of_history(rule)
    reach = 2 * history + 1
    if rule.seasonal == "hour_of_day":
        reach = max(reach, WEEKS * int(7 * DAY // rule.bucket) + history + 1)
    return reach + _creep_buckets(rule)  # the creep test's buckets, each judged in full


class Engine:
    """Holds the usage counts and judges rules over them."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self.cube = UsageCube(STEP)
        self.daily: dict[tuple[date, str], DailyUsage] = {}
        self.final_before: date | None = None  # daily rows before this day are complete
        self.gaps: list[Gap] = []  # spans where events may be lost (store.gaps())
        # The usage per rule group (by the GROUP_FIELDS a rule picks), kept up to date as
        # events arrive: judging reads a slice instead of summing fine groups each time.
        self.projections: dict[tuple[int, ...], UsageCube] = {}
        # Per rule, the baselines of the coming moment: a worker polling every second
        # judges the same moment a few hundred times, and only its newest slot changes.
        self.frozen: dict[str, Frozen] = {}
        # The newest slots again, counted every RECENT_STEP seconds (for the evidence test).
        self.recent = UsageCube(RECENT_STEP)
        self.newest = 0  # the newest slot any event has been in
        self.newest_second = 0  # the newest event's second: how far the data reach
        # Per rule: (layout, fine rows, their sum into the rule's groups) (`_recent_counts`).
        self._recent_owners: dict[str, tuple[tuple[int, int], list[int], FloatArray]] = {}
        # Per model, the slot of its first event held: a model that starts after events
        # were held is a launch, which a total's baseline has never seen (`_launched`).
        self.model_first: dict[str, int] = {}
        self._final: dict[tuple[date, str], DailyUsage] | None = None
        self._final_days: list[date] | None = None  # the days `_final` holds, in order
        self._models: list[tuple[str, ...]] | None = None
        # Per model, what the summary says of a run of days (`_day_run`), and the final
        # days' completed jobs (and credits) it is read from.
        self._day_runs: dict[str, tuple[int, FloatArray]] = {}
        self._completed: dict[str, tuple[dict[date, float], dict[date, tuple[float, float]]]] = {}

    # -- data in ------------------------------------------------------------------------

    def add_events(self, batch: EventBatch) -> None:
        if len(batch) and self.frozen:
            oldest = int(batch.epoch.min()) // STEP
            # Frozen for moment k: slots up to k - 2 (k - 1 is the one still filling).
            self.frozen = {r: f for r, f in self.frozen.items() if oldest > f.moment - 2}
        self.cube.add(batch)
        self._add_recent(batch)
        for fine in set(batch.group):
            if fine[0] != NONE:  # an API call without a model is no model's launch
                seen = self.cube.first_slot(fine)
                self.model_first[fine[0]] = min(self.model_first.get(fine[0], seen), seen)
        for picks, cube in self.projections.items():
            cube.add(_projected_batch(batch, picks))

    def _add_recent(self, batch: EventBatch) -> None:
        """Keep the newest RECENT_SLOTS slots (and the one filling) in RECENT_STEP steps."""
        if not len(batch):
            return
        self.newest_second = max(self.newest_second, int(batch.epoch.max()))
        self.newest = self.newest_second // STEP
        horizon = (self.newest - RECENT_SLOTS) * STEP
        # Forget first: a batch that jumps ahead (a backtest's) then grows the steps from
        # the new horizon, not from the old one across the hours between.
        self.recent.forget_before(horizon // RECENT_STEP)
        keep = np.flatnonzero(batch.epoch >= horizon)
        if len(keep):
            self.recent.add(
                EventBatch(
                    batch.epoch[keep],
                    [batch.group[i] for i in keep.tolist()],
                    batch.kind[keep],
                    batch.credits[keep],
                )
            )
        # Room for the slot filling and the next only.
        self.recent.trim((self.newest + 2) * STEP // RECENT_STEP)

    def _recent_counts(self, rule: Rule, groups: Groups, lo: int, hi: int) -> FloatArray:
        """(fields, groups, hi - lo) counts of the rule's groups in recent steps [lo, hi)."""
        # Which fine groups sum into which rule group, as a 0/1 matrix: groups only ever
        # join (both lists keep their order), so their lengths name the layout.
        layout = (len(self.recent.groups), len(groups))
        found = self._recent_owners.get(rule.name)
        if found is None or found[0] != layout:
            picks = tuple(GROUP_FIELDS.index(f) for f in rule.group_by)
            index = {g: i for i, g in enumerate(groups)}
            owner = [index.get(tuple(g[i] for i in picks), -1) for g in self.recent.groups]
            rows = [r for r, o in enumerate(owner) if o >= 0]
            sums = np.zeros((len(groups), len(rows)))
            sums[[owner[r] for r in rows], np.arange(len(rows))] = 1.0
            found = self._recent_owners[rule.name] = (layout, rows, sums)
        _, rows, sums = found
        if not rows:
            return np.zeros((len(FIELDS), len(groups), hi - lo))
        summed: FloatArray = np.matmul(sums, self.recent.counts(lo, hi, rows))
        return summed

    def add_daily(self, rows: Iterable[DailyUsage], final_before: date) -> None:
        """Daily summary rows; those dated before `final_before` are complete days."""
        # Read again from `daily` when next needed.
        self._final = self._final_days = self._models = None
        final = final_before if self.final_before is None else max(final_before, self.final_before)
        final_changed = final != self.final_before
        self.final_before = final
        for row in rows:
            key = (row.date, row.model)
            if row.date < final and self.daily.get(key) != row:
                final_changed = True
            self.daily[key] = row
        if final_changed:
            # Complete days stand in for events in failure rates, and say what each day
            # of spend is like (`_days`); the worker passes the same rows every cycle.
            self.frozen.clear()
            self._day_runs.clear()
            self._completed.clear()

    def add_gaps(self, gaps: Iterable[Gap]) -> None:
        """Known events gaps: a window overlapping one is never judged as a drop."""
        for gap in gaps:
            if gap not in self.gaps:
                self.gaps.append(gap)

    def history_seconds(self) -> int:
        """How much event history the rules look back, at most (what to load and keep).
        Summary rules judge the daily figures, not events, so they do not count here."""
        spans = [(reach_buckets(r) + 1) * r.bucket for r in self.rules if r.source != "summary"]
        return int(max(spans, default=7 * DAY))

    def series(
        self, rule: Rule, group: tuple[str, ...], until: datetime, buckets: int = 24
    ) -> tuple[tuple[datetime, float, float, bool], ...]:
        """The last `buckets` buckets of evaluations of one group, oldest first."""
        since = until - timedelta(seconds=rule.bucket * buckets)
        return tuple(
            (e.at, e.value, e.baseline, e.breach)
            for e in self.evaluate(rule, since, until)
            if e.group == group
        )

    def forget_before(self, moment: datetime) -> None:
        # What is forgotten lies beyond every rule's reach: frozen baselines stand.
        slot = int(moment.timestamp()) // STEP
        self.cube.forget_before(slot)
        for cube in self.projections.values():
            cube.forget_before(slot)

    def _projection(self, picks: tuple[int, ...]) -> UsageCube:
        """The usage per group of the fields `picks`, built from the fine cube once and
        then kept up to date by `add_events`."""
        cube = self.projections.get(picks)
        if cube is None:
            cube = self.projections[picks] = _project(self.cube, picks)
        return cube

    # -- judging ------------------------------------------------------------------------

    def evaluate(self, rule: Rule, since: datetime, until: datetime) -> list[Evaluation]:
        """Every evaluation of `rule` at moments in (since, until], oldest first."""
        if rule.source == "summary":
            return self._evaluate_daily(rule, since, until)
        evaluations = self._evaluate_events(rule, since, until)
        if self.gaps and rule.direction != "up":
            evaluations = [self._over_gap(rule, ev) for ev in evaluations]
        return evaluations

    def _over_gap(self, rule: Rule, ev: Evaluation) -> Evaluation:
        """A window that overlaps a known gap lacks the events the gap lost: it is not
        judged downward (a drop there may be ours, not the service's). Unjudged changes
        nothing in the state machine. An upward breach (direction both) still counts."""
        start = ev.at - timedelta(seconds=ev.window or rule.bucket)
        if not overlaps(self.gaps, start, ev.at):
            return ev
        if rule.direction == "both" and ev.zscore > 0:
            return ev
        return replace(ev, breach=False, judged=False, calm=False)

    def _evaluate_events(self, rule: Rule, since: datetime, until: datetime) -> list[Evaluation]:
        first = int(since.timestamp()) // STEP + 1  # moments k * STEP with since < k*STEP
        last = int(until.timestamp()) // STEP
        if last < first:
            return []
        changes = sorted({c for c in self._launches(rule).values() if first < c <= last})
        if changes:  # a launched model joins the totals: judge each stretch on its own
            ends = [c - 1 for c in changes] + [last]
            starts = [first, *changes]
            return [
                ev
                for a, b in zip(starts, ends, strict=True)
                for ev in self._evaluate_events(
                    rule,
                    datetime.fromtimestamp((a - 1) * STEP, UTC),
                    datetime.fromtimestamp(b * STEP, UTC),
                )
            ]
        judged = (
            self._judge_moment(rule, last) if first == last else self._judge_all(rule, first, last)
        )
        if judged is None:
            return []
        groups, spans, evidence, run_rate, runs = judged
        if len(spans) == 1:
            value, baseline, z, volume, _ = spans[0]
            scores = (value, baseline, z, volume)
            flags = _gate(rule, *scores)
            windows = np.full(value.shape, rule.bucket)
            return _evaluations(rule, groups, first, scores, flags, windows)
        # A failure rate is also judged over 2 and 4 buckets (at quiet hours one bucket may
        # hold too few jobs to judge, and a modest rise needs more than one bucket of
        # evidence), a rise in spend or volume over SHORT_WINDOW too (a runaway shows
        # in minutes). Any breaching span pages; the figures told are the strongest's.
        per_span = [(s[:4], _gate(rule, *s[:4])) for s in spans]
        scores, flags, windows = _combine(per_span, rule)
        if runs:  # a spend rule: the window's figures, else the proving run's
            for run in runs:
                scores, flags, windows = _with_run(rule, scores, flags, windows, run)
            strongest = np.fmax.reduce([run[0] for run in runs], initial=0.0)  # NaN: 0
            return _evaluations(rule, groups, first, scores, flags, windows, strongest)
        if evidence is None or run_rate is None:  # the evidence test proves rises only
            return _evaluations(rule, groups, first, scores, flags, windows)
        flags = _with_evidence(rule, flags, evidence, run_rate)
        # A rise proven where no span's window could be judged (hours not held whole):
        # tell the proving run's rate against the normal rate it was proven over.
        value, baseline, z, volume = scores
        blind = flags[0] & ~np.isfinite(value)
        if blind.any():
            value = np.where(blind, run_rate, value)
            baseline = np.where(blind & ~np.isfinite(baseline), spans[0][4], baseline)
            volume = np.where(blind, detect.nan_as_zero(volume), volume)
            z = np.where(blind & ~np.isfinite(z), 0.0, z)  # no window to score: the evidence speaks
            scores = (value, baseline, z, volume)
        return _evaluations(rule, groups, first, scores, flags, windows, evidence)

    def _judge_all(self, rule: Rule, first: int, last: int) -> Judged | None:
        """Every span of `rule` judged at moments first..last, each (groups, moments),
        and for a failure rate watching a rise the evidence test too."""
        spans = spans_of(rule)
        if len(spans) == 1:
            judged = self._judge(rule, first, last)
            return None if judged is None else (judged[0], [judged[1]], None, None, ())
        # The creep test reads the buckets of CREEP_SPAN before each moment too.
        back = _creep_buckets(rule) * slots_per_bucket(rule)
        # The span reaching furthest back sets what to read: project the usage onto the
        # rule's groups once, and let each span (and the evidence test) take its part.
        lo = min(self._reach(_span(rule, s), first - back) for s in spans)
        held = (lo, *self._rule_counts(rule, lo, last))
        if not held[1]:
            return None
        own = self._judge(rule, first - back, last, held)
        assert own is not None  # held has groups
        value, baseline, z, volume, band = own[1]  # from moment first - back on
        # A spend rule's evidence run reads the normal credits of each slot of a bucket
        # before each moment: its short span is judged from a bucket before `first`.
        early = slots_per_bucket(rule) - 1 if rule.metric == "spend" and back else 0
        banded: list[Banded] = [
            (value[:, back:], baseline[:, back:], z[:, back:], volume[:, back:], band[:, back:])
        ]
        for s in spans[1:]:
            judged = self._judge(_span(rule, s), first - early, last, held)
            assert judged is not None  # held has groups
            banded.append(judged[1])
        levels = banded[-1][1]  # SHORT_WINDOW's baseline: spend's normal credits per moment
        if early:
            banded[1:] = [
                (a[:, early:], b[:, early:], c[:, early:], d[:, early:], e[:, early:])
                for a, b, c, d, e in banded[1:]
            ]
        if rule.metric == "spend" and back:
            m = slots_per_bucket(rule)
            # Column j of `own` is moment first - back + j; each moment's creep run reads
            # the whole buckets before it: moments k - back, ..., k - m.
            before = np.arange(back, back + last - first + 1)[:, None] - m * np.arange(
                back // m, 0, -1
            )
            charges = Prefix(held[2], held[3], (CHARGED,))
            ends = np.arange(first - back, last + 1)
            creeps = self._creeps(rule, held, charges, ends, before, (z, value, baseline))
            burst = self._burst_all(rule, first, last, held, levels)
            return held[1], banded, None, None, (burst, *creeps)
        if rule.metric != "failure_rate" or rule.direction != "up":
            return held[1], banded, None, None, ()
        evidence, run_rate = self._evidence(rule, first, last, banded[0][4], held)
        return held[1], banded, evidence, run_rate, ()

    def _judge_moment(self, rule: Rule, k: int) -> Judged | None:
        """`_judge_all` for the one moment k, from the baselines frozen for it: only the
        windows ending at k are summed and scored at each poll."""
        spans = spans_of(rule)
        reach = max(spans) // STEP  # the widest window, which the evidence's run matches
        groups, counts, known = self._rule_counts(rule, k - reach, k)
        if not groups:
            return None
        frozen = self.frozen.get(rule.name)
        if frozen is None or frozen.moment != k or frozen.groups != groups:
            frozen = self.frozen[rule.name] = self._freeze(rule, k, spans)
        banded = []
        for seconds, baseline in zip(spans, frozen.baselines, strict=True):
            w = seconds // STEP
            window = counts[..., -w:].sum(axis=-1, keepdims=True)
            window[:, ~known[:, -w:].all(axis=-1)] = np.nan
            banded.append(baselines.against(rule, window, baseline))
        if frozen.charged is not None:  # a spend rule: its evidence test and creep test
            lam, normal, h = frozen.charged
            burst = self._burst_moment(counts, known, k, lam, h, normal)
            return groups, banded, None, None, (burst, *frozen.creeps)
        if frozen.threshold is None:
            return groups, banded, None, None, ()
        steps = self._stepped(rule, groups, counts, known, k)
        evidence, run_rate = detect.bernoulli_evidence(
            steps[FAILED][:, None, :],
            steps[FINISHED][:, None, :],
            banded[0][4],
            frozen.threshold,
            floor=rule.min_rate,
        )
        # Runs from any 5-second step prove a rise sooner; whether it has passed (calm
        # needs the evidence under half its threshold) is judged on whole slots, as at the
        # marks: a short run of two chance failures is no reason to hold an alert open.
        steady, steady_rate = detect.bernoulli_evidence(
            np.where(known, counts[FAILED], 0.0)[:, None, :],
            np.where(known, counts[FINISHED], 0.0)[:, None, :],
            banded[0][4],
            frozen.threshold,
            floor=rule.min_rate,
        )
        proven = evidence >= 1.0  # NaN compares False
        evidence = np.where(proven, evidence, steady)
        run_rate = np.where(proven, run_rate, steady_rate)
        return groups, banded, evidence, run_rate, ()

    def _stepped(
        self, rule: Rule, groups: Groups, counts: FloatArray, known: BoolArray, k: int
    ) -> FloatArray:
        """The counts before moment k as the failure rate's evidence test reads them:
        older slots whole, the newest RECENT_SLOTS in RECENT_STEP steps where the recent
        counts still hold them (a run may then start at the onset, not at its slot's
        start); zero where not known. (fields, groups, steps)."""
        per_slot = STEP // RECENT_STEP if k >= self.newest else 1
        if per_slot > 1:
            fine = self._recent_counts(rule, groups, (k - RECENT_SLOTS) * per_slot, k * per_slot)
        else:
            fine = counts[..., -RECENT_SLOTS:]
        fine_known = np.repeat(known[:, -RECENT_SLOTS:], per_slot, axis=1)
        steps_known = np.concatenate([known[:, :-RECENT_SLOTS], fine_known], axis=1)
        steps: FloatArray = np.where(
            steps_known, np.concatenate([counts[..., :-RECENT_SLOTS], fine], axis=-1), 0.0
        )
        return steps

    def _burst_moment(
        self,
        counts: FloatArray,
        known: BoolArray,
        k: int,
        lam: FloatArray,
        h: FloatArray,
        normal: FloatArray,
    ) -> Run:
        """A spend rule's evidence test at moment k, from the rule's `counts` of the slots
        of one bucket before it, `lam` the normal charged events and `normal` the normal
        credits of each of those slots, (groups, slots) each (`Frozen.charged`). Whole
        slots: charges trail their jobs by minutes, so a run starting within its slot
        (as the failure rate's may, in 5-second steps) would gain seconds at a cost
        every poll pays."""
        whole = np.arange(k - counts.shape[-1], k) * STEP
        seen = self._seen(whole, np.ones(len(whole)))
        slots = np.where(known, counts, 0.0)
        burst = sequential.burst(slots, known, lam, normal, h[:, 0], seen, STEP)
        a, b, c, d, e = (x[:, None] for x in burst)
        return a, b, c, d, e

    def _seen(self, starts: npt.ArrayLike, width: FloatArray) -> FloatArray:
        """The share of each step (first second, width in slots) that the events held
        reach: a step after the newest event has been seen by no one, so nothing is due
        in it yet (an empty future is no evidence against a runaway)."""
        seconds = width * STEP
        ahead = (self.newest_second + 1 - np.asarray(starts, dtype=np.float64)) / seconds
        return np.clip(ahead, 0.0, 1.0)

    def _freeze(self, rule: Rule, k: int, spans: tuple[int, ...]) -> Frozen:
        """What judging moment k needs that its own newest slot (k - 1, filling while
        the worker polls) cannot change: each span's baseline and the evidence test's
        threshold. `add_events` drops it when events land in an older slot."""
        charges = _creep_buckets(rule) > 0  # a spend rule watching a rise: both sequential tests
        lo = min(self._reach(_span(rule, s), k) for s in spans)
        if charges:  # the evidence test's run reads each slot's own normal (`_normals_before`)
            older = k - slots_per_bucket(rule) + 1
            lo = min(lo, *(self._reach(r, older) for r in _normals_rules(rule)))
        # Slots before any is known for the rule change no window, only the work: a
        # young account's hour-of-week baselines reach weeks before its first event.
        if (known := self._known_from(rule)) is not None:
            lo = min(max(lo, known), k - 1)
        held = (lo, *self._rule_counts(rule, lo, k))
        frozen = []
        prefix = Prefix(held[2], held[3], _fields(rule) + ((CHARGED,) if charges else ()))
        creeps: tuple[Run, ...] = ()
        charged: tuple[FloatArray, FloatArray, FloatArray] | None = None
        for seconds in spans:
            span = _span(rule, seconds)
            rows = self._windows_before(span, k, lo, prefix)
            starts = k - slots_per_bucket(span) * np.arange(rows.shape[-1], 0, -1)
            days = self._days(span, held[1], starts)
            center, spread = baselines.baseline(span, rows, buckets_of_history(span), days)
            frozen.append((center[:, -1:], spread[:, -1:]))
            if charges and seconds == SHORT_WINDOW:  # the windows the evidence test's are
                lams, levels = self._normals_before(rule, k, held)
                # The newest slot's: the band top of its charges, its credits' level.
                level = np.square(center[:, -1:]) / slots_per_bucket(span)
                charged = (
                    np.concatenate([lams, self._charged_band(rule, rows, days)], axis=1),
                    np.concatenate([levels, level], axis=1),
                    self._threshold(rule, k, k, held, CHARGED),
                )
            if span is rule and rule.metric == "spend" and (n := _creep_buckets(rule)):
                # The creep run ends with the last whole bucket, which no poll changes.
                value, baseline, z = baselines.against(rule, rows, (center, spread))[:3]
                past = slice(-1 - n, -1)
                ends = k - slots_per_bucket(rule) * np.arange(n, 0, -1)
                scored = (z[:, past], value[:, past], baseline[:, past])
                creeps = self._creeps(rule, held, prefix, ends, np.arange(n)[None, :], scored)
        threshold = None
        if rule.metric == "failure_rate" and rule.direction == "up":
            threshold = self._threshold(rule, k, k, held)
        return Frozen(k, held[1], tuple(frozen), threshold, creeps, charged)

    def _creeps(
        self,
        rule: Rule,
        held: Held,
        prefix: Prefix,
        ends: npt.NDArray[np.int64],
        runs: npt.NDArray[np.int64],
        scored: tuple[FloatArray, FloatArray, FloatArray],
    ) -> tuple[Run, ...]:
        """A spend rule's creep tests, (groups, moments) each: one on the credits' z-scores,
        one on the charged jobs against their busy days (`sequential.counted_scores`).
        `ends` are the slots whole buckets end at, `scored` their (z, value, baseline),
        each (groups, len(ends)); `runs` (moments, buckets) picks each moment's run of
        them. `prefix` holds the charged jobs of `held`."""
        days = ends[:, None] - DAY // STEP * np.arange(sequential.CREEP_DAYS + 1)
        jobs = prefix.windows(days - held[0], slots_per_bucket(rule))[CHARGED]
        rise, wander = sequential.busy_days(jobs)  # each bucket once, however many runs
        counted = sequential.counted_scores(rise[:, runs], wander[:, runs], _per_day(rule))
        z, value, baseline = (a[:, runs] for a in scored)
        settled = _settled(rule, held, ends[runs])
        return tuple(
            sequential.creep(rule.bucket, score, value, baseline, settled) for score in (z, counted)
        )

    def _charged_band(
        self, rule: Rule, rows: FloatArray, days: baselines.Days | None
    ) -> FloatArray:
        """`_normal_charges` of one moment k, (groups, 1), from `rows`, the SHORT_WINDOW
        windows before k (`_windows_before`), and their `days`: what the freeze has read."""
        short = _charged_rule(rule)
        history = buckets_of_history(short)
        # The newest window's mean and spread read two histories back (`reach_buckets`),
        # not the weeks the credits' hour-of-week baseline reads.
        reach = 2 * history + 1
        tail = rows[..., -reach:]
        if days is not None:
            days = days.apply(lambda a: a[..., -reach:])
        center, spread = baselines.baseline(short, tail, history, days)
        top = baselines.against(short, tail[..., -1:], (center[:, -1:], spread[:, -1:]))[4]
        band: FloatArray = top / slots_per_bucket(short)
        return band

    def _normals_before(self, rule: Rule, k: int, held: Held) -> tuple[FloatArray, FloatArray]:
        """`_normal_charges` and `_normal_credits` of moments k - bucket + 1 ... k - 1,
        (groups, slots - 1) each: from the baselines frozen for k - 1 when they hold them
        (a poll a slot or more often), else read again. Each depends on slots long
        complete, which an event landing there would have unfrozen."""
        last = self.frozen.get(rule.name)
        if (
            last is not None
            and last.moment == k - 1
            and last.groups == held[1]
            and last.charged is not None
        ):
            return last.charged[0][:, 1:], last.charged[1][:, 1:]
        first = k - slots_per_bucket(rule) + 1
        # `held` runs to k: the newest moment's is the freeze's own read
        return (
            self._normal_charges(rule, first, k, held)[:, :-1],
            self._normal_credits(rule, first, k, held)[:, :-1],
        )

    def _normal_charges(self, rule: Rule, first: int, last: int, held: Held) -> FloatArray:
        """A spend rule's normal charged events per slot for the evidence test at moments
        first..last, (groups, moments): the top of their band for the 15 minutes before
        each moment, in the rule's seasons. Slot j's normal is moment j + 1's, so a run
        across the end of a busy hour weighs each slot against its own hour."""
        short = _charged_rule(rule)
        judged = self._judge(short, first, last, held)
        assert judged is not None  # held has groups
        top: FloatArray = judged[1][4] / slots_per_bucket(short)
        return top

    def _normal_credits(self, rule: Rule, first: int, last: int, held: Held) -> FloatArray:
        """A spend rule's normal credits per slot at moments first..last, (groups, moments):
        its SHORT_WINDOW baseline's level, slot j's from moment j + 1 as its charges'. The
        run's normal credits (the alert's "expected", the `min_credits` gate) sum them."""
        short = _span(rule, SHORT_WINDOW)
        judged = self._judge(short, first, last, held)
        assert judged is not None  # held has groups
        level: FloatArray = judged[1][1] / slots_per_bucket(short)
        return level

    def _burst_all(self, rule: Rule, first: int, last: int, held: Held, level: FloatArray) -> Run:
        """A spend rule's evidence test at moments first..last over whole slots, (groups,
        moments) each: the Poisson CUSUM of its charged jobs over the slots of one bucket
        before each moment, against the top of their normal band for the same 15
        minutes (`_freeze` holds the same for one moment); `level` the normal credits
        per SHORT_WINDOW at moments first - bucket + 1 ... last."""
        memory = slots_per_bucket(rule)
        # Each moment's run reads its slots' own normals: moments k - memory + 1 ... k.
        lam = self._normal_charges(rule, first - memory + 1, last, held)
        lam = sliding_window_view(lam, memory, axis=-1)
        normal = sliding_window_view(level / (SHORT_WINDOW // STEP), memory, axis=-1)
        h = self._threshold(rule, first, last, held, CHARGED)
        _, counts, known = _part(held, first - memory)
        stop = last - first + 1  # windows [k - memory, k)
        runs_known = sliding_window_view(known, memory, axis=-1)[:, :stop]
        runs = np.where(runs_known, sliding_window_view(counts, memory, axis=-1)[:, :, :stop], 0.0)
        starts = (first + np.arange(stop)[:, None] - memory + np.arange(memory)) * STEP
        seen = self._seen(starts, np.ones(memory))
        return sequential.burst(runs, runs_known, lam, normal, h, seen, STEP)

    def _evidence(
        self, rule: Rule, first: int, last: int, p0: FloatArray, held: Held
    ) -> tuple[FloatArray, FloatArray]:
        """The evidence test of a failure-rate rule at moments first..last: (groups,
        moments), each the Bernoulli CUSUM over the slots of the longest span before the
        moment, divided by the threshold the rule's `false_alerts` budget sets
        (`detect.bernoulli_evidence`): 1 or more proves a rise; and the failure rate of
        the run of newest slots that proves it. `p0` is the top of the
        baseline's normal band, not its middle: the test assumes jobs fail independently,
        and real rates wander more than that (a hot afternoon is not an incident)."""
        memory = slots_per_bucket(rule) * RATE_SPANS[-1]
        groups, counts, known = _part(held, first - memory)
        failed = np.where(known, counts[FAILED], 0.0)
        done = np.where(known, counts[FINISHED], 0.0)
        stop = last - first + 1  # windows [k - memory, k)
        runs_f = sliding_window_view(failed, memory, axis=-1)[:, :stop]
        runs_n = sliding_window_view(done, memory, axis=-1)[:, :stop]
        h = self._threshold(rule, first, last, held)
        return detect.bernoulli_evidence(runs_f, runs_n, p0, h, floor=rule.min_rate)

    def _threshold(
        self, rule: Rule, first: int, last: int, held: Held, field: int = FINISHED
    ) -> FloatArray:
        """The evidence threshold at moments first..last, (groups, moments): the budget
        spread over the group's trailing pace of finished jobs (or the `field` counted),
        read up to the slot before the moment's newest (still filling while the worker
        polls)."""
        memory = slots_per_bucket(rule) * RATE_SPANS[-1]
        history = max(slots_per_bucket(rule) * buckets_of_history(rule), memory)
        lo = first - 1 - history
        groups, counts, known = _part(held, lo)
        pace = detect.jobs_per_30_days(np.where(known, counts[field], np.nan), history, STEP)
        pace = pace[:, np.arange(first, last + 1) - 2 - lo]
        if field == CHARGED:
            # Spend's test counts whole slots, so its chances to cross are slots where a
            # slot holds more than one charge (the note counts spend's N0 in slots too).
            # Simulated with five polls a slot, it crosses at least 7 times less often
            # than this h allows at 1 to 500 charges a slot (bench/bench_threshold.py).
            pace = np.minimum(pace, detect.SECONDS_PER_30_DAYS / STEP)
        return detect.evidence_threshold(pace, len(groups), rule.false_alerts)

    def _reach(self, rule: Rule, first: int) -> int:
        """The first slot `_judge` reads for moments from `first` on. The earliest
        window's baseline spans the rule's history, and each of those windows was itself
        judged against as much again (robust scale, rate spread): two spans back make
        every evaluation independent of where the array happens to start."""
        return first - slots_per_bucket(rule) * reach_buckets(rule)

    def _judge(
        self, rule: Rule, first: int, last: int, held: Held | None = None
    ) -> tuple[Groups, Banded] | None:
        """(groups, (value, baseline, z, volume, band)), each (groups, moments first..last);
        `held`: the rule's counts from a slot at or before `_reach` through `last`."""
        m = slots_per_bucket(rule)
        history = buckets_of_history(rule)
        lo = self._reach(rule, first)
        if held is None:
            groups, counts, known = self._rule_counts(rule, lo, last)
        else:
            groups, counts, known = _part(held, lo)
        if not groups:
            return None
        fields = counts.shape[0]
        moments = last - first + 1
        if moments < m:
            # A few moments (a live cycle judges one): build only those moments' phase
            # rows, each the windows ending at k, k - bucket, k - 2 bucket, ... (oldest first).
            back = np.arange(reach_buckets(rule) - 1, -1, -1)
            ends = np.arange(first, last + 1)[:, None] - m * back
            rows = gathered_windows(counts, known, ends - lo, m)  # (fields, G, K, 2H + 1)
            flat = rows.reshape(fields, -1, rows.shape[-1])
            days = self._days(rule, groups, ends - m)
            if days is not None:
                days = days.apply(lambda a: a.reshape(flat.shape[1:]))
            center, spread = baselines.baseline(rule, flat, history, days)
            scores = baselines.against(rule, flat[..., -1:], (center[:, -1:], spread[:, -1:]))
            value, baseline, z, volume, band = (
                np.broadcast_to(a, (a.shape[0], 1)).reshape(len(groups), moments) for a in scores
            )
        else:
            windows = window_sums(counts, m)  # window ending at moment lo + m + j
            np.copyto(windows, np.nan, where=~window_known(known, m))
            length = windows.shape[-1]
            phased = np.stack([by_phase(windows[f], m) for f in range(fields)])
            offset = first - (lo + m)
            days = self._days(rule, groups, lo + np.arange(length))
            if days is not None:
                days = days.apply(lambda a: by_phase(a, m))
            baseline_ = baselines.baseline(rule, phased, history, days)
            value, baseline, z, volume, band = (
                from_phase(a, m, length)[:, offset:]
                for a in baselines.against(rule, phased, baseline_)
            )
        return groups, (value, baseline, z, volume, band)

    def _rule_counts(self, rule: Rule, lo: int, hi: int) -> tuple[Groups, FloatArray, BoolArray]:
        """(groups, counts (fields, groups, hi - lo), known (groups, hi - lo)) for one rule.

        A slot is known for a group once events are held and the group has been seen:
        before its first event a new model or customer has no history, not a zero one.
        A spend or volume total leaves out the models launched less than a baseline
        before `hi` (`_launched`).
        """
        picks = tuple(GROUP_FIELDS.index(f) for f in rule.group_by)
        cube = self._projection(picks)
        keys: list[tuple[str, ...]] = list(cube.groups)
        # An event without a model is an API call, not a job: no model group to judge.
        by_model = GROUP_FIELDS.index("model") in picks
        model_at = picks.index(0) if by_model else -1
        by_summary = _filled_by_summary(rule)
        summary_keys = self._summary_keys(rule) if by_summary else []
        groups = sorted({k for k in keys if not by_model or k[model_at]} | set(summary_keys))
        index = {g: i for i, g in enumerate(groups)}
        rows = [r for r, key in enumerate(keys) if key in index]
        targets = [index[keys[r]] for r in rows]
        first_seen = np.full(len(groups), np.iinfo(np.int64).max)
        if len(rows) == len(groups):  # every rule group has events: read them in order
            order = sorted(range(len(rows)), key=targets.__getitem__)
            rows, targets = [rows[i] for i in order], list(range(len(groups)))
            counts = cube.counts(lo, hi, rows)
        else:  # some groups are known from the daily summary only
            counts = np.zeros((len(FIELDS), len(groups), hi - lo))
            counts[:, targets] = cube.counts(lo, hi, rows)
        first_seen[targets] = cube.first_seen[rows]
        if launched := self._launched(rule, hi):
            counts -= self._counts_of_models(launched, picks, index, lo, hi)
        covered_from = cube.covered_from
        slots = np.arange(lo, hi)
        known = np.zeros((len(groups), hi - lo), dtype=bool)
        if covered_from is not None:
            known = slots[None, :] >= np.maximum(first_seen, covered_from)[:, None]
        if by_summary:
            # Before events were held, spread the daily summary over the slots.
            cut = hi - lo if covered_from is None else max(0, min(hi, covered_from) - lo)
            final = self._final_daily() if cut else {}
            for key in summary_keys if cut else ():
                model = key[0] if key else TOTAL
                filled, day_known = daily_slot_counts(final, model, lo, lo + cut, STEP)
                counts[:, index[key], :cut] += filled
                known[index[key], :cut] |= day_known
        return groups, counts, known

    def _known_from(self, rule: Rule) -> int | None:
        """A slot before which `_rule_counts` knows no slot of any group of `rule` (None:
        any slot may be known, from the daily summary)."""
        return None if _filled_by_summary(rule) else self.cube.covered_from

    def _launches(self, rule: Rule) -> dict[str, int]:
        """Per model a spend or volume total (a rule not grouped by model) leaves out, the
        moment it joins the total: a model whose first event came after events were held
        joins a baseline later. Until then the total's baseline has never seen it, so its
        arrival would look like a runaway or a creep of the total. (Each model's own rules
        judge it meanwhile, once it has a history.)"""
        since = self.cube.covered_from
        if rule.metric == "failure_rate" or "model" in rule.group_by or since is None:
            return {}
        baseline = int(rule.baseline) // STEP
        return {m: f + baseline for m, f in self.model_first.items() if f > since}

    def _launched(self, rule: Rule, k: int) -> set[str]:
        """The models `rule`'s totals leave out at moment k (`_launches`)."""
        return {m for m, joins in self._launches(rule).items() if joins > k}

    def _counts_of_models(
        self,
        models: set[str],
        picks: tuple[int, ...],
        index: Mapping[tuple[str, ...], int],
        lo: int,
        hi: int,
    ) -> FloatArray:
        """(fields, groups of `index`, hi - lo): the counts of `models` per rule group,
        read from the usage per (rule group, model), which has a row per model in use."""
        by_model = self._projection((*picks, 0))
        owner: dict[int, list[int]] = {}
        for row, key in enumerate(by_model.groups):
            at = index.get(key[:-1]) if key[-1] in models else None
            if at is not None:
                owner.setdefault(at, []).append(row)
        out = np.zeros((len(FIELDS), len(index), hi - lo))
        for at, rows in owner.items():
            out[:, at] = by_model.counts(lo, hi, rows).sum(axis=1)
        return out

    def _summary_keys(self, rule: Rule) -> list[tuple[str, ...]]:
        if not rule.group_by:
            return [()]
        if self._models is None:
            self._models = sorted({(model,) for (_, model) in self.daily if model != TOTAL})
        return self._models

    def _days(
        self, rule: Rule, groups: Groups, starts: npt.NDArray[np.int64]
    ) -> baselines.Days | None:
        """What the daily summary says of the day of each window starting at a slot of
        `starts`, (groups, *starts.shape) (`baselines.Days`): of the group's model, or
        the account where the rule is not by model. For spend and its charged counts;
        None for other rules and where the summary holds no complete day."""
        if rule.metric not in ("spend", CHARGES) or not self._final_daily():
            return None
        at = rule.group_by.index("model") if "model" in rule.group_by else None
        numbers = starts * STEP // DAY
        lo, hi = int(numbers.min()), int(numbers.max())
        by_model = {
            m: self._day_run(m, lo, hi) for m in {TOTAL if at is None else g[at] for g in groups}
        }
        figures = np.stack([by_model[TOTAL if at is None else g[at]] for g in groups])
        picked = figures[:, numbers - lo]  # (groups, *starts.shape, 2)
        return baselines.Days(picked[..., 0], picked[..., 1])

    def _day_run(self, model: str, lo: int, hi: int) -> FloatArray:
        """`_day` of days lo..hi for `model`, (days, 2): read from a run of days kept per
        model, grown by the days asked for outside it (a freeze asks for the same weeks
        at every slot)."""
        base, run = self._day_runs.get(model, (lo, np.empty((0, 2))))
        top = base + len(run) - 1
        if lo < base or hi > top:
            before = [self._day(model, n) for n in range(lo, base)]
            after = [self._day(model, n) for n in range(top + 1, hi + 1)]
            run = np.concatenate([np.reshape(before, (-1, 2)), run, np.reshape(after, (-1, 2))])
            base = min(lo, base)
            self._day_runs[model] = (base, run)
        return run[lo - base : hi - base + 1]

    def _day(self, model: str, number: int) -> tuple[float, float]:
        """(level in its week, a completed job's credits) of day `number` (since the
        epoch) for `model`, from the final summary days (`baselines.weekday_level`,
        `baselines.job_cost`)."""
        if not self._completed:
            for (day, of), row in self._final_daily().items():
                jobs, rows = self._completed.setdefault(of, ({}, {}))
                jobs[day] = float(row.completed_jobs)
                rows[day] = (jobs[day], row.credits_used)
        jobs, rows = self._completed.get(model, ({}, {}))
        day = EPOCH + timedelta(days=number)
        return baselines.weekday_level(jobs, day), baselines.job_cost(rows, day)

    def _final_daily(self) -> Mapping[tuple[date, str], DailyUsage]:
        if self._final is None:
            final_before = self.final_before
            self._final = (
                {}
                if final_before is None
                else {k: v for k, v in self.daily.items() if k[0] < final_before}
            )
        return self._final

    def _windows_before(self, rule: Rule, k: int, held: int, prefix: Prefix) -> FloatArray:
        """(fields, groups, 2H + 1): the windows of one `bucket` ending at k - 2H bucket,
        ..., k - bucket, k, the history `baselines.baseline` judges moment k against; `prefix`
        holds the counts from slot `held` on."""
        m = slots_per_bucket(rule)
        ends = k - m * np.arange(reach_buckets(rule) - 1, -1, -1)
        return prefix.windows(ends - held, m)

    def _evaluate_daily(self, rule: Rule, since: datetime, until: datetime) -> list[Evaluation]:
        """Summary rules judge complete days; a day is judged at the midnight ending it."""
        final = self._final_daily()
        if not final or self.final_before is None:
            return []
        if self._final_days is None:  # every poll asks; the days change once a day
            self._final_days = sorted({d for (d, _) in final})
        days = self._final_days
        first_day, last_day = days[0], min(days[-1], self.final_before - timedelta(days=1))
        newest_moment = datetime.combine(last_day, datetime.min.time(), UTC) + timedelta(days=1)
        if newest_moment <= since:
            return []  # no complete day since the last evaluation: nothing to judge
        moments = [first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)]
        groups = self._summary_keys(rule)
        first_row: dict[tuple[str, ...], date] = {}
        for day, model in sorted(final):
            key: tuple[str, ...] = () if not rule.group_by else (model,)
            if (rule.group_by and model != TOTAL) or (not rule.group_by and model == TOTAL):
                first_row.setdefault(key, day)
        shape = (len(groups), len(moments))
        counts = np.full((4, *shape), np.nan)
        for j, day in enumerate(moments):
            if (day, TOTAL) not in final:
                continue  # a day the summary did not cover: unknown
            for i, key in enumerate(groups):
                if day < first_row.get(key, day):
                    continue  # before a model's first activity: no history, not a zero one
                row = final.get((day, key[0] if key else TOTAL))
                figures = (
                    (
                        row.total_jobs,
                        row.completed_jobs + row.failed_jobs,
                        row.failed_jobs,
                        row.credits_used,
                    )
                    if row
                    else (0, 0, 0, 0.0)
                )
                counts[:, i, j] = figures
        history = buckets_of_history(rule)
        scores = baselines.against(rule, counts, baselines.baseline(rule, counts, history))[:4]
        flags = _gate(rule, *scores)
        windows = np.full(scores[0].shape, float(DAY))
        out = []
        for day, cells in zip(moments, _cells(scores, flags, windows), strict=True):
            at = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
            if since < at <= until:
                out.extend(_column(rule, groups, at, cells))
        return out


Held = tuple[int, Groups, FloatArray, BoolArray]  # from slot, groups, counts, known


@dataclass(frozen=True)
class Frozen:
    """A rule's baselines for one coming moment (`Engine._freeze`)."""

    moment: int  # k: the moment k * STEP
    groups: Groups
    baselines: tuple[Baseline, ...]  # per span, each array (groups, 1)
    threshold: FloatArray | None  # a failure rate's evidence test's, (groups, 1); None: no test
    creeps: tuple[Run, ...]  # a spend rule's creep tests, (groups, 1) each; (): none
    # A spend rule's evidence test: the normal charged jobs (the top of their band) and
    # the normal credits of each slot of the bucket before the moment, (groups, slots)
    # each, and its threshold, (groups, 1); None: no test.
    charged: tuple[FloatArray, FloatArray, FloatArray] | None = None


def _per_day(rule: Rule) -> int:
    """A rule's buckets a day (at least 1)."""
    return max(1, DAY // int(rule.bucket))


def _creep_buckets(rule: Rule) -> int:
    """Whole buckets the creep test reads before a moment (0: the rule has none)."""
    if rule.metric != "spend" or len(spans_of(rule)) == 1:
        return 0
    return int(CREEP_SPAN // rule.bucket)


@lru_cache(maxsize=512)
def _charged_rule(rule: Rule) -> Rule:
    """A spend rule's charged events counted over SHORT_WINDOW, in the same seasons."""
    return replace(rule, metric=CHARGES, bucket=SHORT_WINDOW)


def _normals_rules(rule: Rule) -> tuple[Rule, Rule]:
    """What a spend rule's per-slot normals are read from: its charged events' band and
    its credits' level, each over SHORT_WINDOW."""
    return _charged_rule(rule), _span(rule, SHORT_WINDOW)


def _settled(rule: Rule, held: Held, ends: npt.NDArray[np.int64]) -> BoolArray:
    """(groups, *ends.shape): the group was held a whole baseline before each window
    ending at a slot of `ends`. A new model's or customer's spend rises while it starts,
    against a baseline of its first days: no creep to count there."""
    lo, _, _, known = held
    at = ends - int(rule.baseline) // STEP - lo
    settled: BoolArray = (at >= 0) & known[:, np.maximum(at, 0)]  # before those held: unknown
    return settled


def _with_run(
    rule: Rule, scores: Scores, flags: Flags, windows: FloatArray, run: Run
) -> tuple[Scores, Flags, FloatArray]:
    """A spend rule's flags with one sequential test added (the evidence test, the creep
    test): proven (evidence >= 1) with the run's excess at least `min_credits` is a
    breach, told with the run's figures where nothing before it breaches; calm also
    needs the evidence under RECOVER_FRACTION."""
    evidence, spent, normal, run_z, seconds = run
    breach, judged, calm = flags
    with np.errstate(invalid="ignore"):
        matters = spent - normal >= rule.min_credits
        creeping = (evidence >= 1.0) & matters
        pressing = (evidence >= RECOVER_FRACTION) & matters
    told = creeping & ~breach
    value, baseline, z, volume = scores
    scores = (
        np.where(told, spent, value),
        np.where(told, normal, baseline),
        np.where(told, run_z, z),
        np.where(told, spent, volume),
    )
    return (
        scores,
        (breach | creeping, judged | creeping, calm & ~pressing),
        np.where(told, seconds, windows),
    )


@lru_cache(maxsize=512)  # every poll asks again: a new Rule each time costs more than its work
def _span(rule: Rule, seconds: int) -> Rule:
    """The rule judged over windows of `seconds` instead of its bucket."""
    return rule if seconds == rule.bucket else replace(rule, bucket=seconds)


def _projected_batch(batch: EventBatch, picks: tuple[int, ...]) -> EventBatch:
    """The batch with each event's fine group cut down to the fields `picks`."""
    groups = [tuple(g[i] for i in picks) for g in batch.group]
    return EventBatch(batch.epoch, groups, batch.kind, batch.credits)  # type: ignore[arg-type]


def _project(fine: UsageCube, picks: tuple[int, ...]) -> UsageCube:
    """A cube of the fine cube's usage summed per group of the fields `picks`."""
    cube = UsageCube(fine.step)
    keys = [tuple(g[i] for i in picks) for g in fine.groups]
    for key in dict.fromkeys(keys):
        cube._row(key)  # type: ignore[arg-type]
    owner = np.asarray([cube._index[k] for k in keys], dtype=np.int64)  # type: ignore[index]
    held = fine.data[:, : len(fine.groups)]
    cube.data = np.zeros((held.shape[0], len(cube.groups), held.shape[2]))
    for field in range(held.shape[0]):
        np.add.at(cube.data[field], owner, held[field])
    cube.origin, cube.floor = fine.origin, fine.floor
    cube.covered_from = fine.covered_from
    first = np.full(len(cube.groups), np.iinfo(np.int64).max)
    np.minimum.at(first, owner, fine.first_seen[: len(fine.groups)])
    cube.first_seen = first
    return cube


def _filled_by_summary(rule: Rule) -> bool:
    """Whether daily totals stand in for a rule's missing events: only where the daily
    shape does not matter, a failure rate. Spread evenly over a day, spend would make
    every afternoon peak look like a runaway."""
    return rule.metric == "failure_rate" and set(rule.group_by) <= {"model"}


def _part(held: Held, lo: int) -> tuple[Groups, FloatArray, BoolArray]:
    """The counts held from slot `lo` on; slots before the first held read as unknown."""
    start, groups, counts, known = held
    if lo < start:  # slots before those held are not known
        pad = start - lo
        counts = np.concatenate([np.zeros((*counts.shape[:-1], pad)), counts], axis=-1)
        known = np.concatenate([np.zeros((*known.shape[:-1], pad), dtype=bool), known], axis=-1)
        return groups, counts, known
    return groups, counts[..., lo - start :], known[..., lo - start :]


def _fields(rule: Rule) -> tuple[int, ...]:
    """The count fields a rule's metric reads."""
    if rule.metric == "failure_rate":
        return (FINISHED, FAILED)
    return (series_field(rule),)


def _gate(
    rule: Rule, value: FloatArray, baseline: FloatArray, z: FloatArray, volume: FloatArray
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """(breach, judged, calm) per evaluation.

    breach: beyond z in the rule's direction and past its impact floors; judged: there is
    a baseline and, for a rate, enough finished jobs; calm: within half the threshold (or
    under the floors), which is what an alert needs to resolve.
    """
    judged = np.isfinite(z)
    with np.errstate(invalid="ignore"):
        if rule.metric == "failure_rate":
            judged &= volume >= rule.min_volume
            matters = value >= rule.min_rate if rule.direction == "up" else judged
        elif rule.metric == "spend":
            matters = np.abs(value - baseline) >= rule.min_credits
        else:
            judged &= np.fmax(value, baseline) >= rule.min_volume
            matters = judged
        direction: detect.Direction = rule.direction  # type: ignore[assignment]
        hit = detect.breaches(z, max(rule.z, 1e-9), direction) & matters & judged
        calm = judged & ~(
            detect.breaches(z, max(rule.z * RECOVER_FRACTION, 1e-9), direction) & matters
        )
    return hit, judged, calm


def _combine(
    per_span: Sequence[tuple[Scores, Flags]], rule: Rule
) -> tuple[Scores, Flags, FloatArray]:
    """One evaluation per cell from several spans: breach if any span breaches (figures of
    the strongest), judged if any is, calm only if every judged span is calm."""
    zs = np.stack([np.where(f[0], np.abs(s[2]), -np.inf) for s, f in per_span])
    judged_any = np.any([f[1] for _, f in per_span], axis=0)
    breach = np.any([f[0] for _, f in per_span], axis=0)
    calm = judged_any & np.all([f[2] | ~f[1] for _, f in per_span], axis=0)
    # The span told: the strongest breach, else the shortest span that could be judged.
    first_judged = np.argmax(np.stack([f[1] for _, f in per_span]), axis=0)
    pick = np.where(breach, np.argmax(zs, axis=0), first_judged)
    cells = np.indices(pick.shape)
    value, baseline, z, volume = (
        np.stack([s[i] for s, _ in per_span])[pick, cells[0], cells[1]] for i in range(4)
    )
    spans = np.asarray(spans_of(rule), dtype=np.float64)[pick]
    return (value, baseline, z, volume), (breach, judged_any, calm), spans


def _with_evidence(rule: Rule, flags: Flags, evidence: FloatArray, rate: FloatArray) -> Flags:
    """Flags with the evidence test added: proven (>= 1) with the proving run's failure
    rate at least `min_rate` is a breach, judged however few jobs the window holds; calm
    also needs the evidence under RECOVER_FRACTION, so a key cannot resolve on what would
    fire it again."""
    breach, judged, calm = flags
    with np.errstate(invalid="ignore"):
        matters = rate >= rule.min_rate  # NaN compares False
        proven = (evidence >= 1.0) & matters
        pressing = (evidence >= RECOVER_FRACTION) & matters
    return breach | proven, judged | proven, calm & ~pressing


def _evaluations(
    rule: Rule,
    groups: Sequence[tuple[str, ...]],
    first: int,
    scores: Scores,
    flags: Flags,
    windows: FloatArray,
    evidence: FloatArray | None = None,
) -> list[Evaluation]:
    """Column j judges the window ending at moment (first + j) * STEP."""
    result: list[Evaluation] = []
    for j, cells in enumerate(_cells(scores, flags, windows, evidence)):
        at = datetime.fromtimestamp((first + j) * STEP, UTC)
        result.extend(_column(rule, groups, at, cells))
    return result


Cell = tuple[float, float, float, float, float, bool, bool, bool, float]


def _cells(
    scores: Scores, flags: Flags, windows: FloatArray, evidence: FloatArray | None = None
) -> list[list[Cell]]:
    """Per moment, per group: value, baseline, z, volume, window, breach, judged, calm and
    evidence as Python numbers, read from the arrays at once (indexing each cell costs
    more than its work)."""
    numbers = [np.asarray(a, dtype=np.float64) for a in (*scores, windows)]
    proofs = np.zeros_like(numbers[0]) if evidence is None else evidence
    by_moment = [a.T.tolist() for a in (*numbers, *flags, proofs)]
    return [list(zip(*moment, strict=True)) for moment in zip(*by_moment, strict=True)]


def _column(
    rule: Rule, groups: Sequence[tuple[str, ...]], at: datetime, cells: list[Cell]
) -> list[Evaluation]:
    return [
        Evaluation(
            rule=rule.name,
            group=group,
            at=at,
            value=value,
            baseline=baseline,
            zscore=z,
            volume=volume,
            breach=breach,
            judged=judged,
            calm=calm,
            window=window,
            evidence=proof,
        )
        for group, (value, baseline, z, volume, window, breach, judged, calm, proof) in zip(
            groups, cells, strict=True
        )
    ]
