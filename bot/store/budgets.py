"""Budgets in the store: decisions recorded once per key with the post that tells them
(thresholds crossed in one cycle share one) and the hook each threshold causes (or, on a
fresh database, adopted with their post from Slack: no hook), what was already told
(`Marks`), and the worker's latest `BudgetState` per budget (kept as its JSON, turned
back into the record here).

Part of `bot.store`: `BudgetsMixin` is one of the pieces `Store` is made of.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from bot.models import (
    FORECAST,
    THRESHOLD,
    BudgetEvent,
    BudgetState,
    Marks,
    budget_post_key,
    format_time,
    parse_time,
)

from .connection import Connection, translated
from .database import Database
from .hooks import insert_hook
from .posts import adopt_post, has_post, insert_post


class BudgetsMixin(Connection):
    def save_budget_events(
        self,
        # (events one post tells, its channel, the budget's state as JSON), in order
        told: Iterable[tuple[Sequence[BudgetEvent], str | None, dict[str, Any]]],
        hooks: Mapping[str, tuple[str, str]],
        now: datetime,
    ) -> int:
        """Record budget decisions, each group with the one Slack post that tells it and
        the hook (budget, body) each of its events causes (by event key), in one
        transaction. An event already recorded (same key) adds nothing: each is told
        once. A post tells the events new here, less any a post of its own key told
        already (adopted from Slack, from before posts carried their events); its
        payload is {"events": [...], "status": state}, its key `budget_post_key`."""
        added = posted = hooked = 0
        with translated("recording budget events"), self._atomic():
            for events, channel, status in told:
                new = [event for event in events if insert_budget_event(self.db, event)]
                added += len(new)
                for event in new:
                    if event.key in hooks:
                        budget, body = hooks[event.key]
                        insert_hook(self.db, event.key, budget, body, now)
                        hooked += 1
                fresh = [event for event in new if not has_post(self.db, f"budget:{event.key}")]
                if fresh:
                    payload = {"events": [event.to_json() for event in fresh], "status": status}
                    posted += insert_post(
                        self.db, budget_post_key(fresh), "budget", channel, payload, now
                    )
        if posted:
            self._queued = True
        if hooked:
            self._hooks_queued = True
        return added

    def adopt_budget_events(
        self, found: Iterable[tuple[str, Sequence[BudgetEvent], str, str]], now: datetime
    ) -> int:
        """Budget posts found in Slack on a fresh database, as (post key, the events it
        told, channel id, ts): each event recorded and the post as delivered, oldest first
        (the latest forecast event is the standing one), so that `budget_marks` knows what
        was told and no post or hook is made for them again. A key already here is left
        as it is; returns how many events were added."""
        added = 0
        with translated("adopting budget events"), self._atomic():
            for key, events, channel, ts in sorted(found, key=lambda item: item[1][0].at):
                added += sum(insert_budget_event(self.db, event) for event in events)
                adopt_post(self.db, key, "budget", channel, ts, now)
        return added

    def budget_marks(self, budget: str, period: str) -> Marks:
        """Thresholds told in `period`, and the period of a standing forecast warning."""
        with translated("reading budget events"):
            crossed, last = self.db.queries(  # together: one round trip on PostgreSQL
                (
                    "select threshold from budget_events "
                    "where budget = ? and period = ? and kind = ?",
                    [budget, period, THRESHOLD],
                ),
                (
                    "select state, period from budget_events where budget = ? and kind = ? "
                    "order by id desc limit 1",
                    [budget, FORECAST],
                ),
            )
        standing = last[0]["period"] if last and last[0]["state"] == "firing" else None
        return Marks(frozenset(row["threshold"] for row in crossed), standing)

    def budget_events(self, budget: str | None = None, limit: int = 50) -> list[BudgetEvent]:
        """The recorded budget events, newest first."""
        sql = "select * from budget_events"
        params: list[Any] = []
        if budget is not None:
            sql += " where budget = ?"
            params.append(budget)
        with translated("reading budget events"):
            rows = list(self.db.query(sql + " order by id desc limit ?", [*params, limit]))
        return [
            BudgetEvent(
                budget=r["budget"],
                kind=r["kind"],
                state=r["state"],
                period=r["period"],
                threshold=r["threshold"],
                at=parse_time(r["at"]),
                spent=r["spent"],
                limit=r["limit_credits"],
                projected=r["projected"],
                crossing=date.fromisoformat(r["crossing"]) if r["crossing"] else None,
            )
            for r in rows
        ]

    def save_budget_states(self, states: Iterable[BudgetState], now: datetime) -> None:
        """The worker's latest state of each budget (one row per budget, replaced)."""
        rows = [
            {"budget": state.budget, "at": format_time(now), "state": json.dumps(state.to_json())}
            for state in states
        ]
        if not rows:
            return  # no budgets (a digest alone): no write transaction
        with translated("recording budget states"), self._atomic():
            self.db.upsert_all("budget_states", rows, pk="budget")

    def budget_states(self) -> dict[str, BudgetState]:
        """The latest state of each budget the worker judged, by budget name. A row that
        does not read as a state is left out: the caller counts that budget afresh."""
        with translated("reading budget states"):
            rows = self.db.execute("select budget, state from budget_states").fetchall()
        states = {}
        for name, text in rows:
            try:
                states[name] = BudgetState.from_json(json.loads(text))
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
        return states


def insert_budget_event(db: Database, event: BudgetEvent) -> bool:
    """Record a budget event inside the caller's transaction; False when its key is
    recorded already (each is told once)."""
    cursor = db.execute(
        "insert into budget_events (key, budget, kind, state, period, threshold, at, spent, "
        "limit_credits, projected, crossing) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "on conflict (key) do nothing",
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
    return bool(cursor.rowcount)
