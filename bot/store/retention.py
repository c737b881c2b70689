"""Retention across the store's tables: what no baseline, alert or silence needs any
more is deleted, so the file stays bounded.

Part of `bot.store`: `RetentionMixin` is one of the pieces `Store` is made of.
"""

from __future__ import annotations

from datetime import datetime

from bot.models import format_time

from .connection import Connection, translated


class RetentionMixin(Connection):
    def prune(self, events_before: datetime, log_before: datetime) -> dict[str, int]:
        """Delete what no baseline needs any more; the file stays bounded.

        Events older than `events_before`; poll log, gaps, summary snapshots, delivered
        transitions' step records, notices and resolved incidents older than `log_before`.
        Daily figures, alert states, open threads and silences in force are kept.
        """
        cut_events, cut_log = format_time(events_before), format_time(log_before)
        statements = {
            "events": ("delete from events where created_at < ?", cut_events),
            "polls": ("delete from polls where started_at < ?", cut_log),
            "event_gaps": ("delete from event_gaps where detected_at < ?", cut_log),
            "summary_snapshots": ("delete from summary_snapshots where polled_at < ?", cut_log),
            "snapshot_days": ("delete from snapshot_days where polled_at < ?", cut_log),
            "notices": ("delete from notices where at < ? and notified_at is not null", cut_log),
            "silences": ("delete from silences where until < ?", cut_log),
            "alert_group_members": (
                "delete from alert_group_members where group_id in (select id from "
                "alert_groups where status = 'resolved' and updated_at < ?)",
                cut_log,
            ),
            "alert_groups": (
                "delete from alert_groups where status = 'resolved' and updated_at < ?",
                cut_log,
            ),
        }
        with translated("pruning old rows"), self._atomic():
            done = {table: self.db.execute(sql, [cut]) for table, (sql, cut) in statements.items()}
        # Counted after the commit: on PostgreSQL, no wait inside the transaction.
        return {table: cursor.rowcount for table, cursor in done.items()}
