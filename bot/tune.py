"""`usage-bot tune RULE`: what the feedback on a rule's alerts says about its thresholds.

The stored events (and daily summary) are judged again by the worker's own engine
(`backtest.judge`, a `monitor.Monitor`) with the rule's thresholds set a little lower and
higher: its `z`, and for a rule with the evidence test its `false_alerts` budget. Each
replay's firing episodes are matched to the episodes people marked expected or noise
(same group, overlapping time), and the setting nearest the rule's own that keeps every
expected alert and drops every noisy one is suggested. A suggestion only: nothing is
changed, rules.yaml stays the user's to edit.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal

from bot.backtest import judge
from bot.engine import Engine
from bot.metrics import EventBatch
from bot.models import (
    EXPECTED,
    FIRING,
    NOISE,
    RESOLVED,
    DailyUsage,
    Episode,
    Gap,
    Rule,
    Transition,
)
from bot.store import Store

DEFAULT_DAYS = 7
DAILY_DAYS = 120  # daily summary rows loaded before the span (as the worker does)


def has_evidence_test(rule: Rule) -> bool:
    """Whether the engine weighs the rule's `false_alerts`: the evidence test judges an
    events failure rate watching a rise, nothing else (`Engine._judge_all`, `_freeze`;
    rules.yaml takes `false_alerts` on events failure rates only)."""
    return rule.source == "events" and rule.metric == "failure_rate" and rule.direction == "up"


def _always(rule: Rule) -> bool:
    return True


@dataclass(frozen=True)
class Knob:
    """A threshold of a rule that `tune` varies.

    The values tried are the rule's own and, for an "offset" knob, the rule's own plus
    each step, for a "factor" knob the rule's own times each step; none outside
    [floor, ceiling]. `unit` is one step of distance from the rule's own (what
    `Tuning.suggestion` weighs): that much added or taken away for an offset knob, that
    factor up or down for a factor knob. `alerts_more` says which way of the knob the
    rule alerts more (a tie of distance leans that way: it misses less). `applies` says
    for which rules the knob changes anything.
    """

    field: str
    kind: Literal["offset", "factor"]
    steps: tuple[float, ...]
    unit: float
    floor: float
    ceiling: float = math.inf
    alerts_more: Literal["lower", "higher"] = "lower"
    applies: Callable[[Rule], bool] = _always

    def values(self, rule: Rule) -> list[float]:
        own = float(getattr(rule, self.field))
        moved = (own + s if self.kind == "offset" else own * s for s in self.steps)
        tried = {_round(v, self.kind) for v in moved if self.floor <= v <= self.ceiling}
        return sorted(tried | {own})

    def distance(self, own: float, value: float) -> float:
        """How far `value` is from the rule's `own`, in steps of `unit`."""
        if self.kind == "offset":
            return abs(value - own) / self.unit
        return abs(math.log(value / own)) / math.log(self.unit)

    def leaning(self, value: float) -> float:
        """Sorts the values that alert more first."""
        return value if self.alerts_more == "lower" else -value


def _round(value: float, kind: str) -> float:
    # An offset to the thousandth (z 3.5); a factor to 3 significant digits (0.005).
    return round(value, 3) if kind == "offset" else float(f"{value:.3g}")


# The rule's z, a little lower (what would it have caught?) and higher (what noise would
# go?), in steps of half a sigma. The evidence test's budget (false alerts per 30 days) a
# tenth and a hundredth of the rule's own (what noise would the evidence test drop?) and
# ten times it (what would it have caught?), no more than rules.yaml takes (30). Its
# threshold is h = ln(K N0 G / false_alerts) nats, about 16 for a model at 1,500 jobs an
# hour: each factor of ten moves h by ln 10 = 2.3 nats, about a seventh of it (the steps
# of z move the z threshold by an eighth to a half). Distance: a factor of ten in
# false_alerts counts as much as half a sigma of z, both about a tenfold change in how
# often ordinary traffic alerts (the budget is that rate; a normal tail falls about
# tenfold per half sigma near z = 4). The settings tried are every combination of the
# knobs' values, 6 x 4 replays, judged by one engine holding the events once (`tune`).
Z = Knob("z", "offset", (-1.0, -0.5, 0.5, 1.0, 2.0), unit=0.5, floor=0.5)
FALSE_ALERTS = Knob(
    "false_alerts",
    "factor",
    (0.01, 0.1, 10.0),
    unit=10.0,
    floor=0.0,
    ceiling=30.0,
    alerts_more="higher",
    applies=has_evidence_test,
)
KNOBS: tuple[Knob, ...] = (Z, FALSE_ALERTS)

Setting = tuple[tuple[str, float], ...]  # (("z", 4.5), ("false_alerts", 0.5)): per knob


def knobs_for(rule: Rule) -> tuple[Knob, ...]:
    """The knobs that change anything for `rule`: z always, false_alerts where the
    evidence test judges the rule."""
    return tuple(k for k in KNOBS if k.applies(rule))


@dataclass(frozen=True)
class Span:
    """An episode in data time: a group firing from `start` to `end`."""

    group: tuple[str, ...]
    start: datetime
    end: datetime

    def overlaps(self, other: Span) -> bool:
        return self.group == other.group and self.start <= other.end and other.start <= self.end


@dataclass(frozen=True)
class Trial:
    """One setting replayed: its alerts and how they meet the feedback."""

    setting: Setting
    alerts: int  # firing episodes of the replay
    expected_kept: int  # episodes marked expected that the replay still fires
    noise_dropped: int  # episodes marked noise that the replay no longer fires
    unlabelled: int  # replayed episodes that meet no marked episode


@dataclass(frozen=True)
class Tuning:
    """What `tune` found for one rule."""

    rule: Rule
    start: datetime
    end: datetime
    expected: int  # episodes marked expected in [start, end]
    noise: int  # episodes marked noise in [start, end]
    trials: tuple[Trial, ...]
    knobs: tuple[Knob, ...] = (Z,)  # what the trials vary (`tune`: `knobs_for(rule)`)

    @property
    def current(self) -> Setting:
        return tuple((k.field, float(getattr(self.rule, k.field))) for k in self.knobs)

    def is_right(self, trial: Trial) -> bool:
        """Keeps every expected alert and drops every noisy one."""
        return trial.expected_kept == self.expected and trial.noise_dropped == self.noise

    def suggestion(self) -> Trial | None:
        """The right setting nearest the rule's own (`distance`); on a tie the one whose
        replay alerted more (it misses less), then the one leaning the way each knob
        alerts more (a lower z, a higher false_alerts). None when no setting tried is
        right."""
        right = [t for t in self.trials if self.is_right(t)]
        return (
            min(right, key=lambda t: (self.distance(t), -t.alerts, self._leaning(t)))
            if right
            else None
        )

    def closest(self) -> Trial:
        """When none is right: the setting that keeps the most expected alerts, then
        drops the most noise, then is nearest the rule's own."""
        return min(
            self.trials,
            key=lambda t: (
                -t.expected_kept,
                -t.noise_dropped,
                self.distance(t),
                self._leaning(t),
            ),
        )

    def distance(self, trial: Trial) -> float:
        """Steps from the rule's own setting, summed over the knobs (`Knob.distance`):
        z in half sigmas, false_alerts in factors of ten."""
        own, knobs = dict(self.current), {k.field: k for k in self.knobs}
        return sum(knobs[name].distance(own[name], value) for name, value in trial.setting)

    def _leaning(self, trial: Trial) -> tuple[float, ...]:
        knobs = {k.field: k for k in self.knobs}
        return tuple(knobs[name].leaning(value) for name, value in trial.setting)


@dataclass(frozen=True)
class History:
    """What the store holds for a replay: what the worker's engine is built from."""

    events: EventBatch
    daily: Sequence[DailyUsage]
    final_before: date | None
    gaps: Sequence[Gap]


def tune(
    store: Store,
    rule: Rule,
    now: datetime,
    days: int = DEFAULT_DAYS,
    knobs: tuple[Knob, ...] | None = None,
) -> Tuning:
    """Replay the last `days` of stored data (ending at the newest stored event) with
    every setting of `knobs` (default: those that apply to the rule, `knobs_for`), and
    match each to the episodes marked expected or noise."""
    knobs = knobs_for(rule) if knobs is None else knobs
    end = store.newest_event_time() or now  # data time: what the events themselves say
    start = end - timedelta(days=days)
    marked = [
        e
        for e in store.episodes(start, end, rule=rule.name)
        if e.feedback is not None and e.feedback.verdict in (EXPECTED, NOISE)
    ]
    expected = [_span(e, end) for e in marked if _verdict(e) == EXPECTED]
    noise = [_span(e, end) for e in marked if _verdict(e) == NOISE]
    history = load(store, rule, start, end)
    tried = settings(rule, knobs)
    # One engine judges every setting, each a copy of the rule under a name of its own:
    # the events are counted once, not once per setting.
    variants = [
        replace(with_setting(rule, s), name=f"{rule.name}#{i}") for i, s in enumerate(tried)
    ]
    replays = replay_all(history, variants, start, end)
    trials = [
        score(setting, spans(replays[variant.name], end), expected, noise)
        for setting, variant in zip(tried, variants, strict=True)
    ]
    return Tuning(rule, start, end, len(expected), len(noise), tuple(trials), knobs)


def settings(rule: Rule, knobs: Sequence[Knob]) -> list[Setting]:
    """Every combination of the knobs' values, in order."""
    values = [[(k.field, v) for v in k.values(rule)] for k in knobs]
    return [tuple(combination) for combination in itertools.product(*values)]


def with_setting(rule: Rule, setting: Setting) -> Rule:
    """The rule with the setting's values in place of its own."""
    changes: dict[str, Any] = dict(setting)
    return replace(rule, **changes)


def load(store: Store, rule: Rule, start: datetime, end: datetime) -> History:
    """The events from the rule's lookback before `start` on, the daily summary and the
    known gaps: what the worker restores its engine from (`Worker._restore`)."""
    lookback = timedelta(seconds=Engine((rule,)).history_seconds())
    last_summary = store.last_summary_poll()
    daily = (
        store.daily_usage(start.date() - timedelta(days=DAILY_DAYS), end.date())
        if last_summary is not None
        else []
    )
    return History(
        events=store.event_batch_since(start - lookback),
        daily=daily,
        final_before=last_summary.date() if last_summary is not None else None,
        gaps=store.gaps(),
    )


def replay(history: History, rule: Rule, start: datetime, end: datetime) -> list[Transition]:
    """The rule's transitions over (start, end], judged by the worker's engine."""
    return replay_all(history, [rule], start, end)[rule.name]


def replay_all(
    history: History, rules: Sequence[Rule], start: datetime, end: datetime
) -> dict[str, list[Transition]]:
    """Each rule's transitions over (start, end], by name (the names must differ):
    judged by one engine of the worker's, as the worker judges all its rules."""
    engine = Engine(tuple(rules))
    engine.add_events(history.events)
    engine.add_gaps(history.gaps)
    if history.final_before is not None:
        engine.add_daily(history.daily, final_before=history.final_before)
    found: dict[str, list[Transition]] = {r.name: [] for r in rules}
    for t in judge(engine, start, end):
        found[t.rule].append(t)
    return found


def spans(transitions: Sequence[Transition], end: datetime) -> list[Span]:
    """Firing episodes from a replay's transitions (one rule): from the first breach to
    the resolve; one still firing runs to `end`."""
    found, open_since = [], {}
    for t in transitions:
        if t.state == FIRING:
            open_since[t.group] = t.since or t.at
        elif t.state == RESOLVED and t.group in open_since:
            found.append(Span(t.group, open_since.pop(t.group), t.at))
    found.extend(Span(group, since, end) for group, since in open_since.items())
    return found


def score(
    setting: Setting, replayed: Sequence[Span], expected: Sequence[Span], noise: Sequence[Span]
) -> Trial:
    """How one replay meets the feedback: a marked episode is met by any replayed episode
    of its group that overlaps it in time."""
    marked = [*expected, *noise]
    return Trial(
        setting=setting,
        alerts=len(replayed),
        expected_kept=sum(any(s.overlaps(e) for s in replayed) for e in expected),
        noise_dropped=sum(not any(s.overlaps(n) for s in replayed) for n in noise),
        unlabelled=sum(not any(s.overlaps(m) for m in marked) for s in replayed),
    )


def _span(episode: Episode, end: datetime) -> Span:
    return Span(episode.group, episode.since, episode.resolved_at or end)


def _verdict(episode: Episode) -> str | None:
    return episode.feedback.verdict if episode.feedback is not None else None
