"""The store (SQLite, or PostgreSQL with `DATABASE_URL`): the only package that touches
the database.

Sits between `source` and `detect`: saves validated events and summaries, keeps the
poll log and the events-gap record, and answers the queries the rest of the bot needs.
Every write is one transaction (`_atomic()`), so a crash leaves no partial rows.

`Store` is made of one mixin per concern, each in its module and all sharing the
connection (`connection.Connection`: `db`, `_atomic()`); the schema is `migrations`,
the SQL layer over both engines `database`.
The records it takes and gives are in `bot.models`.
"""

from __future__ import annotations

from .alerts import AlertsMixin
from .budgets import BudgetsMixin
from .coverage import CoverageMixin
from .deliveries import DeliveriesMixin
from .events import EventsMixin
from .feedback import FeedbackMixin
from .groups import GroupsMixin
from .hooks import HooksMixin
from .leases import LeasesMixin
from .notices import NoticesMixin
from .polls import PollsMixin
from .posts import PostsMixin
from .retention import RetentionMixin
from .silences import SilencesMixin
from .stats import StatsMixin
from .summaries import SummariesMixin

__all__ = ["Store"]


class Store(
    EventsMixin,
    SummariesMixin,
    PollsMixin,
    AlertsMixin,
    DeliveriesMixin,
    GroupsMixin,
    LeasesMixin,
    SilencesMixin,
    FeedbackMixin,
    NoticesMixin,
    BudgetsMixin,
    PostsMixin,
    HooksMixin,
    RetentionMixin,
    CoverageMixin,
    StatsMixin,
):
    """The bot's database: a SQLite file, PostgreSQL (a `postgres://` URL) or, with
    `None`, an in-memory SQLite database (tests)."""

    def is_empty(self) -> bool:
        """True on a fresh database: nothing polled yet (backfill needed)."""
        return self.last_summary_poll() is None and self.newest_event_time() is None
