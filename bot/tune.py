"""`usage-bot tune RULE`: what the feedback on a rule's alerts says about its threshold.

The stored events (and daily summary) are judged again by the worker's own engine
(`backtest.judge`, an `engine.Monitor`) with the rule's threshold set a little lower and
higher; each replay's firing episodes are matched to the episodes people marked expected
or noise (same group, overlapping time), and the setting nearest the rule's own that
keeps every expected alert and drops every noisy one is suggested. A suggestion only:
nothing is changed, rules.yaml stays the user's to edit.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

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


@dataclass(frozen=True)
class Knob:
    """A threshold of a rule that `tune` varies: the values tried are the rule's own and
    the rule's own plus each offset, none under `floor`."""

    field: str
    offsets: tuple[float, ...]
    floor: float

    def values(self, rule: Rule) -> list[float]:
        own = float(getattr(rule, self.field))
        tried = {round(own + offset, 3) for offset in self.offsets if own + offset >= self.floor}
        return sorted(tried | {own})


# The rule's z, a little lower (what would it have caught?) and higher (what noise would
# go?). Another threshold (the detection issue's evidence threshold) is one more Knob
# here: the settings tried are every combination of the knobs' values.
KNOBS: tuple[Knob, ...] = (Knob("z", (-1.0, -0.5, 0.5, 1.0, 2.0), floor=0.5),)

Setting = tuple[tuple[str, float], ...]  # (("z", 4.5),): a value per knob


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
    knobs: tuple[Knob, ...] = KNOBS

    @property
    def current(self) -> Setting:
        return tuple((k.field, float(getattr(self.rule, k.field))) for k in self.knobs)

    def is_right(self, trial: Trial) -> bool:
        """Keeps every expected alert and drops every noisy one."""
        return trial.expected_kept == self.expected and trial.noise_dropped == self.noise

    def suggestion(self) -> Trial | None:
        """The right setting nearest the rule's own (the lower on a tie: it misses less);
        None when no setting tried is right."""
        right = [t for t in self.trials if self.is_right(t)]
        return min(right, key=lambda t: (self._distance(t), t.setting)) if right else None

    def closest(self) -> Trial:
        """When none is right: the setting that keeps the most expected alerts, then
        drops the most noise, then is nearest the rule's own."""
        return min(
            self.trials,
            key=lambda t: (-t.expected_kept, -t.noise_dropped, self._distance(t), t.setting),
        )

    def _distance(self, trial: Trial) -> float:
        own = dict(self.current)
        return sum(abs(value - own[name]) for name, value in trial.setting)


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
    knobs: tuple[Knob, ...] = KNOBS,
) -> Tuning:
    """Replay the last `days` of stored data (ending at the newest stored event) with
    every setting of `knobs`, and match each to the episodes marked expected or noise."""
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
    trials = []
    for setting in settings(rule, knobs):
        replayed = spans(replay(history, with_setting(rule, setting), start, end), end)
        trials.append(score(setting, replayed, expected, noise))
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
    engine = Engine((rule,))
    engine.add_events(history.events)
    engine.add_gaps(history.gaps)
    if history.final_before is not None:
        engine.add_daily(history.daily, final_before=history.final_before)
    return judge(engine, start, end)


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
