"""Labelled simulated traffic: seeded simulator streams with scripted incidents, each
labelled with the rule and model that should page for it (or marked as a benign trap that
must stay quiet), run through `bot.backtest` (the live worker's detection path) and
matched against the labels.

Every `firing` transition is sorted into:

- detected: a firing of the expected rule for the incident's model with `at` in
  [start, end + 1 bucket]; time to detect (TTD) is that `at` minus the start;
- co-alert: a firing of another rule for the same model (or the account total) whose
  window overlaps the incident, e.g. total-spend during a spend runaway: legitimate;
- repeat: the expected rule firing again for the same incident (a flap);
- false alert: any other firing (charged to every trap whose window holds it).

Each labelled incident also gets its evidence bound (`../shared/detection-bound.md`): how
many jobs (failure rate, Bernoulli CUSUM) or how many minutes (spend, compound Poisson
in the Gaussian approximation) a one-sided CUSUM at the false-alert budget needs to prove
it, computed from the stream's own baseline, beside the jobs and minutes the product
took (`Row`). `run_suite(..., reference=...)` runs the same streams, event for event,
through another checkout's `bot.backtest` in a subprocess (`bot/standins/reference.py`):
the previous engine's table in the same run.

`report` aggregates recall, false alerts per 30 simulated days, median and max TTD, per
incident kind. `bench/scenarios.py` prints the tables; tests/test_scenarios.py holds
the floors on the reduced `QUICK` set. A stand-in for real traffic, shared by both.
"""

from __future__ import annotations

import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from bot import backtest
from bot.models import FIRING, PollConfig, Rule, Transition
from bot.pace import FILL
from bot.rules import default_rules_text, parse_rules
from bot.standins.bound import BUDGET, Bound, Traffic, failure_bound, spend_bound
from bot.standins.simulator import Incident, ManualClock, Simulator

__all__ = [
    "CLASSIC",
    "FULL",
    "QUICK",
    "START",
    "KindFigures",
    "Labelled",
    "Outcome",
    "Peak",
    "Reference",
    "Report",
    "Row",
    "Scenario",
    "ScenarioResult",
    "at",
    "band",
    "band_medians",
    "bucket_seconds",
    "build_stream",
    "busy_hours",
    "creep",
    "default_rules",
    "describe",
    "false_alert_lines",
    "match",
    "outage",
    "problem_lines",
    "reference_report",
    "report",
    "run_scenario",
    "run_suite",
    "runaway",
    "spike",
    "targets",
    "weekends",
    "when",
    "window",
    "worker_pace",
]

# A Monday: days 5 and 6 are a weekend and day 7 is the busy Monday after it.
START = datetime(2026, 11, 2, tzinfo=UTC)
DAY = 86400
SUMMARY_DAYS = 90  # so failure-rate baselines have daily history before the events start
FAILURE_RULE = "failed-job-rate"
SPEND_RULE = "spend-per-model"
# Volume bands, finished jobs per minute of the incident's group at normal traffic.
BANDS: tuple[tuple[str, float], ...] = (
    ("< 1/min", 1.0),
    ("1-10/min", 10.0),
    ("10/min-1/s", 60.0),
    (">= 1/s", math.inf),
)


def default_rules() -> tuple[Rule, ...]:
    """The rules shipped in the package: what a fresh deployment pages on."""
    return parse_rules(default_rules_text()).rules


def bucket_seconds(rule: Rule) -> int:
    """The span one evaluation of `rule` judges (summary rules judge whole days)."""
    return DAY if rule.source == "summary" else int(rule.bucket)


def worker_pace(events_per_second: float) -> float:
    """Seconds between the worker's events polls at a steady `events_per_second`, as
    `bot.pace` keeps it with the default poll settings: pages of `events_limit` about
    half new, at most `events_every` apart, no sooner than the floor and the ceiling's
    spacing allow."""
    poll = PollConfig()
    shortest = max(poll.events_floor, 60 / poll.max_requests_per_minute)
    if events_per_second <= 0:
        return poll.events_every
    return min(poll.events_every, max(shortest, FILL * poll.events_limit / events_per_second))


def band(volume: float) -> str:
    """The volume band of a group's normal finished jobs per minute."""
    for name, below in BANDS:
        if volume < below:
            return name
    return BANDS[-1][0]


# --- labels -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Labelled:
    """An incident and what should page for it.

    `rule` None marks a benign trap (e.g. an outage, or a model's first appearance): no
    rule is expected, and any firing it causes is a false alert. `simulated` False: a
    label over traffic the stream has anyway (a weekend, a busy hour, a big customer):
    its incident only names the window, the simulator is not told of it.
    """

    incident: Incident
    rule: str | None
    note: str = ""
    simulated: bool = True

    @property
    def kind(self) -> str:
        if self.rule is None:
            return f"trap: {self.note or self.incident.kind}"
        if self.incident.kind == "spend_runaway" and self.incident.ramp_hours:
            return "spend_creep"
        return self.incident.kind

    @property
    def size(self) -> str:
        i = self.incident
        if not self.simulated:
            return "-"
        if i.kind == "failure_spike":
            return f"rate {i.failure_rate:g}" + (" now" if i.sudden else "")
        if i.kind == "spend_runaway":
            return f"x{i.factor:g}" + (f"/{i.ramp_hours:g}h" if i.ramp_hours else "")
        return "no jobs"


@dataclass(frozen=True)
class Scenario:
    """One seeded stream (days of events from START) and its labelled incidents.

    `launch`: a model whose events only start later (cover its first days with an outage
    labelled as a trap) and which is also absent from the daily summary before then, as
    for a model released during the run. `steady`: the same rate at every hour (the
    simulator's `events_per_second`), for busy accounts over short streams. `busy_hour`
    and `customer_shares`: normal traffic's shape (`Simulator`). `replay`: "pace" judges
    the stream as the worker polling at `worker_pace` would; "marks" only at the 5-minute
    marks, as `usage-bot backtest` does by default (cheaper; no judging between marks).
    """

    name: str
    seed: int
    days: float
    jobs_per_hour: float = 300.0
    incidents: tuple[Labelled, ...] = ()
    launch: str | None = None
    steady: bool = False
    busy_hour: tuple[int, float] | None = None
    customer_shares: tuple[tuple[str, float], ...] = ()
    replay: str = "pace"

    @property
    def end(self) -> datetime:
        return START + timedelta(days=self.days)

    @property
    def events_per_second(self) -> float:
        """The stream's mean events a second (two per job)."""
        return self.jobs_per_hour * 2 / 3600

    @property
    def pace(self) -> float:
        """Seconds between the worker's polls of this stream (`worker_pace`)."""
        return worker_pace(self.events_per_second)

    @property
    def poll(self) -> float | None:
        """What `backtest.run` is given: the pace, or None for the marks."""
        return self.pace if self.replay == "pace" else None


def at(day: float, hour: float) -> datetime:
    """Day `day` of the run (0 = START, a Monday) at `hour` UTC."""
    return START + timedelta(days=day, hours=hour)


def spike(
    day: int,
    hour: float,
    minutes: int,
    model: str,
    rate: float,
    note: str = "",
    *,
    sudden: bool = False,
) -> Labelled:
    """A failure spike that failed-job-rate should page on for `model`; `sudden`: jobs
    finishing in the window fail (the rate jumps at the start), else jobs created in it."""
    start = at(day, hour)
    incident = Incident(
        "failure_spike",
        start,
        start + timedelta(minutes=minutes),
        model=model,
        failure_rate=rate,
        sudden=sudden,
    )
    return Labelled(incident, FAILURE_RULE, note)


def runaway(
    day: int, hour: float, minutes: int, model: str, factor: float, note: str = ""
) -> Labelled:
    """A spend runaway (`factor` x arrivals) that spend-per-model should page on."""
    start = at(day, hour)
    incident = Incident(
        "spend_runaway", start, start + timedelta(minutes=minutes), model=model, factor=factor
    )
    return Labelled(incident, SPEND_RULE, note)


def creep(
    day: int,
    hour: float,
    model: str,
    factor: float,
    ramp_hours: float = 72,
    hold_hours: float = 24,
    note: str = "",
) -> Labelled:
    """A spend creep: arrivals rise linearly to `factor` x over `ramp_hours`, then hold."""
    start = at(day, hour)
    end = start + timedelta(hours=ramp_hours + hold_hours)
    incident = Incident(
        "spend_runaway", start, end, model=model, factor=factor, ramp_hours=ramp_hours
    )
    return Labelled(incident, SPEND_RULE, note)


def outage(day: int, hour: float, minutes: int, model: str, note: str) -> Labelled:
    """A benign trap: `model` sees no jobs at all for a while."""
    start = at(day, hour)
    incident = Incident("outage", start, start + timedelta(minutes=minutes), model=model)
    return Labelled(incident, None, note)


def window(start: datetime, end: datetime, note: str, model: str | None = None) -> Labelled:
    """A benign trap over traffic as simulated (nothing added): any alert in it is false."""
    incident = Incident("spend_runaway", start, end, model=model, factor=1.0)
    return Labelled(incident, None, note, simulated=False)


def weekends(days: float) -> tuple[Labelled, ...]:
    """Trap windows over each weekend of a `days`-long stream and the Monday morning
    after it (Saturday 00:00 to Monday 12:00): quiet days, then a weekday's jump."""
    end = START + timedelta(days=days)
    return tuple(
        window(at(d, 0), min(at(d + 2, 12), end), "weekend, Monday morning")
        for d in range(5, math.ceil(days), 7)
    )


def busy_hours(days: float, hour: int, factor: float) -> tuple[Labelled, ...]:
    """Trap windows over each weekday's busy hour (`Scenario.busy_hour`): normal."""
    end = START + timedelta(days=days)
    return tuple(
        window(at(d, hour), at(d, hour + 1), f"busy hour x{factor:g}")
        for d in range(math.ceil(days))
        if (START + timedelta(days=d)).weekday() < 5 and at(d, hour + 1) <= end
    )


# --- the labelled set ---------------------------------------------------------------------

# Across volumes: a model's normal finished jobs per minute run from about 0.3 (pro and
# human at 120 jobs/h, quiet hours) to 5 a second (original at 40,000 jobs/h). Failure
# spikes are mostly sudden (the failure rate of finished jobs jumps at the start) at
# rates 0.25 to 0.5; spend spikes 5x and 10x; two 3-day creeps; a 3x rise on a Sunday
# night after three weeks of history. Traps: weekends and the Mondays after them, a busy
# hour every weekday, a big customer, sparse traffic, a model launch, outages.
_LOW_200 = Scenario(
    "low-200/h",
    seed=2101,
    days=10,
    jobs_per_hour=200,
    incidents=(
        spike(3, 14, 120, "pro", 0.5, sudden=True),
        spike(4, 10, 180, "human", 0.25, sudden=True),
        spike(5, 3, 180, "light", 0.5, "weekend night", sudden=True),
        runaway(6, 14, 60, "pro", 10),
        runaway(7, 11, 60, "original", 5),
        spike(8, 2, 180, "original", 0.15, "created in it, mild"),
        runaway(8, 15, 60, "human", 5),
        runaway(9, 13, 60, "light", 3),
        spike(9, 20, 120, "pro", 0.25, sudden=True),
        *weekends(10),
    ),
)
_LOW_120 = Scenario(
    "low-120/h",
    seed=2202,
    days=10,
    jobs_per_hour=120,
    incidents=(
        spike(3, 9, 180, "original", 0.5, sudden=True),
        spike(4, 14, 180, "light", 0.25, sudden=True),
        spike(5, 13, 240, "pro", 0.4, "weekend", sudden=True),
        runaway(6, 12, 120, "original", 5),
        outage(7, 2, 240, "pro", "outage 4 h"),
        spike(7, 13, 180, "human", 0.4, sudden=True),
        runaway(8, 14, 60, "pro", 10),
        runaway(9, 10, 60, "light", 5),
        *weekends(10),
    ),
)
_MEDIUM = Scenario(
    "medium-1500/h",
    seed=2303,
    days=8,
    jobs_per_hour=1500,
    customer_shares=(("acme", 0.5),),
    incidents=(
        spike(3, 14, 60, "pro", 0.5, sudden=True),
        spike(4, 3, 60, "human", 0.25, "night", sudden=True),
        runaway(5, 15, 60, "light", 10),
        runaway(6, 3, 60, "pro", 5, "weekend night"),
        spike(6, 10, 30, "original", 0.4, sudden=True),
        spike(7, 9, 60, "light", 0.15, "created in it, mild"),
        runaway(7, 14, 60, "original", 5),
        window(START, at(8, 0), "big customer: acme 50% of jobs"),
        *weekends(8),
    ),
)
_HIGH = Scenario(
    "high-4/s",
    seed=2404,
    days=2.25,
    jobs_per_hour=14400,
    steady=True,
    incidents=(
        spike(0, 3, 20, "human", 0.5, sudden=True),
        spike(0, 6, 20, "pro", 0.25, sudden=True),
        spike(0, 12, 15, "original", 0.4, sudden=True),
        spike(1, 18, 20, "light", 0.25, sudden=True),
        # Spend after two days: a spend baseline and its spread take a day each.
        runaway(2, 2, 60, "original", 5),
        runaway(2, 3.5, 30, "light", 10),
        runaway(2, 4.5, 30, "pro", 5),
    ),
)
_VERY_HIGH = Scenario(
    "very-high-11/s",
    seed=2505,
    days=0.25,
    jobs_per_hour=40000,
    steady=True,
    incidents=(
        spike(0, 1, 15, "original", 0.5, sudden=True),
        spike(0, 2, 15, "light", 0.25, sudden=True),
        spike(0, 3, 15, "pro", 0.4, sudden=True),
        spike(0, 4, 15, "human", 0.25, sudden=True),
        spike(0, 5, 15, "original", 0.25, sudden=True),
    ),
)
_SEASONS = Scenario(
    "seasons-300/h",
    seed=2606,
    days=21.25,
    jobs_per_hour=300,
    busy_hour=(9, 2.0),
    incidents=(
        creep(7, 0, "light", 2.0),
        creep(14, 12, "pro", 3.0),
        runaway(20, 21, 240, "original", 3, "Sunday night"),
        *busy_hours(21.25, 9, 2.0),
        *weekends(21.25),
    ),
)
_SPARSE_TRAP = Scenario("sparse-40/h", seed=909, days=8, jobs_per_hour=40, incidents=weekends(8))
_LAUNCH_TRAP = Scenario(
    "model-launch",
    seed=1111,
    days=8,
    incidents=(
        outage(0, 0, 4 * 24 * 60 + 9 * 60, "pro", "launched d4 09:00"),
        outage(0, 0, 3 * 24 * 60 + 12 * 60, "human", "absent from events d0-d3"),
        *weekends(8),
    ),
    launch="pro",
)

FULL: tuple[Scenario, ...] = (
    _SEASONS,  # longest first: two processes finish together
    _HIGH,
    _LOW_200,
    _LOW_120,
    _MEDIUM,
    _VERY_HIGH,
    _SPARSE_TRAP,
    _LAUNCH_TRAP,
)

# The CI set: a stratified sample in four 8-day streams judged at the marks (both incident
# kinds, every size class, busy and quiet hours, the weekend), a launched model, an outage
# and sparse traffic; a busy hour every weekday; and a busy account (5 finished jobs a
# second on its top model) whose models start failing, judged as the polling worker would.
QUICK: tuple[Scenario, ...] = (
    Scenario(
        "quick-mixed-a",
        seed=11,
        days=8,
        incidents=(
            spike(3, 14, 30, "pro", 0.6),
            spike(4, 3, 60, "original", 0.3),
            outage(4, 14, 180, "light", "outage 3 h"),
            runaway(5, 13, 60, "light", 10),
            spike(6, 12, 180, "human", 0.3),
            runaway(7, 15, 60, "pro", 3),
            *weekends(8),
        ),
        replay="marks",
    ),
    Scenario(
        "quick-mixed-b",
        seed=22,
        days=8,
        incidents=(
            spike(3, 10, 60, "light", 0.6),
            spike(4, 15, 60, "original", 0.15),
            runaway(6, 3, 180, "human", 5),
            spike(7, 3, 60, "pro", 0.3),
            runaway(7, 10, 60, "original", 5),
            *weekends(8),
        ),
        replay="marks",
    ),
    Scenario(
        "quick-busy-11/s",
        seed=55,
        days=1.25 / 24,
        jobs_per_hour=40000,
        steady=True,
        incidents=(
            spike(0, 0.5, 15, "original", 0.5, sudden=True),
            spike(0, 50 / 60, 15, "light", 0.25, sudden=True),
        ),
    ),
    Scenario(
        "quick-busy-hour",
        seed=66,
        days=8,
        busy_hour=(9, 2.0),
        incidents=(*busy_hours(8, 9, 2.0), *weekends(8)),
        replay="marks",
    ),
    Scenario(
        "quick-launch",
        seed=33,
        days=8,
        incidents=(outage(0, 0, 3 * 24 * 60 + 9 * 60, "light", "launched d3 09:00"),),
        launch="light",
        replay="marks",
    ),
    Scenario("quick-sparse-40/h", seed=44, days=8, jobs_per_hour=40, replay="marks"),
)

# The suite before it spanned volumes (README figures up to issue 12's first part): twelve
# 10-day streams at 40 to 300 jobs an hour, judged at the marks.
_CLASSIC_SPIKES = (
    (
        101,
        (
            (3, 14, 30, "pro", 0.6),
            (4, 10, 60, "original", 0.15),
            (5, 3, 180, "light", 0.3),
            (7, 15, 60, "human", 0.3),
            (8, 2, 30, "original", 0.6),
            (9, 13, 180, "light", 0.15),
        ),
    ),
    (
        202,
        (
            (3, 3, 60, "pro", 0.3),
            (4, 14, 60, "light", 0.6),
            (6, 12, 30, "original", 0.3),
            (7, 4, 180, "human", 0.6),
            (8, 16, 180, "pro", 0.15),
            (9, 11, 30, "original", 0.15),
        ),
    ),
    (
        303,
        (
            (3, 11, 180, "human", 0.15),
            (4, 1, 60, "original", 0.3),
            (5, 15, 30, "light", 0.6),
            (7, 9, 30, "pro", 0.3),
            (8, 20, 60, "pro", 0.6),
            (9, 14, 60, "original", 0.6),
        ),
    ),
)
_CLASSIC_RUNAWAYS = (
    (
        404,
        (
            (4, 14, 60, "human", 5, "early: little seasonal history"),
            (7, 14, 60, "pro", 3, ""),
            (8, 3, 180, "light", 5, ""),
            (9, 10, 60, "original", 10, ""),
        ),
    ),
    (
        505,
        (
            (6, 13, 60, "human", 5, ""),
            (7, 2, 180, "pro", 10, ""),
            (8, 15, 180, "original", 3, ""),
            (9, 9, 60, "light", 10, ""),
        ),
    ),
    (
        606,
        (
            (6, 22, 60, "light", 3, ""),
            (7, 10, 180, "human", 3, ""),
            (8, 14, 60, "original", 5, ""),
            (9, 4, 60, "pro", 5, ""),
        ),
    ),
)
CLASSIC: tuple[Scenario, ...] = (
    *(
        Scenario(
            f"spikes-{'abc'[k]}",
            seed=seed,
            days=10,
            incidents=tuple(spike(*args) for args in spikes),
            replay="marks",
        )
        for k, (seed, spikes) in enumerate(_CLASSIC_SPIKES)
    ),
    *(
        Scenario(
            f"runaways-{'abc'[k]}",
            seed=seed,
            days=10,
            incidents=tuple(runaway(*args) for args in runaways),
            replay="marks",
        )
        for k, (seed, runaways) in enumerate(_CLASSIC_RUNAWAYS)
    ),
    Scenario("plain-traffic", seed=707, days=14, replay="marks"),
    Scenario("plain-traffic-120/h", seed=808, days=10, jobs_per_hour=120, replay="marks"),
    Scenario("sparse-traffic-40/h", seed=909, days=10, jobs_per_hour=40, replay="marks"),
    Scenario(
        "new-model-events",
        seed=1010,
        days=10,
        incidents=(outage(0, 0, 4 * 24 * 60 + 9 * 60, "human", "absent from events d0-d4"),),
        replay="marks",
    ),
    Scenario(
        "model-launch",
        seed=1111,
        days=10,
        incidents=(outage(0, 0, 4 * 24 * 60 + 9 * 60, "pro", "launched d4 09:00"),),
        launch="pro",
        replay="marks",
    ),
    Scenario(
        "outages",
        seed=1212,
        days=10,
        incidents=(
            outage(7, 13, 180, "pro", "outage 3 h"),
            outage(8, 2, 240, "original", "outage 4 h"),
        ),
        replay="marks",
    ),
)


# --- running ------------------------------------------------------------------------------


@dataclass
class Peak:
    """The expected rule's strongest evaluation for an incident's model in its window."""

    zscore: float = math.nan
    value: float = math.nan
    baseline: float = math.nan
    volume: float = math.nan
    judged: int = 0  # evaluations with enough data to judge
    evaluations: int = 0


@dataclass
class Outcome:
    """How one labelled incident went."""

    labelled: Labelled
    detection: Transition | None = None
    co_alerts: list[Transition] = field(default_factory=list)
    repeats: list[Transition] = field(default_factory=list)
    paged: list[Transition] = field(default_factory=list)  # traps: false alerts it drew
    peak: Peak = field(default_factory=Peak)

    @property
    def ttd(self) -> timedelta | None:
        if self.detection is None:
            return None
        return self.detection.at - self.labelled.incident.start


@dataclass(frozen=True)
class Row:
    """One labelled incident against its bound: what the product took, what was possible.

    `jobs`: finished jobs of the group from the start to the firing (None: missed).
    `ratio`: failure rate, jobs / bound jobs; spend, minutes / bound minutes.
    `charged_ratio`: spend only, minutes / the bound on charged jobs with their charge
    delay (`Bound.charged_minutes`). `onset_ratio`: a runaway only, the exact bound on
    jobs seen as they start (`Bound.onset_minutes`) / the note's bound: above 1.5, no
    detector is expected within 1.5 times the note's bound.
    """

    scenario: str
    labelled: Labelled
    bound: Bound
    fired: datetime | None
    jobs: int | None

    @property
    def family(self) -> str:
        return "failure" if self.labelled.incident.kind == "failure_spike" else "spend"

    @property
    def size(self) -> float:
        i = self.labelled.incident
        return i.failure_rate if i.kind == "failure_spike" else i.factor

    @property
    def band(self) -> str:
        return band(self.bound.volume)

    @property
    def minutes(self) -> float | None:
        if self.fired is None:
            return None
        return (self.fired - self.labelled.incident.start).total_seconds() / 60

    @property
    def ratio(self) -> float | None:
        if self.jobs is None or self.minutes is None:
            return None
        if self.family == "failure":
            return self.jobs / self.bound.jobs if self.bound.jobs > 0 else None
        if not 0 < self.bound.minutes < math.inf:
            return None
        return self.minutes / self.bound.minutes

    @property
    def charged_ratio(self) -> float | None:
        if self.minutes is None or not 0 < self.bound.charged_minutes < math.inf:
            return None
        return self.minutes / self.bound.charged_minutes

    @property
    def onset_ratio(self) -> float | None:
        if not 0 < self.bound.minutes < math.inf or not math.isfinite(self.bound.onset_minutes):
            return None
        return self.bound.onset_minutes / self.bound.minutes

    def as_dict(self) -> dict[str, Any]:
        i = self.labelled.incident
        return {
            "scenario": self.scenario,
            "kind": self.labelled.kind,
            "model": i.model,
            "start": i.start.isoformat(),
            "note": self.labelled.note,
            "volume_per_min": _finite(self.bound.volume),
            "band": self.band,
            "p1_or_multiplier": self.size,
            "baseline": _finite(self.bound.baseline),
            "h": _finite(self.bound.h),
            "kl": _finite(self.bound.kl),
            "bound_jobs": _finite(self.bound.jobs),
            "bound_minutes": _finite(self.bound.minutes),
            "jobs": self.jobs,
            "minutes": self.minutes,
            "ratio": self.ratio,
            "charged_bound_minutes": _finite(self.bound.charged_minutes),
            "charged_ratio": self.charged_ratio,
            "onset_bound_minutes": _finite(self.bound.onset_minutes),
            "onset_ratio": self.onset_ratio,
        }


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


@dataclass
class ScenarioResult:
    """A scenario's transitions from one engine, matched against its labels."""

    scenario: Scenario
    outcomes: list[Outcome]
    false_alerts: list[Transition]
    transitions: list[Transition]
    half_failed_windows: int  # trap exercise: 15-min windows with >= half of <= 4 jobs failed
    seconds: float
    job_events_per_day: dict[date, int] = field(default_factory=dict)  # by UTC day
    cpu_seconds: float = 0.0  # of the process that generated, judged and scored it
    rows: list[Row] = field(default_factory=list)  # labelled incidents against the bound
    replay: str = ""  # how it was judged: at the marks, or polls every N s
    reference: ScenarioResult | None = None  # the same stream through `Reference`


@dataclass(frozen=True)
class Reference:
    """Another checkout of the project (`tree`, e.g. a previous commit's worktree) whose
    `bot.backtest` judges the same streams in a subprocess; `rules`: a rules file, None
    for that tree's own default rules."""

    tree: Path
    rules: Path | None = None
    label: str = "reference"


def build_stream(scenario: Scenario) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(event items oldest first, summary body) for a scenario, as the API would serve them."""
    end = scenario.end
    sim = Simulator(
        start=START,
        clock=ManualClock(end),
        seed=scenario.seed,
        jobs_per_hour=scenario.jobs_per_hour,
        incidents=[lab.incident for lab in scenario.incidents if lab.simulated],
        events_per_second=scenario.events_per_second if scenario.steady else None,
        busy_hour=scenario.busy_hour,
        customer_shares=dict(scenario.customer_shares),
    )
    events = sim.events_until(end)
    summary = sim.summary(SUMMARY_DAYS)
    if scenario.launch is not None:
        first = min(
            (e["created_at"] for e in events if e["model"] == scenario.launch), default=None
        )
        _hide_before(summary, scenario.launch, first[:10] if first else summary["end_date"])
    return events, summary


def _hide_before(summary: dict[str, Any], model: str, first_date: str) -> None:
    """Drop `model` from the summary's daily rows before `first_date` (its launch)."""
    figures = ("total_jobs", "completed_jobs", "failed_jobs", "credits_used")
    for day in summary["daily"]:
        if day["date"] >= first_date:
            continue
        kept = []
        for row in day["by_model"]:
            if row["model"] != model:
                kept.append(row)
                continue
            for name in figures:
                day[name] -= row[name]
                summary[name] -= row[name]
        day["by_model"] = kept
        day["credits_used"] = round(day["credits_used"], 2)
    summary["credits_used"] = round(summary["credits_used"], 2)
    for row in summary["by_model"]:
        if row["model"] == model:  # the period's total: recount from the kept daily rows
            for name in figures:
                row[name] = sum(
                    r[name] for d in summary["daily"] for r in d["by_model"] if r["model"] == model
                )
            row["credits_used"] = round(row["credits_used"], 2)


def run_scenario(
    scenario: Scenario,
    rules: Sequence[Rule] | None = None,
    reference: Reference | None = None,
) -> ScenarioResult:
    """Generate, backtest and score one scenario (and replay it through `reference`)."""
    began, cpu = time.perf_counter(), time.process_time()
    rules = tuple(rules or default_rules())
    events, summary = build_stream(scenario)
    lines = [json.dumps(e) for e in events]
    recording = backtest.load(rules, lines, summary)
    transitions = backtest.run(recording, poll_every=scenario.poll)
    by_name = {r.name: r for r in rules}
    outcomes, false_alerts = match(scenario, transitions, by_name)
    for outcome in outcomes:
        outcome.peak = _peak(recording, outcome.labelled, by_name)
    del recording
    traffic = Traffic(events, summary, START)
    bounds = _bounds(scenario, traffic, by_name)
    result = ScenarioResult(
        scenario,
        outcomes,
        false_alerts,
        transitions,
        _half_failed_windows(events),
        time.perf_counter() - began,
        _job_events_per_day(events),
        time.process_time() - cpu,
        _rows(scenario, outcomes, bounds, traffic),
        "5-minute marks" if scenario.poll is None else f"polls every {scenario.poll:.3g} s",
    )
    del events
    if reference is not None:
        result.reference = _run_reference(scenario, reference, lines, summary, bounds, traffic)
    return result


def _bounds(scenario: Scenario, traffic: Traffic, rules: Mapping[str, Rule]) -> list[Bound]:
    """The bound of each labelled incident (traps: none), in label order."""
    out = []
    for lab in scenario.incidents:
        i = lab.incident
        if lab.rule is None:
            out.append(Bound(math.nan, math.nan, math.nan, math.nan, math.nan, math.nan))
        elif i.kind == "failure_spike":
            rule = rules.get(lab.rule)
            budget = rule.false_alerts if rule is not None else BUDGET
            out.append(failure_bound(traffic, i, budget, scenario.pace))
        else:
            others = [lab.incident for lab in scenario.incidents if lab.simulated]
            out.append(
                spend_bound(traffic, i, scenario.pace, steady=scenario.steady, others=others)
            )
    return out


def _rows(
    scenario: Scenario, outcomes: Sequence[Outcome], bounds: Sequence[Bound], traffic: Traffic
) -> list[Row]:
    rows = []
    for outcome, bound in zip(outcomes, bounds, strict=True):
        lab = outcome.labelled
        if lab.rule is None:
            continue
        fired = outcome.detection.at if outcome.detection is not None else None
        jobs = None
        if fired is not None:
            jobs = traffic.count(
                lab.incident.model or "", lab.incident.start.timestamp(), fired.timestamp()
            )
        rows.append(Row(scenario.name, lab, bound, fired, jobs))
    return rows


def _run_reference(
    scenario: Scenario,
    reference: Reference,
    lines: Sequence[str],
    summary: Mapping[str, Any],
    bounds: Sequence[Bound],
    traffic: Traffic,
) -> ScenarioResult:
    """The same events through `reference.tree`'s backtest (bot/standins/reference.py)."""
    began = time.perf_counter()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory(prefix="scenario-ref-") as folder:
        base = Path(folder)
        (base / "events.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (base / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
        spec = {
            "events": str(base / "events.jsonl"),
            "summary": str(base / "summary.json"),
            "poll": scenario.poll,
            "rules": None if reference.rules is None else str(reference.rules),
        }
        (base / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": str(reference.tree)}
        runner = Path(__file__).with_name("reference.py")
        done = subprocess.run(
            [sys.executable, "-P", str(runner), str(base / "spec.json")],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    if done.returncode != 0:
        raise RuntimeError(f"{reference.label} failed on {scenario.name}:\n{done.stderr}")
    head, *rest = done.stdout.splitlines()
    meta = json.loads(head)
    if Path(meta["bot"]) != (reference.tree / "bot").resolve():
        raise RuntimeError(f"{reference.label} imported {meta['bot']}, not {reference.tree}")
    rules = {
        r["name"]: Rule(
            name=r["name"],
            metric="spend",
            source=r["source"],
            bucket=r["bucket"],
            group_by=tuple(r["group_by"]),
        )
        for r in meta["rules"]
    }
    transitions = [_transition(json.loads(line)) for line in rest if line.strip()]
    outcomes, false_alerts = match(scenario, transitions, rules)
    return ScenarioResult(
        scenario,
        outcomes,
        false_alerts,
        transitions,
        0,
        time.perf_counter() - began,
        cpu_seconds=cpu,
        rows=_rows(scenario, outcomes, bounds, traffic),
        replay=meta["replay"],
    )


def _transition(item: Mapping[str, Any]) -> Transition:
    """A transition as reference.py prints it (the figures matching and printing read)."""
    moment = datetime.fromisoformat(item["at"])
    return Transition(
        rule=item["rule"],
        group=tuple(item["group"]),
        group_by=tuple(item["group_by"]),
        state=item["state"],
        at=moment,
        value=float(item["value"]),
        baseline=float(item["baseline"]),
        zscore=float(item["zscore"]),
        volume=float(item["volume"]),
        since=None,
        peak_zscore=float(item["zscore"]),
        peak_value=float(item["value"]),
    )


def match(
    scenario: Scenario, transitions: Iterable[Transition], rules: Mapping[str, Rule]
) -> tuple[list[Outcome], list[Transition]]:
    """Sort each firing into detection, repeat, co-alert or false alert (module docstring)."""
    outcomes = [Outcome(lab) for lab in scenario.incidents]
    expecting = [o for o in outcomes if o.labelled.rule is not None]
    leftover: list[Transition] = []
    for t in (t for t in transitions if t.state == FIRING):
        model = t.key.get("model")
        reach = timedelta(seconds=bucket_seconds(rules[t.rule]))
        live = [
            o
            for o in expecting
            if o.labelled.incident.start <= t.at <= o.labelled.incident.end + reach
        ]
        mine = [o for o in live if o.labelled.rule == t.rule and model == o.labelled.incident.model]
        if mine:
            outcome = mine[0]
            if outcome.detection is None:
                outcome.detection = t
            else:
                outcome.repeats.append(t)
            continue
        related = [o for o in live if model in (None, o.labelled.incident.model)]
        if related:
            related[0].co_alerts.append(t)
            continue
        leftover.append(t)
        for trap in (o for o in outcomes if o.labelled.rule is None):
            i = trap.labelled.incident
            if i.start <= t.at <= i.end + reach and (i.model is None or model in (None, i.model)):
                trap.paged.append(t)
    return outcomes, leftover


def _peak(recording: backtest.Recording, labelled: Labelled, rules: dict[str, Rule]) -> Peak:
    """The expected rule's evaluations over the detection window: evidence for a miss."""
    rule = rules.get(labelled.rule or "")
    if rule is None:
        return Peak()
    incident = labelled.incident
    until = incident.end + timedelta(seconds=bucket_seconds(rule))
    since = incident.start - timedelta(seconds=1)
    evaluations = [
        ev for ev in recording.engine.evaluate(rule, since, until) if ev.group == (incident.model,)
    ]
    peak = Peak(evaluations=len(evaluations), judged=sum(ev.judged for ev in evaluations))
    # Judged evaluations are the ones that could page; an unjudged high z (too few jobs)
    # only counts when nothing was judged.
    finite = [ev for ev in evaluations if ev.judged and math.isfinite(ev.zscore)] or [
        ev for ev in evaluations if math.isfinite(ev.zscore)
    ]
    if finite:
        best = max(finite, key=lambda ev: ev.zscore)
        peak.zscore, peak.value, peak.baseline = best.zscore, best.value, best.baseline
        peak.volume = best.volume
    return peak


def _job_events_per_day(events: Iterable[dict[str, Any]]) -> dict[date, int]:
    """Events of jobs in the stream by UTC day of created_at: the traffic each day had."""
    counts = Counter(date.fromisoformat(e["created_at"][:10]) for e in events if e.get("job_id"))
    return dict(sorted(counts.items()))


def _half_failed_windows(
    events: Iterable[dict[str, Any]], bucket: int = 900, step: int = 300
) -> int:
    """Per-model 15-min windows where at least half of at most 4 finished jobs failed.

    Shows that the "1 failed job out of 2" trap actually occurred in the stream.
    """
    counts: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for item in events:
        if item["status"] not in ("failed", "completed"):
            continue
        slot = int(datetime.fromisoformat(item["created_at"]).timestamp()) // step
        row = counts[(item["model"], slot)]
        row[0] += 1
        row[1] += item["status"] == "failed"
    per = bucket // step
    found = 0
    for model, slot in {(m, s + k) for (m, s) in counts for k in range(per)}:
        finished = failed = 0
        for k in range(per):
            seen = counts.get((model, slot - k))
            if seen:
                finished += seen[0]
                failed += seen[1]
        if 0 < finished <= 4 and 2 * failed >= finished:
            found += 1
    return found


def run_suite(
    scenarios: Sequence[Scenario],
    workers: int | None = None,
    rules: Sequence[Rule] | None = None,
    reference: Reference | None = None,
) -> list[ScenarioResult]:
    """Run scenarios in parallel processes (generation is pure Python), in input order."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(scenarios)))
    run = partial(run_scenario, rules=tuple(rules or default_rules()), reference=reference)
    if workers == 1:
        return [run(s) for s in scenarios]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, scenarios))


# --- reporting ----------------------------------------------------------------------------


@dataclass
class KindFigures:
    """Detection figures for one kind of incident."""

    incidents: int
    detected: int
    within_two_buckets: int
    ttd_minutes: list[float]

    @property
    def recall(self) -> float:
        return self.detected / self.incidents if self.incidents else math.nan

    @property
    def median_ttd(self) -> float:
        return statistics.median(self.ttd_minutes) if self.ttd_minutes else math.nan

    @property
    def max_ttd(self) -> float:
        return max(self.ttd_minutes) if self.ttd_minutes else math.nan


@dataclass
class Report:
    """The suite's figures: what the tests assert and the table prints."""

    results: list[ScenarioResult]
    kinds: dict[str, KindFigures]
    overall: KindFigures
    days: float
    false_alerts: int
    co_alerts: int
    repeats: int
    late: list[tuple[ScenarioResult, Outcome]]  # detected after more than two buckets
    missed: list[tuple[ScenarioResult, Outcome]]
    rules: tuple[Rule, ...] = ()

    @property
    def false_per_30_days(self) -> float:
        return 30 * self.false_alerts / self.days if self.days else math.nan

    @property
    def rows(self) -> list[Row]:
        return [row for r in self.results for row in r.rows]

    @property
    def traps(self) -> list[Outcome]:
        return [o for r in self.results for o in r.outcomes if o.labelled.rule is None]


def report(results: Sequence[ScenarioResult], rules: Sequence[Rule] | None = None) -> Report:
    """Aggregate scenario results into per-kind and overall figures."""
    rules = tuple(rules or default_rules())
    by_name = {r.name: r for r in rules}
    kinds: dict[str, KindFigures] = {}
    overall = KindFigures(0, 0, 0, [])
    late: list[tuple[ScenarioResult, Outcome]] = []
    missed: list[tuple[ScenarioResult, Outcome]] = []
    co = repeats = 0
    for result in results:
        for outcome in result.outcomes:
            co += len(outcome.co_alerts)
            repeats += len(outcome.repeats)
            rule_name = outcome.labelled.rule
            if rule_name is None:
                continue
            figures = kinds.setdefault(outcome.labelled.kind, KindFigures(0, 0, 0, []))
            ttd = outcome.ttd
            rule = by_name.get(rule_name)
            limit = timedelta(seconds=2 * bucket_seconds(rule) if rule else 0)
            for target in (figures, overall):
                target.incidents += 1
                if ttd is not None:
                    target.detected += 1
                    target.ttd_minutes.append(ttd.total_seconds() / 60)
                    target.within_two_buckets += ttd <= limit
            if ttd is None:
                missed.append((result, outcome))
            elif ttd > limit:
                late.append((result, outcome))
    return Report(
        results=list(results),
        kinds=kinds,
        overall=overall,
        days=sum(r.scenario.days for r in results),
        false_alerts=sum(len(r.false_alerts) for r in results),
        co_alerts=co,
        repeats=repeats,
        late=late,
        missed=missed,
        rules=rules,
    )


def when(t: datetime) -> str:
    day = (t - START).days
    return f"d{day} {t:%a %H:%M}"


def describe(t: Transition) -> str:
    group = ",".join(f"{k}={v}" for k, v in t.key.items()) or "account"
    return (
        f"{t.rule}[{group}] {t.state} at {when(t.at)}: value {t.value:.4g}, "
        f"baseline {t.baseline:.4g}, z {t.zscore:.1f}, volume {t.volume:.4g}"
    )


def false_alert_lines(rep: Report) -> list[str]:
    """One line per false alert: scenario and the transition's figures."""
    return [f"{r.scenario.name}: {describe(t)}" for r in rep.results for t in r.false_alerts]


def problem_lines(rep: Report) -> list[str]:
    """One line per missed or late incident with the evidence: the expected rule's peak
    evaluation in the window, how many evaluations had enough data to judge, and the
    expected rule's transitions for that model from one bucket before the start to four
    after the end."""
    rules = {r.name: r for r in rep.rules}
    lines = []
    for tag, pairs in (("MISSED", rep.missed), ("LATE", rep.late)):
        for result, o in pairs:
            i, p = o.labelled.incident, o.peak
            ttd = o.ttd
            after = "" if ttd is None else f" after {ttd.total_seconds() / 60:.0f} min"
            peak = (
                f"; {o.labelled.rule} peak z {p.zscore:.2f} (value {p.value:.4g} vs baseline "
                f"{p.baseline:.4g}, volume {p.volume:.4g}), judged {p.judged} of "
                f"{p.evaluations} evaluations"
                if p.evaluations
                else ""  # a reference engine's evaluations are not at hand
            )
            lines.append(
                f"{tag}{after}: {result.scenario.name} {i.model} {o.labelled.kind} "
                f"{o.labelled.size} for {(i.end - i.start).total_seconds() / 60:.0f} min at "
                f"{when(i.start)}{peak}"
            )
            rule = rules.get(o.labelled.rule or "")
            bucket = timedelta(seconds=bucket_seconds(rule) if rule else 0)
            near = [
                t
                for t in result.transitions
                if t.rule == o.labelled.rule
                and t.key.get("model") == i.model
                and i.start - bucket <= t.at <= i.end + 4 * bucket
            ]
            lines.extend(f"    {describe(t)}" for t in near)
            if not near:
                lines.append(f"    no {o.labelled.rule} transition for {i.model} near it")
    return lines


def reference_report(results: Sequence[ScenarioResult]) -> Report | None:
    """The reference engine's report over the same streams, if it ran."""
    refs = [r.reference for r in results if r.reference is not None]
    if not refs:
        return None
    names = {t.rule for r in refs for t in r.transitions} | {
        lab.rule for r in refs for lab in r.scenario.incidents if lab.rule
    }
    buckets = {r.name: r for r in default_rules()}
    rules = tuple(buckets.get(n) or Rule(name=n, metric="spend") for n in sorted(names))
    return report(refs, rules)


def band_medians(rows: Iterable[Row]) -> list[dict[str, Any]]:
    """Per family (failure, spend) and volume band: incidents, detected, the median
    ratio to the bound and the median minutes to detect."""
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in rows:
        groups[(row.family, row.band)].append(row)
    order = {name: k for k, (name, _) in enumerate(BANDS)}
    out = []
    for (family, name), found in sorted(groups.items(), key=lambda kv: (kv[0][0], order[kv[0][1]])):
        ratios = [r.ratio for r in found if r.ratio is not None]
        charged = [r.charged_ratio for r in found if r.charged_ratio is not None]
        minutes = [r.minutes for r in found if r.minutes is not None]
        out.append(
            {
                "family": family,
                "band": name,
                "incidents": len(found),
                "detected": len(minutes),
                "median_ratio": statistics.median(ratios) if ratios else None,
                "median_charged_ratio": statistics.median(charged) if charged else None,
                "median_minutes": statistics.median(minutes) if minutes else None,
                "median_bound_minutes": _finite(
                    statistics.median(
                        [r.bound.minutes for r in found if math.isfinite(r.bound.minutes)]
                        or [math.nan]
                    )
                ),
            }
        )
    return out


def targets(rep: Report) -> list[tuple[str, str, bool | None]]:
    """Issue 12's targets on this report: (what, measured, met)."""
    rows = rep.rows
    out: list[tuple[str, str, bool | None]] = []
    quiet = [o for o in rep.traps if not o.paged]
    out.append(
        (
            "recall 1.0",
            f"{rep.overall.recall:.2f} ({rep.overall.detected} of {rep.overall.incidents})",
            rep.overall.detected == rep.overall.incidents,
        )
    )
    out.append(
        (
            "<= 0.5 false alerts per 30 days, every trap quiet",
            f"{rep.false_per_30_days:.2f} ({rep.false_alerts} in {rep.days:.1f} days); "
            f"traps quiet {len(quiet)} of {len(rep.traps)}",
            rep.false_per_30_days <= 0.5 and len(quiet) == len(rep.traps),
        )
    )
    bounded = [r for r in rows if r.ratio is not None]
    within = [r for r in bounded if r.ratio is not None and r.ratio <= 1.5]
    out.append(
        (
            "each incident within 1.5x of its bound",
            f"{len(within)} of {len(rows)} (detected with a finite bound: {len(bounded)})",
            len(within) == len(rows),
        )
    )
    spend = [r for r in rows if r.family == "spend"]
    near = [r for r in spend if r.charged_ratio is not None and r.charged_ratio <= 1.5]
    out.append(
        (
            "spend within 1.5x of the bound on charged jobs (with their charge delay)",
            f"{len(near)} of {len(spend)}",
            None,
        )
    )
    steps = [r for r in spend if not r.labelled.incident.ramp_hours]
    beyond = [r for r in steps if r.onset_ratio is not None and r.onset_ratio > 1.5]
    out.append(
        (
            "spend runaways whose note bound no detector is expected within 1.5x of (the "
            "exact bound on jobs seen as they start is over 1.5x it)",
            f"{len(beyond)} of {len(steps)}",
            None,
        )
    )
    busy = [
        r.minutes
        for r in rows
        if r.family == "failure" and r.bound.volume >= 60 and r.minutes is not None
    ]
    busy_all = [r for r in rows if r.family == "failure" and r.bound.volume >= 60]
    if busy_all:
        median = statistics.median(busy) if len(busy) == len(busy_all) else math.inf
        out.append(
            (
                "median failure-spike TTD <= 2 min at >= 1 job/s",
                f"{median:.1f} min over {len(busy_all)} ({len(busy_all) - len(busy)} missed)",
                median <= 2,
            )
        )
    quiet_rows = [r for r in rows if r.family == "failure" and r.bound.volume < 60]
    if quiet_rows:
        found = [r.minutes for r in quiet_rows if r.minutes is not None]
        out.append(
            (
                "median failure-spike TTD below 1 job/s (no worse than before)",
                f"{statistics.median(found):.1f} min over {len(found)} detected"
                if found
                else "none detected",
                None,
            )
        )
    steps = [r for r in rows if r.labelled.kind == "spend_runaway" and r.size >= 5]
    if steps:
        fast = [r for r in steps if r.minutes is not None and r.minutes <= 15]
        out.append(
            (
                "spend spikes >= 5x within 15 min",
                f"{len(fast)} of {len(steps)}",
                len(fast) == len(steps),
            )
        )
    for r in (r for r in rows if r.labelled.kind == "spend_creep"):
        out.append(
            (
                f"{r.size:g}x creep over {r.labelled.incident.ramp_hours:g} h within 24 h",
                "missed" if r.minutes is None else f"{r.minutes / 60:.1f} h",
                r.minutes is not None and r.minutes <= 24 * 60,
            )
        )
    for r in (r for r in rows if "Sunday" in r.labelled.note):
        out.append(
            (
                f"the Sunday-night {r.size:g}x caught",
                "missed" if r.minutes is None else f"after {r.minutes:.0f} min",
                r.minutes is not None,
            )
        )
    return out
