"""Slack deliveries and alert threads in the store: one row per Slack call a transition
needs (written before the call, completed with its ts after), and the thread each alert
key posts into.

Part of `bot.store`: `DeliveriesMixin` is one of the pieces `Store` is made of.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bot.models import Delivery, Thread, format_time

from .connection import Connection, translated


class DeliveriesMixin(Connection):
    def delivery(self, transition_id: int, step: str) -> Delivery | None:
        with translated("reading deliveries"):
            rows = list(
                self.db.query(
                    "select * from deliveries where transition_id = ? and step = ?",
                    [transition_id, step],
                )
            )
        if not rows:
            return None
        row = rows[0]
        return Delivery(row["channel"], row["ts"], row["attempted_at"], bool(row["done"]))

    def delivery_attempted(self, transition_id: int, step: str, channel: str, wall: float) -> None:
        """Record that a Slack call is about to be made (committed before it is)."""
        with translated("recording a delivery"), self._atomic():
            self.db.upsert_all(
                "deliveries",
                [
                    {
                        "transition_id": transition_id,
                        "step": step,
                        "channel": channel,
                        "attempted_at": wall,
                        "done": 0,
                    }
                ],
                pk=("transition_id", "step"),
            )

    def delivery_done(self, transition_id: int, step: str, channel: str, ts: str | None) -> None:
        with translated("recording a delivery"), self._atomic():
            self.db.execute(
                "update deliveries set channel = ?, ts = ?, done = 1 "
                "where transition_id = ? and step = ?",
                [channel, ts, transition_id, step],
            )

    def thread(self, rule: str, group: tuple[str, ...]) -> Thread | None:
        with translated("reading alert threads"):
            rows = list(
                self.db.query(
                    "select * from alert_threads where rule = ? and group_key = ?",
                    [rule, json.dumps(list(group))],
                )
            )
        return _thread(rows[0]) if rows else None

    def threads(self, status: str | None = None) -> list[Thread]:
        sql, params = "select * from alert_threads", []
        if status is not None:
            sql, params = sql + " where status = ?", [status]
        with translated("reading alert threads"):
            return [_thread(row) for row in self.db.query(sql, params)]

    def save_thread(self, thread: Thread, opened_at: datetime) -> None:
        with translated("saving an alert thread"), self._atomic():
            old = self.thread(thread.rule, thread.group)
            row: dict[str, Any] = {
                "rule": thread.rule,
                "group_key": json.dumps(list(thread.group)),
                "channel": thread.channel,
                "ts": thread.ts,
                "status": thread.status,
                "opened_at": format_time(opened_at),
            }
            if old is None or old.ts != thread.ts:  # new to this thread: acked if it was
                ack = self.db.execute(
                    "select acked_by, acked_at from alert_threads where channel = ? and ts = ? "
                    "and acked_by is not null",
                    [thread.channel, thread.ts],
                ).fetchone()
                row.update(acked_by=ack[0] if ack else None, acked_at=ack[1] if ack else None)
            self.db.upsert_all("alert_threads", [row], pk=("rule", "group_key"))


def _thread(row: dict[str, Any]) -> Thread:
    return Thread(
        rule=row["rule"],
        group=tuple(json.loads(row["group_key"])),
        channel=row["channel"],
        ts=row["ts"],
        status=row["status"],
    )
