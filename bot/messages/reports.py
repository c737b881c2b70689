"""Usage reports: the tables and sparklines of `query` and `/usage`, and their
freshness note.

Pure functions from plain data to text; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.coverage import Coverage
from bot.models import TOTAL, DailyUsage, Event

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float]) -> str:
    """A one-line chart: ▁ for the smallest value, █ for the largest, a space for none."""
    known = [v for v in values if math.isfinite(v)]
    if not known:
        return ""
    low, high = min(known), max(known)
    span = high - low
    return "".join(
        " "
        if not math.isfinite(v)
        else SPARK[min(7, int((v - low) / span * 7.999))]
        if span > 0
        else SPARK[0]
        for v in values
    )


def _rate(failed: int, finished: int) -> str:
    return f"{failed / finished:.1%}" if finished else "-"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Right-aligned columns except the first; a rule under the header."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = str(cells[0]).ljust(widths[0])
        rest = (str(c).rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def freshness(last_poll: datetime | None, now: datetime) -> str:
    if last_poll is None:
        return "no data polled yet"
    age = max(0, int((now - last_poll).total_seconds()))
    if age < 120:
        return f"as of {age}s ago"
    if age < 7200:
        return f"as of {age // 60} min ago"
    return f"as of {age // 3600} h ago"


def summary_report(
    rows: Sequence[DailyUsage], days: int, last_poll: datetime | None, now: datetime
) -> str:
    """Totals and a per-model table over the given daily rows, with a credits sparkline."""
    if not rows:
        return f"Usage, last {days} days: no summary stored yet ({freshness(last_poll, now)})."
    by_model: dict[str, list[DailyUsage]] = {}
    for row in rows:
        by_model.setdefault(row.model, []).append(row)
    table_rows = []
    for model in sorted(m for m in by_model if m != TOTAL):
        table_rows.append(_figures_row(model, by_model[model]))
    totals = by_model.get(TOTAL, [])
    table_rows.append(_figures_row("total", totals))
    daily_credits = [r.credits_used for r in sorted(totals, key=lambda r: r.date)]
    first, last = min(r.date for r in rows), max(r.date for r in rows)
    span = f"{days} day" + ("s" if days != 1 else "")
    head = f"Usage {first} .. {last} ({span}, UTC; {freshness(last_poll, now)})"
    grid = table(["model", "jobs", "completed", "failed", "fail rate", "credits"], table_rows)
    return f"{head}\n{grid}\ncredits per day: {sparkline(daily_credits)}"


def _figures_row(name: str, rows: Sequence[DailyUsage]) -> list[str]:
    jobs = sum(r.total_jobs for r in rows)
    completed = sum(r.completed_jobs for r in rows)
    failed = sum(r.failed_jobs for r in rows)
    credits = sum(r.credits_used for r in rows)
    return [
        name,
        f"{jobs:,}",
        f"{completed:,}",
        f"{failed:,}",
        _rate(failed, completed + failed),
        f"{credits:,.1f}",
    ]


def events_report(events: Sequence[Event], last_poll: datetime | None, now: datetime) -> str:
    """The newest events, one line each, with request_id and job_id."""
    if not events:
        return f"No events stored yet ({freshness(last_poll, now)})."
    rows = [
        [
            e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            e.status or "-",
            e.model or "-",
            f"{e.credits_used:.2f}",
            e.error_code or "",
            e.request_id or "-",
            e.job_id or "-",
        ]
        for e in events
    ]
    header = ["time (UTC)", "status", "model", "credits", "error", "request_id", "job_id"]
    return f"Latest {len(events)} events ({freshness(last_poll, now)})\n" + table(header, rows)


def digest_chart_title(day: object) -> str:
    """The title of the chart uploaded into a daily digest's thread."""
    return f"Credits per day by model, 30 days to {day}"


# -- coverage ------------------------------------------------------------------------------


def _percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.1%}"


def coverage_report(coverage: Coverage, freshness_note: str) -> str:
    """`query coverage`: per UTC hour, finished jobs stored as events vs reported by the
    summary's snapshots, and the overall figure."""
    rows = []
    for hour in coverage.hours:
        if hour.spanned <= 0:
            rows.append([f"{hour.hour:%Y-%m-%d %H:00}", f"{hour.stored:,}", "-", "-", "no summary"])
            continue
        partial = "partial" if hour.spanned < 3600 - 1e-6 else ""
        rows.append(
            [
                f"{hour.hour:%Y-%m-%d %H:00}",
                f"{hour.stored:,}",
                f"{hour.reported:,.1f}",
                _percent(hour.ratio),
                partial,
            ]
        )
    hours = len(coverage.hours)
    head = (
        f"Coverage, last {hours} h (UTC; {freshness_note}): {coverage_line(coverage)}"
        if coverage.ratio is not None
        else f"Coverage, last {hours} h (UTC; {freshness_note}): "
        "the summary reports no finished job to compare with yet."
    )
    grid = table(["hour (UTC)", "stored", "reported", "coverage", ""], rows)
    return (
        f"{head}\n{grid}\n"
        "stored: events with status completed or failed; reported: completed + failed jobs "
        "the summary's 15-minute snapshots add up to, spread evenly inside each interval "
        "(approximate at hour edges)."
    )


def coverage_line(coverage: Coverage) -> str:
    """The overall figure in one phrase: '97.5% (1,170 of about 1,200 finished jobs)'."""
    return (
        f"{_percent(coverage.ratio)} ({coverage.stored:,} of about {coverage.reported:,.0f} "
        "finished jobs stored as events)"
    )


def coverage_footer(coverage: Coverage) -> str | None:
    """A footer for `/usage summary` when coverage is low; None when it is fine or unknown."""
    if not coverage.low:
        return None
    return (
        f"Coverage, last {len(coverage.hours)} h: {coverage_line(coverage)}; figures counted "
        "from events are low there (`usage-bot query coverage` shows the hours)."
    )


DIGEST_ESTIMATED = (
    "_Estimated: events were lost in a gap that day; the models' and total figures "
    "include what the summary counted for them._"
)


def digest_coverage_lines(coverage: Mapping[str, Any] | None, estimated: bool) -> list[str]:
    """The digest's coverage sentence (from `Coverage.to_json`) and its estimate note."""
    lines = [DIGEST_ESTIMATED] if estimated else []
    if coverage and coverage.get("coverage") is not None:
        lines.append(
            f"Coverage: {coverage['coverage']:.1%} of the finished jobs the summary reports "
            f"were stored as events ({coverage['stored']:,} of about "
            f"{coverage['reported']:,.0f})."
        )
    return lines
