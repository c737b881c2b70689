"""Usage reports: the tables and sparklines of `query` and `/usage`, and their
freshness note.

Pure functions from plain data to text; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

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
