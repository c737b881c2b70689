"""Slack posts other than alerts in the store (budget events, digests): an outbox,
queued once per key with their cause, then delivered or failed (with a backoff). On a
fresh database the posts found in Slack are adopted as delivered (`adopt_posts`).

Part of `bot.store`: `PostsMixin` is one of the pieces `Store` is made of.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from bot.models import Post, format_time

from .connection import Connection, translated
from .database import Database


class PostsMixin(Connection):
    # The payload stays a dict: it is the outbox row's JSON, stored as queued and worded
    # by notify when sent (messages.budget, digest), so a post renders the same after a restart.
    def queue_post(
        self, key: str, kind: str, channel: str | None, payload: dict[str, Any], now: datetime
    ) -> bool:
        """Queue a Slack post once per key (a second call with the key does nothing)."""
        with translated("queueing a post"), self._atomic():
            queued = insert_post(self.db, key, kind, channel, payload, now)
        if queued:
            self._queued = True
        return queued

    def has_post(self, key: str) -> bool:
        with translated("reading posts"):
            return has_post(self.db, key)

    def adopt_posts(self, posts: Iterable[tuple[str, str, str, str]], now: datetime) -> int:
        """Posts found in Slack on a fresh database, as (key, kind, channel id, ts): recorded
        as delivered, so that `queue_post` and `has_post` see their keys and nothing is
        told again. A key already here is left as it is; returns how many were added."""
        with translated("adopting posts"), self._atomic():
            return sum(
                adopt_post(self.db, key, kind, channel, ts, now) for key, kind, channel, ts in posts
            )

    def undelivered_posts(self, wall: float) -> list[Post]:
        sql = (
            "select * from posts where delivered_at is null and failed_at is null "
            "and (next_attempt_at is null or next_attempt_at <= ?) order by id"
        )
        with translated("reading posts"):
            rows = list(self.db.query(sql, [wall]))
        return [
            Post(
                r["id"], r["key"], r["kind"], r["channel"], json.loads(r["payload"]), r["attempts"]
            )
            for r in rows
        ]

    def post_done(self, post_id: int, now: datetime) -> None:
        with translated("updating posts"), self._atomic():
            self.db.execute(
                "update posts set delivered_at = ? where id = ?", [format_time(now), post_id]
            )

    def post_failed(
        self, post_id: int, error: str, *, permanent: bool, retry_at: float, now: datetime
    ) -> None:
        with translated("updating posts"), self._atomic():
            self.db.execute(
                "update posts set attempts = attempts + 1, last_error = ?, next_attempt_at = ?, "
                "failed_at = ? where id = ?",
                [error[:500], retry_at, format_time(now) if permanent else None, post_id],
            )


def insert_post(
    db: Database, key: str, kind: str, channel: str | None, payload: dict[str, Any], now: datetime
) -> bool:
    """Queue a post inside the caller's transaction; False when its key is queued already."""
    cursor = db.execute(
        "insert into posts (key, kind, channel, payload, created_at) "
        "values (?, ?, ?, ?, ?) on conflict (key) do nothing",
        [key, kind, channel, json.dumps(payload, default=str), format_time(now)],
    )
    return bool(cursor.rowcount)


def has_post(db: Database, key: str) -> bool:
    """Is a post with this key queued, sent or adopted (inside the caller's transaction)?"""
    return db.execute("select 1 from posts where key = ?", [key]).fetchone() is not None


def adopt_post(db: Database, key: str, kind: str, channel: str, ts: str, now: datetime) -> bool:
    """Record a post found in Slack as delivered, inside the caller's transaction; False
    when its key is here already. The payload says where it was found (it is never sent)."""
    cursor = db.execute(
        "insert into posts (key, kind, channel, payload, created_at, delivered_at) "
        "values (?, ?, ?, ?, ?, ?) on conflict (key) do nothing",
        [
            key,
            kind,
            channel,
            json.dumps({"adopted": {"channel": channel, "ts": ts}}),
            format_time(now),
            format_time(now),
        ],
    )
    return bool(cursor.rowcount)
