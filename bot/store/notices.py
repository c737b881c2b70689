"""Ops notices in the store: episodes (bad key, no credits, events gap, schema drift)
opened and cleared, each change queued once as a notice for notify to tell; on a fresh
database, the episodes Slack last heard opened are adopted (`adopt_episodes`).

Part of `bot.store`: `NoticesMixin` is one of the pieces `Store` is made of.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from bot.models import Notice, format_time, parse_time

from .connection import Connection, translated
from .database import Row

EPISODES_SQL = "select kind, text from episodes"


class NoticesMixin(Connection):
    def episode(
        self,
        kind: str,
        is_open: bool,
        text: str,
        now: datetime,
        known: Mapping[str, str] | None = None,
    ) -> bool:
        """Open or clear an episode; queue a notice when that changes anything.

        Called after every poll, almost always to say "no change": that answer is a read
        (or `known`, the open episodes as the caller read them this cycle), and only a
        change takes a write transaction (which checks again inside).
        """
        if is_open == (kind in (self.open_episodes() if known is None else known)):
            return False
        with translated("recording an episode"), self._atomic():
            row = self.db.execute("select since from episodes where kind = ?", [kind]).fetchone()
            if is_open == (row is not None):
                return False
            if is_open:
                self.db.insert("episodes", {"kind": kind, "since": format_time(now), "text": text})
            else:
                self.db.execute("delete from episodes where kind = ?", [kind])
            self.db.insert(
                "notices",
                {
                    "kind": kind,
                    "state": "open" if is_open else "cleared",
                    "text": text,
                    "at": format_time(now),
                },
            )
        self._queued = True
        return True

    def adopt_episodes(self, found: Iterable[tuple[str, datetime, str]]) -> int:
        """Episodes Slack last heard opened, found on a fresh database as (kind, since,
        text): open again here without a notice, so a fault still there is not announced
        twice and its end is told when it clears. A kind already open is left as it is."""
        added = 0
        with translated("adopting episodes"), self._atomic():
            for kind, since, text in found:
                cursor = self.db.execute(
                    "insert into episodes (kind, since, text) values (?, ?, ?) "
                    "on conflict (kind) do nothing",
                    [kind, format_time(since), text],
                )
                added += bool(cursor.rowcount)
        return added

    def open_episodes(self) -> dict[str, str]:
        with translated("reading episodes"):
            return episodes(self.db.query(EPISODES_SQL))

    def undelivered_notices(self) -> list[Notice]:
        sql = "select * from notices where notified_at is null and failed_at is null order by id"
        with translated("reading notices"):
            rows = list(self.db.query(sql))
        return [
            Notice(row["id"], row["kind"], row["state"], row["text"], parse_time(row["at"]))
            for row in rows
        ]

    def notice_done(self, notice_id: int, now: datetime, *, failed: bool = False) -> None:
        column = "failed_at" if failed else "notified_at"
        with translated("updating notices"), self._atomic():
            self.db.execute(
                f"update notices set {column} = ? where id = ?", [format_time(now), notice_id]
            )


def episodes(rows: Iterable[Row]) -> dict[str, str]:
    """The open episodes, kind -> text, from rows of `EPISODES_SQL`."""
    return {row["kind"]: row["text"] for row in rows}
