"""All user-facing wording in one place: pure functions from plain data to text (and
Slack Block Kit), no I/O. Operators' log lines stay where they are logged.

* `reports`: the tables of `query` and `/usage` (summary, events), sparklines;
* `alerts`: the plain-text alert, the `alerts` report, an alert's Slack messages;
* `incidents`: the parent of several alert keys told together, the replies naming a key;
* `commands`: the `/usage` help, corrections and fixed answers, with the bounds they state;
* `notices`: ops notices (episodes opened and cleared) and how notices and posts show;
* `transport`: what `serve` and Socket Mode answer themselves (apologies, HTTP errors);
* `budget`: budget states, threshold and forecast messages, the digest's budget lines;
* `feedback`: a parent's expected / noise line, per-rule alert figures, `tune`'s report;
* `breakdown`: what drives an alert, in its thread and for `/usage model`.

Everything is re-exported here, so `messages.alert_text(...)` and
`from bot.messages import table` keep working.
"""

from __future__ import annotations

from bot.messages import commands, feedback, notices, transport
from bot.messages.alerts import (
    ACK,
    ACK_NOTE,
    FEEDBACK_NOTE,
    MARK_EXPECTED,
    MARK_NOISE,
    MAX_BLOCKS,
    MAX_SECTION,
    SEVERITY_ICON,
    SILENCE_1H,
    SILENCE_24H,
    action_block,
    alert_fallback,
    alert_text,
    alerts_report,
    chart_title,
    describe_key,
    detail_blocks,
    details_fallback,
    feedback_block,
    format_duration,
    format_metric,
    parent_blocks,
    reminder_text,
    resolve_text,
    section,
    with_note,
)
from bot.messages.reports import (
    SPARK,
    coverage_footer,
    coverage_line,
    coverage_report,
    digest_chart_title,
    digest_coverage_lines,
    events_report,
    freshness,
    sparkline,
    summary_report,
    table,
)

__all__ = [
    "ACK",
    "ACK_NOTE",
    "FEEDBACK_NOTE",
    "MARK_EXPECTED",
    "MARK_NOISE",
    "MAX_BLOCKS",
    "MAX_SECTION",
    "SEVERITY_ICON",
    "SILENCE_1H",
    "SILENCE_24H",
    "SPARK",
    "action_block",
    "alert_fallback",
    "alert_text",
    "alerts_report",
    "chart_title",
    "commands",
    "coverage_footer",
    "coverage_line",
    "coverage_report",
    "describe_key",
    "detail_blocks",
    "details_fallback",
    "feedback",
    "feedback_block",
    "digest_chart_title",
    "digest_coverage_lines",
    "events_report",
    "format_duration",
    "format_metric",
    "freshness",
    "notices",
    "parent_blocks",
    "reminder_text",
    "resolve_text",
    "section",
    "sparkline",
    "summary_report",
    "table",
    "transport",
    "with_note",
]
