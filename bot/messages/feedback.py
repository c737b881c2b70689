"""Feedback wording: the line a parent shows once it is marked expected or noise, and the
per-rule alert figures (`query alerts --stats`, `/usage alerts stats`, the digest).

Pure: plain values in, text out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.messages.alerts import format_duration
from bot.messages.reports import table
from bot.models import EXPECTED, NOISE, Feedback, RuleStats

MARK_ICON = {EXPECTED: ":ballot_box_with_check:", NOISE: ":mute:"}
STATS_HEADER = ["rule", "alerts", "acknowledged", "expected", "noise", "median time to ack"]


# -- on the parent -----------------------------------------------------------------------


def marked_note(verdict: str, user: str, at: datetime) -> str:
    return f"{MARK_ICON.get(verdict, '')} Marked {verdict} by <@{user}> at {at:%H:%M} UTC".strip()


def feedback_note(feedback: Feedback | None) -> str | None:
    """The parent's feedback line for a stored verdict (None: nobody marked it)."""
    if feedback is None or not feedback.verdict or not feedback.verdict_by:
        return None
    assert feedback.verdict_at is not None
    return marked_note(feedback.verdict, feedback.verdict_by, feedback.verdict_at)


def overruled_text(note: str, before: str, by: str) -> str:
    """What the clicker reads when the click changed someone's verdict."""
    return f"{note} (it was marked {before} by <@{by}>; the last click counts)"


# -- per-rule figures --------------------------------------------------------------------


def stats_rows(stats: Sequence[RuleStats]) -> list[dict[str, Any]]:
    """The figures as JSON (the digest's payload)."""
    return [
        {
            "rule": s.rule,
            "alerts": s.alerts,
            "acknowledged": s.acknowledged,
            "expected": s.expected,
            "noise": s.noise,
            "median_ack_seconds": s.median_ack_seconds,
        }
        for s in stats
    ]


def stats_table(rows: Sequence[Mapping[str, Any]]) -> str:
    return table(
        STATS_HEADER,
        [
            [
                str(r["rule"]),
                str(r["alerts"]),
                str(r["acknowledged"]),
                str(r["expected"]),
                str(r["noise"]),
                "-"
                if r["median_ack_seconds"] is None
                else format_duration(r["median_ack_seconds"]),
            ]
            for r in rows
        ],
    )


def stats_report(stats: Sequence[RuleStats], days: int, start: datetime, end: datetime) -> str:
    """`query alerts --stats`: per rule, the alert episodes that began in the span."""
    span = f"last {days} day{'s' if days != 1 else ''}"
    if not stats:
        return f"No alerts began in the {span} ({start:%Y-%m-%d %H:%M} .. {end:%H:%M} UTC)."
    head = (
        f"Alerts per rule, {span} (episodes that began {start:%Y-%m-%d %H:%M} .. "
        f"{end:%Y-%m-%d %H:%M} UTC):"
    )
    return f"{head}\n{stats_table(stats_rows(stats))}"


def digest_stats_lines(rows: Sequence[Mapping[str, Any]] | None, days: int) -> list[str]:
    """The digest's alert figures: nothing when no alert began in the span."""
    if not rows:
        return []
    return [f"*Alerts per rule, last {days} days*", "```\n" + stats_table(rows) + "\n```"]
