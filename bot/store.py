"""The SQLite store (sqlite-utils): the only module that touches the database.

Sits between `source` and `detect`: saves validated events and summaries, keeps the
poll log and the events-gap record, and answers the queries the rest of the bot needs.
Every write is one transaction (`_atomic()`), so a crash leaves no partial rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlite_utils import Database, Migrations

from bot.alerts import AlertState, Transition
from bot.budget import FORECAST, THRESHOLD, BudgetEvent, Marks
from bot.errors import StoreError
from bot.metrics import EventBatch, batch_from_rows
from bot.models import DailyUsage, Event, EventsPage, Summary, format_time, parse_time

migrations = Migrations("usage-bot")


@migrations()
def m001_initial(db: Database) -> None:
    db.table("events").create(
        {
            "id": str,
            "created_at": str,
            "request_id": str,
            "method": str,
            "endpoint": str,
            "status_code": int,
            "job_id": str,
            "model": str,
            "output_format": str,
            "status": str,
            "credits_used": float,
            "duration_seconds": float,
            "error_code": str,
            "customer_id": str,
            "segment": str,
            "metadata": str,
            "stored_at": str,
        },
        pk="id",
    )
    db.table("events").create_index(["created_at"])
    db.table("events").create_index(["model", "created_at"])
    db.table("summary_snapshots").create(
        {
            "id": int,
            "polled_at": str,
            "days": int,
            "start_date": str,
            "end_date": str,
            "total_jobs": int,
            "completed_jobs": int,
            "failed_jobs": int,
            "credits_used": float,
            "request_id": str,
        },
        pk="id",
    )
    db.table("daily_usage").create(
        {
            "date": str,
            "model": str,
            "total_jobs": int,
            "completed_jobs": int,
            "failed_jobs": int,
            "credits_used": float,
            "snapshot_id": int,
        },
        pk=("date", "model"),
    )
    db.table("polls").create(
        {
            "id": int,
            "endpoint": str,
            "started_at": str,
            "finished_at": str,
            "duration_ms": float,
            "status": str,
            "http_status": int,
            "request_id": str,
            "error_code": str,
            "error_message": str,
            "items_seen": int,
            "items_new": int,
        },
        pk="id",
    )
    db.table("polls").create_index(["endpoint", "started_at"])
    db.table("event_gaps").create(
        {
            "id": int,
            "detected_at": str,
            "newest_stored_at": str,
            "oldest_seen_at": str,
            "request_id": str,
        },
        pk="id",
    )


@migrations()
def m002_alerts(db: Database) -> None:
    db.table("alert_states").create(
        {
            "rule": str,
            "group_key": str,  # JSON array of the group's values
            "status": str,
            "breaches": int,
            "normals": int,
            "since": str,
            "peak_zscore": float,
            "peak_value": float,
        },
        pk=("rule", "group_key"),
    )
    # The outbox: a transition is written here, in the same transaction as the state
    # that caused it, before anything is sent; notify marks what it delivered.
    db.table("alert_transitions").create(
        {
            "id": int,
            "rule": str,
            "group_key": str,
            "group_by": str,
            "state": str,
            "at": str,
            "value": float,
            "baseline": float,
            "zscore": float,
            "volume": float,
            "since": str,
            "peak_zscore": float,
            "peak_value": float,
            "request_ids": str,
            "job_ids": str,
            "created_at": str,
            "notified_at": str,
        },
        pk="id",
    )
    db.table("alert_transitions").create_index(["rule", "group_key", "state", "at"], unique=True)
    db.table("rule_cursors").create({"rule": str, "evaluated_through": str}, pk="rule")


@migrations()
def m003_slack(db: Database) -> None:
    transitions = db.table("alert_transitions")
    transitions.add_column("key", str)  # stable across databases: the idempotency key
    transitions.add_column("attempts", int, not_null_default=0)
    transitions.add_column("next_attempt_at", float)  # wall clock, epoch seconds
    transitions.add_column("last_error", str)
    transitions.add_column("failed_at", str)  # a permanent error: never retried
    # One row per Slack call a transition needs (parent, details, resolve reply, ...):
    # written before the call, completed with its ts after, so a retry can tell
    # "never sent" from "sent, outcome unknown" and look before it posts again.
    db.table("deliveries").create(
        {
            "transition_id": int,
            "step": str,
            "channel": str,
            "ts": str,
            "attempted_at": float,
            "done": int,
        },
        pk=("transition_id", "step"),
    )
    db.table("alert_threads").create(
        {
            "rule": str,
            "group_key": str,
            "channel": str,
            "ts": str,
            "status": str,  # open | resolved
            "opened_at": str,
        },
        pk=("rule", "group_key"),
    )


@migrations()
def m004_series(db: Database) -> None:
    db.table("alert_transitions").add_column("series", str)  # JSON, for the chart


@migrations()
def m005_notices(db: Database) -> None:
    # Ops notices (bad key, no credits, events gap, schema drift): told once when an
    # episode opens and once when it clears.
    db.table("episodes").create({"kind": str, "since": str, "text": str}, pk="kind")
    db.table("notices").create(
        {
            "id": int,
            "kind": str,
            "state": str,  # open | cleared
            "text": str,
            "at": str,
            "notified_at": str,
            "failed_at": str,
        },
        pk="id",
    )


@migrations()
def m006_window(db: Database) -> None:
    db.table("alert_transitions").add_column("window", float)


@migrations()
def m007_told_at(db: Database) -> None:
    db.table("alert_states").add_column("told_at", str)


@migrations()
def m008_silences(db: Database) -> None:
    # group_key "*" silences every group of the rule.
    db.table("silences").create(
        {
            "id": int,
            "rule": str,
            "group_key": str,
            "until": str,
            "reason": str,
            "created_by": str,
            "created_at": str,
        },
        pk="id",
    )
    db.table("alert_threads").add_column("acked_by", str)
    db.table("alert_threads").add_column("acked_at", str)


@migrations()
def m009_leases(db: Database) -> None:
    db.table("leases").create({"name": str, "holder": str, "expires_at": float}, pk="name")


@migrations()
def m010_budgets(db: Database) -> None:
    # Budget decisions: each threshold once per period (unique key), forecast warnings.
    db.table("budget_events").create(
        {
            "id": int,
            "key": str,
            "budget": str,
            "kind": str,
            "state": str,
            "period": str,
            "threshold": float,
            "at": str,
            "spent": float,
            "limit_credits": float,
            "projected": float,
            "crossing": str,
        },
        pk="id",
    )
    db.table("budget_events").create_index(["key"], unique=True)
    db.table("budget_events").create_index(["budget", "period"])
    # Slack messages other than alerts (budget events, digests), written with their cause.
    db.table("posts").create(
        {
            "id": int,
            "key": str,
            "kind": str,
            "channel": str,
            "payload": str,
            "created_at": str,
            "delivered_at": str,
            "failed_at": str,
            "attempts": int,
            "next_attempt_at": float,
            "last_error": str,
        },
        pk="id",
        defaults={"attempts": 0},
    )
    db.table("posts").create_index(["key"], unique=True)
    # Enforcement hooks: the body is fixed when decided; each try signs it afresh.
    db.table("hooks").create(
        {
            "id": int,
            "key": str,
            "budget": str,
            "body": str,
            "created_at": str,
            "delivered_at": str,
            "attempts": int,
            "next_attempt_at": float,
            "last_status": int,
            "last_error": str,
        },
        pk="id",
        defaults={"attempts": 0},
    )
    db.table("hooks").create_index(["key"], unique=True)


@migrations()
def m011_budget_states(db: Database) -> None:
    # The worker's latest view of each budget, for `query budget`, `/usage budget` and
    # `GET /budget` to read at once instead of re-counting weeks of events.
    db.table("budget_states").create({"budget": str, "at": str, "state": str}, pk="budget")


@dataclass(frozen=True)
class Post:
    id: int
    key: str
    kind: str  # budget | digest
    channel: str | None  # None: the default channel
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class Hook:
    id: int
    key: str  # the idempotency key
    budget: str
    body: str
    attempts: int
    delivered_at: datetime | None
    last_status: int | None


@dataclass(frozen=True)
class Silence:
    id: int
    rule: str
    group: tuple[str, ...] | None  # None: every group of the rule
    until: datetime
    reason: str
    created_by: str | None


@dataclass(frozen=True)
class Notice:
    id: int
    kind: str
    state: str
    text: str
    at: datetime


@dataclass(frozen=True)
class Delivery:
    channel: str
    ts: str | None
    attempted_at: float
    done: bool


@dataclass(frozen=True)
class Thread:
    rule: str
    group: tuple[str, ...]
    channel: str
    ts: str
    status: str


@dataclass(frozen=True)
class Gap:
    """Events between these two times may be lost: more arrived than one page holds."""

    newest_stored_at: datetime
    oldest_seen_at: datetime


@dataclass(frozen=True)
class SaveResult:
    new_events: tuple[Event, ...]
    gap: Gap | None


@dataclass(frozen=True)
class PollRecord:
    """One row of the poll log."""

    endpoint: str
    started_at: datetime
    finished_at: datetime
    status: str  # ok | error
    http_status: int | None = None
    request_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    items_seen: int = 0
    items_new: int = 0

    @property
    def duration_ms(self) -> float:
        return (self.finished_at - self.started_at).total_seconds() * 1000.0


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn sqlite3 errors into StoreError once, here, with what we were doing."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"database error while {what}: {exc}") from exc


class Store:
    """The bot's SQLite file. `path=None` gives an in-memory database (tests)."""

    def __init__(self, path: str | Path | None = None, *, busy_timeout: float = 10.0) -> None:
        with _translated("opening the database"):
            if path is None:
                self.db = Database(memory=True)
            else:
                # timeout: wait for a concurrent writer instead of failing at once.
                self.db = Database(sqlite3.connect(str(path), timeout=busy_timeout))
                self.db.enable_wal()
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA synchronous = NORMAL")  # safe with WAL, much faster
            migrations.apply(self.db)

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """One write transaction, its lock taken at once (BEGIN IMMEDIATE). A deferred
        BEGIN that reads before it writes cannot wait for another writer: SQLite fails
        its upgrade with SQLITE_BUSY at once, busy timeout or not. Nested: a savepoint."""
        conn = self.db.conn
        if conn.in_transaction:
            with self.db.atomic():
                yield
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # a failed COMMIT too: never leave a transaction open
                conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.db.close()

    # -- events ----------------------------------------------------------------------

    def save_events(self, page: EventsPage, stored_at: datetime) -> SaveResult:
        """Insert the page's unseen events; detect a gap before inserting."""
        if not page.items:
            return SaveResult((), None)
        with _translated("saving events"), self._atomic():
            gap = self._gap(page)
            ids = [event.id for event in page.items]
            known = self._known_ids(ids)
            fresh: dict[str, Event] = {}
            for event in page.items:
                if event.id not in known and event.id not in fresh:
                    fresh[event.id] = event
            stamp = format_time(stored_at)
            self.db.table("events").insert_all(self._row(e, stamp) for e in fresh.values())
            if gap is not None:
                self.db.table("event_gaps").insert(
                    {
                        "detected_at": stamp,
                        "newest_stored_at": format_time(gap.newest_stored_at),
                        "oldest_seen_at": format_time(gap.oldest_seen_at),
                        "request_id": page.request_id,
                    }
                )
        return SaveResult(tuple(fresh.values()), gap)

    def _gap(self, page: EventsPage) -> Gap | None:
        if not page.is_full:
            return None
        newest = self.newest_event_time()
        oldest = min(event.created_at for event in page.items)
        if newest is not None and oldest > newest:
            return Gap(newest_stored_at=newest, oldest_seen_at=oldest)
        return None

    def _known_ids(self, ids: list[str]) -> set[str]:
        known: set[str] = set()
        for start in range(0, len(ids), 500):  # stay under SQLite's variable limit
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(f"select id from events where id in ({marks})", chunk)
            known.update(row[0] for row in rows)
        return known

    @staticmethod
    def _row(event: Event, stored_at: str) -> dict[str, Any]:
        metadata = dict(event.metadata)
        return {
            "id": event.id,
            "created_at": format_time(event.created_at),
            "request_id": event.request_id,
            "method": event.method,
            "endpoint": event.endpoint,
            "status_code": event.status_code,
            "job_id": event.job_id,
            "model": event.model,
            "output_format": event.output_format,
            "status": event.status,
            "credits_used": event.credits_used,
            "duration_seconds": event.duration_seconds,
            "error_code": event.error_code,
            "customer_id": _text_or_none(metadata.get("customer_id")),
            "segment": _text_or_none(metadata.get("segment")),
            "metadata": json.dumps(metadata, sort_keys=True) if metadata else None,
            "stored_at": stored_at,
        }

    def newest_event_time(self) -> datetime | None:
        with _translated("reading events"):
            row = self.db.execute("select max(created_at) from events").fetchone()
        return parse_time(row[0]) if row and row[0] else None

    def count_events(self) -> int:
        with _translated("counting events"):
            return int(self.db.execute("select count(*) from events").fetchone()[0])

    def recent_events(self, limit: int) -> list[Event]:
        """The newest events, newest first."""
        sql = "select * from events order by created_at desc, id desc limit ?"
        return list(self._events(sql, [limit]))

    def events_between(self, start: datetime, end: datetime) -> list[Event]:
        """Events with start <= created_at < end, oldest first."""
        sql = (
            "select * from events where created_at >= ? and created_at < ? order by created_at, id"
        )
        return list(self._events(sql, [format_time(start), format_time(end)]))

    def _events(self, sql: str, params: list[Any]) -> Iterator[Event]:
        with _translated("reading events"):
            rows = list(self.db.query(sql, params))
        for row in rows:
            yield _event_from_row(row)

    # -- summaries -------------------------------------------------------------------

    def save_summary(self, summary: Summary, polled_at: datetime) -> int:
        """Keep a snapshot row per poll and the latest figures per (date, model)."""
        with _translated("saving a summary"), self._atomic():
            table = self.db.table("summary_snapshots").insert(
                {
                    "polled_at": format_time(polled_at),
                    "days": summary.days,
                    "start_date": summary.start_date.isoformat(),
                    "end_date": summary.end_date.isoformat(),
                    "total_jobs": summary.total_jobs,
                    "completed_jobs": summary.completed_jobs,
                    "failed_jobs": summary.failed_jobs,
                    "credits_used": summary.credits_used,
                    "request_id": summary.request_id,
                }
            )
            snapshot_id = int(table.last_pk or 0)
            if summary.has_daily_models:
                # The service lists only active models per day: clear the days it covers
                # so a model that dropped to zero does not keep a stale figure.
                self.db.execute(
                    "delete from daily_usage where date >= ? and date <= ?",
                    [summary.start_date.isoformat(), summary.end_date.isoformat()],
                )
            self.db.table("daily_usage").upsert_all(
                (
                    {
                        "date": row.date.isoformat(),
                        "model": row.model,
                        "total_jobs": row.total_jobs,
                        "completed_jobs": row.completed_jobs,
                        "failed_jobs": row.failed_jobs,
                        "credits_used": row.credits_used,
                        "snapshot_id": snapshot_id,
                    }
                    for row in summary.daily
                ),
                pk=("date", "model"),
            )
        return snapshot_id

    def daily_usage(self, start: date, end: date, model: str | None = None) -> list[DailyUsage]:
        """Stored daily rows with start <= date <= end, oldest first."""
        sql = "select * from daily_usage where date >= ? and date <= ?"
        params: list[Any] = [start.isoformat(), end.isoformat()]
        if model is not None:
            sql += " and model = ?"
            params.append(model)
        with _translated("reading daily usage"):
            rows = list(self.db.query(sql + " order by date, model", params))
        return [
            DailyUsage(
                date=date.fromisoformat(row["date"]),
                model=row["model"],
                total_jobs=row["total_jobs"],
                completed_jobs=row["completed_jobs"],
                failed_jobs=row["failed_jobs"],
                credits_used=row["credits_used"],
            )
            for row in rows
        ]

    def segment_daily(self, segment: str, start: date, end: date) -> list[DailyUsage]:
        """One customer segment's daily figures, counted from stored events (the summary
        has no segments), for start <= date <= end; `model` holds the segment."""
        sql = (
            "select substr(created_at, 1, 10) as day, "
            "sum(status in ('pending', 'created')) as jobs, "
            "sum(status = 'completed') as completed, sum(status = 'failed') as failed, "
            "sum(credits_used) as credits from events "
            "where segment = ? and created_at >= ? and created_at < ? group by day order by day"
        )
        params = [segment, start.isoformat(), (end + timedelta(days=1)).isoformat()]
        with _translated("reading segment figures"):
            rows = self.db.execute(sql, params).fetchall()
        return [
            DailyUsage(date.fromisoformat(day), segment, jobs, completed, failed, credits or 0.0)
            for day, jobs, completed, failed, credits in rows
        ]

    def segments(self) -> list[str]:
        with _translated("reading segments"):
            rows = self.db.execute(
                "select distinct segment from events where segment is not null order by segment"
            ).fetchall()
        return [row[0] for row in rows]

    def last_summary_poll(self) -> datetime | None:
        with _translated("reading summaries"):
            row = self.db.execute("select max(polled_at) from summary_snapshots").fetchone()
        return parse_time(row[0]) if row and row[0] else None

    def is_empty(self) -> bool:
        """True on a fresh database: nothing polled yet (backfill needed)."""
        return self.last_summary_poll() is None and self.newest_event_time() is None

    # -- poll log, gaps, source state -------------------------------------------------

    def log_poll(self, record: PollRecord) -> None:
        with _translated("writing the poll log"), self._atomic():
            self.db.table("polls").insert(
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
                }
            )

    def polls(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest poll-log rows, newest first."""
        with _translated("reading the poll log"):
            return list(self.db.query("select * from polls order by id desc limit ?", [limit]))

    def last_success(self, endpoint: str) -> datetime | None:
        """When `endpoint` last answered well: the freshness of what we can tell."""
        sql = "select max(finished_at) from polls where endpoint = ? and status = 'ok'"
        with _translated("reading the poll log"):
            row = self.db.execute(sql, [endpoint]).fetchone()
        return parse_time(row[0]) if row and row[0] else None

    def gaps(self) -> list[Gap]:
        with _translated("reading gaps"):
            rows = list(self.db.query("select * from event_gaps order by id"))
        return [
            Gap(parse_time(r["newest_stored_at"]), parse_time(r["oldest_seen_at"])) for r in rows
        ]

    # -- detection state ---------------------------------------------------------------

    def event_batch_since(self, start: datetime) -> EventBatch:
        """Stored events from `start` on, as the columns detection counts (fast path)."""
        sql = (
            "select created_at, model, segment, customer_id, status, credits_used "
            "from events where created_at >= ?"
        )
        with _translated("reading events"):
            rows = self.db.execute(sql, [format_time(start)]).fetchall()
        return batch_from_rows(rows)

    def alert_states(self) -> dict[tuple[str, tuple[str, ...]], AlertState]:
        with _translated("reading alert states"):
            rows = list(self.db.query("select * from alert_states"))
        states = {}
        for row in rows:
            group = tuple(json.loads(row["group_key"]))
            states[(row["rule"], group)] = AlertState(
                rule=row["rule"],
                group=group,
                status=row["status"],
                breaches=row["breaches"],
                normals=row["normals"],
                since=parse_time(row["since"]) if row["since"] else None,
                peak_zscore=row["peak_zscore"],
                peak_value=row["peak_value"],
                told_at=parse_time(row["told_at"]) if row["told_at"] else None,
            )
        return states

    def cursors(self) -> dict[str, datetime]:
        with _translated("reading rule cursors"):
            rows = list(self.db.query("select * from rule_cursors"))
        return {row["rule"]: parse_time(row["evaluated_through"]) for row in rows}

    def save_decisions(
        self,
        states: Iterable[AlertState],
        transitions: Iterable[Transition],
        cursors: dict[str, datetime],
        now: datetime,
    ) -> int:
        """Alert states, new transitions and rule cursors in one transaction.

        A transition already stored (same rule, group, state and time) is not added
        again, so re-running an evaluation can never queue a second message.
        Returns how many transitions were added.
        """
        with _translated("saving alert decisions"), self._atomic():
            self.db.table("alert_states").upsert_all(
                (_state_row(s) for s in states), pk=("rule", "group_key")
            )
            before = self.db.table("alert_transitions").count
            self.db.table("alert_transitions").insert_all(
                (_transition_row(t, now) for t in transitions), ignore=True
            )
            added = self.db.table("alert_transitions").count - before
            self.db.table("rule_cursors").upsert_all(
                ({"rule": r, "evaluated_through": format_time(t)} for r, t in cursors.items()),
                pk="rule",
            )
        return int(added)

    def undelivered(self, wall: float | None = None) -> list[tuple[int, Transition]]:
        """Transitions not yet told and not failed for good, oldest first; with `wall`,
        only those whose backoff has passed."""
        sql = (
            "select * from alert_transitions where notified_at is null and failed_at is null "
            "order by at, id"
        )
        with _translated("reading the outbox"):
            rows = list(self.db.query(sql))
        if wall is not None:
            # Keep the order: nothing after a row that is still backing off goes first.
            for index, row in enumerate(rows):
                if row["next_attempt_at"] and row["next_attempt_at"] > wall:
                    rows = rows[:index]
                    break
        return [(row["id"], _transition_from_row(row)) for row in rows]

    def delivery_failed(
        self, transition_id: int, error: str, *, permanent: bool, retry_at: float, now: datetime
    ) -> None:
        with _translated("updating the outbox"), self._atomic():
            self.db.execute(
                "update alert_transitions set attempts = attempts + 1, last_error = ?, "
                "next_attempt_at = ?, failed_at = ? where id = ?",
                [error[:500], retry_at, format_time(now) if permanent else None, transition_id],
            )

    def attempts(self, transition_id: int) -> int:
        with _translated("reading the outbox"):
            row = self.db.execute(
                "select attempts from alert_transitions where id = ?", [transition_id]
            ).fetchone()
        return int(row[0]) if row else 0

    def delivery(self, transition_id: int, step: str) -> Delivery | None:
        with _translated("reading deliveries"):
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
        with _translated("recording a delivery"), self._atomic():
            self.db.table("deliveries").upsert(
                {
                    "transition_id": transition_id,
                    "step": step,
                    "channel": channel,
                    "attempted_at": wall,
                    "done": 0,
                },
                pk=("transition_id", "step"),
            )

    def delivery_done(self, transition_id: int, step: str, channel: str, ts: str | None) -> None:
        with _translated("recording a delivery"), self._atomic():
            self.db.execute(
                "update deliveries set channel = ?, ts = ?, done = 1 "
                "where transition_id = ? and step = ?",
                [channel, ts, transition_id, step],
            )

    def thread(self, rule: str, group: tuple[str, ...]) -> Thread | None:
        with _translated("reading alert threads"):
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
        with _translated("reading alert threads"):
            return [_thread(row) for row in self.db.query(sql, params)]

    def save_thread(self, thread: Thread, opened_at: datetime) -> None:
        with _translated("saving an alert thread"), self._atomic():
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
            self.db.table("alert_threads").upsert(row, pk=("rule", "group_key"))

    def adopt(self, thread: Thread, state: AlertState, opened_at: datetime) -> None:
        """A firing alert found in Slack on a fresh database: its thread and its state."""
        with _translated("adopting an alert"), self._atomic():
            self.save_thread(thread, opened_at)
            self.db.table("alert_states").upsert(_state_row(state), pk=("rule", "group_key"))

    def events_by_request_id(self, request_ids: Iterable[str]) -> list[Event]:
        ids = list(request_ids)
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        sql = f"select * from events where request_id in ({marks}) order by created_at desc"
        return list(self._events(sql, ids))

    def transitions(self, limit: int = 100) -> list[Transition]:
        sql = "select * from alert_transitions order by at desc, id desc limit ?"
        with _translated("reading transitions"):
            rows = list(self.db.query(sql, [limit]))
        return [_transition_from_row(row) for row in rows]

    def mark_delivered(self, transition_id: int, at: datetime) -> None:
        with _translated("updating the outbox"), self._atomic():
            self.db.execute(
                "update alert_transitions set notified_at = ? where id = ?",
                [format_time(at), transition_id],
            )

    # -- retention -----------------------------------------------------------------------

    def prune(self, events_before: datetime, log_before: datetime) -> dict[str, int]:
        """Delete what no baseline needs any more; the file stays bounded.

        Events older than `events_before`; poll log, gaps, summary snapshots, delivered
        transitions' step records and notices older than `log_before`. Daily figures,
        alert states, open threads and silences in force are kept.
        """
        cut_events, cut_log = format_time(events_before), format_time(log_before)
        statements = {
            "events": ("delete from events where created_at < ?", cut_events),
            "polls": ("delete from polls where started_at < ?", cut_log),
            "event_gaps": ("delete from event_gaps where detected_at < ?", cut_log),
            "summary_snapshots": ("delete from summary_snapshots where polled_at < ?", cut_log),
            "notices": ("delete from notices where at < ? and notified_at is not null", cut_log),
            "silences": ("delete from silences where until < ?", cut_log),
        }
        removed = {}
        with _translated("pruning old rows"), self._atomic():
            for table, (sql, cut) in statements.items():
                removed[table] = self.db.execute(sql, [cut]).rowcount
        return removed

    # -- leases ------------------------------------------------------------------------

    def hold_lease(self, name: str, holder: str, wall: float, ttl: float) -> bool:
        """Take or renew the lease `name` for `ttl` seconds; False while another holds it.

        Two workers started on one database by mistake would otherwise both judge and
        tell, each from its own partial view, and could post the same incident twice.
        The write lock taken at once makes the check and the write one step against the
        other process;
        a lease of ours with more than half its time left is renewed without a write.
        """
        with _translated("reading a lease"):
            row = self.db.execute(
                "select holder, expires_at from leases where name = ?", [name]
            ).fetchone()
        if row is not None and row[0] == holder and row[1] - wall > ttl / 2:
            return True
        with _translated("taking a lease"), self._atomic():
            row = self.db.execute(
                "select holder, expires_at from leases where name = ?", [name]
            ).fetchone()
            free = row is None or row[0] == holder or row[1] < wall
            if free:
                self.db.execute(
                    "insert or replace into leases (name, holder, expires_at) values (?, ?, ?)",
                    [name, holder, wall + ttl],
                )
        return free

    def release_lease(self, name: str, holder: str) -> None:
        with _translated("releasing a lease"), self._atomic():
            self.db.execute("delete from leases where name = ? and holder = ?", [name, holder])

    # -- silences and acknowledgements ------------------------------------------------------

    def silence(
        self,
        rule: str,
        group: tuple[str, ...] | None,
        until: datetime,
        reason: str,
        by: str | None,
        now: datetime,
    ) -> int:
        with _translated("saving a silence"), self._atomic():
            table = self.db.table("silences").insert(
                {
                    "rule": rule,
                    "group_key": "*" if group is None else json.dumps(list(group)),
                    "until": format_time(until),
                    "reason": reason,
                    "created_by": by,
                    "created_at": format_time(now),
                }
            )
        return int(table.last_pk or 0)

    def unsilence(self, rule: str, group: tuple[str, ...] | None) -> int:
        """End the silences on exactly this key; returns how many ended."""
        key = "*" if group is None else json.dumps(list(group))
        with _translated("ending a silence"), self._atomic():
            cursor = self.db.execute(
                "delete from silences where rule = ? and group_key = ?", [rule, key]
            )
        return int(cursor.rowcount)

    def silences(self, now: datetime) -> list[Silence]:
        """Silences still in force at `now` (expired ones simply stop matching)."""
        sql = "select * from silences where until > ? order by until"
        with _translated("reading silences"):
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
        with _translated("acknowledging an alert"), self._atomic():
            cursor = self.db.execute(
                "update alert_threads set acked_by = ?, acked_at = ? "
                "where rule = ? and group_key = ?",
                [by, format_time(now), rule, json.dumps(list(group))],
            )
        return bool(cursor.rowcount)

    def acknowledgement(self, rule: str, group: tuple[str, ...]) -> tuple[str, datetime] | None:
        with _translated("reading an acknowledgement"):
            row = self.db.execute(
                "select acked_by, acked_at from alert_threads where rule = ? and group_key = ?",
                [rule, json.dumps(list(group))],
            ).fetchone()
        return (row[0], parse_time(row[1])) if row and row[0] else None

    # -- ops notices -----------------------------------------------------------------------

    def episode(self, kind: str, is_open: bool, text: str, now: datetime) -> bool:
        """Open or clear an episode; queue a notice when that changes anything.

        Called after every poll, almost always to say "no change": that answer is a read,
        and only a change takes a write transaction (which checks again inside).
        """
        if is_open == (kind in self.open_episodes()):
            return False
        with _translated("recording an episode"), self._atomic():
            row = self.db.execute("select since from episodes where kind = ?", [kind]).fetchone()
            if is_open == (row is not None):
                return False
            if is_open:
                self.db.table("episodes").insert(
                    {"kind": kind, "since": format_time(now), "text": text}
                )
            else:
                self.db.execute("delete from episodes where kind = ?", [kind])
            self.db.table("notices").insert(
                {
                    "kind": kind,
                    "state": "open" if is_open else "cleared",
                    "text": text,
                    "at": format_time(now),
                }
            )
        return True

    def open_episodes(self) -> dict[str, str]:
        with _translated("reading episodes"):
            return {row["kind"]: row["text"] for row in self.db.query("select * from episodes")}

    def undelivered_notices(self) -> list[Notice]:
        sql = "select * from notices where notified_at is null and failed_at is null order by id"
        with _translated("reading notices"):
            rows = list(self.db.query(sql))
        return [
            Notice(row["id"], row["kind"], row["state"], row["text"], parse_time(row["at"]))
            for row in rows
        ]

    def notice_done(self, notice_id: int, now: datetime, *, failed: bool = False) -> None:
        column = "failed_at" if failed else "notified_at"
        with _translated("updating notices"), self._atomic():
            self.db.execute(
                f"update notices set {column} = ? where id = ?", [format_time(now), notice_id]
            )

    # -- budgets, posts and hooks -------------------------------------------------------

    def save_budget_events(
        self,
        events: Iterable[BudgetEvent],
        posts: Mapping[str, tuple[str | None, dict[str, Any]]],
        hooks: Mapping[str, tuple[str, str]],
        now: datetime,
    ) -> int:
        """Record budget decisions with the Slack post (channel, payload) and the hook
        (budget, body) each causes, keyed by the event's key, in one transaction.
        An event already recorded (same key) adds nothing: each is told once."""
        added = 0
        with _translated("recording budget events"), self._atomic():
            for event in events:
                cursor = self.db.execute(
                    "insert or ignore into budget_events (key, budget, kind, state, period, "
                    "threshold, at, spent, limit_credits, projected, crossing) "
                    "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        event.key,
                        event.budget,
                        event.kind,
                        event.state,
                        event.period,
                        event.threshold,
                        format_time(event.at),
                        event.spent,
                        event.limit,
                        event.projected,
                        event.crossing.isoformat() if event.crossing else None,
                    ],
                )
                if not cursor.rowcount:
                    continue
                added += 1
                if event.key in posts:
                    channel, payload = posts[event.key]
                    self._queue_post(f"budget:{event.key}", "budget", channel, payload, now)
                if event.key in hooks:
                    budget, body = hooks[event.key]
                    self.db.execute(
                        "insert or ignore into hooks (key, budget, body, created_at) "
                        "values (?, ?, ?, ?)",
                        [event.key, budget, body, format_time(now)],
                    )
        return added

    def budget_marks(self, budget: str, period: str) -> Marks:
        """Thresholds told in `period`, and the period of a standing forecast warning."""
        with _translated("reading budget events"):
            crossed = self.db.execute(
                "select threshold from budget_events where budget = ? and period = ? and kind = ?",
                [budget, period, THRESHOLD],
            ).fetchall()
            last = self.db.execute(
                "select state, period from budget_events where budget = ? and kind = ? "
                "order by id desc limit 1",
                [budget, FORECAST],
            ).fetchone()
        standing = last[1] if last and last[0] == "firing" else None
        return Marks(frozenset(row[0] for row in crossed), standing)

    def save_budget_states(self, states: Mapping[str, dict[str, Any]], now: datetime) -> None:
        rows = [
            {"budget": name, "at": format_time(now), "state": json.dumps(state)}
            for name, state in states.items()
        ]
        with _translated("recording budget states"), self._atomic():
            self.db.table("budget_states").upsert_all(rows, pk="budget")

    def budget_states(self) -> dict[str, dict[str, Any]]:
        with _translated("reading budget states"):
            rows = self.db.execute("select budget, state from budget_states").fetchall()
        return {name: json.loads(state) for name, state in rows}

    def budget_events(self, budget: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        sql = "select * from budget_events"
        params: list[Any] = []
        if budget is not None:
            sql += " where budget = ?"
            params.append(budget)
        with _translated("reading budget events"):
            return list(self.db.query(sql + " order by id desc limit ?", [*params, limit]))

    def queue_post(
        self, key: str, kind: str, channel: str | None, payload: dict[str, Any], now: datetime
    ) -> bool:
        """Queue a Slack post once per key (a second call with the key does nothing)."""
        with _translated("queueing a post"), self._atomic():
            return self._queue_post(key, kind, channel, payload, now)

    def _queue_post(
        self, key: str, kind: str, channel: str | None, payload: dict[str, Any], now: datetime
    ) -> bool:
        cursor = self.db.execute(
            "insert or ignore into posts (key, kind, channel, payload, created_at) "
            "values (?, ?, ?, ?, ?)",
            [key, kind, channel, json.dumps(payload, default=str), format_time(now)],
        )
        return bool(cursor.rowcount)

    def has_post(self, key: str) -> bool:
        with _translated("reading posts"):
            row = self.db.execute("select 1 from posts where key = ?", [key]).fetchone()
        return row is not None

    def undelivered_posts(self, wall: float) -> list[Post]:
        sql = (
            "select * from posts where delivered_at is null and failed_at is null "
            "and (next_attempt_at is null or next_attempt_at <= ?) order by id"
        )
        with _translated("reading posts"):
            rows = list(self.db.query(sql, [wall]))
        return [
            Post(
                r["id"], r["key"], r["kind"], r["channel"], json.loads(r["payload"]), r["attempts"]
            )
            for r in rows
        ]

    def post_done(self, post_id: int, now: datetime) -> None:
        with _translated("updating posts"), self._atomic():
            self.db.execute(
                "update posts set delivered_at = ? where id = ?", [format_time(now), post_id]
            )

    def post_failed(
        self, post_id: int, error: str, *, permanent: bool, retry_at: float, now: datetime
    ) -> None:
        with _translated("updating posts"), self._atomic():
            self.db.execute(
                "update posts set attempts = attempts + 1, last_error = ?, next_attempt_at = ?, "
                "failed_at = ? where id = ?",
                [error[:500], retry_at, format_time(now) if permanent else None, post_id],
            )

    def hooks(self, *, due: float | None = None) -> list[Hook]:
        """Every hook, oldest first; with `due` (wall clock), those to try now."""
        sql = "select * from hooks"
        params: list[Any] = []
        if due is not None:
            sql += (
                " where delivered_at is null and (next_attempt_at is null or next_attempt_at <= ?)"
            )
            params.append(due)
        with _translated("reading hooks"):
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
        with _translated("updating hooks"), self._atomic():
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

    def integrity_ok(self) -> bool:
        with _translated("checking integrity"):
            return bool(self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")


def _thread(row: dict[str, Any]) -> Thread:
    return Thread(
        rule=row["rule"],
        group=tuple(json.loads(row["group_key"])),
        channel=row["channel"],
        ts=row["ts"],
        status=row["status"],
    )


def _state_row(state: AlertState) -> dict[str, Any]:
    return {
        "rule": state.rule,
        "group_key": json.dumps(list(state.group)),
        "status": state.status,
        "breaches": state.breaches,
        "normals": state.normals,
        "since": format_time(state.since) if state.since else None,
        "peak_zscore": state.peak_zscore,
        "peak_value": state.peak_value,
        "told_at": format_time(state.told_at) if state.told_at else None,
    }


def _transition_row(t: Transition, now: datetime) -> dict[str, Any]:
    return {
        "rule": t.rule,
        "group_key": json.dumps(list(t.group)),
        "group_by": json.dumps(list(t.group_by)),
        "state": t.state,
        "at": format_time(t.at),
        "value": t.value,
        "baseline": t.baseline,
        "zscore": t.zscore,
        "volume": t.volume,
        "since": format_time(t.since) if t.since else None,
        "peak_zscore": t.peak_zscore,
        "peak_value": t.peak_value,
        "request_ids": json.dumps(list(t.request_ids)),
        "job_ids": json.dumps(list(t.job_ids)),
        "created_at": format_time(now),
        "notified_at": None,
        "key": t.idempotency_key,
        "window": t.window,
        "series": json.dumps([[format_time(a), v, b, h] for a, v, b, h in t.series]),
    }


def _transition_from_row(row: dict[str, Any]) -> Transition:
    return Transition(
        rule=row["rule"],
        group=tuple(json.loads(row["group_key"])),
        group_by=tuple(json.loads(row["group_by"])),
        state=row["state"],
        at=parse_time(row["at"]),
        value=row["value"],
        baseline=row["baseline"],
        zscore=row["zscore"],
        volume=row["volume"],
        since=parse_time(row["since"]) if row["since"] else None,
        peak_zscore=row["peak_zscore"],
        peak_value=row["peak_value"],
        window=row["window"] or 0.0,
        request_ids=tuple(json.loads(row["request_ids"])),
        job_ids=tuple(json.loads(row["job_ids"])),
        series=tuple(
            (parse_time(a), float(v), float(b), bool(h))
            for a, v, b, h in json.loads(row["series"] or "[]")
        ),
    )


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _event_from_row(row: dict[str, Any]) -> Event:
    metadata = json.loads(row["metadata"]) if row["metadata"] else {}
    return Event(
        id=row["id"],
        created_at=parse_time(row["created_at"]),
        request_id=row["request_id"],
        method=row["method"],
        endpoint=row["endpoint"],
        status_code=row["status_code"],
        job_id=row["job_id"],
        model=row["model"],
        output_format=row["output_format"],
        status=row["status"],
        credits_used=row["credits_used"] or 0.0,
        duration_seconds=row["duration_seconds"],
        error_code=row["error_code"],
        metadata=metadata,
    )
