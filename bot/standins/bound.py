"""The evidence bound of `../shared/detection-bound.md`: how early an alert can honestly
be, for one labelled incident of a simulated stream (`bot.standins.scenarios`).

A detector cannot fire before the data prove the change. For a failure-rate spike the
yardstick is a one-sided Bernoulli CUSUM: h / KL(p1 || p0) finished jobs, with p0 and the
pace N0 from the week before and h = ln(N0 / B) for a budget of B false alerts per 30
days (Wald's bound). For a spend rise it is a CUSUM on the credits per 5-minute slot in
the Gaussian approximation of a compound Poisson: KL = (m1 - m0)^2 / (2 v0) per slot,
m0 and v0 from the same season of the baseline, h = ln(slots in 30 days / B). The time
bound adds the poll interval. Pure arithmetic over a stream's figures (`Traffic`).

Beside the note's spend bound, `spend_bound` gives a second one, exact where the note's
is approximate (`Bound.charged_minutes`): credits arrive with the jobs that charge them,
a countable few at a quiet hour (the Gaussian form calls a burst of three jobs where 0.1
were due certain), and only once each job completes, minutes after the runaway starts
it. It is the generalised likelihood ratio of the charged-job count against its normal
rate, known exactly, with the best rise picked in hindsight (no detector does better),
the runaway's extra jobs charged after the delays the stream's own jobs took.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from bot.standins.simulator import Incident

__all__ = [
    "BUDGET",
    "SLOT",
    "Bound",
    "Traffic",
    "bernoulli_kl",
    "failure_bound",
    "failure_bound_jobs",
    "ramp_mean_multiplier",
    "charged_bound_minutes",
    "spend_bound",
    "spend_kl",
    "threshold",
]

DAY = 86400
SLOT = 300  # the engine's slot: the spend bound's evaluation slot (Δ)
BUDGET = 0.5  # false alerts per 30 days per rule (detection-bound.md, issue 12)


def bernoulli_kl(p0: float, p1: float) -> float:
    """KL(p1 || p0) in nats per job: what one finished job adds on average to the
    one-sided Bernoulli CUSUM once the failure rate is p1 instead of p0."""
    return p1 * math.log(p1 / p0) + (1 - p1) * math.log((1 - p1) / (1 - p0))


def threshold(per_30_days: float, budget: float = BUDGET) -> float:
    """h = ln(N0 / B): the CUSUM threshold for `budget` false alerts per 30 days when
    `per_30_days` observations (jobs, or slots) arrive in 30 days (Wald's bound)."""
    return math.log(per_30_days / budget)


def failure_bound_jobs(p0: float, p1: float, jobs_per_30_days: float, budget: float) -> float:
    """bound_jobs = h / KL: the finished jobs a CUSUM needs, on average, to prove p1."""
    return threshold(jobs_per_30_days, budget) / bernoulli_kl(p0, p1)


def spend_kl(m0: float, v0: float, multiplier: float) -> float:
    """KL per slot of a Gaussian mean shift from m0 to multiplier x m0, variance v0."""
    return ((multiplier - 1) * m0) ** 2 / (2 * v0)


def ramp_mean_multiplier(factor: float, ramp_hours: float, over_hours: float = 24) -> float:
    """The mean multiplier over the first `over_hours` of a linear ramp from 1 to
    `factor` in `ramp_hours` (then flat): a creep's m1 / m0 for its bound."""
    if ramp_hours <= 0:
        return factor
    rising = min(over_hours, ramp_hours)
    top = rising / ramp_hours  # the fraction of the ramp climbed by `rising`
    area = rising * top / 2 + (over_hours - rising) * 1.0
    return 1 + (factor - 1) * area / over_hours


@dataclass(frozen=True)
class Bound:
    """The evidence bound of one labelled incident.

    `jobs`: failure rate, h / KL finished jobs (NaN for spend, bounded in slots);
    `minutes`: the time bound plus the worker's poll interval (inf: the incident ends
    before even a perfect detector has proven it); `kl` per job or per slot; `baseline`
    p0, or the credits m0 of the incident's first slot; `volume`: the group's normal
    finished jobs per minute (the failure-rate's during the incident, for spend that of
    the same season in the baseline); `charged_minutes`: spend only, the exact bound on
    charged jobs with their charge delay (`charged_bound_minutes`), NaN otherwise;
    `onset_minutes`: a runaway only, the same exact bound with no delay at all and the
    note's h (`onset_bound_minutes`): a detector that saw every extra job the moment it
    started, and the limit of what the note's Gaussian bound approximates (where it is
    over 1.5 times `minutes`, no detector is expected within 1.5 times the note's bound).
    """

    h: float
    kl: float
    baseline: float
    jobs: float
    minutes: float
    volume: float
    charged_minutes: float = math.nan
    onset_minutes: float = math.nan


class Traffic:
    """A stream as the bound needs it, per model: finished jobs' times (epoch seconds,
    sorted), failed jobs' times, finished jobs and credits per 5-minute slot from
    `origin` (midnight UTC, where the events begin), and the summary's daily rows before
    that day."""

    def __init__(
        self, events: Iterable[Mapping[str, Any]], summary: Mapping[str, Any], origin: datetime
    ) -> None:
        self.origin = origin
        finished: dict[str, list[float]] = defaultdict(list)
        failed: dict[str, list[float]] = defaultdict(list)
        credits: dict[str, list[tuple[int, float]]] = defaultdict(list)
        minutes: dict[str, float] = {}
        started: dict[str, float] = {}
        completed: dict[str, float] = {}
        for e in events:
            status = e.get("status")
            if status not in ("pending", "created", "completed", "failed"):
                continue
            stamp = e["created_at"]
            base = minutes.get(stamp[:16])
            if base is None:
                base = minutes[stamp[:16]] = datetime.fromisoformat(
                    stamp[:16] + "+00:00"
                ).timestamp()
            epoch = base + int(stamp[17:19])
            if status != "failed" and e.get("job_id"):
                (completed if status == "completed" else started)[e["job_id"]] = epoch
            if status in ("pending", "created") or not e.get("model"):
                continue
            model = e["model"]
            finished[model].append(epoch)
            if status == "failed":
                failed[model].append(epoch)
            credits[model].append(
                (int((epoch - origin.timestamp()) // SLOT), float(e["credits_used"]))
            )
        # Seconds from a job's start to its charge, sorted: how long extra jobs take to
        # show in the credits.
        self.delays = np.sort(
            np.array([t - started[j] for j, t in completed.items() if j in started], dtype=float)
        )
        self.finished = {m: sorted(v) for m, v in finished.items()}
        self.failed = {m: sorted(v) for m, v in failed.items()}
        slots = 1 + max((s for rows in credits.values() for s, _ in rows), default=0)
        self.slots = slots
        self.credits: dict[str, npt.NDArray[np.float64]] = {}
        self.jobs: dict[str, npt.NDArray[np.float64]] = {}
        for model, rows in credits.items():
            index = np.fromiter((s for s, _ in rows), np.int64, len(rows))
            values = np.fromiter((c for _, c in rows), np.float64, len(rows))
            keep = index >= 0
            self.credits[model] = np.bincount(index[keep], values[keep], slots).astype(np.float64)
            self.jobs[model] = np.bincount(index[keep], minlength=slots).astype(np.float64)
        self.daily: dict[tuple[date, str], tuple[int, int]] = {}
        for day in summary.get("daily", ()):
            when_ = date.fromisoformat(day["date"])
            if when_ >= origin.date():
                continue  # from the events themselves
            for row in day["by_model"]:
                done = row["completed_jobs"] + row["failed_jobs"]
                self.daily[(when_, row["model"])] = (done, row["failed_jobs"])

    def count(self, model: str, start: float, end: float, *, failed: bool = False) -> int:
        """Finished (or failed) jobs of `model` at epoch seconds in [start, end]."""
        times = (self.failed if failed else self.finished).get(model, [])
        return bisect_right(times, end) - bisect_left(times, start)


def failure_bound(
    traffic: Traffic, incident: Incident, budget: float, poll_seconds: float
) -> Bound:
    """The Bernoulli bound of a failure spike: p0 and the pace N0 from the 7 days before
    it (the events, and the summary's days before them), h = ln(N0 / budget)."""
    model = incident.model or ""
    start, end = incident.start.timestamp(), incident.end.timestamp()
    first_day = (incident.start - timedelta(days=7)).date()
    lo = datetime.combine(first_day, datetime.min.time(), UTC).timestamp()
    done = traffic.count(model, lo, start - 1e-6)
    bad = traffic.count(model, lo, start - 1e-6, failed=True)
    for (day, name), (n, f) in traffic.daily.items():
        if name == model and day >= first_day:
            done, bad = done + n, bad + f
    held = start - lo
    volume = traffic.count(model, start, end - 1e-6) / ((end - start) / 60)
    if not done or not bad:
        return Bound(math.nan, math.nan, math.nan, math.nan, math.nan, volume)
    p0 = bad / done
    h = threshold(done / held * 30 * DAY, budget)
    kl = bernoulli_kl(p0, incident.failure_rate)
    jobs = h / kl
    provable = traffic.count(model, start, end - 1e-6) >= jobs
    minutes = jobs / volume + poll_seconds / 60 if provable and volume else math.inf
    return Bound(h, kl, p0, jobs, minutes, volume)


def spend_bound(
    traffic: Traffic,
    incident: Incident,
    poll_seconds: float,
    *,
    steady: bool = False,
    others: Iterable[Incident] = (),
    budget: float = BUDGET,
) -> Bound:
    """The compound-Poisson (Gaussian) bound of a spend rise, per 5-minute slot: m0 and
    v0 for each slot of the incident from the same season of the 21 days before it (the
    same hour, on days of the same kind, weekday or weekend; for a `steady` stream any
    slot of the 7 days before), outside `others` (the stream's incidents) of that model;
    the multiplier is the incident's factor (a creep: its mean over the ramp's first
    day). The bound is where the slots' KL adds up to h = ln(slots in 30 days / budget):
    h / KL for a constant shift."""
    model = incident.model or ""
    credits = traffic.credits.get(model)
    jobs = traffic.jobs.get(model)
    nan = Bound(math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
    if credits is None or jobs is None:
        return nan
    origin = traffic.origin.timestamp()
    first = int((incident.start.timestamp() - origin) // SLOT)
    last = min(traffic.slots, math.ceil((incident.end.timestamp() - origin) / SLOT))
    slots = np.arange(traffic.slots)
    usable = (slots < first) & (slots >= max(3, first - 21 * DAY // SLOT))  # whole completions
    for i in others:
        if i.model in (None, model):
            a = int((i.start.timestamp() - origin) // SLOT)
            b = math.ceil((i.end.timestamp() - origin + 900) / SLOT)  # completions trail
            usable[max(a, 0) : max(b, 0)] = False
    hour = (slots * SLOT // 3600) % 24
    weekend = np.array(
        [
            (traffic.origin + timedelta(seconds=int(s) * SLOT)).weekday() >= 5
            for s in range(0, traffic.slots, 288)
        ]
    ).repeat(288)[: traffic.slots]
    recent = slots >= first - 7 * DAY // SLOT
    multiplier = (
        ramp_mean_multiplier(incident.factor, incident.ramp_hours)
        if incident.ramp_hours
        else incident.factor
    )
    h = threshold(30 * DAY / SLOT, budget)
    seasons: dict[tuple[int, bool], tuple[float, float, float]] = {}

    def season(k: int) -> tuple[float, float, float]:
        """(m0, v0, finished jobs) per slot of slot k's season."""
        key = (-1, False) if steady else (int(hour[k]), bool(weekend[k]))
        if key not in seasons:
            picks = usable & recent if steady else usable & (hour == key[0])
            if not steady:
                same_kind = picks & (weekend == key[1])
                picks = same_kind if same_kind.sum() >= 6 else picks
            if picks.sum() < 6:
                picks = usable
            chosen = credits[picks]
            if len(chosen) < 2:
                seasons[key] = (math.nan, math.nan, math.nan)
            else:
                seasons[key] = (
                    float(chosen.mean()),
                    float(chosen.var(ddof=1)),
                    float(jobs[picks].mean()),
                )
        return seasons[key]

    m0, v0, per_slot = season(first) if first < traffic.slots else (math.nan,) * 3
    if not (math.isfinite(m0) and v0 > 0):
        return nan
    kl0 = spend_kl(m0, v0, multiplier)
    total, needed = 0.0, math.inf
    for k in range(first, last):
        m, v, _ = season(k)
        kl = spend_kl(m, v, multiplier) if v > 0 else 0.0
        if total + kl >= h:
            needed = (k - first) + (h - total) / kl
            break
        total += kl
    minutes = needed * SLOT / 60 + poll_seconds / 60
    rates = np.array([season(k)[2] for k in range(first, last)]) / SLOT  # jobs a second
    usual = jobs[usable & recent].mean() if (usable & recent).any() else math.nan
    charged = charged_bound_minutes(
        incident, rates, traffic.delays, threshold(usual * 30 * DAY / SLOT, budget)
    )
    onset = onset_bound_minutes(incident, rates, h)
    poll = poll_seconds / 60
    volume = per_slot / (SLOT / 60)
    return Bound(h, kl0, m0, math.nan, minutes, volume, charged + poll, onset + poll)


def onset_bound_minutes(incident: Incident, rates: npt.NDArray[np.float64], h: float) -> float:
    """`charged_bound_minutes` for jobs seen the moment they start (no delay at all). For a
    step, exactly: the best stretch starts at the onset and its rise is the factor r, so
    the expected log-likelihood ratio is B (r ln r - r + 1) for B normal jobs since the
    onset; it reaches h where B does h / (r ln r - r + 1), found within its slot (5-second
    steps would floor it at 5 s, more than the whole bound of a busy group). NaN for a
    creep: against its ramp a constant rise is not the best alternative, so this would
    not bound what a detector can do (the note's creep bound is a yardstick only)."""
    r = incident.factor
    if incident.ramp_hours or not len(rates) or not math.isfinite(h) or r <= 1:
        return math.nan
    need = h / (r * math.log(r) - r + 1)  # normal jobs since the onset
    total = np.cumsum(rates * SLOT)
    k = int(np.searchsorted(total, need))
    if k >= len(rates) or rates[k] <= 0:
        return math.inf
    seconds = k * SLOT + (need - (total[k - 1] if k else 0.0)) / rates[k]
    length = (incident.end - incident.start).total_seconds()
    return seconds / 60 if seconds <= length else math.inf


def charged_bound_minutes(
    incident: Incident, rates: npt.NDArray[np.float64], delays: npt.NDArray[np.float64], h: float
) -> float:
    """Minutes from a spend rise's start until charged jobs can prove it: the first T at
    which the expected log-likelihood ratio of the charged-job count over some [S, T],
    Poisson at the normal rate against the best constant rise r picked in hindsight
    (A ln(A / B) - (A - B) for A jobs expected, B normal), reaches `h` (a CUSUM that
    knows the path). `rates`: the normal jobs a second in each 5-minute slot from the
    start; `delays`: seconds from a job's start to its charge (the runaway's extra jobs
    start at the incident's arrival rate and charge that much later). inf: not within
    the incident."""
    if not len(rates) or not len(delays) or not math.isfinite(h):
        return math.nan
    length = min(len(rates) * SLOT, (incident.end - incident.start).total_seconds())
    dt = max(5.0, length / 1500)
    t = np.arange(0.0, length, dt) + dt / 2
    lags = np.quantile(delays, np.linspace(0.005, 0.995, 200))
    # Extra arrivals at moment s are (factor(s) - 1) x normal; charged at s + lag.
    started = t[:, None] - lags[None, :]
    ramp = incident.ramp_hours * 3600
    climbed = np.clip(started / ramp, 0.0, 1.0) if ramp else 1.0  # `Incident.factor_at`
    excess = np.where(started >= 0, (incident.factor - 1.0) * climbed, 0.0).mean(axis=1)
    normal = rates[np.minimum((t // SLOT).astype(int), len(rates) - 1)] * dt
    b = np.concatenate([[0.0], np.cumsum(normal)])
    a = np.concatenate([[0.0], np.cumsum(normal * (1.0 + excess))])
    # Over [S, T] for every S < T: A and B are differences of the running sums.
    ends = np.arange(1, len(t) + 1)
    best = np.zeros(len(t))
    for lo in range(0, len(t), 250):  # a block of starts at a time keeps memory small
        starts = np.arange(lo, min(lo + 250, len(t)))
        up_a = a[ends][None, :] - a[starts][:, None]
        up_b = b[ends][None, :] - b[starts][:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            glr = np.where(up_a > up_b, up_a * np.log(up_a / up_b) - (up_a - up_b), 0.0)
        np.maximum(best, np.nan_to_num(glr).max(axis=0), out=best)
    reached = np.flatnonzero(best >= h)
    return float(t[reached[0]] + dt / 2) / 60 if len(reached) else math.inf
