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
- false alert: any other firing.

`report` aggregates recall, false alerts per 30 simulated days, median and max TTD, per
incident kind. `bench/scenarios.py` prints the full table; tests/test_scenarios.py holds
the floors on the reduced `QUICK` set. A stand-in for real traffic, shared by both.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

from bot import backtest
from bot.models import FIRING, Rule, Transition
from bot.rules import default_rules_text, parse_rules
from bot.standins.simulator import Incident, ManualClock, Simulator

__all__ = [
    "FULL",
    "QUICK",
    "START",
    "KindFigures",
    "Labelled",
    "Outcome",
    "Peak",
    "Report",
    "Scenario",
    "ScenarioResult",
    "at",
    "bucket_seconds",
    "build_stream",
    "default_rules",
    "describe",
    "false_alert_lines",
    "match",
    "outage",
    "problem_lines",
    "report",
    "run_scenario",
    "run_suite",
    "runaway",
    "spike",
    "when",
]

# A Monday: days 5 and 6 are a weekend and day 7 is the busy Monday after it.
START = datetime(2026, 11, 2, tzinfo=UTC)
DAY = 86400
SUMMARY_DAYS = 90  # so failure-rate baselines have daily history before the events start
FAILURE_RULE = "failed-job-rate"
SPEND_RULE = "spend-per-model"


def default_rules() -> tuple[Rule, ...]:
    """The rules shipped in the package: what a fresh deployment pages on."""
    return parse_rules(default_rules_text()).rules


def bucket_seconds(rule: Rule) -> int:
    """The span one evaluation of `rule` judges (summary rules judge whole days)."""
    return DAY if rule.source == "summary" else int(rule.bucket)


# --- labels -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Labelled:
    """An incident and what should page for it.

    `rule` None marks a benign trap (e.g. an outage, or a model's first appearance): no
    rule is expected, and any firing it causes is a false alert.
    """

    incident: Incident
    rule: str | None
    note: str = ""

    @property
    def kind(self) -> str:
        if self.rule is None:
            return f"trap: {self.note or self.incident.kind}"
        return self.incident.kind

    @property
    def size(self) -> str:
        i = self.incident
        if i.kind == "failure_spike":
            return f"rate {i.failure_rate:g}"
        if i.kind == "spend_runaway":
            return f"x{i.factor:g}"
        return "no jobs"


@dataclass(frozen=True)
class Scenario:
    """One seeded stream (days of events from START) and its labelled incidents.

    `launch`: a model whose events only start later (cover its first days with an outage
    labelled as a trap) and which is also absent from the daily summary before then, as
    for a model released during the run.
    """

    name: str
    seed: int
    days: int
    jobs_per_hour: float = 300.0
    incidents: tuple[Labelled, ...] = ()
    launch: str | None = None

    @property
    def end(self) -> datetime:
        return START + timedelta(days=self.days)


def at(day: int, hour: float) -> datetime:
    """Day `day` of the run (0 = START, a Monday) at `hour` UTC."""
    return START + timedelta(days=day, hours=hour)


def spike(day: int, hour: float, minutes: int, model: str, rate: float, note: str = "") -> Labelled:
    """A failure spike that failed-job-rate should page on for `model`."""
    start = at(day, hour)
    incident = Incident(
        "failure_spike",
        start,
        start + timedelta(minutes=minutes),
        model=model,
        failure_rate=rate,
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


def outage(day: int, hour: float, minutes: int, model: str, note: str) -> Labelled:
    """A benign trap: `model` sees no jobs at all for a while."""
    start = at(day, hour)
    incident = Incident("outage", start, start + timedelta(minutes=minutes), model=model)
    return Labelled(incident, None, note)


# --- the labelled set ---------------------------------------------------------------------

# Failure spikes: rates 0.15 / 0.3 / 0.6, lengths 30 min / 1 h / 3 h, every model, busy
# afternoons and quiet nights, weekdays and the weekend.
_SPIKES_A = Scenario(
    "spikes-a",
    seed=101,
    days=10,
    incidents=(
        spike(3, 14, 30, "pro", 0.6),
        spike(4, 10, 60, "original", 0.15),
        spike(5, 3, 180, "light", 0.3),
        spike(7, 15, 60, "human", 0.3),
        spike(8, 2, 30, "original", 0.6),
        spike(9, 13, 180, "light", 0.15),
    ),
)
_SPIKES_B = Scenario(
    "spikes-b",
    seed=202,
    days=10,
    incidents=(
        spike(3, 3, 60, "pro", 0.3),
        spike(4, 14, 60, "light", 0.6),
        spike(6, 12, 30, "original", 0.3),
        spike(7, 4, 180, "human", 0.6),
        spike(8, 16, 180, "pro", 0.15),
        spike(9, 11, 30, "original", 0.15),
    ),
)
_SPIKES_C = Scenario(
    "spikes-c",
    seed=303,
    days=10,
    incidents=(
        spike(3, 11, 180, "human", 0.15),
        spike(4, 1, 60, "original", 0.3),
        spike(5, 15, 30, "light", 0.6),
        spike(7, 9, 30, "pro", 0.3),
        spike(8, 20, 60, "pro", 0.6),
        spike(9, 14, 60, "original", 0.6),
    ),
)
# Spend runaways: factors 3 / 5 / 10, 1 h and 3 h, every model; one on day 4, before the
# hour-of-day baseline has much history, the rest from day 6 on.
_RUNAWAYS_A = Scenario(
    "runaways-a",
    seed=404,
    days=10,
    incidents=(
        runaway(4, 14, 60, "human", 5, "early: little seasonal history"),
        runaway(7, 14, 60, "pro", 3),
        runaway(8, 3, 180, "light", 5),
        runaway(9, 10, 60, "original", 10),
    ),
)
_RUNAWAYS_B = Scenario(
    "runaways-b",
    seed=505,
    days=10,
    incidents=(
        runaway(6, 13, 60, "human", 5),
        runaway(7, 2, 180, "pro", 10),
        runaway(8, 15, 180, "original", 3),
        runaway(9, 9, 60, "light", 10),
    ),
)
_RUNAWAYS_C = Scenario(
    "runaways-c",
    seed=606,
    days=10,
    incidents=(
        runaway(6, 22, 60, "light", 3),
        runaway(7, 10, 180, "human", 3),
        runaway(8, 14, 60, "original", 5),
        runaway(9, 4, 60, "pro", 5),
    ),
)
# Benign traps.
_PLAIN = Scenario("plain-traffic", seed=707, days=14)
_PLAIN_LOW = Scenario("plain-traffic-120/h", seed=808, days=10, jobs_per_hour=120)
_SPARSE = Scenario("sparse-traffic-40/h", seed=909, days=10, jobs_per_hour=40)
_NEW_MODEL = Scenario(
    "new-model-events",
    seed=1010,
    days=10,
    incidents=(outage(0, 0, 4 * 24 * 60 + 9 * 60, "human", "absent from events d0-d4"),),
)
_LAUNCH = Scenario(
    "model-launch",
    seed=1111,
    days=10,
    incidents=(outage(0, 0, 4 * 24 * 60 + 9 * 60, "pro", "launched d4 09:00"),),
    launch="pro",
)
_OUTAGES = Scenario(
    "outages",
    seed=1212,
    days=10,
    incidents=(
        outage(7, 13, 180, "pro", "outage 3 h"),
        outage(8, 2, 240, "original", "outage 4 h"),
    ),
)

FULL: tuple[Scenario, ...] = (
    _SPIKES_A,
    _SPIKES_B,
    _SPIKES_C,
    _RUNAWAYS_A,
    _RUNAWAYS_B,
    _RUNAWAYS_C,
    _PLAIN,
    _PLAIN_LOW,
    _SPARSE,
    _NEW_MODEL,
    _LAUNCH,
    _OUTAGES,
)

# The CI set: a stratified sample of FULL in four 8-day streams (both incident kinds, every
# size class, busy and quiet hours, the weekend), a launched model, an outage and sparse
# traffic. About 30 s on 2 CPUs.
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
        ),
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
        ),
    ),
    Scenario(
        "quick-launch",
        seed=33,
        days=8,
        incidents=(outage(0, 0, 3 * 24 * 60 + 9 * 60, "light", "launched d3 09:00"),),
        launch="light",
    ),
    Scenario("quick-sparse-40/h", seed=44, days=8, jobs_per_hour=40),
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


@dataclass
class ScenarioResult:
    """A scenario's transitions, matched against its labels."""

    scenario: Scenario
    outcomes: list[Outcome]
    false_alerts: list[Transition]
    transitions: list[Transition]
    half_failed_windows: int  # trap exercise: 15-min windows with >= half of <= 4 jobs failed
    seconds: float
    job_events_per_day: dict[date, int] = field(default_factory=dict)  # by UTC day


def build_stream(scenario: Scenario) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(event items oldest first, summary body) for a scenario, as the API would serve them."""
    end = scenario.end
    sim = Simulator(
        start=START,
        clock=ManualClock(end),
        seed=scenario.seed,
        jobs_per_hour=scenario.jobs_per_hour,
        incidents=[lab.incident for lab in scenario.incidents],
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


def run_scenario(scenario: Scenario, rules: Sequence[Rule] | None = None) -> ScenarioResult:
    """Generate, backtest and score one scenario."""
    began = time.perf_counter()
    rules = tuple(rules or default_rules())
    events, summary = build_stream(scenario)
    lines = [json.dumps(e) for e in events]
    recording = backtest.load(rules, lines, summary)
    transitions = backtest.run(recording)
    by_name = {r.name: r for r in rules}
    outcomes, false_alerts = match(scenario, transitions, by_name)
    for outcome in outcomes:
        outcome.peak = _peak(recording, outcome.labelled, by_name)
    half_failed = _half_failed_windows(events)
    return ScenarioResult(
        scenario,
        outcomes,
        false_alerts,
        transitions,
        half_failed,
        time.perf_counter() - began,
        _job_events_per_day(events),
    )


def match(
    scenario: Scenario, transitions: Iterable[Transition], rules: dict[str, Rule]
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
            if i.start <= t.at <= i.end + reach and model in (None, i.model):
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
) -> list[ScenarioResult]:
    """Run scenarios in parallel processes (generation is pure Python), in input order."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(scenarios)))
    run = partial(run_scenario, rules=tuple(rules or default_rules()))
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
    days: int
    false_alerts: int
    co_alerts: int
    repeats: int
    late: list[tuple[ScenarioResult, Outcome]]  # detected after more than two buckets
    missed: list[tuple[ScenarioResult, Outcome]]
    rules: tuple[Rule, ...] = ()

    @property
    def false_per_30_days(self) -> float:
        return 30 * self.false_alerts / self.days if self.days else math.nan


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
            lines.append(
                f"{tag}{after}: {result.scenario.name} {i.model} {o.labelled.kind} "
                f"{o.labelled.size} for {(i.end - i.start).total_seconds() / 60:.0f} min at "
                f"{when(i.start)}; {o.labelled.rule} peak z {p.zscore:.2f} (value "
                f"{p.value:.4g} vs baseline {p.baseline:.4g}, volume {p.volume:.4g}), judged "
                f"{p.judged} of {p.evaluations} evaluations"
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
