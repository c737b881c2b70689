"""Silences and acknowledgements in the store: a rule (or one of its groups) silenced
until a time, and who acknowledged an alert's thread.

Part of `bot.store`: `SilencesMixin` is one of the pieces `Store` is made of.
"""

from __future__ import annotations

import json
from datetime import datetime

from bot.models import Silence, format_time, parse_time

from .connection import Connection, translated


class SilencesMixin(Connection):
    def silence(
        self,
        rule: str,
        group: tuple[str, ...] | None,
        until: datetime,
        reason: str,
        by: str | None,
        now: datetime,
    ) -> int:
        with translated("saving a silence"), self._atomic():
            silence_id = self.db.insert(
                "silences",
                {
                    "rule": rule,
                    "group_key": "*" if group is None else json.dumps(list(group)),
                    "until": format_time(until),
                    "reason": reason,
                    "created_by": by,
                    "created_at": format_time(now),
                },
                returning="id",
            )
        return int(silence_id)

    def unsilence(self, rule: str, group: tuple[str, ...] | None) -> int:
        """End the silences on exactly this key; returns how many ended."""
        key = "*" if group is None else json.dumps(list(group))
        with translated("ending a silence"), self._atomic():
            cursor = self.db.execute(
                "delete from silences where rule = ? and group_key = ?", [rule, key]
            )
        return int(cursor.rowcount)

    def silences(self, now: datetime) -> list[Silence]:
        """Silences still in force at `now` (expired ones simply stop matching)."""
        sql = "select * from silences where until > ? order by until"
        with translated("reading silences"):
            rows = list(self.db.query(sql, [format_time(now)]))
        return [
            Silence(
                id=row["id"],
                rule=row["rule"],
                group=None if row["group_key"] == "*" else tuple(json.loads(row["group_key"])),
                until=parse_time(row["until"]),
                reason=row["reason"],
                created_by=row["created_by"],
            )
            for row in rows
        ]

    def silenced(self, rule: str, group: tuple[str, ...], now: datetime) -> Silence | None:
        for silence in self.silences(now):
            if silence.rule == rule and silence.group in (None, group):
                return silence
        return None

    def acknowledge(self, rule: str, group: tuple[str, ...], by: str, now: datetime) -> bool:
        """Acknowledge the alert's thread: every key told in it (an incident's keys share
        its parent, and its button names only the first)."""
        with translated("acknowledging an alert"), self._atomic():
            key = [rule, json.dumps(list(group))]
            cursor = self.db.execute(
                "update alert_threads set acked_by = ?, acked_at = ? "
                "where ts = (select ts from alert_threads where rule = ? and group_key = ?) "
                "and channel = "
                "(select channel from alert_threads where rule = ? and group_key = ?)",
                [by, format_time(now), *key, *key],
            )
        return bool(cursor.rowcount)

    def acknowledgement(self, rule: str, group: tuple[str, ...]) -> tuple[str, datetime] | None:
        with translated("reading an acknowledgement"):
            row = self.db.execute(
                "select acked_by, acked_at from alert_threads where rule = ? and group_key = ?",
                [rule, json.dumps(list(group))],
            ).fetchone()
        return (row[0], parse_time(row[1])) if row and row[0] else None
