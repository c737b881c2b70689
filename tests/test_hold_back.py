"""The pure hold-back decision (alerts.hold_back): which decided transitions a silence or
an acknowledgement keeps from being told, and why. Time is passed in."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.alerts import HoldReason, hold_back
from bot.models import FIRING, REMINDER, RESOLVED
from tests.helpers import make_firing

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=2)
EARLIER = NOW - timedelta(minutes=1)
FIRED = make_firing(NOW)


@pytest.mark.parametrize(
    ("case", "state", "silenced_until", "acknowledged", "has_thread", "expected"),
    [
        ("firing silenced", FIRING, LATER, False, False, HoldReason.SILENCED),
        (
            "firing silenced, thread from an earlier episode",
            FIRING,
            LATER,
            False,
            True,
            HoldReason.SILENCED,
        ),
        ("reminder silenced", REMINDER, LATER, False, True, HoldReason.SILENCED),
        ("reminder acknowledged", REMINDER, None, True, True, HoldReason.ACKNOWLEDGED),
        (
            "reminder acknowledged and silenced",
            REMINDER,
            LATER,
            True,
            True,
            HoldReason.ACKNOWLEDGED,
        ),
        ("resolve with a thread under a silence: told", RESOLVED, LATER, False, True, None),
        (
            "resolve without a thread under a silence: held",
            RESOLVED,
            LATER,
            False,
            False,
            HoldReason.SILENCED,
        ),
        ("expired silence: firing told", FIRING, EARLIER, False, False, None),
        ("silence ending right now: told", REMINDER, NOW, False, True, None),
        ("expired silence: resolve without thread told", RESOLVED, EARLIER, False, False, None),
        ("no silence: firing told", FIRING, None, False, False, None),
        ("no silence: reminder told", REMINDER, None, False, True, None),
        ("no silence: resolve told", RESOLVED, None, False, False, None),
        ("acknowledged firing is still told", FIRING, None, True, True, None),
        ("acknowledged resolve is still told", RESOLVED, None, True, True, None),
    ],
)
def test_hold_back(
    case: str,
    state: str,
    silenced_until: datetime | None,
    acknowledged: bool,
    has_thread: bool,
    expected: HoldReason | None,
) -> None:
    reason = hold_back(
        replace(FIRED, state=state),
        silenced_until=silenced_until,
        acknowledged=acknowledged,
        has_thread=has_thread,
        now=NOW,
    )
    assert reason == expected, case


def test_the_reasons_are_named() -> None:
    assert [str(r) for r in HoldReason] == ["silenced", "acknowledged"]
