"""Read-only figures for `GET /metrics` (`bot.exposition`): the poll log and the gap
record counted past a row id, the last good poll per endpoint, firing alerts per rule,
and the Slack outboxes' backlog. Each is one small query, by key or index where the
table can grow; none writes.

Part of `bot.store`: `StatsMixin` is one of the pieces `Store` is made of.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from bot.models import parse_time

from .connection import Connection, translated

# The Slack outboxes: (name, table, "delivered" column, creation-time column).
_OUTBOXES = (
    ("alerts", "alert_transitions", "notified_at", "created_at"),
    ("posts", "posts", "delivered_at", "created_at"),
    ("notices", "notices", "notified_at", "at"),
)


class PollCount(NamedTuple):
    endpoint: str
    status: str
    error_code: str | None
    polls: int


class Backlog(NamedTuple):
    """One Slack outbox: waiting to be sent (retries included), failed for good, and
    when the oldest waiting row was queued."""

    pending: int
    failed: int
    oldest_pending: datetime | None


class StatsMixin(Connection):
    def poll_counts_after(self, after_id: int) -> tuple[int, list[PollCount]]:
        """Poll-log rows with an id above `after_id`, counted by endpoint, status and
        error code, and the highest id counted (0 for an empty log). Ids only grow while
        the log holds a row, so rows past a mark are exactly the ones written since."""
        with translated("reading the poll log"):
            top = int(self.db.execute("select coalesce(max(id), 0) from polls").fetchone()[0])
            rows = self.db.execute(
                "select endpoint, status, error_code, count(*) from polls "
                "where id > ? and id <= ? group by endpoint, status, error_code",
                [after_id, top],
            ).fetchall()
        return top, [PollCount(*row) for row in rows]

    def gaps_after(self, after_id: int) -> tuple[int, list[tuple[datetime, datetime]]]:
        """Events gaps recorded with an id above `after_id` as (newest stored, oldest
        seen) pairs, and the highest id (0 when none is recorded)."""
        with translated("reading gaps"):
            top = int(self.db.execute("select coalesce(max(id), 0) from event_gaps").fetchone()[0])
            rows = self.db.execute(
                "select newest_stored_at, oldest_seen_at from event_gaps where id > ? and id <= ?",
                [after_id, top],
            ).fetchall()
        return top, [(parse_time(newest), parse_time(oldest)) for newest, oldest in rows]

    def last_successes(self, endpoints: Iterable[str]) -> dict[str, datetime]:
        """When each endpoint last answered well (endpoints never answered are left out);
        walks the (endpoint, started_at) index from its newest row."""
        sql = (
            "select finished_at from polls where endpoint = ? and status = 'ok' "
            "order by started_at desc limit 1"
        )
        found = {}
        with translated("reading the poll log"):
            for endpoint in endpoints:
                row = self.db.execute(sql, [endpoint]).fetchone()
                if row and row[0]:
                    found[endpoint] = parse_time(row[0])
        return found

    def firing_by_rule(self) -> dict[str, int]:
        """Alert keys firing now, per rule; a rule with states but none firing gives 0."""
        sql = (
            "select rule, sum(case when status = 'firing' then 1 else 0 end) "
            "from alert_states group by rule"
        )
        with translated("reading alert states"):
            return {rule: int(firing or 0) for rule, firing in self.db.execute(sql)}

    def slack_backlog(self) -> dict[str, Backlog]:
        """Each Slack outbox's backlog: pending, failed for good, the oldest pending."""
        backlog = {}
        with translated("reading the outboxes"):
            for name, table, done, created in _OUTBOXES:
                waiting = f"{done} is null and failed_at is null"
                pending, failed, oldest = self.db.execute(
                    f"select coalesce(sum(case when {waiting} then 1 else 0 end), 0), "
                    f"coalesce(sum(case when failed_at is not null then 1 else 0 end), 0), "
                    f"min(case when {waiting} then {created} end) from {table}"
                ).fetchone()
                backlog[name] = Backlog(
                    int(pending), int(failed), parse_time(oldest) if oldest else None
                )
        return backlog
