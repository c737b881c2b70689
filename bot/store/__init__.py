"""The SQLite store (sqlite-utils): the only package that touches the database.

Sits between `source` and `detect`: saves validated events and summaries, keeps the
poll log and the events-gap record, and answers the queries the rest of the bot needs.
Every write is one transaction (`_atomic()`), so a crash leaves no partial rows.

`Store` is made of one mixin per concern, each in its module and all sharing the
connection (`connection.Connection`: `db`, `_atomic()`); the schema is `migrations`.
The records it takes and gives are in `bot.models`.
"""

from __future__ import annotations

from bot.store.alerts import AlertsMixin
from bot.store.budgets import BudgetsMixin
from bot.store.deliveries import DeliveriesMixin
from bot.store.events import EventsMixin
from bot.store.hooks import HooksMixin
from bot.store.leases import LeasesMixin
from bot.store.notices import NoticesMixin
from bot.store.polls import PollsMixin
from bot.store.posts import PostsMixin
from bot.store.retention import RetentionMixin
from bot.store.silences import SilencesMixin
from bot.store.summaries import SummariesMixin

__all__ = ["Store"]


class Store(
    EventsMixin,
    SummariesMixin,
    PollsMixin,
    AlertsMixin,
    DeliveriesMixin,
    LeasesMixin,
    SilencesMixin,
    NoticesMixin,
    BudgetsMixin,
    PostsMixin,
    HooksMixin,
    RetentionMixin,
):
    """The bot's SQLite file. `path=None` gives an in-memory database (tests)."""

    def is_empty(self) -> bool:
        """True on a fresh database: nothing polled yet (backfill needed)."""
        return self.last_summary_poll() is None and self.newest_event_time() is None
