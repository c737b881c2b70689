"""Slack deliveries and alert threads in the store: one row per Slack call a transition
needs (written before the call, completed with its ts after), and the thread each alert
key posts into.

Part of `bot.store`: `DeliveriesMixin` is one of the pieces `Store` is made of.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bot.models import AlertState, Delivery, Thread, format_time

from .alerts import state_row
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
            if old is None or old.ts != thread.ts:  # a new thread: nobody has acked it yet
                row.update(acked_by=None, acked_at=None)
            self.db.upsert_all("alert_threads", [row], pk=("rule", "group_key"))

    def adopt(self, thread: Thread, state: AlertState, opened_at: datetime) -> None:
        """A firing alert found in Slack on a fresh database: its thread and its state."""
        with translated("adopting an alert"), self._atomic():
            self.save_thread(thread, opened_at)
            self.db.upsert_all("alert_states", [state_row(state)], pk=("rule", "group_key"))


def _thread(row: dict[str, Any]) -> Thread:
    return Thread(
        rule=row["rule"],
        group=tuple(json.loads(row["group_key"])),
        channel=row["channel"],
        ts=row["ts"],
        status=row["status"],
    )
