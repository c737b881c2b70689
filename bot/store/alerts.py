"""Alert states, rule cursors and the transition outbox in the store: decisions saved in
one transaction (states, new transitions, cursors), then read back by notify, which marks
each transition delivered or failed (with its backoff).

Part of `bot.store`: `AlertsMixin` is one of the pieces `Store` is made of.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from bot.models import AlertState, Transition, format_time, parse_time

from .connection import Connection, translated

# Whether anything waits to be told: a transition, ops notice or post neither delivered
# nor failed for good (backing off or not). One query where reading the three outboxes
# takes three.
OUTBOX_WAITING = (
    "exists (select 1 from alert_transitions where notified_at is null and failed_at is null) "
    "or exists (select 1 from notices where notified_at is null and failed_at is null) "
    "or exists (select 1 from posts where delivered_at is null and failed_at is null)"
)
OUTBOX_SQL = f"select {OUTBOX_WAITING} as waiting"


class AlertsMixin(Connection):
    def alert_states(self) -> dict[tuple[str, tuple[str, ...]], AlertState]:
        with translated("reading alert states"):
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
        with translated("reading rule cursors"):
            rows = list(self.db.query("select * from rule_cursors"))
        return {row["rule"]: parse_time(row["evaluated_through"]) for row in rows}

    def save_decisions(
        self,
        states: Iterable[AlertState],
        transitions: Iterable[Transition],
        cursors: dict[str, datetime],
        now: datetime,
    ) -> int:
        """Alert states, new transitions and rule cursors in one transaction (none when
        there is nothing to write: most cycles move no state and no cursor).

        A transition already stored (same rule, group, state and time) is not added
        again, so re-running an evaluation can never queue a second message.
        Returns how many transitions were added.
        """
        states, transitions = list(states), list(transitions)
        if not (states or transitions or cursors):
            return 0
        with translated("saving alert decisions"), self._atomic():
            self.db.upsert_batch(
                "alert_states", [state_row(s) for s in states], pk=("rule", "group_key")
            )
            added = self.db.insert_new(
                "alert_transitions", (_transition_row(t, now) for t in transitions)
            )
            self.db.upsert_batch(
                "rule_cursors",
                ({"rule": r, "evaluated_through": format_time(t)} for r, t in cursors.items()),
                pk="rule",
            )
        if added:
            self._queued = True
        return int(added)

    def outbox_waiting(self) -> bool:
        """Whether anything waits to be told (`OUTBOX_SQL`)."""
        with translated("reading the outbox"):
            return bool(self.db.execute(OUTBOX_SQL).fetchone()[0])

    def undelivered(self, wall: float | None = None) -> list[tuple[int, Transition]]:
        """Transitions not yet told and not failed for good, oldest first; with `wall`,
        only those whose backoff has passed."""
        sql = (
            "select * from alert_transitions where notified_at is null and failed_at is null "
            "order by at, id"
        )
        with translated("reading the outbox"):
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
        with translated("updating the outbox"), self._atomic():
            self.db.execute(
                "update alert_transitions set attempts = attempts + 1, last_error = ?, "
                "next_attempt_at = ?, failed_at = ? where id = ?",
                [error[:500], retry_at, format_time(now) if permanent else None, transition_id],
            )

    def attempts(self, transition_id: int) -> int:
        with translated("reading the outbox"):
            row = self.db.execute(
                "select attempts from alert_transitions where id = ?", [transition_id]
            ).fetchone()
        return int(row[0]) if row else 0

    def transitions(self, limit: int = 100) -> list[Transition]:
        sql = "select * from alert_transitions order by at desc, id desc limit ?"
        with translated("reading transitions"):
            rows = list(self.db.query(sql, [limit]))
        return [_transition_from_row(row) for row in rows]

    def mark_delivered(self, transition_id: int, at: datetime) -> None:
        with translated("updating the outbox"), self._atomic():
            self.db.execute(
                "update alert_transitions set notified_at = ? where id = ?",
                [format_time(at), transition_id],
            )


def state_row(state: AlertState) -> dict[str, Any]:
    """An alert state as its `alert_states` row (also what `adopt` writes)."""
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
