"""The store's schema: sqlite-utils migrations m001..m013, applied in order when the
store opens (`connection.Connection`). Named "usage-bot" so existing databases carry on
from the last one they ran. Append new migrations; never edit one that has shipped.
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

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


@migrations()
def m012_snapshot_days(db: Database) -> None:
    # The account's last two days as each summary poll saw them: consecutive snapshots'
    # differences are the jobs the summary reports per interval (coverage, gap estimates).
    db.table("snapshot_days").create(
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
    db.table("snapshot_days").create_index(["polled_at"])


@migrations()
def m013_poll_pace(db: Database) -> None:
    # The events poll's pace: the delay chosen before the next poll, and why.
    polls = db.table("polls")
    polls.add_column("next_poll_seconds", float)
    polls.add_column("pace", str)
