"""Coverage as a number: how many of the jobs the usage API says finished the bot holds
events for, per UTC hour; and how many events a gap probably held. Pure: the time and
the data are arguments, no I/O (the store gives the inputs: `Store.coverage_hours`).

Definition. The summary's `daily[]` counts jobs per UTC day; the last entry is today, so
two consecutive summary snapshots (every `summary_every`, 15 minutes) differ by the jobs
that finished between them. For each pair of snapshots (a, b) and each UTC day d the
later one shows, the jobs *reported* in [a, b) are

    (completed + failed)(b, d) - (completed + failed)(a, d)

(0 for a day a did not show yet: it had not begun). The part of day d's increase is put
on the part of [a, b) that lies in day d, spread evenly over that time: this is where the
figure is approximate (a 15-minute interval straddling an hour boundary splits its jobs
by time, not by when they finished). A pair is skipped when b no longer shows a's last
day (the bot was down for more than a day: nothing bridges it).

The jobs *stored* in an hour are the stored events with status completed or failed
whose `created_at` falls inside the part of the hour that snapshot pairs span. Coverage
of an hour is stored / reported; the overall figure is the sums' ratio over the span,
capped at 100 % (events of a job finishing just before a snapshot may be stamped after
it, so a single hour may show a little over 100 % and its neighbour a little under).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from bot.models import Gap

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
LOW_COVERAGE = 0.99  # below this the summary footer and the digest say so


@dataclass(frozen=True)
class Snapshot:
    """One summary poll: the account's finished jobs (completed + failed) and credits per
    UTC day, as the last days of its `daily[]` showed them at `polled_at`."""

    polled_at: datetime
    finished: Mapping[date, int]
    credits: Mapping[date, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Interval:
    """What the summary says happened in [start, end): jobs finished and credits spent."""

    start: datetime
    end: datetime
    finished: float
    credits: float


@dataclass(frozen=True)
class HourCoverage:
    """One UTC hour. `spanned` is the seconds of the hour snapshot pairs cover (3600: all
    of it); `stored` and `reported` count only that part."""

    hour: datetime
    stored: int
    reported: float
    spanned: float

    @property
    def ratio(self) -> float | None:
        """stored / reported; None when the summary spans none of the hour or reports no
        job there (nothing to compare)."""
        if self.spanned <= 0 or self.reported <= 0:
            return None
        return self.stored / self.reported

    def to_json(self) -> dict[str, object]:
        ratio = self.ratio
        return {
            "hour": self.hour.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "stored": self.stored,
            "reported": round(self.reported, 2),
            "spanned_seconds": round(self.spanned, 1),
            "coverage": None if ratio is None else round(ratio, 4),
        }


@dataclass(frozen=True)
class Coverage:
    """Coverage per hour over [start, end) and overall."""

    start: datetime
    end: datetime
    hours: tuple[HourCoverage, ...]

    @property
    def stored(self) -> int:
        return sum(h.stored for h in self.hours if h.spanned > 0)

    @property
    def reported(self) -> float:
        return sum(h.reported for h in self.hours if h.spanned > 0)

    @property
    def ratio(self) -> float | None:
        """Stored over reported finished jobs where the summary spans, at most 1.0; None
        when the summary reports nothing to compare with."""
        if self.reported <= 0:
            return None
        return min(1.0, self.stored / self.reported)

    @property
    def low(self) -> bool:
        """Below LOW_COVERAGE: worth saying in the summary footer and the digest."""
        ratio = self.ratio
        return ratio is not None and ratio < LOW_COVERAGE

    def to_json(self) -> dict[str, object]:
        ratio = self.ratio
        return {
            "start": self.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": self.end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "stored": self.stored,
            "reported": round(self.reported, 2),
            "coverage": None if ratio is None else round(ratio, 4),
        }


def intervals(snapshots: Iterable[Snapshot]) -> list[Interval]:
    """What the summary says happened between each pair of consecutive snapshots, one
    interval per UTC day the pair spans (so a pair across midnight gives two)."""
    ordered = sorted(snapshots, key=lambda s: s.polled_at)
    out: list[Interval] = []
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b.polled_at <= a.polled_at or not a.finished:
            continue
        last_a = max(a.finished)
        if last_a not in b.finished:
            continue  # more than a day apart: nothing bridges the two
        pieces: list[Interval] = []
        late = [0.0, 0.0]  # a change to a day before a's last: a late correction
        for day in sorted(b.finished):
            jobs = float(b.finished[day] - a.finished.get(day, 0))
            credits = float(b.credits.get(day, 0.0) - a.credits.get(day, 0.0))
            if day < last_a:
                late[0] += jobs
                late[1] += credits
                continue
            start = max(a.polled_at, _midnight(day))
            end = min(b.polled_at, _midnight(day) + DAY)
            if end <= start:
                late[0] += jobs
                late[1] += credits
                continue
            pieces.append(Interval(start, end, max(0.0, jobs), max(0.0, credits)))
        if late != [0.0, 0.0] and pieces:
            # Spread a correction over the whole pair, in proportion to time.
            whole = (b.polled_at - a.polled_at).total_seconds()
            pieces = [
                Interval(
                    p.start,
                    p.end,
                    max(0.0, p.finished + late[0] * _seconds(p) / whole),
                    max(0.0, p.credits + late[1] * _seconds(p) / whole),
                )
                for p in pieces
            ]
        out.extend(pieces)
    return out


def hourly(
    spans: Sequence[Interval],
    finished_per_minute: Mapping[datetime, int],
    start: datetime,
    end: datetime,
) -> Coverage:
    """Coverage of each UTC hour that meets [start, end).

    `finished_per_minute` is the stored events with status completed or failed counted
    per minute of `created_at` (keys are the minutes' starts, UTC). A minute counts for
    an hour when it begins inside a spanned part of that hour.
    """
    first = _hour_floor(start)
    by_hour: dict[datetime, list[tuple[datetime, int]]] = {}
    for minute, count in finished_per_minute.items():
        by_hour.setdefault(_hour_floor(minute), []).append((minute, count))
    hours = []
    hour = first
    while hour < end:
        lo, hi = max(hour, start), min(hour + HOUR, end)
        reported = 0.0
        spanned = 0.0
        parts: list[tuple[datetime, datetime]] = []
        for span in spans:
            a, b = max(lo, span.start), min(hi, span.end)
            if b <= a:
                continue
            share = (b - a).total_seconds()
            spanned += share
            reported += span.finished * share / _seconds(span)
            parts.append((a, b))
        stored = sum(
            count
            for minute, count in by_hour.get(hour, ())
            if any(a <= minute < b for a, b in parts)
        )
        hours.append(HourCoverage(hour, stored, reported, spanned))
        hour += HOUR
    return Coverage(start, end, tuple(hours))


def coverage(
    snapshots: Iterable[Snapshot],
    finished_per_minute: Mapping[datetime, int],
    start: datetime,
    end: datetime,
) -> Coverage:
    """`hourly` over the snapshot pairs' intervals: the whole computation in one call."""
    return hourly(intervals(snapshots), finished_per_minute, start, end)


# -- gaps ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GapEstimate:
    """How many events a gap probably held, and on what the guess rests."""

    events: float
    basis: str  # "arrival rate" | "summary"
    finished_jobs: float | None = None  # jobs the summary reports in the gap, when known
    credits: float | None = None


def arrival_rate(times: Sequence[datetime]) -> float | None:
    """Events per second over a run of event times (None for fewer than two)."""
    if len(times) < 2:
        return None
    span = (max(times) - min(times)).total_seconds()
    return (len(times) - 1) / span if span > 0 else None


def estimate_gap(
    gap: Gap,
    rates: Iterable[float | None],
    spans: Sequence[Interval] = (),
    events_per_job: float | None = None,
) -> GapEstimate:
    """Events the gap (newest_stored_at, oldest_seen_at) probably held.

    From the summary when snapshot pairs span all of the gap and the events per finished
    job are known (from the events around it): its jobs times that ratio. Otherwise the
    mean of the arrival rates seen around it (the page that revealed it, the stored events
    before it) times its length.
    """
    # Whole-second timestamps: a gap within one second can still hold that second's events.
    seconds = max(1.0, (gap.oldest_seen_at - gap.newest_stored_at).total_seconds())
    jobs, credits, spanned = _within(spans, gap.newest_stored_at, gap.oldest_seen_at)
    if spans and seconds > 0 and spanned >= seconds - 1e-6:
        if events_per_job is not None and events_per_job > 0:
            return GapEstimate(jobs * events_per_job, "summary", jobs, credits)
    known = [r for r in rates if r is not None and r > 0]
    mean = sum(known) / len(known) if known else 0.0
    return GapEstimate(max(0.0, mean * seconds), "arrival rate")


def within(spans: Sequence[Interval], start: datetime, end: datetime) -> tuple[float, float]:
    """Jobs finished and credits spent in [start, end) as the summary's intervals say
    (evenly spread inside each interval)."""
    jobs, credits, _ = _within(spans, start, end)
    return jobs, credits


def _within(
    spans: Sequence[Interval], start: datetime, end: datetime
) -> tuple[float, float, float]:
    jobs = credits = spanned = 0.0
    for span in spans:
        a, b = max(start, span.start), min(end, span.end)
        if b <= a:
            continue
        share = (b - a).total_seconds() / _seconds(span)
        jobs += span.finished * share
        credits += span.credits * share
        spanned += (b - a).total_seconds()
    return jobs, credits, spanned


def overlaps(gaps: Iterable[Gap], start: datetime, end: datetime) -> bool:
    """Does any gap's open span (newest_stored_at, oldest_seen_at) meet [start, end)?"""
    return any(g.newest_stored_at < end and g.oldest_seen_at > start for g in gaps)


def _seconds(span: Interval) -> float:
    return max(1e-9, (span.end - span.start).total_seconds())


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _hour_floor(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return moment.replace(minute=0, second=0, microsecond=0)
