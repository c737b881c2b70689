"""Summaries in the store: a snapshot row per summary poll, the latest figure per (day,
model), and the daily figures read back (per model, or per segment counted from events).

Part of `bot.store`: `SummariesMixin` is one of the pieces `Store` is made of.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from bot.models import TOTAL, DailyUsage, PollRecord, Summary, format_time, parse_time

from .connection import Connection, translated
from .polls import insert_poll

SNAPSHOT_DAYS = 2  # the account's last days kept per snapshot: today and yesterday
LAST_POLL_SQL = "select max(polled_at) as polled_at from summary_snapshots"


class SummariesMixin(Connection):
    def save_summary(
        self,
        summary: Summary,
        polled_at: datetime,
        log: Callable[[], PollRecord] | None = None,
    ) -> int:
        """Keep a snapshot row per poll and the latest figures per (date, model). With
        `log`, the poll-log row it makes is written in the same transaction (as
        `save_events` does)."""
        with translated("saving a summary"), self._atomic():
            snapshot_id = int(
                self.db.insert(
                    "summary_snapshots",
                    {
                        "polled_at": format_time(polled_at),
                        "days": summary.days,
                        "start_date": summary.start_date.isoformat(),
                        "end_date": summary.end_date.isoformat(),
                        "total_jobs": summary.total_jobs,
                        "completed_jobs": summary.completed_jobs,
                        "failed_jobs": summary.failed_jobs,
                        "credits_used": summary.credits_used,
                        "request_id": summary.request_id,
                    },
                    returning="id",
                )
            )
            account = sorted((r for r in summary.daily if r.model == TOTAL), key=lambda r: r.date)
            self.db.insert_all(
                "snapshot_days",
                [
                    {
                        "snapshot_id": snapshot_id,
                        "polled_at": format_time(polled_at),
                        "date": row.date.isoformat(),
                        "total_jobs": row.total_jobs,
                        "completed_jobs": row.completed_jobs,
                        "failed_jobs": row.failed_jobs,
                        "credits_used": row.credits_used,
                    }
                    for row in account[-SNAPSHOT_DAYS:]
                ],
            )
            # Only the figures that changed are written: most days a poll covers are
            # final, and rewriting them all cost PostgreSQL ~10 ms a poll. What is stored
            # for those days is read under the write lock, so a second worker's poll
            # cannot slip in between.
            stored = {
                (row.date, row.model): row
                for row in self.daily_usage(summary.start_date, summary.end_date)
            }
            latest = {(row.date, row.model): row for row in summary.daily}  # the last one wins
            if summary.has_daily_models:
                # The service lists only active models per day: a model that dropped to
                # zero on a day it covers must not keep a stale figure.
                gone = [
                    [day.isoformat(), model] for day, model in stored if (day, model) not in latest
                ]
                if gone:
                    self.db.executemany(
                        "delete from daily_usage where date = ? and model = ?", gone
                    )
            self.db.upsert_all(
                "daily_usage",
                (
                    {
                        "date": row.date.isoformat(),
                        "model": row.model,
                        "total_jobs": row.total_jobs,
                        "completed_jobs": row.completed_jobs,
                        "failed_jobs": row.failed_jobs,
                        "credits_used": row.credits_used,
                        "snapshot_id": snapshot_id,  # the snapshot that last changed the row
                    }
                    for key, row in latest.items()
                    if stored.get(key) != row
                ),
                pk=("date", "model"),
            )
            if log is not None:
                insert_poll(self.db, log())
        return snapshot_id

    def daily_usage(self, start: date, end: date, model: str | None = None) -> list[DailyUsage]:
        """Stored daily rows with start <= date <= end, oldest first."""
        sql = "select * from daily_usage where date >= ? and date <= ?"
        params: list[Any] = [start.isoformat(), end.isoformat()]
        if model is not None:
            sql += " and model = ?"
            params.append(model)
        with translated("reading daily usage"):
            rows = list(self.db.query(sql + " order by date, model", params))
        return [
            DailyUsage(
                date=date.fromisoformat(row["date"]),
                model=row["model"],
                total_jobs=row["total_jobs"],
                completed_jobs=row["completed_jobs"],
                failed_jobs=row["failed_jobs"],
                credits_used=row["credits_used"],
            )
            for row in rows
        ]

    def segment_daily(self, segment: str, start: date, end: date) -> list[DailyUsage]:
        """One customer segment's daily figures, counted from stored events (the summary
        has no segments), for start <= date <= end; `model` holds the segment."""
        sql = (
            "select substr(created_at, 1, 10) as day, "
            "sum(case when status in ('pending', 'created') then 1 else 0 end) as jobs, "
            "sum(case when status = 'completed' then 1 else 0 end) as completed, "
            "sum(case when status = 'failed' then 1 else 0 end) as failed, "
            "sum(credits_used) as credits from events "
            "where segment = ? and created_at >= ? and created_at < ? group by day order by day"
        )
        params = [segment, start.isoformat(), (end + timedelta(days=1)).isoformat()]
        with translated("reading segment figures"):
            rows = self.db.execute(sql, params).fetchall()
        return [
            DailyUsage(date.fromisoformat(day), segment, jobs, completed, failed, credits or 0.0)
            for day, jobs, completed, failed, credits in rows
        ]

    def segments(self) -> list[str]:
        with translated("reading segments"):
            rows = self.db.execute(
                "select distinct segment from events where segment is not null order by segment"
            ).fetchall()
        return [row[0] for row in rows]

    def last_summary_poll(self) -> datetime | None:
        with translated("reading summaries"):
            row = self.db.execute(LAST_POLL_SQL).fetchone()
        return parse_time(row[0]) if row and row[0] else None
