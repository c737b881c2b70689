"""Coverage inputs in the store: the account's daily figures as each summary poll saw
them, the stored finished jobs per minute, and `coverage_hours`, the figure itself
(computed by the pure `bot.coverage` over what this reads).

Part of `bot.store`: `CoverageMixin` is one of the pieces `Store` is made of.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from bot.coverage import Coverage, Interval, Snapshot, coverage, intervals
from bot.models import format_time, parse_time

from .connection import Connection, translated

HOURS = 24  # what `query coverage`, /healthz and the footer look back by default


class CoverageMixin(Connection):
    def snapshots_between(self, start: datetime, end: datetime) -> list[Snapshot]:
        """Summary snapshots polled in [start, end], plus the last one before `start`
        (the pair that spans `start`), oldest first."""
        sql = (
            "select polled_at, date, completed_jobs + failed_jobs as finished, credits_used "
            "from snapshot_days where polled_at >= coalesce("
            "(select max(polled_at) from snapshot_days where polled_at < ?), ?) "
            "and polled_at <= ? order by polled_at, date"
        )
        begin = format_time(start)
        with translated("reading summary snapshots"):
            rows = self.db.execute(sql, [begin, begin, format_time(end)]).fetchall()
        found: dict[str, tuple[dict[date, int], dict[date, float]]] = {}
        for polled_at, day, finished, credits in rows:
            jobs, spent = found.setdefault(polled_at, ({}, {}))
            jobs[date.fromisoformat(day)] = int(finished or 0)
            spent[date.fromisoformat(day)] = float(credits or 0.0)
        return [Snapshot(parse_time(at), jobs, spent) for at, (jobs, spent) in found.items()]

    def summary_intervals(self, start: datetime, end: datetime) -> list[Interval]:
        """What the summary says happened between its snapshots around [start, end]."""
        return intervals(self.snapshots_between(start, end))

    def finished_per_minute(self, start: datetime, end: datetime) -> dict[datetime, int]:
        """Stored events with status completed or failed, per minute of created_at, for
        start <= created_at < end."""
        sql = (
            "select substr(created_at, 1, 16) as minute, count(*) from events "
            "where created_at >= ? and created_at < ? and status in ('completed', 'failed') "
            "group by minute"
        )
        with translated("reading events"):
            rows = self.db.execute(sql, [format_time(start), format_time(end)]).fetchall()
        return {parse_time(minute + ":00Z"): int(count) for minute, count in rows}

    def count_events_between(self, start: datetime, end: datetime) -> tuple[int, int]:
        """(events, finished jobs' events) stored with start <= created_at < end."""
        sql = (
            "select count(*), "
            "coalesce(sum(case when status in ('completed', 'failed') then 1 else 0 end), 0) "
            "from events "
            "where created_at >= ? and created_at < ?"
        )
        with translated("counting events"):
            row = self.db.execute(sql, [format_time(start), format_time(end)]).fetchone()
        return int(row[0]), int(row[1])

    def coverage_hours(self, now: datetime, hours: int = HOURS) -> Coverage:
        """Coverage per UTC hour over the last `hours` hours up to `now` (the first hour
        whole, the current one partial) and overall: see `bot.coverage`."""
        start = (now - timedelta(hours=hours - 1)).replace(minute=0, second=0, microsecond=0)
        return self.coverage_between(start, now)

    def coverage_between(self, start: datetime, end: datetime) -> Coverage:
        """Coverage per UTC hour meeting [start, end) and overall (e.g. a local day)."""
        return coverage(
            self.snapshots_between(start, end), self.finished_per_minute(start, end), start, end
        )
