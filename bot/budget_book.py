"""The worker's budget and digest ledger: usage per 15-minute slot for as far back as
budgets and the digest look, kept up to date from each cycle's new events and rebuilt
from the store at start. Judging a budget is then a few array sums, not a table scan.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from bot.budget import (
    SLOT,
    BudgetStatus,
    as_json,
    budget_state,
    decide,
    hook_body,
    lookback,
    status,
)
from bot.metrics import CREDITS, FAILED, FINISHED, JOBS, UsageCube, batch_from_events
from bot.models import THRESHOLD, TOTAL, Budget, BudgetEvent, DailyUsage, Event
from bot.store import Store

DIGEST_DAYS = 31 + 8  # the digest's 30-day chart (its 4 weeks of weekdays), and a margin


class BudgetBook:
    def __init__(self, budgets: Sequence[Budget], *, digest: bool = False) -> None:
        self.budgets = tuple(budgets)
        self.history = max(lookback(budgets), timedelta(days=DIGEST_DAYS if digest else 0))
        self.cube = UsageCube(SLOT)
        self._daily: tuple[date, dict[tuple[date, str], DailyUsage]] | None = None

    @classmethod
    def load(
        cls, store: Store, budgets: Sequence[Budget], now: datetime, *, digest: bool = False
    ) -> BudgetBook:
        book = cls(budgets, digest=digest)
        if book.history:
            book.cube.add(store.event_batch_since(now - book.history))
        return book

    def add(self, events: Iterable[Event]) -> None:
        self.cube.add(batch_from_events(events))

    def forget_before(self, now: datetime) -> None:
        self.cube.forget_before(int((now - self.history).timestamp()) // SLOT)

    def daily(self, store: Store, now: datetime) -> dict[tuple[date, str], DailyUsage]:
        """The summary's daily figures the ledger reaches back to, by (day, model); read
        once per day or per new summary (`forget_daily`), not every cycle."""
        if self._daily is None or self._daily[0] != now.date():
            start = (now - self.history - timedelta(days=1)).date()
            rows = store.daily_usage(start, now.date())
            self._daily = (now.date(), {(row.date, row.model): row for row in rows})
        return self._daily[1]

    def forget_daily(self) -> None:
        """A new summary was stored: read the daily figures again when next asked."""
        self._daily = None

    def states(self, store: Store, now: datetime) -> list[BudgetStatus]:
        daily = self.daily(store, now)
        gaps = store.gaps()
        return [
            status(b, self.cube, summary_figures(daily, b.scope), now, gaps) for b in self.budgets
        ]


def summary_figures(
    daily: Mapping[tuple[date, str], DailyUsage],
    scope: Sequence[tuple[str, str]],
    measure: int = CREDITS,
) -> dict[date, float] | None:
    """The summary's figure per UTC day for a scope it can speak for (the account or a
    model); None for segments and customers, which only events know."""
    wanted = dict(scope)
    if set(wanted) - {"model"}:
        return None
    model = wanted.get("model", TOTAL)
    return {day: figure(row, measure) for (day, name), row in daily.items() if name == model}


def figure(row: DailyUsage, measure: int) -> float:
    if measure == JOBS:
        return float(row.total_jobs)
    if measure == FINISHED:
        return float(row.completed_jobs + row.failed_jobs)
    if measure == FAILED:
        return float(row.failed_jobs)
    return row.credits_used


def judge(
    store: Store, states: Sequence[BudgetStatus], hooked: Iterable[str], now: datetime
) -> int:
    """Decide and record what each budget's state makes (posts and hooks with it, in one
    transaction); return how many events are new."""
    hooked = set(hooked)
    added = 0
    store.save_budget_states([budget_state(s) for s in states], now)
    for state in states:
        budget = state.budget
        events = decide(state, store.budget_marks(budget.name, state.period.label))
        if not events:
            continue
        payload = as_json(state)
        # Thresholds crossed in one cycle are one post ("passed 50% and 80%"), where the
        # first of them falls among the events; forecast events are a post each. Each
        # event still has its own record and, for a threshold, its own hook.
        thresholds = tuple(e for e in events if e.kind == THRESHOLD)
        told: list[tuple[tuple[BudgetEvent, ...], str | None, dict[str, Any]]] = []
        for event in events:
            if event.kind != THRESHOLD:
                told.append(((event,), budget.channel, payload))
            elif event is thresholds[0]:
                told.append((thresholds, budget.channel, payload))
        hooks = {
            e.key: (budget.name, json.dumps(hook_body(e, state)))
            for e in thresholds
            if budget.name in hooked
        }
        added += store.save_budget_events(told, hooks, now)
    return added
