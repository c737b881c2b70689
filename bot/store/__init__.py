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

from .alerts import OUTBOX_WAITING, AlertsMixin
from .budgets import BudgetsMixin
from .connection import translated
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

__all__ = ["CycleView", "Store"]

# What a cycle reads first, as one statement on both engines, a row per fact (`what`
# says which): the lease `?` (none while nobody holds it), when the summary was last
# polled (null before the first), each open episode, one row if anything waits to be
# told and one if a hook waits to be delivered. The lease comes first: PostgreSQL types
# a UNION's columns from its first branches, and only the lease's row has a number.
CYCLE_SQL = (
    "select 'lease' as what, holder as a, null as b, expires_at as c from leases where name = ? "
    "union all select 'poll', max(polled_at), null, null from summary_snapshots "
    "union all select 'episode', kind, text, null from episodes "
    f"union all select 'outbox', null, null, null where {OUTBOX_WAITING} "
    "union all select 'hooks', null, null, null "
    "where exists (select 1 from hooks where delivered_at is null)"
)


@dataclass(frozen=True)
class CycleView:
    """What a worker's cycle reads first, of what other processes may change."""

    last_summary_poll: datetime | None
    episodes: dict[str, str]  # the open ops episodes, kind -> text
    lease: tuple[str, float] | None  # the lease's holder and expiry, if anyone holds it
    outbox_waiting: bool = False  # anything to tell (`outbox_waiting`)
    hooks_waiting: bool = False  # any enforcement hook not yet delivered


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
        whether anything waits to be told or sent, read together: one statement
        (`CYCLE_SQL`)."""
        # Before the read: what is queued from now on is flagged.
        self._queued = self._hooks_queued = False
        with translated("reading the cycle's state"):
            rows = self.db.query(CYCLE_SQL, [lease])
        last = next((row["a"] for row in rows if row["what"] == "poll"), None)
        held = [(row["a"], row["c"]) for row in rows if row["what"] == "lease"]
        return CycleView(
            parse_time(last) if last else None,
            {row["a"]: row["b"] for row in rows if row["what"] == "episode"},
            held[0] if held else None,
            any(row["what"] == "outbox" for row in rows),
            any(row["what"] == "hooks" for row in rows),
        )

    def waiting_since(self, view: CycleView) -> bool:
        """Whether anything waits to be told, without a query: it did when `view` was read,
        or this store has queued something since. What another process queues meanwhile
        the next cycle's view sees, as if it had been queued just after this answer."""
        return view.outbox_waiting or self._queued

    def hooks_waiting_since(self, view: CycleView) -> bool:
        """Whether a hook waits to be delivered (due now or backing off), without a
        query: as `waiting_since`, for the hooks."""
        return view.hooks_waiting or self._hooks_queued
