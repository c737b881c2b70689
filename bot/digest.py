"""The daily digest: yesterday per model against the median of the same weekday in the
weeks before (a quiet Sunday against Sundays, not against the week), budget burn with the
forecast, open alerts with their threads, and 30 days of credits per model.

`due` and `compose` take the time as an argument; the result is a JSON payload queued
once per (day, channel) in the store's post outbox, and `digest_text` words it when it
is sent (so a digest queued before a restart is told the same after).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.budget import BudgetStatus, as_json, midnight, slot_of, spend_slots
from bot.budget_book import BudgetBook, summary_figures
from bot.commands import permalink
from bot.coverage import overlaps
from bot.messages import budget as budget_words
from bot.messages import digest_coverage_lines, format_duration, sparkline, table
from bot.messages import feedback as feedback_words
from bot.metrics import CREDITS, FAILED, FINISHED, JOBS
from bot.models import TOTAL, DigestConfig, format_time, parse_time
from bot.store import Store

CHART_DAYS = 30
WEEKS = 4  # yesterday's credits against the median of its weekday in up to this many weeks
STATS_DAYS = 7  # the alert figures per rule cover the last week (a day holds few alerts)


def due(config: DigestConfig, now: datetime) -> date | None:
    """The local day whose digest is due at `now`: today once the set time has passed.
    A worker that was down at that minute still posts later the same day; a day that
    has ended without a digest is not caught up (its news is stale)."""
    local = now.astimezone(ZoneInfo(config.timezone))
    return local.date() if (local.hour, local.minute) >= config.at else None


def day_start(config: DigestConfig, now: datetime) -> datetime:
    """When the local day of `now` began (UTC): the oldest a digest due today can be."""
    zone = ZoneInfo(config.timezone)
    return midnight(now.astimezone(zone).date(), zone)


def key(day: date, channel: str | None) -> str:
    return f"digest:{day.isoformat()}:{channel or 'default'}"


def compose(
    store: Store,
    book: BudgetBook,
    states: Sequence[BudgetStatus],
    config: DigestConfig,
    now: datetime,
) -> dict[str, Any]:
    """Everything the digest says, as JSON."""
    zone = ZoneInfo(config.timezone)
    today = now.astimezone(zone).date()
    first = today - timedelta(days=CHART_DAYS)
    days = [first + timedelta(days=i) for i in range(CHART_DAYS)]  # up to yesterday
    daily = book.daily(store, now)
    models = sorted(({g[0] for g in book.cube.groups} | {m for _, m in daily}) - {TOTAL, ""})
    lo = slot_of(midnight(first, zone))
    measures = {"jobs": JOBS, "finished": FINISHED, "failed": FAILED, "credits": CREDITS}
    figures: dict[str, dict[str, list[float]]] = {}
    rows = []
    totals = [0.0] * len(days)
    known_any = [False] * len(days)
    for model in models:
        scope = (("model", model),)
        f = figures[model] = {}
        for name, measure in measures.items():
            f[name], known = _per_day(book, scope, daily, measure, lo, now, days, zone)
        row: dict[str, Any] = {name: values[-1] for name, values in f.items()}  # yesterday
        row["median_weekday"], row["weeks"] = same_weekday(f["credits"], known)
        rows.append({"model": model, **row})
        totals = [a + b for a, b in zip(totals, f["credits"], strict=True)]
        known_any = [a or b for a, b in zip(known_any, known, strict=True)]
    total_median, weeks = same_weekday(totals, known_any)
    alerts = []
    for state in sorted(store.alert_states().values(), key=lambda s: (s.rule, s.group)):
        if state.status != "firing":
            continue
        thread = store.thread(state.rule, state.group)
        alerts.append(
            {
                "rule": state.rule,
                "group": list(state.group),
                "since": format_time(state.since) if state.since else None,
                "link": permalink(thread) if thread else None,
            }
        )
    day_start, day_end = midnight(days[-1], zone), midnight(today, zone)
    return {
        "day": days[-1].isoformat(),
        # Yesterday's finished jobs stored vs the summary's count, and whether a known
        # gap fell in it (its figures then rest on the summary's counts: estimated).
        "coverage": store.coverage_between(day_start, day_end).to_json(),
        "estimated": overlaps(store.gaps(), day_start, day_end),
        "timezone": config.timezone,
        "at": format_time(now),
        "models": rows,
        # Yesterday against its weekday's median: the account's, and how many weeks it has.
        "weekday_median": {"credits": total_median, "weeks": weeks},
        "budgets": [as_json(s) for s in states],
        "alerts": alerts,
        "alert_stats": alert_stats(store, now),
        "chart": {
            "days": [d.isoformat() for d in days],
            "credits": {m: figures[m]["credits"] for m in models},
        },
    }


def same_weekday(per_day: Sequence[float], known: Sequence[bool]) -> tuple[float | None, int]:
    """The median of the last day's weekday in up to WEEKS weeks before it (the days the
    bot knows whole: before it held events or summary figures there is no zero to count),
    and how many weeks it rests on; (None, 0) with none."""
    earlier = [per_day[i] for i in range(len(per_day) - 1 - 7, -1, -7)[:WEEKS] if known[i]]
    return (statistics.median(earlier) if earlier else None), len(earlier)


def alert_stats(store: Store, now: datetime, days: int = STATS_DAYS) -> list[dict[str, Any]]:
    """Per rule, the alert episodes of the last `days`: how many, acknowledged, marked
    expected, marked noise, the median time to acknowledge (the digest's own section)."""
    return feedback_words.stats_rows(store.alert_stats(now - timedelta(days=days), now))


def _per_day(
    book: BudgetBook,
    scope: tuple[tuple[str, str], ...],
    daily: Mapping[Any, Any],
    measure: int,
    lo: int,
    now: datetime,
    days: Sequence[date],
    zone: ZoneInfo,
) -> tuple[list[float], list[bool]]:
    """A measure per local day, and whether the bot knows each day whole."""
    values, known = spend_slots(
        book.cube, scope, summary_figures(daily, scope, measure), lo, now, measure
    )
    totals, whole = [], []
    for day in days:
        a = slot_of(midnight(day, zone)) - lo
        b = slot_of(midnight(day + timedelta(days=1), zone)) - lo
        totals.append(round(float(values[a:b].sum()), 4))
        whole.append(bool(known[a:b].all()))
    return totals, whole


def digest_text(payload: Mapping[str, Any]) -> str:
    """The digest as one Slack message (mrkdwn, the table in a code block)."""
    day = date.fromisoformat(payload["day"])
    head = f":bar_chart: *Usage digest for {day:%A %d %B %Y}* ({payload['timezone']})"
    # "median_7d": a digest queued by the version that compared with the 7 days before.
    weekday = "weekday_median" in payload
    median = "median_weekday" if weekday else "median_7d"
    rows = []
    total: dict[str, Any] = {"jobs": 0.0, "finished": 0.0, "failed": 0.0, "credits": 0.0}
    total[median] = payload["weekday_median"]["credits"] if weekday else 0.0
    for row in payload["models"]:
        rows.append(_row(row["model"], row, median))
        for name in ("jobs", "finished", "failed", "credits"):
            total[name] += row[name]
        if not weekday:
            total[median] += row[median]
    lines = [head]
    if rows:
        rows.append(_row("total", total, median))
        versus = f"vs {day:%A}s" if weekday else "vs 7-day median"
        header = ["model", "jobs", "fail rate", "credits", versus]
        lines.append("```\n" + table(header, rows) + "\n```")
        if weekday:
            lines.append(weekday_note(day, int(payload["weekday_median"]["weeks"])))
    else:
        lines.append("No usage recorded yesterday.")
    lines.extend(digest_coverage_lines(payload.get("coverage"), bool(payload.get("estimated"))))
    credits_by_day = [
        sum(values) for values in zip(*payload["chart"]["credits"].values(), strict=True)
    ]
    if credits_by_day:
        lines.append(f"Credits, last 30 days: {sparkline(credits_by_day)}")
    for state in payload["budgets"]:
        lines.append(
            f"*Budget {state['budget']}* ({budget_words.scope(state)}): "
            f"{budget_words.spent_line(state)} {budget_words.forecast_line(state)}"
        )
    if payload["alerts"]:
        lines.append(f"*Open alerts ({len(payload['alerts'])})*")
        now = parse_time(payload["at"])
        for alert in payload["alerts"]:
            group = ", ".join(v or "(none)" for v in alert["group"]) or "account"
            since = alert["since"]
            age = ""
            if since:
                started = parse_time(since)
                age = f", firing for {format_duration((now - started).total_seconds())}"
            link = f" <{alert['link']}|thread>" if alert["link"] else ""
            lines.append(f"• {alert['rule']} [{group}]{age}{link}")
    else:
        lines.append("No open alerts.")
    lines.extend(feedback_words.digest_stats_lines(payload.get("alert_stats"), STATS_DAYS))
    return "\n".join(lines)


def weekday_note(day: date, weeks: int) -> str:
    """What the last column compares with."""
    if not weeks:
        return f"Credits: no earlier {day:%A} is stored yet to compare with."
    if weeks == WEEKS:
        return f"Credits against the median of the {WEEKS} {day:%A}s before."
    which = f"the {day:%A}" if weeks == 1 else f"the median of the {weeks} {day:%A}s"
    return f"Credits against {which} before (all that are stored; up to {WEEKS})."


def _row(name: str, row: Mapping[str, Any], median_key: str) -> list[str]:
    rate = f"{row['failed'] / row['finished']:.1%}" if row["finished"] else "-"
    median = row.get(median_key)
    change = f"{(row['credits'] - median) / median:+.0%}" if median else "-"
    return [name, f"{row['jobs']:,.0f}", rate, f"{row['credits']:,.0f}", change]
