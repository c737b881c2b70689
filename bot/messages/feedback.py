"""Feedback wording: the line a parent shows once it is marked expected or noise, the
per-rule alert figures (`query alerts --stats`, `/usage alerts stats`, the digest), and
what `usage-bot tune` prints.

Pure: plain values in, text out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
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


# -- usage-bot tune ----------------------------------------------------------------------


def unknown_rule_text(name: str, known: Sequence[str]) -> str:
    listed = ", ".join(known) or "none"
    return f"tune: no rule named {name!r} in the rules file (rules: {listed})"


def nothing_marked_text(rule: str, days: int) -> str:
    return (
        f"tune: no alert of {rule} that began in the last {days} days is marked expected "
        "or noise; mark some with the buttons on their parents (or try more --days)"
    )


def tune_report(
    rule: str,
    start: datetime,
    end: datetime,
    marked: tuple[int, int],
    current: Sequence[tuple[str, float]],
    rows: Sequence[tuple[Sequence[tuple[str, float]], int, int, int, int]],
) -> str:
    """The table of settings tried: (setting, alerts, expected kept, noise dropped,
    unlabelled) per row, a column per knob (z, and false_alerts where the rule has the
    evidence test); `marked` is (expected, noise). The rule's own row says "(now)"."""
    expected, noise = marked
    head = (
        f"{rule} judged again over the stored events of {start:%Y-%m-%d %H:%M} .. "
        f"{end:%Y-%m-%d %H:%M} UTC\n{expected} alert(s) marked expected, {noise} marked noise"
        " in that span."
    )
    names = [name for name, _ in current]
    lines = [
        [
            *_knob_cells(setting, tuple(setting) == tuple(current)),
            str(alerts),
            f"{kept} of {expected}",
            f"{dropped} of {noise}",
            str(unlabelled),
        ]
        for setting, alerts, kept, dropped, unlabelled in rows
    ]
    header = [*names, "alerts", "expected kept", "noise dropped", "unlabelled"]
    return f"{head}\n{table(header, lines)}"


def _knob_cells(setting: Sequence[tuple[str, float]], now: bool) -> list[str]:
    cells = [_value(v) for _, v in setting]
    if now and cells:
        cells[-1] += " (now)"
    return cells


def tune_suggestion(
    current: Sequence[tuple[str, float]],
    suggested: Sequence[tuple[str, float]] | None,
    closest: tuple[Sequence[tuple[str, float]], int, int] | None = None,
    marked: tuple[int, int] = (0, 0),
) -> str:
    """The setting to try, with the rules.yaml lines that set it (the knobs it changes
    only), or that the rule's own is right, or what comes closest. Never a change:
    rules.yaml is the user's to edit."""
    if suggested is not None and tuple(suggested) == tuple(current):
        return (
            f"Suggestion: keep {_setting(current)}: it keeps every expected alert and drops "
            "the noise. Nothing was changed."
        )
    if suggested is not None:
        own = dict(current)
        changed = [(name, value) for name, value in suggested if own.get(name) != value]
        told = ", ".join(
            f"{name} = {_value(value)} (now {_value(own[name])})" for name, value in changed
        )
        lines = "".join(f"\n    {name}: {_value(value)}" for name, value in changed)
        return (
            f"Suggestion: {told}: it keeps every expected alert and drops the noise.\n"
            f"Nothing was changed: to apply it, set in the rule in rules.yaml:{lines}"
        )
    assert closest is not None
    setting, kept, dropped = closest
    expected, noise = marked
    return (
        "Suggestion: no setting tried keeps every expected alert and drops all the noise; "
        f"closest: {_setting(setting)} (keeps {kept} of {expected} expected, drops "
        f"{dropped} of {noise} noise). Nothing was changed."
    )


def _setting(setting: Sequence[tuple[str, float]]) -> str:
    return ", ".join(f"{name} = {_value(value)}" for name, value in setting)


def _value(value: float) -> str:
    """4.5, 0.05, 0.00005: never an exponent (YAML would read 5e-05 as text)."""
    text = f"{value:g}"
    return text if "e" not in text else f"{Decimal(repr(value)):f}"
