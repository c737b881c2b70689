"""The poll log and the events-gap record in the store: one row per API call, the last
good answer per endpoint (how fresh what we tell is), and the gaps `save_events` found.

Part of `bot.store`: `PollsMixin` is one of the pieces `Store` is made of.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.models import Gap, PollRecord, format_time, parse_time

from .connection import Connection, translated
from .database import Database


class PollsMixin(Connection):
    def log_poll(self, record: PollRecord) -> None:
        with translated("writing the poll log"), self._atomic():
            insert_poll(self.db, record)

    def polls(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest poll-log rows, newest first."""
        with translated("reading the poll log"):
            return list(self.db.query("select * from polls order by id desc limit ?", [limit]))

    def last_success(self, endpoint: str) -> datetime | None:
        """When `endpoint` last answered well: the freshness of what we can tell."""
        sql = "select max(finished_at) from polls where endpoint = ? and status = 'ok'"
        with translated("reading the poll log"):
            row = self.db.execute(sql, [endpoint]).fetchone()
        return parse_time(row[0]) if row and row[0] else None

    def gaps(self) -> list[Gap]:
        with translated("reading gaps"):
            rows = list(self.db.query("select * from event_gaps order by id"))
        return [
            Gap(parse_time(r["newest_stored_at"]), parse_time(r["oldest_seen_at"])) for r in rows
        ]


def insert_poll(db: Database, record: PollRecord) -> None:
    """The poll-log row, inside the caller's transaction."""
    db.insert(
        "polls",
        {
            "endpoint": record.endpoint,
            "started_at": format_time(record.started_at),
            "finished_at": format_time(record.finished_at),
            "duration_ms": round(record.duration_ms, 3),
            "status": record.status,
            "http_status": record.http_status,
            "request_id": record.request_id,
            "error_code": record.error_code,
            "error_message": record.error_message,
            "items_seen": record.items_seen,
            "items_new": record.items_new,
            "next_poll_seconds": record.next_poll_seconds,
            "pace": record.pace,
        },
    )
