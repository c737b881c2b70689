"""The alert state machine: pure, table-driven, time passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.alerts import pick_examples, step
from bot.models import FIRING, OK, PENDING, REMINDER, RESOLVED, AlertState, Evaluation, Rule
from tests.helpers import make_event

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
RULE = Rule(
    name="failed-job-rate", metric="failure_rate", group_by=("model",), for_=2, recover_for=2
)

# B: breach, N: calm normal, U: unjudged (too few jobs), H: sub-threshold but not calm
MARKS = {
    "B": {"breach": True, "judged": True, "calm": False},
    "N": {"breach": False, "judged": True, "calm": True},
    "U": {"breach": False, "judged": False, "calm": False},
    "H": {"breach": False, "judged": True, "calm": False},
}


def walk(marks: str, rule: Rule = RULE) -> list[tuple[str, str | None]]:
    state = AlertState(rule.name, ("pro",))
    seen = []
    for i, mark in enumerate(marks):
        ev = Evaluation(
            rule.name,
            ("pro",),
            T0 + i * timedelta(minutes=5),
            0.5,
            0.02,
            6.0 if mark == "B" else 0.5,
            20,
            **MARKS[mark],
        )
        state, kind = step(state, ev, rule)
        seen.append((state.status, kind))
    return seen


@pytest.mark.parametrize(
    ("marks", "statuses", "fired_at", "resolved_at"),
    [
        ("BB", [PENDING, FIRING], [1], []),  # fires on the `for`-th breach
        ("BNB", [PENDING, OK, PENDING], [], []),  # a blip is not an incident
        ("BBNN", [PENDING, FIRING, FIRING, OK], [1], [3]),  # recover_for normals resolve
        ("BBNBN", [PENDING, FIRING, FIRING, FIRING, FIRING], [1], []),  # no flapping
        ("BBUUUNN", [PENDING, FIRING, FIRING, FIRING, FIRING, FIRING, OK], [1], [6]),
        ("BBHHHH", [PENDING, FIRING] + [FIRING] * 4, [1], []),  # hovering is not recovery
        ("BBBBBBB", [PENDING] + [FIRING] * 6, [1], []),  # one firing per episode
        ("UUU", [OK, OK, OK], [], []),
    ],
)
def test_transitions(
    marks: str, statuses: list[str], fired_at: list[int], resolved_at: list[int]
) -> None:
    seen = walk(marks)
    assert [s for s, _ in seen] == statuses
    assert [i for i, (_, k) in enumerate(seen) if k == FIRING] == fired_at
    assert [i for i, (_, k) in enumerate(seen) if k == RESOLVED] == resolved_at


def test_it_fires_after_for_consecutive_breaches_and_keeps_the_episode_start() -> None:
    rule = Rule(name="r", metric="spend", for_=3, recover_for=1)
    state = AlertState("r", ())
    for i in range(3):
        ev = Evaluation("r", (), T0 + timedelta(minutes=5 * i), 100 + i, 10, 5.0 + i, 100 + i, True)
        state, kind = step(state, ev, rule)
    assert kind == FIRING and state.since == T0
    assert state.peak_zscore == 7.0 and state.peak_value == 102


def test_examples_are_failed_events_of_the_group_newest_first_at_most_ten() -> None:
    events = [
        make_event(i, T0 + timedelta(seconds=i), status="failed" if i % 2 else "completed")
        for i in range(40)
    ]
    events += [make_event(100, T0, model="light", status="failed")]
    request_ids, job_ids = pick_examples(events, RULE, ("pro",))
    assert (
        len(request_ids) == 10
        and request_ids[0] == "req_000039"
        and request_ids[-1] == "req_000021"
    )
    assert job_ids[0] == "job_000039" and "req_000100" not in request_ids


def test_examples_of_a_spend_rule_are_the_costliest() -> None:
    rule = Rule(name="spend", metric="spend")
    events = [make_event(i, T0 + timedelta(seconds=i), credits=float(i)) for i in range(30)]
    request_ids, _ = pick_examples(events, rule, ())
    assert set(request_ids) == {f"req_{i:06d}" for i in range(20, 30)}
    assert request_ids[0] == "req_000029"  # newest first


def test_a_firing_key_is_told_again_after_remind_every_and_only_then() -> None:
    rule = Rule(name="r", metric="failure_rate", for_=1, recover_for=2, remind_every=3600)
    state = AlertState("r", ())
    kinds = []
    for i in range(30):  # every 5 minutes for 2.5 hours, always breaching
        ev = Evaluation("r", (), T0 + timedelta(minutes=5 * i), 0.5, 0.02, 6.0, 20, True)
        state, kind = step(state, ev, rule)
        kinds.append((i, kind))
    told = [(i, k) for i, k in kinds if k]
    assert told == [(0, FIRING), (12, REMINDER), (24, REMINDER)]
