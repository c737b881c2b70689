"""Enforcement hooks in the store: each body fixed when its budget event is decided,
then tried until delivered (`bot.hooks` signs and sends them).

Part of `bot.store`: `HooksMixin` is one of the pieces `Store` is made of.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.models import Hook, format_time, parse_time

from .connection import Connection, translated
from .database import Database


class HooksMixin(Connection):
    def hooks(self, *, due: float | None = None) -> list[Hook]:
        """Every hook, oldest first; with `due` (wall clock), those to try now."""
        sql = "select * from hooks"
        params: list[Any] = []
        if due is not None:
            sql += (
                " where delivered_at is null and (next_attempt_at is null or next_attempt_at <= ?)"
            )
            params.append(due)
        with translated("reading hooks"):
            rows = list(self.db.query(sql + " order by id", params))
        return [
            Hook(
                r["id"],
                r["key"],
                r["budget"],
                r["body"],
                r["attempts"],
                parse_time(r["delivered_at"]) if r["delivered_at"] else None,
                r["last_status"],
            )
            for r in rows
        ]

    def hook_tried(
        self,
        hook_id: int,
        *,
        status: int | None,
        error: str | None,
        retry_at: float | None,
        now: datetime,
    ) -> None:
        """Record one try: delivered when `error` is None, else due again at `retry_at`."""
        with translated("updating hooks"), self._atomic():
            self.db.execute(
                "update hooks set attempts = attempts + 1, last_status = ?, last_error = ?, "
                "next_attempt_at = ?, delivered_at = ? where id = ?",
                [
                    status,
                    error[:500] if error else None,
                    retry_at,
                    format_time(now) if error is None else None,
                    hook_id,
                ],
            )


def insert_hook(db: Database, key: str, budget: str, body: str, now: datetime) -> None:
    """Queue a hook inside the caller's transaction (once per key)."""
    db.execute(
        "insert into hooks (key, budget, body, created_at) values (?, ?, ?, ?) "
        "on conflict (key) do nothing",
        [key, budget, body, format_time(now)],
    )
