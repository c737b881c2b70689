"""Breakdown wording: what drives an alert (`bot.breakdown`), as Slack mrkdwn for the
alert's thread and as plain text for `/usage model` and `usage-bot query model`."""

from __future__ import annotations

from bot.breakdown import Breakdown, Split
from bot.messages.alerts import format_duration

DIMENSION_NAMES = {
    "model": "model",
    "error_code": "error code",
    "output_format": "output format",
    "segment": "segment",
    "customer": "customer",
}


def headline(b: Breakdown) -> str:
    """'157 failed jobs above the baseline (241 failed of 2,800 finished; 84 expected at
    3.0%)' / '8,120 credits above the baseline (12,400 against 4,280 expected)'."""
    way = "above" if b.excess >= 0 else "below"
    if b.metric == "failure_rate":
        return (
            f"{_jobs(abs(b.excess))} {way} the baseline ({b.observed:,.0f} failed of "
            f"{b.finished:,} finished; {_count(b.expected)} expected at {b.baseline:.1%})"
        )
    return (
        f"{abs(b.excess):,.0f} credits {way} the baseline ({b.observed:,.0f} against "
        f"{b.expected:,.0f} expected)"
    )


def _count(amount: float) -> str:
    """'14', '1,200'; a tenth under ten where the whole number would mislead ('0.5')."""
    return f"{amount:,.1f}" if abs(amount) < 9.95 and amount != round(amount) else f"{amount:,.0f}"


def _jobs(count: float) -> str:
    """'1 failed job', '14 failed jobs', '0.5 failed jobs'."""
    return f"{_count(count)} failed job{'' if count == 1 else 's'}"


def window(b: Breakdown) -> str:
    """'the 1 h ending 10:15 UTC'."""
    span = format_duration((b.end - b.start).total_seconds())
    return f"the {span} ending {b.end:%H:%M} UTC"


def split_line(b: Breakdown, s: Split, *, markup: bool = True) -> str:
    """One dimension: 'customer: `acme` 86% (+135) · `globex` 9% (+14) · 3 others 5% ·
    offset -3% (2 below the baseline)'."""
    below = "below the baseline" if b.metric == "failure_rate" else "under their share"
    parts = []
    for part in s.top:
        name = part.value or "(none)"
        if markup and part.value:
            name = f"`{name}`"
        parts.append(f"{name} {b.share(part.excess):.0%} ({_signed(part.excess)})")
    if s.others_count:
        others = "other" if s.others_count == 1 else "others"
        parts.append(f"{s.others_count} {others} {b.share(s.others):.0%}")
    if s.offset_count:
        parts.append(f"offset {b.share(s.offset):.0%} ({s.offset_count} {below})")
    dimension = DIMENSION_NAMES.get(s.dimension, s.dimension)
    label = f"*{dimension}:*" if markup else f"{dimension}:"
    joiner = " · " if markup else ", "
    return f"{label} {joiner.join(parts) or 'nothing above the baseline'}"


def _signed(amount: float) -> str:
    """'+135', '-1,200', '+0.4'."""
    return f"{'-' if amount < 0 else '+'}{_count(abs(amount))}"


def breakdown_text(b: Breakdown, *, markup: bool = True, title: str = "What drives it") -> str:
    """What drives an alert, in its thread (mrkdwn) or for the terminal (`markup=False`)."""
    head = f"*{title}*" if markup else title
    lines = [f"{head} ({window(b)}): {headline(b)}."]
    if b.excess == 0 or not b.splits:
        lines.append("Nothing to split: the stored events of this window show no excess.")
        return "\n".join(lines)
    bullet = "• " if markup else "  "
    lines.extend(f"{bullet}{split_line(b, s, markup=markup)}" for s in b.splits)
    return "\n".join(lines)


def last_day_text(found: tuple[Breakdown, Breakdown] | None) -> str:
    """`/usage model` without a failure or spend alert open: the last 24 hours."""
    if found is None:
        return "Last 24 h: no stored events in the 7 days before to compare them with."
    lines = ["Last 24 h against up to 7 days before it (stored events):"]
    for b, what in zip(found, ("Failures", "Credits"), strict=True):
        lines.append(f"{what}: {headline(b)}.")
        if b.excess > 0:  # a shortfall needs no explaining here
            lines.extend(f"  {split_line(b, s, markup=False)}" for s in b.splits)
    return "\n".join(lines)
