"""Alert wording: the plain-text alert, the `alerts` report, and the Slack Block Kit of
an alert's parent message and thread.

Pure functions from plain data to text; no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from bot.models import AlertState, Event, Rule, Transition, format_time

# -- alerts --------------------------------------------------------------------------


def describe_key(t: Transition) -> str:
    """'failed-job-rate for model pro' / 'total-spend for the account'."""
    if not t.group:
        return f"{t.rule} for the account"
    parts = [f"{name} {value or '(none)'}" for name, value in t.key.items()]
    return f"{t.rule} for {', '.join(parts)}"


def format_metric(metric: str, value: float | None) -> str:
    # A figure the window could not hold (stored NaN reads back as NULL) is said as such.
    if value is None or value != value:
        return "n/a"
    if metric == "failure_rate":
        return f"{value:.1%}"
    if metric == "spend":
        return f"{value:,.0f} credits"
    return f"{value:,.0f} jobs"


def format_duration(seconds: float) -> str:
    minutes = int(round(seconds / 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} d {hours % 24} h"


def alert_text(t: Transition, metric: str, bucket: float) -> str:
    """The plain-text alert: what broke, for whom, how bad, since when, which events."""
    window = format_duration(t.window or bucket)
    at = t.at.strftime("%Y-%m-%d %H:%M UTC")
    if t.state == "firing":
        lines = [
            f"FIRING  {describe_key(t)}",
            f"  {format_metric(metric, t.value)} against a baseline of "
            f"{format_metric(metric, t.baseline)} (z = {t.zscore:.1f}) in the {window} "
            f"ending {at}",
        ]
        if metric == "failure_rate":
            lines.append(f"  {t.volume:,.0f} finished jobs in that window")
        if t.request_ids:
            pairs = ", ".join(
                f"{r} / {j}" for r, j in zip(t.request_ids[:5], t.job_ids[:5], strict=False)
            )
            more = f" (+{len(t.request_ids) - 5} more)" if len(t.request_ids) > 5 else ""
            lines.append(f"  request_id / job_id: {pairs}{more}")
        return "\n".join(lines)
    if t.state == "reminder":
        return f"STILL FIRING {describe_key(t)}: " + reminder_text(t, metric)
    lasted = format_duration((t.at - t.since).total_seconds()) if t.since else "a while"
    return (
        f"RESOLVED {describe_key(t)} at {at} after {lasted}; "
        f"now {format_metric(metric, t.value)} (peak {format_metric(metric, t.peak_value)}, "
        f"z = {t.peak_zscore:.1f})"
    )


def alerts_report(
    open_alerts: Sequence[AlertState], recent: Sequence[Transition], now: datetime
) -> str:
    """Open alerts, then the latest transitions, newest first."""
    lines = []
    if open_alerts:
        lines.append(f"{len(open_alerts)} open alert(s):")
        for state in sorted(open_alerts, key=lambda s: (s.rule, s.group)):
            group = ", ".join(v or "(none)" for v in state.group) or "account"
            since = (
                f"firing for {format_duration((now - state.since).total_seconds())}"
                if state.since
                else "firing"
            )
            lines.append(f"  {state.rule} [{group}]: {since}, peak z = {state.peak_zscore:.1f}")
    else:
        lines.append("No open alerts.")
    if recent:
        lines.append("Latest transitions:")
        for t in recent:
            lines.append(
                f"  {t.at:%Y-%m-%d %H:%M} {t.state:<8} {describe_key(t)} (z = {t.zscore:.1f})"
            )
    return "\n".join(lines)


# -- Slack Block Kit ---------------------------------------------------------------------

MAX_BLOCKS = 50
MAX_SECTION = 2900  # Slack refuses section text over 3,000 characters
SEVERITY_ICON = {
    "critical": ":rotating_light:",
    "warning": ":warning:",
    "info": ":information_source:",
}


def section(text: str) -> dict[str, object]:
    if len(text) > MAX_SECTION:
        text = text[: MAX_SECTION - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict[str, object]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:MAX_SECTION]}]}


def alert_fallback(t: Transition, metric: str) -> str:
    """The short plain text Slack shows in notifications."""
    verb = "FIRING" if t.state == "firing" else "RESOLVED"
    return (
        f"{verb}: {describe_key(t)}: {format_metric(metric, t.value)} "
        f"(baseline {format_metric(metric, t.baseline)}, z {t.zscore:.1f})"
    )


def parent_blocks(
    t: Transition,
    rule: Rule,
    *,
    mention: str | None = None,
    spark: str = "",
    resolved: Transition | None = None,
    feedback: str | None = None,
) -> list[dict[str, object]]:
    """The parent message: what broke, for whom, how bad, since when; edited on resolve.
    `feedback` is the episode's feedback line (who marked it expected or noise), if any."""
    metric = rule.metric
    window = format_duration(t.window or rule.bucket)
    since = t.since or t.at
    if resolved is None:
        icon = SEVERITY_ICON.get(rule.severity, ":warning:")
        head = f"{icon} *{describe_key(t)}* is firing"
        if mention:
            head = f"{mention} {head}"
    else:
        lasted = format_duration((resolved.at - since).total_seconds())
        head = f":white_check_mark: *{describe_key(t)}* resolved after {lasted}"
    figures = [
        f"*Value:* {format_metric(metric, t.value)} in the {window} ending {t.at:%H:%M} UTC",
        f"*Baseline:* {format_metric(metric, t.baseline)}   *z:* {t.zscore:.1f}",
    ]
    if metric == "failure_rate":
        figures.append(f"*Finished jobs in the window:* {t.volume:,.0f}")
    elif metric == "spend":
        extra = max(0.0, t.value - t.baseline)
        figures.append(f"*Credits above baseline:* {extra:,.0f}")
    figures.append(f"*Since:* {since:%Y-%m-%d %H:%M} UTC")
    if spark:
        figures.append(f"`{spark}`")
    blocks = [section(head), section("\n".join(figures))]
    if t.request_ids:
        shown = ", ".join(f"`{r}`" for r in t.request_ids[:3])
        more = len(t.request_ids) - 3
        tail = f" and {more} more in the thread" if more > 0 else " (details in the thread)"
        blocks.append(_context(f"request_ids: {shown}{tail}"))
    footer = f"rule `{rule.name}` · severity {rule.severity} · usage-bot"
    if rule.runbook:
        footer += f" · <{rule.runbook}|runbook>"
    blocks.append(_context(footer))
    if feedback:
        blocks.append(note_block(feedback, FEEDBACK_NOTE))
    # A resolved parent keeps the feedback buttons: whether it was noise is often
    # clearer once it is over.
    blocks.append(action_block(t, rule) if resolved is None else feedback_block(t))
    return blocks[:MAX_BLOCKS]


ACK, SILENCE_1H, SILENCE_24H = "usage_ack", "usage_silence_1h", "usage_silence_24h"
MARK_EXPECTED, MARK_NOISE = "usage_expected", "usage_noise"  # feedback on the episode
ACK_NOTE, FEEDBACK_NOTE = "usage_note", "usage_feedback"  # block_ids of the parent's notes


def action_block(t: Transition, rule: Rule) -> dict[str, object]:
    """The buttons on a firing parent: acknowledge, silence, feedback (expected or
    noise), and the runbook if any."""
    value = episode_value(t)

    def button(action: str, label: str, style: str | None = None) -> dict[str, object]:
        element: dict[str, object] = {
            "type": "button",
            "action_id": action,
            "text": {"type": "plain_text", "text": label},
            "value": value,
        }
        if style:
            element["style"] = style
        return element

    elements = [
        button(ACK, "Acknowledge", "primary"),
        button(SILENCE_1H, "Silence 1h"),
        button(SILENCE_24H, "Silence 24h"),
        *feedback_buttons(t),
    ]
    if rule.runbook:
        elements.append(
            {
                "type": "button",
                "action_id": "usage_runbook",
                "text": {"type": "plain_text", "text": "Runbook"},
                "url": rule.runbook,
            }
        )
    return {"type": "actions", "elements": elements}


def episode_value(t: Transition) -> str:
    """A button's value: the alert key and the episode (its first breach)."""
    return json.dumps(
        {"rule": t.rule, "group": list(t.group), "since": format_time(t.since or t.at)}
    )


def feedback_buttons(t: Transition) -> list[dict[str, object]]:
    """Expected and Noise: on a firing parent with the others, alone on a resolved one."""
    return [
        {
            "type": "button",
            "action_id": action,
            "text": {"type": "plain_text", "text": label},
            "value": episode_value(t),
        }
        for action, label in ((MARK_EXPECTED, "Expected"), (MARK_NOISE, "Noise"))
    ]


def feedback_block(t: Transition) -> dict[str, object]:
    """The buttons a resolved parent keeps."""
    return {"type": "actions", "elements": feedback_buttons(t)}


def note_block(note: str, block_id: str = ACK_NOTE) -> dict[str, object]:
    return {**_context(note), "block_id": block_id}


def with_note(
    blocks: Sequence[dict[str, object]], note: str, block_id: str = ACK_NOTE
) -> list[dict[str, object]]:
    """The parent's blocks with a note above the buttons, replacing the note of the same
    kind: who acknowledged or silenced it (ACK_NOTE), who marked it expected or noise
    (FEEDBACK_NOTE). Each kind shows once, however often it is clicked."""
    kept = [b for b in blocks if b.get("block_id") != block_id]
    at = next((i for i, b in enumerate(kept) if b.get("type") == "actions"), len(kept))
    return [*kept[:at], note_block(note, block_id), *kept[at:]][:MAX_BLOCKS]


def detail_blocks(t: Transition, events: Sequence[Event], metric: str) -> list[dict[str, object]]:
    """The first reply: the example events behind the breach, one line each."""
    known = {e.request_id: e for e in events}
    lines = []
    for request_id, job_id in zip(t.request_ids, t.job_ids, strict=False):
        e = known.get(request_id)
        if e is None:
            lines.append(f"• `{request_id}` · job `{job_id}`")
            continue
        lines.append(
            f"• `{request_id}` · job `{job_id}` · {e.model or '-'} · {e.output_format or '-'} · "
            f"{e.error_code or e.status or '-'} · {e.credits_used:,.2f} credits · "
            f"{e.created_at:%H:%M:%S} UTC"
        )
    what = "Failed jobs" if metric == "failure_rate" else "Costliest jobs"
    if not lines:
        return [section(f"{what}: no example events were stored for this window.")]
    blocks = [section(f"*{what} behind this alert* (newest first):")]
    chunk: list[str] = []
    for line in lines:  # several sections rather than one over the 3,000-character limit
        if sum(len(x) + 1 for x in chunk) + len(line) > MAX_SECTION:
            blocks.append(section("\n".join(chunk)))
            chunk = []
        chunk.append(line)
    blocks.append(section("\n".join(chunk)))
    return blocks[:MAX_BLOCKS]


def now_text(t: Transition, metric: str) -> str:
    """'now 8,539 credits in the 1 h ending 13:00 UTC against a baseline of 4,040 credits
    (z 1.2)': the figure a reminder or a resolution was judged on, with its window, which
    may differ from the window the alert fired on (a spend rule's runs, its buckets)."""
    window = f" in the {format_duration(t.window)} ending {t.at:%H:%M} UTC" if t.window else ""
    return (
        f"now {format_metric(metric, t.value)}{window} against a baseline of "
        f"{format_metric(metric, t.baseline)} (z {t.zscore:.1f})"
    )


def reminder_text(t: Transition, metric: str) -> str:
    lasted = format_duration((t.at - t.since).total_seconds()) if t.since else "a while"
    return (
        f":hourglass: Still firing after {lasted}: {now_text(t, metric)}; peak "
        f"so far {format_metric(metric, t.peak_value)} (z {t.peak_zscore:.1f})."
    )


def resolve_text(t: Transition, metric: str) -> str:
    lasted = format_duration((t.at - t.since).total_seconds()) if t.since else "a while"
    return (
        f":white_check_mark: Resolved at {t.at:%Y-%m-%d %H:%M} UTC after {lasted}: "
        f"{now_text(t, metric)}. Peak {format_metric(metric, t.peak_value)} "
        f"(z {t.peak_zscore:.1f})."
    )


def details_fallback(t: Transition) -> str:
    """The plain text of the first reply, the examples behind the alert."""
    return f"Examples behind {describe_key(t)}"


def chart_title(t: Transition) -> str:
    """The title of the chart uploaded into an alert's thread."""
    return f"{describe_key(t)} around {t.at:%H:%M} UTC"
