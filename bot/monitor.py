"""The alert states walked over the engine's verdicts: the one path the live worker and
`usage-bot backtest` drive, so the same data gives the same transitions.

`Monitor` judges every rule since its cursor (`engine.Engine.evaluate`) and steps each
group's alert state (`alerts.step`); `enrich` adds to a firing transition the events
behind it and the metric around it. No I/O; the time is always an argument.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bot.alerts import pick_examples, step, transition
from bot.engine import STEP, AlertKey, Engine
from bot.models import (
    FIRING,
    REMINDER,
    AlertState,
    Evaluation,
    Event,
    Rule,
    Transition,
)


def enrich(
    t: Transition,
    engine: Engine,
    events_between: Callable[[datetime, datetime], Sequence[Event]],
) -> Transition:
    """What a firing alert is told with: the events behind it and the metric around it."""
    rule = next(r for r in engine.rules if r.name == t.rule)
    if t.state not in (FIRING, REMINDER):
        return t
    series = engine.series(rule, t.group, t.at)
    if rule.source == "summary":
        return replace(t, series=series)
    # The window it is told with (a run of the evidence test may be minutes of a bucket).
    told = events_between(t.at - timedelta(seconds=t.window or rule.bucket), t.at)
    request_ids, job_ids = pick_examples(told, rule, t.group)
    return replace(t, request_ids=request_ids, job_ids=job_ids, series=series)


class Monitor:
    """Judges every rule since its cursor and walks the alert states: the shared path of
    the live worker and `backtest`.

    Args:
        engine: the data and the rules.
        states: alert states from the store (absent keys are ok).
        cursors: per rule, the data time evaluated through (absent: `start` of `run`).
    """

    def __init__(
        self,
        engine: Engine,
        states: Mapping[AlertKey, AlertState] | None = None,
        cursors: Mapping[str, datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.states: dict[AlertKey, AlertState] = dict(states or {})
        self.cursors: dict[str, datetime] = dict(cursors or {})
        self.changed: dict[AlertKey, AlertState] = {}

    def run(self, until: datetime, start: datetime, *, live: bool = False) -> list[Transition]:
        """Evaluate every rule through `until`; return the transitions, oldest first.

        `start` is where a rule without a cursor begins (exclusive). With `live`, `until`
        itself is judged too when it falls between marks (`_live`).
        """
        found: list[Transition] = []
        for rule in self.engine.rules:
            since = self.cursors.get(rule.name, start)
            evaluations = self.engine.evaluate(rule, since, until)
            for ev in evaluations:
                found.extend(self._step(rule, ev))
            if rule.source == "summary":
                if evaluations:
                    self.cursors[rule.name] = evaluations[-1].at
            else:
                moment = int(until.timestamp()) // STEP * STEP
                self.cursors[rule.name] = max(since, datetime.fromtimestamp(moment, UTC))
        if live:
            found.extend(self._live(until))
        found.sort(key=lambda t: (t.at, t.rule, t.group))
        return found

    def _live(self, until: datetime) -> list[Transition]:
        """Judge the window ending at `until` itself, between two marks: the coming mark's
        evaluation on the data held so far (its partial slot included). It can only bring
        a firing forward: a key that fires on it is saved firing; anything short of that
        is left for the mark to judge on the whole slot, so `for` and `recover_for` still
        count evaluations at the marks. Rules watching a rise only: a partial window
        reads low, which is no rise but could look like a drop. Each poll sums the
        windows ending at the mark and scores them against the baselines frozen for it
        (`Engine._judge_moment`).
        """
        now = int(until.timestamp())
        if now % STEP == 0:
            return []  # a mark: judged in full by `run`
        mark = (now // STEP + 1) * STEP
        end = datetime.fromtimestamp(mark, UTC)
        found: list[Transition] = []
        for rule in self.engine.rules:
            if rule.source == "summary" or rule.direction != "up":
                continue
            for ev in self.engine.evaluate(rule, end - timedelta(seconds=STEP), end):
                if not ev.breach:
                    continue  # only a breach fires: the rest is the mark's to judge
                ev = replace(ev, at=until, window=max(0.0, ev.window - (mark - now)))
                key = (rule.name, ev.group)
                before = self.states.get(key) or AlertState(rule.name, ev.group)
                after, kind = step(before, ev, rule)
                if kind == FIRING:
                    self.states[key] = self.changed[key] = after
                    found.append(transition(before, after, kind, ev, rule))
        return found

    def _step(self, rule: Rule, ev: Evaluation) -> list[Transition]:
        key = (rule.name, ev.group)
        before = self.states.get(key) or AlertState(rule.name, ev.group)
        after, kind = step(before, ev, rule)
        if after != before:
            self.states[key] = after
            self.changed[key] = after
        if kind is None:
            return []
        return [transition(before, after, kind, ev, rule)]

    def take_changes(self) -> dict[AlertKey, AlertState]:
        """States changed since the last call (what the store must save)."""
        changed, self.changed = self.changed, {}
        return changed
