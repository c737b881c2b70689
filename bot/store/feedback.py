"""Feedback on alert episodes in the store: the verdict of a parent's Expected / Noise
buttons (the last click wins) and the first acknowledgement, per episode (rule, group and
the episode's first breach).

Part of `bot.store`: `FeedbackMixin` is one of the pieces `Store` is made of.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bot.models import Feedback, format_time, parse_time

from .connection import Connection, translated


class FeedbackMixin(Connection):
    def record_verdict(
        self,
        rule: str,
        group: tuple[str, ...],
        since: datetime,
        verdict: str,
        by: str,
        now: datetime,
    ) -> Feedback | None:
        """Mark one episode expected or noise: a later click replaces an earlier one,
        whoever made it. Returns the feedback as it stood before (None: none yet)."""
        with translated("recording feedback"), self._atomic():
            before = self.feedback(rule, group, since)
            self.db.upsert_all(
                "alert_feedback",
                [
                    {
                        "rule": rule,
                        "group_key": json.dumps(list(group)),
                        "since": format_time(since),
                        "verdict": verdict,
                        "verdict_by": by,
                        "verdict_at": format_time(now),
                    }
                ],
                pk=("rule", "group_key", "since"),
            )
        return before

    def record_ack(
        self, rule: str, group: tuple[str, ...], since: datetime, by: str, now: datetime
    ) -> None:
        """The episode's first acknowledgement (a later one changes nothing: the time to
        acknowledge is the first one's)."""
        sql = (
            "insert into alert_feedback (rule, group_key, since, acked_by, acked_at) "
            "values (?, ?, ?, ?, ?) on conflict (rule, group_key, since) do update set "
            "acked_by = excluded.acked_by, acked_at = excluded.acked_at "
            "where alert_feedback.acked_at is null"
        )
        params = [rule, json.dumps(list(group)), format_time(since), by, format_time(now)]
        with translated("recording an acknowledgement"), self._atomic():
            self.db.execute(sql, params)

    def feedback(self, rule: str, group: tuple[str, ...], since: datetime) -> Feedback | None:
        sql = "select * from alert_feedback where rule = ? and group_key = ? and since = ?"
        with translated("reading feedback"):
            rows = self.db.query(sql, [rule, json.dumps(list(group)), format_time(since)])
        return _feedback(rows[0]) if rows else None

    def episode_since(self, rule: str, group: tuple[str, ...]) -> datetime | None:
        """When the key's latest episode began: its open state's, else its latest firing's
        (for a click on a parent whose buttons do not say)."""
        key = [rule, json.dumps(list(group))]
        with translated("reading an alert episode"):
            row = self.db.execute(
                "select since from alert_states where rule = ? and group_key = ? "
                "and status = 'firing'",
                key,
            ).fetchone()
            if row is None or not row[0]:
                row = self.db.execute(
                    "select since from alert_transitions where rule = ? and group_key = ? "
                    "and state = 'firing' order by at desc limit 1",
                    key,
                ).fetchone()
        return parse_time(row[0]) if row and row[0] else None


def _feedback(row: dict[str, Any]) -> Feedback:
    return Feedback(
        rule=row["rule"],
        group=tuple(json.loads(row["group_key"])),
        since=parse_time(row["since"]),
        verdict=row["verdict"],
        verdict_by=row["verdict_by"],
        verdict_at=_time(row["verdict_at"]),
        acked_by=row["acked_by"],
        acked_at=_time(row["acked_at"]),
    )


def _time(text: str | None) -> datetime | None:
    return parse_time(text) if text else None
