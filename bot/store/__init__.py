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

from dataclasses import dataclass
from datetime import datetime

from bot.models import parse_time

from .alerts import OUTBOX_SQL, AlertsMixin
from .budgets import BudgetsMixin
from .connection import translated
from .coverage import CoverageMixin
from .deliveries import DeliveriesMixin
from .events import EventsMixin
from .feedback import FeedbackMixin
from .groups import GroupsMixin
from .hooks import HooksMixin
from .leases import LEASE_SQL, LeasesMixin
from .notices import EPISODES_SQL, NoticesMixin, episodes
from .polls import PollsMixin
from .posts import PostsMixin
from .retention import RetentionMixin
from .silences import SilencesMixin
from .stats import StatsMixin
from .summaries import LAST_POLL_SQL, SummariesMixin

__all__ = ["CycleView", "Store"]


@dataclass(frozen=True)
class CycleView:
    """What a worker's cycle reads first, of what other processes may change."""

    last_summary_poll: datetime | None
    episodes: dict[str, str]  # the open ops episodes, kind -> text
    lease: tuple[str, float] | None  # the lease's holder and expiry, if anyone holds it
    outbox_waiting: bool = False  # anything to tell (`outbox_waiting`)


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

    def cycle_view(self, lease: str) -> CycleView:
        """When the summary was last polled, the open episodes, the lease `lease` and
        whether anything waits to be told, read together: on PostgreSQL one round trip
        for the four."""
        self._queued = False  # before the read: what is queued from now on is flagged
        with translated("reading the cycle's state"):
            polled, open_episodes, leases, outbox = self.db.queries(
                (LAST_POLL_SQL, ()), (EPISODES_SQL, ()), (LEASE_SQL, [lease]), (OUTBOX_SQL, ())
            )
        last = polled[0]["polled_at"] if polled else None
        return CycleView(
            parse_time(last) if last else None,
            episodes(open_episodes),
            (leases[0]["holder"], leases[0]["expires_at"]) if leases else None,
            bool(outbox[0]["waiting"]),
        )

    def waiting_since(self, view: CycleView) -> bool:
        """Whether anything waits to be told, without a query: it did when `view` was read,
        or this store has queued something since. What another process queues meanwhile
        the next cycle's view sees, as if it had been queued just after this answer."""
        return view.outbox_waiting or self._queued
