"""The store's schema: migrations m001..m016, applied in order when the store opens
(`connection.Connection`) or by `usage-bot migrate`, on SQLite and PostgreSQL alike
(the column types are the dialect's: `database.Database.create_table`). A SQLite file
that sqlite-utils migrated carries on from the last migration it ran. Append new
migrations; never edit one that has shipped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from .database import Database

Migration = Callable[[Database], None]
MIGRATIONS: list[Migration] = []
RECORD = "schema_migrations"  # which migrations a database has run, in order
OLD_RECORD = "_sqlite_migrations"  # where sqlite-utils kept it (SQLite files of v1)


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


def applied(db: Database) -> list[str]:
    """The names of the migrations `db` has run, in order (read only)."""
    tables = db.table_names()
    if RECORD in tables:
        return [row[0] for row in db.execute(f"select name from {RECORD} order by id")]
    if OLD_RECORD in tables:
        sql = f"select name from {OLD_RECORD} where migration_set = 'usage-bot' order by id"
        return [row[0] for row in db.execute(sql)]
    return []


def pending(db: Database) -> list[Migration]:
    done = set(applied(db))
    return [fn for fn in MIGRATIONS if fn.__name__ not in done]


def apply(db: Database) -> None:
    """Run what `db` has not run yet, all in one write transaction: a second process
    opening the database meanwhile waits, then finds nothing left to do."""
    if not pending(db):
        return  # the usual case: a read, no write lock
    with db.transaction():
        if RECORD not in db.table_names():
            db.create_table(RECORD, {"id": int, "name": str, "applied_at": str}, pk="id")
            db.create_index(RECORD, ["name"], unique=True)
            for name in applied(db):  # a file sqlite-utils migrated: carry its record on
                db.insert(RECORD, {"name": name, "applied_at": None})
        for fn in pending(db):
            fn(db)
            db.insert(RECORD, {"name": fn.__name__, "applied_at": datetime.now(UTC).isoformat()})


@migration
def m001_initial(db: Database) -> None:
    db.create_table(
        "events",
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
    db.create_index("events", ["created_at"])
    db.create_index("events", ["model", "created_at"])
    db.create_table(
        "summary_snapshots",
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
    db.create_table(
        "daily_usage",
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
    db.create_table(
        "polls",
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
    db.create_index("polls", ["endpoint", "started_at"])
    db.create_table(
        "event_gaps",
        {
            "id": int,
            "detected_at": str,
            "newest_stored_at": str,
            "oldest_seen_at": str,
            "request_id": str,
        },
        pk="id",
    )


@migration
def m002_alerts(db: Database) -> None:
    db.create_table(
        "alert_states",
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
    db.create_table(
        "alert_transitions",
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
    db.create_index("alert_transitions", ["rule", "group_key", "state", "at"], unique=True)
    db.create_table("rule_cursors", {"rule": str, "evaluated_through": str}, pk="rule")


@migration
def m003_slack(db: Database) -> None:
    # stable across databases: the idempotency key
    db.add_column("alert_transitions", "key", str)
    db.add_column("alert_transitions", "attempts", int, not_null_default=0)
    db.add_column("alert_transitions", "next_attempt_at", float)  # wall clock, epoch seconds
    db.add_column("alert_transitions", "last_error", str)
    db.add_column("alert_transitions", "failed_at", str)  # a permanent error: never retried
    # One row per Slack call a transition needs (parent, details, resolve reply, ...):
    # written before the call, completed with its ts after, so a retry can tell
    # "never sent" from "sent, outcome unknown" and look before it posts again.
    db.create_table(
        "deliveries",
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
    db.create_table(
        "alert_threads",
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


@migration
def m004_series(db: Database) -> None:
    db.add_column("alert_transitions", "series", str)  # JSON, for the chart


@migration
def m005_notices(db: Database) -> None:
    # Ops notices (bad key, no credits, events gap, schema drift): told once when an
    # episode opens and once when it clears.
    db.create_table("episodes", {"kind": str, "since": str, "text": str}, pk="kind")
    db.create_table(
        "notices",
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


@migration
def m006_window(db: Database) -> None:
    db.add_column("alert_transitions", "window", float)


@migration
def m007_told_at(db: Database) -> None:
    db.add_column("alert_states", "told_at", str)


@migration
def m008_silences(db: Database) -> None:
    # group_key "*" silences every group of the rule.
    db.create_table(
        "silences",
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
    db.add_column("alert_threads", "acked_by", str)
    db.add_column("alert_threads", "acked_at", str)


@migration
def m009_leases(db: Database) -> None:
    db.create_table("leases", {"name": str, "holder": str, "expires_at": float}, pk="name")


@migration
def m010_budgets(db: Database) -> None:
    # Budget decisions: each threshold once per period (unique key), forecast warnings.
    db.create_table(
        "budget_events",
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
    db.create_index("budget_events", ["key"], unique=True)
    db.create_index("budget_events", ["budget", "period"])
    # Slack messages other than alerts (budget events, digests), written with their cause.
    db.create_table(
        "posts",
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
    db.create_index("posts", ["key"], unique=True)
    # Enforcement hooks: the body is fixed when decided; each try signs it afresh.
    db.create_table(
        "hooks",
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
    db.create_index("hooks", ["key"], unique=True)


@migration
def m011_budget_states(db: Database) -> None:
    # The worker's latest view of each budget, for `query budget`, `/usage budget` and
    # `GET /budget` to read at once instead of re-counting weeks of events.
    db.create_table("budget_states", {"budget": str, "at": str, "state": str}, pk="budget")


@migration
def m012_snapshot_days(db: Database) -> None:
    # The account's last two days as each summary poll saw them: consecutive snapshots'
    # differences are the jobs the summary reports per interval (coverage, gap estimates).
    db.create_table(
        "snapshot_days",
        {
            "snapshot_id": int,
            "polled_at": str,
            "date": str,
            "total_jobs": int,
            "completed_jobs": int,
            "failed_jobs": int,
            "credits_used": float,
        },
        pk=("snapshot_id", "date"),
    )
    db.create_index("snapshot_days", ["polled_at"])


@migration
def m013_poll_pace(db: Database) -> None:
    # The events poll's pace: the delay chosen before the next poll, and why.
    db.add_column("polls", "next_poll_seconds", float)
    db.add_column("polls", "pace", str)


@migration
def m014_alert_groups(db: Database) -> None:
    # Incidents: alert keys told under one Slack parent (bot.grouping). A member row per
    # key, with the figures it fired with and the transitions routed to it.
    db.create_table(
        "alert_groups",
        {
            "id": str,
            "partition": str,
            "channel": str,
            "status": str,  # firing | resolved
            "opened_at": str,
            "updated_at": str,
            "opened_by": int,
            "thread_channel": str,
            "ts": str,
        },
        pk="id",
    )
    db.create_index("alert_groups", ["status"])
    db.create_table(
        "alert_group_members",
        {
            "group_id": str,
            "position": int,
            "rule": str,
            "group_key": str,
            "group_by": str,
            "metric": str,
            "state": str,
            "how": str,
            "since": str,
            "at": str,
            "value": float,
            "baseline": float,
            "zscore": float,
            "fired_tid": int,
            "resolved_at": str,
            "resolved_tid": int,
        },
        pk=("group_id", "rule", "group_key"),
    )
    db.create_index("alert_group_members", ["fired_tid"])
    db.create_index("alert_group_members", ["resolved_tid"])


@migration
def m015_feedback(db: Database) -> None:
    # Feedback per alert episode (rule, group, the episode's first breach): the verdict of
    # the Expected / Noise buttons (the last click wins) and the first acknowledgement,
    # kept after the thread row has moved on to a later episode.
    db.create_table(
        "alert_feedback",
        {
            "rule": str,
            "group_key": str,
            "since": str,
            "verdict": str,  # expected | noise
            "verdict_by": str,
            "verdict_at": str,
            "acked_by": str,
            "acked_at": str,
        },
        pk=("rule", "group_key", "since"),
    )
    db.create_index("alert_feedback", ["since"])


@migration
def m016_waiting_indexes(db: Database) -> None:
    # Every cycle asks whether anything waits to be told or delivered (`CYCLE_SQL`):
    # indexes of the waiting rows only keep each a lookup, however many thousands of
    # alerts, notices, posts and hooks went out before.
    waiting = {"notified_at": ("alert_transitions", "notices"), "delivered_at": ("posts",)}
    for column, tables in waiting.items():
        for table in tables:
            where = f"{column} is null and failed_at is null"
            db.create_index(table, ["id"], where=where, name=f"idx_{table}_waiting")
    db.create_index("hooks", ["id"], where="delivered_at is null", name="idx_hooks_waiting")
