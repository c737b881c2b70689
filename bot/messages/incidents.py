"""Incident wording: the parent of several alert keys told together (grouping), and the
thread replies that name the key they are about.

Pure functions from plain data to text and Block Kit; no I/O. A single key's parent is
`alerts.parent_blocks`, as it always was.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from bot.messages.alerts import (
    MAX_SECTION,
    SEVERITY_ICON,
    action_block,
    describe_key,
    format_duration,
    format_metric,
    now_text,
    section,
    with_note,
)
from bot.models import FIRING, FOLD, JOIN, AlertGroup, GroupMember, Rule, Transition

MAX_LISTED = 40  # member lines in the parent (a section holds about 3,000 characters)
MAX_NAMED = 10  # values named in the head
NOUNS = {"model": "models", "segment": "segments", "customer_id": "customers"}
SEVERITIES = ("info", "warning", "critical")


def key_text(group_by: Sequence[str], group: Sequence[str]) -> str:
    """'model pro', 'model pro, segment free', 'the account'."""
    if not group:
        return "the account"
    names = [field.rsplit(".", 1)[-1] for field in group_by]
    return ", ".join(
        f"{name} {value or '(none)'}" for name, value in zip(names, group, strict=False)
    )


def _by_rule(members: Sequence[GroupMember]) -> list[tuple[str, list[GroupMember]]]:
    """Members by rule, the account-wide rules first, otherwise in order of appearance."""
    rules: dict[str, list[GroupMember]] = {}
    for member in members:
        rules.setdefault(member.rule, []).append(member)
    return sorted(rules.items(), key=lambda item: bool(item[1][0].group))


def _target(members: Sequence[GroupMember]) -> str:
    """Whom one rule's members are about: 'the account', 'model pro', '4 models: a, b'."""
    first = members[0]
    if len(members) == 1:
        return key_text(first.group_by, first.group)
    fields = {m.group_by for m in members}
    if len(fields) == 1 and len(first.group_by) == 1:
        noun = NOUNS.get(first.group_by[0].rsplit(".", 1)[-1], "groups")
    else:
        noun = "groups"
    values = ["/".join(v or "(none)" for v in m.group) for m in members]
    named = ", ".join(values[:MAX_NAMED])
    if len(values) > MAX_NAMED:
        named += f" and {len(values) - MAX_NAMED} more"
    return f"{len(members)} {noun}: {named}"


def _phrases(group: AlertGroup, bold: Callable[[str], str]) -> list[str]:
    return [f"{bold(rule)} for {_target(ms)}" for rule, ms in _by_rule(group.members)]


def _lasted(group: AlertGroup) -> str:
    ends = [m.resolved_at for m in group.members if m.resolved_at is not None]
    start = min(m.since for m in group.members)
    return format_duration((max(ends) - start).total_seconds()) if ends else "a while"


def group_head(group: AlertGroup, rules: Mapping[str, Rule], mention: str | None) -> str:
    """':rotating_light: *failed-job-rate* is firing for 4 models: human, light, ...'."""
    first, *others = _phrases(group, lambda rule: f"*{rule}*")
    rule, _, target = first.partition(" for ")
    with_others = f", with {' and '.join(others)}" if others else ""
    if group.status == FIRING:
        icon = SEVERITY_ICON.get(severity(group, rules), ":warning:")
        head = f"{icon} {rule} is firing for {target}{with_others}"
        return f"{mention} {head}" if mention else head
    return f":white_check_mark: {rule} resolved after {_lasted(group)} for {target}{with_others}"


def group_fallback(group: AlertGroup) -> str:
    """The short plain text Slack shows in notifications."""
    verb = "FIRING" if group.status == FIRING else "RESOLVED"
    return f"{verb}: {', with '.join(_phrases(group, lambda rule: rule))}"[:300]


def severity(group: AlertGroup, rules: Mapping[str, Rule]) -> str:
    """The highest severity of its members' rules."""
    found = [rules[m.rule].severity for m in group.members if m.rule in rules]
    return max(found, key=SEVERITIES.index, default="warning")


def member_line(member: GroupMember, *, with_rule: bool) -> str:
    """One key of the parent: what it measured when it fired, and whether it resolved."""
    label = key_text(member.group_by, member.group)
    if with_rule:
        label = f"{member.rule} for {label}"
    figures = (
        f"{format_metric(member.metric, member.value)} against a baseline of "
        f"{format_metric(member.metric, member.baseline)} (z {member.zscore:.1f})"
    )
    if member.state == FIRING:
        return f"• *{label}*: {figures}"
    resolved = f" at {member.resolved_at:%H:%M} UTC" if member.resolved_at else ""
    return f"• :white_check_mark: {label}: resolved{resolved}; fired at {figures}"


def group_parent_blocks(
    group: AlertGroup,
    rules: Mapping[str, Rule],
    lead: GroupMember,
    *,
    mention: str | None = None,
    note: str | None = None,
) -> list[dict[str, object]]:
    """The parent of an incident of several keys, as posted and as each change edits it:
    who is firing, since when, how many resolved, a line per key."""
    members = group.members
    since = min(m.since for m in members)
    resolved = sum(1 for m in members if m.state != FIRING)
    figures = f"*Since:* {since:%Y-%m-%d %H:%M} UTC"
    if group.status == FIRING and resolved:
        figures += f" · *{resolved} of {len(members)} resolved*"
    with_rule = len({m.rule for m in members}) > 1
    ordered = [lead, *(m for m in members if m.key != lead.key)]  # the lead first
    lines = [member_line(m, with_rule=with_rule) for m in ordered[:MAX_LISTED]]
    if len(members) > MAX_LISTED:
        lines.append(f"…and {len(members) - MAX_LISTED} more, each in the thread")
    listing = "\n".join(lines)
    while len(listing) > MAX_SECTION and len(lines) > 1:
        lines = lines[:-2] + [f"…and more, each in the thread ({len(members)} in all)"]
        listing = "\n".join(lines)
    blocks = [
        section(group_head(group, rules, mention)),
        section(figures),
        section(listing),
        _context("Each alert's examples and chart are in the thread."),
    ]
    names = list(dict.fromkeys(m.rule for m in members))
    footer = f"{'rules' if len(names) > 1 else 'rule'} " + ", ".join(f"`{n}`" for n in names)
    footer += f" · severity {severity(group, rules)} · usage-bot"
    for name in names:
        runbook = rules[name].runbook if name in rules else None
        if runbook:
            footer += f" · <{runbook}|runbook>"
    blocks.append(_context(footer))
    if group.status == FIRING and lead.rule in rules:
        blocks.append(action_block(as_transition(lead), rules[lead.rule]))
        if note:
            blocks = with_note(blocks, note)
    return blocks


def as_transition(member: GroupMember) -> Transition:
    """A member as the firing transition it was told with (for the buttons, and the
    parent of an incident of one key adopted from Slack)."""
    return Transition(
        rule=member.rule,
        group=member.group,
        group_by=member.group_by,
        state=FIRING,
        at=member.at,
        value=member.value,
        baseline=member.baseline,
        zscore=member.zscore,
        volume=0.0,
        since=member.since,
        peak_zscore=abs(member.zscore),
        peak_value=member.value,
    )


def member_head(
    t: Transition,
    metric: str,
    window: float,
    how: str,
    *,
    lead: str | None = None,
    mention: str | None = None,
) -> str:
    """The first line of a key's details reply in an incident's thread: which key, and
    how it came in (with the first parent, joined later, or folded under the
    account-wide alert `lead`)."""
    figures = (
        f"{format_metric(metric, t.value)} against a baseline of "
        f"{format_metric(metric, t.baseline)} (z {t.zscore:.1f})"
    )
    if how == JOIN:
        text = f":heavy_plus_sign: *{describe_key(t)}* joined at {t.at:%H:%M} UTC: {figures}"
    elif how == FOLD:
        under = f" under {lead}" if lead else ""
        text = (
            f":heavy_plus_sign: *{describe_key(t)}* folded in{under} at {t.at:%H:%M} UTC: {figures}"
        )
    else:
        text = (
            f"*{describe_key(t)}*: {figures} in the {format_duration(window)} "
            f"ending {t.at:%H:%M} UTC"
        )
    return f"{mention} {text}" if mention else text


def member_resolve_text(t: Transition, metric: str, resolved: int, total: int) -> str:
    """A key's resolution in an incident's thread, and how many of its keys resolved."""
    lasted = format_duration((t.at - t.since).total_seconds()) if t.since else "a while"
    count = f"All {total} resolved." if resolved >= total else f"{resolved} of {total} resolved."
    return (
        f":white_check_mark: *{describe_key(t)}* resolved at {t.at:%Y-%m-%d %H:%M} UTC after "
        f"{lasted}: {now_text(t, metric)}. Peak {format_metric(metric, t.peak_value)} "
        f"(z {t.peak_zscore:.1f}). {count}"
    )


def member_reminder_text(t: Transition, text: str) -> str:
    """A key's reminder in an incident's thread: its name before the reminder."""
    return f"*{describe_key(t)}*: {text}"


def _context(text: str) -> dict[str, object]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:MAX_SECTION]}]}
