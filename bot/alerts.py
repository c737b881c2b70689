"""The alert state machine: pure, one key at a time, time passed in.

Sits between `detect` (which judges each evaluation) and `notify`: per alert key (rule +
group values) it walks ok -> pending -> firing -> (resolved) -> ok, with `for`
consecutive breaches before firing and `recover_for` consecutive normal evaluations before
resolving, so an alert neither fires on a blip nor flaps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from enum import StrEnum

from bot.models import (
    FIRING,
    OK,
    PENDING,
    REMINDER,
    RESOLVED,
    AlertState,
    Evaluation,
    Event,
    Rule,
    Transition,
)

MAX_EXAMPLES = 10


def step(state: AlertState, ev: Evaluation, rule: Rule) -> tuple[AlertState, str | None]:
    """Advance one key by one evaluation; return the new state and FIRING/RESOLVED or None.

    An unjudged evaluation (too few jobs in the window, no baseline yet) changes nothing:
    a quiet quarter-hour in the middle of an incident must not count as recovery.
    """
    if not ev.judged:
        return state, None
    if ev.breach:
        breaches = state.breaches + 1
        peak_z = max(state.peak_zscore, abs(ev.zscore)) if state.status != OK else abs(ev.zscore)
        peak_value = _peak(state, ev)
        since = state.since if state.status != OK else ev.at
        if state.status == FIRING:
            after = replace(
                state, breaches=breaches, normals=0, peak_zscore=peak_z, peak_value=peak_value
            )
            return _remind(after, ev, rule)
        if breaches >= rule.for_:
            return replace(
                state,
                status=FIRING,
                breaches=breaches,
                normals=0,
                since=since,
                peak_zscore=peak_z,
                peak_value=peak_value,
                told_at=ev.at,
            ), FIRING
        return replace(
            state,
            status=PENDING,
            breaches=breaches,
            since=since,
            peak_zscore=peak_z,
            peak_value=peak_value,
        ), None
    if state.status == FIRING:
        # Recovery needs calm evaluations, not merely sub-threshold ones, so a value
        # hovering around the threshold does not resolve and re-fire every few minutes.
        normals = state.normals + 1 if ev.calm else 0
        if normals >= rule.recover_for:
            return AlertState(state.rule, state.group), RESOLVED
        return _remind(replace(state, breaches=0, normals=normals), ev, rule)
    return AlertState(state.rule, state.group), None


def _remind(state: AlertState, ev: Evaluation, rule: Rule) -> tuple[AlertState, str | None]:
    """A firing key is told again once `remind_every` has passed since it was last told."""
    told = state.told_at or state.since or ev.at
    if (ev.at - told).total_seconds() >= rule.remind_every:
        return replace(state, told_at=ev.at), REMINDER
    return state, None


def _peak(state: AlertState, ev: Evaluation) -> float:
    if state.status == OK or abs(ev.zscore) >= state.peak_zscore:
        return ev.value
    return state.peak_value


def transition(
    state_before: AlertState, state_after: AlertState, kind: str, ev: Evaluation, rule: Rule
) -> Transition:
    """The record of a FIRING or RESOLVED step (examples are attached by the caller)."""
    told = state_before if kind == RESOLVED else state_after
    return Transition(
        rule=rule.name,
        group=ev.group,
        group_by=rule.group_by,
        state=kind,
        at=ev.at,
        value=ev.value,
        baseline=ev.baseline,
        zscore=ev.zscore if math.isfinite(ev.zscore) else 0.0,
        volume=ev.volume,
        since=told.since,
        peak_zscore=told.peak_zscore,
        peak_value=told.peak_value,
        window=ev.window,
    )


def pick_examples(
    events: Iterable[Event], rule: Rule, group: tuple[str, ...]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """request_ids and job_ids of the events behind a breach, newest first, at most 10.

    Failed events for a failure-rate rule, the costliest for a spend rule, the newest
    job events for a volume rule.
    """
    mine = [e for e in events if group_of(e, rule.group_by) == group]
    if rule.metric == "failure_rate":
        chosen = [e for e in mine if e.is_failed]
    elif rule.metric == "spend":
        chosen = sorted((e for e in mine if e.credits_used > 0), key=lambda e: -e.credits_used)
        chosen = chosen[:MAX_EXAMPLES]
    else:
        chosen = [e for e in mine if e.job_id]
    chosen.sort(key=lambda e: (e.created_at, e.id), reverse=True)
    chosen = chosen[:MAX_EXAMPLES]
    return (
        tuple(e.request_id for e in chosen if e.request_id),
        tuple(e.job_id for e in chosen if e.job_id),
    )


def group_of(event: Event, group_by: Sequence[str]) -> tuple[str, ...]:
    """The values of `group_by` for one event ("" where the event has none)."""
    values = []
    for field in group_by:
        if field == "model":
            value = event.model
        else:
            value = event.metadata.get(field.removeprefix("metadata."))
        values.append(value if isinstance(value, str) else "")
    return tuple(values)


# -- holding back: which decided transitions are deliberately not told -------------------


class HoldReason(StrEnum):
    """Why a transition is held back (recorded as delivered, and not told)."""

    SILENCED = "silenced"  # a silence covers the key: no firing, no reminders
    ACKNOWLEDGED = "acknowledged"  # someone is on it: no more reminders


def hold_back(
    transition: Transition,
    *,
    silenced_until: datetime | None,
    acknowledged: bool,
    has_thread: bool,
    now: datetime,
) -> HoldReason | None:
    """Whether to hold `transition` back at `now`, and why; None: tell it.

    `silenced_until` is the end of a silence covering the key (None: none); a silence
    ending at or before `now` holds nothing. A silence holds back a firing and its
    reminders; a resolve still goes to a thread that was told before the silence (and
    only there: without a thread, it is held too). An acknowledged alert gets no more
    reminders.
    """
    if transition.state == REMINDER and acknowledged:
        return HoldReason.ACKNOWLEDGED
    if silenced_until is None or silenced_until <= now:
        return None
    if transition.state == RESOLVED and has_thread:
        return None
    return HoldReason.SILENCED
