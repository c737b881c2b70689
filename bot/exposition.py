"""`GET /metrics`: the store's figures in Prometheus text format, read at scrape time.

`serve` does not poll: the worker writes the shared database and this reads it, a few
small queries a scrape (`store.stats`, and the newest event and the budget states the
other answers read too), through a custom collector on a private `CollectorRegistry`
(never the global one, so nothing else leaks in). No metric carries a request_id or a
job_id: those are unbounded, and the logs hold them.

The poll log and the gap record are pruned after a week, so counting their rows would
make counters that drop every hour. The counters here are rows written since this
process first looked: the first scrape notes the highest row id and shows every series
the log holds at 0; each scrape after adds the rows past the mark. They start at 0 when
`serve` restarts, a reset `rate()` and `increase()` expect.
"""

from __future__ import annotations

import platform
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from bot import __version__
from bot.api_schema import EVENTS_PATH, SUMMARY_PATH
from bot.clock import utc_now
from bot.models import BudgetState
from bot.store import Store
from bot.store.stats import Backlog

CONTENT_TYPE = CONTENT_TYPE_LATEST  # what `serve` answers with (it does not import the library)

# A poll error's `code` label: the API's documented codes and the bot's own; anything
# else the API might send is "other", so a label never takes an unbounded value.
ERROR_CODES = frozenset(
    {
        "invalid_request",
        "missing_api_key",
        "invalid_api_key",
        "insufficient_credits",
        "not_found",
        "rate_limited",
        "internal_error",
        "timeout",
        "connection_error",
        "schema_drift",
        "store_error",
    }
)


def error_label(code: str | None) -> str:
    if code is None:
        return "unknown"  # an error answer without the API's envelope
    return code if code in ERROR_CODES else "other"


@dataclass
class _Tally:
    """A pruned log's rows counted past a row-id mark (see the module's docstring)."""

    mark: int | None = None  # None until the first scrape
    counts: dict[tuple[str, ...], float] = field(default_factory=dict)

    def add(self, top: int, rows: Iterable[tuple[tuple[str, ...], float]]) -> None:
        """Count `rows` (labels, amount) read past the mark, up to row id `top`; the
        first time, only note their labels (at 0) and the mark."""
        first = self.mark is None
        for labels, amount in rows:
            self.counts[labels] = self.counts.get(labels, 0.0) + (0.0 if first else amount)
        self.mark = top

    def restarted(self, top: int) -> bool:
        """Row ids restart at 1 only when every row was pruned (a week without a poll):
        the log's highest id then falls below the mark, and every row it holds is new."""
        return self.mark is not None and top < self.mark


@dataclass(frozen=True)
class _Figures:
    """One scrape's reading of the store, taken whole before anything is yielded."""

    now: datetime
    counted: Mapping[tuple[str, ...], float]  # ("polls", endpoint, status), ("errors", ...)
    gaps: Mapping[tuple[str, ...], float]  # ("count",), ("seconds",)
    newest_event: datetime | None
    last_ok: Mapping[str, datetime]
    firing: Mapping[str, int]
    backlog: Mapping[str, Backlog]
    episodes: Iterable[str]
    budgets: Mapping[str, BudgetState]
    coverage: float | None  # the last 24 hours' events stored / jobs the summary reports


class StoreCollector(Collector):
    """The bot's figures from the store at `database` (a SQLite path or a PostgreSQL
    URL), one short-lived connection a scrape. A store error (`StoreError`) comes out of
    `collect()` before any metric."""

    def __init__(self, database: str, now: Callable[[], datetime] = utc_now) -> None:
        self.database = database
        self.now = now
        self._lock = threading.Lock()  # ThreadingHTTPServer: scrapes may overlap
        self._polls = _Tally()
        self._gaps = _Tally()

    def collect(self) -> Iterator[Metric]:
        yield from _families(self.read())

    def read(self) -> _Figures:
        store = Store(self.database)
        try:
            with self._lock:
                self._count(store)
                counted, gaps = dict(self._polls.counts), dict(self._gaps.counts)
            now = self.now()
            return _Figures(
                now=now,
                counted=counted,
                gaps=gaps,
                newest_event=store.newest_event_time(),
                last_ok=store.last_successes((EVENTS_PATH, SUMMARY_PATH)),
                firing=store.firing_by_rule(),
                backlog=store.slack_backlog(),
                episodes=sorted(store.open_episodes()),
                budgets=store.budget_states(),
                coverage=store.coverage_hours(now).ratio,
            )
        finally:
            store.close()

    def _count(self, store: Store) -> None:
        """Add the poll-log and gap rows written since the last scrape."""
        top, polls = store.poll_counts_after(self._polls.mark or 0)
        if self._polls.restarted(top):
            top, polls = store.poll_counts_after(0)
        counted: list[tuple[tuple[str, ...], float]] = []
        for p in polls:
            counted.append((("polls", p.endpoint, p.status), p.polls))
            if p.status == "error":
                counted.append((("errors", p.endpoint, error_label(p.error_code)), p.polls))
        self._polls.add(top, counted)
        top, gaps = store.gaps_after(self._gaps.mark or 0)
        if self._gaps.restarted(top):
            top, gaps = store.gaps_after(0)
        unseen = sum((oldest - newest).total_seconds() for newest, oldest in gaps)
        self._gaps.add(top, [(("count",), len(gaps)), (("seconds",), unseen)])


def registry_for(database: str, now: Callable[[], datetime] = utc_now) -> CollectorRegistry:
    """A private registry holding the store's collector and nothing else."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(database, now))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The registry's metrics in the text format `CONTENT_TYPE` names; a `StoreError`
    when the store cannot be read."""
    return generate_latest(registry)


def _families(f: _Figures) -> Iterator[Metric]:
    build = InfoMetricFamily("usage_bot_build", "The running usage-bot: its version and Python's.")
    build.add_metric([], {"version": __version__, "python": platform.python_version()})
    yield build

    polls = CounterMetricFamily(
        "usage_bot_polls",
        "Usage API polls the worker logged since this process began counting, by "
        "endpoint and status (ok or error).",
        labels=["endpoint", "status"],
    )
    for (kind, endpoint, status), count in sorted(f.counted.items()):
        if kind == "polls":
            polls.add_metric([endpoint, status], count)
    yield polls

    errors = CounterMetricFamily(
        "usage_bot_poll_errors",
        "Failed usage API polls since this process began counting, by endpoint and "
        "error code (the API's documented codes, timeout, connection_error, schema_drift, "
        "store_error; unknown without an error envelope, other for anything else).",
        labels=["endpoint", "code"],
    )
    for (kind, endpoint, code), count in sorted(f.counted.items()):
        if kind == "errors":
            errors.add_metric([endpoint, code], count)
    yield errors

    yield CounterMetricFamily(
        "usage_bot_event_gaps",
        "Events gaps recorded since this process began counting: a full page of events "
        "entirely newer than everything stored, so events in between may be lost.",
        value=f.gaps.get(("count",), 0.0),
    )
    yield CounterMetricFamily(
        "usage_bot_event_gap_seconds",
        "Data time those gaps left unseen (oldest event of the full page minus the newest "
        "stored before it), summed; how many events it held, the API does not say.",
        value=f.gaps.get(("seconds",), 0.0),
    )

    coverage = GaugeMetricFamily(
        "usage_bot_coverage_ratio",
        "Finished jobs seen in stored events over those the summary reports, last 24 hours "
        "(absent while the summary reports none to compare).",
    )
    if f.coverage is not None:
        coverage.add_metric([], f.coverage)
    yield coverage

    newest = GaugeMetricFamily(
        "usage_bot_newest_event_age_seconds",
        "Now minus the created_at of the newest stored event (absent while none is stored).",
    )
    if f.newest_event is not None:
        newest.add_metric([], (f.now - f.newest_event).total_seconds())
    yield newest

    last_ok = GaugeMetricFamily(
        "usage_bot_last_successful_poll_age_seconds",
        "Now minus the end of the endpoint's last successful poll in the poll log (absent "
        "for an endpoint without one).",
        labels=["endpoint"],
    )
    for endpoint, at in sorted(f.last_ok.items()):
        last_ok.add_metric([endpoint], (f.now - at).total_seconds())
    yield last_ok

    firing = GaugeMetricFamily(
        "usage_bot_alerts_firing",
        "Alert keys (rule and group) firing now, per rule (0 for a rule whose keys are all "
        "ok or pending).",
        labels=["rule"],
    )
    for rule, count in sorted(f.firing.items()):
        firing.add_metric([rule], count)
    yield firing

    pending = GaugeMetricFamily(
        "usage_bot_slack_outbox_pending",
        "Slack messages queued and not yet delivered (retries included), per outbox: "
        "alerts (alert transitions), posts (budget events, digests), notices (ops notices).",
        labels=["outbox"],
    )
    failed = GaugeMetricFamily(
        "usage_bot_slack_outbox_failed",
        "Slack messages given up on after a permanent error, per outbox.",
        labels=["outbox"],
    )
    oldest = GaugeMetricFamily(
        "usage_bot_slack_outbox_oldest_pending_age_seconds",
        "Now minus when the oldest undelivered message was queued, per outbox (absent when "
        "nothing waits).",
        labels=["outbox"],
    )
    for outbox, backlog in sorted(f.backlog.items()):
        pending.add_metric([outbox], backlog.pending)
        failed.add_metric([outbox], backlog.failed)
        if backlog.oldest_pending is not None:
            oldest.add_metric([outbox], (f.now - backlog.oldest_pending).total_seconds())
    yield pending
    yield failed
    yield oldest

    episodes = GaugeMetricFamily(
        "usage_bot_ops_episode_open",
        "1 for each ops episode open now (bad credentials, no credits, events gap, schema "
        "drift, ...), by kind; absent when none is.",
        labels=["kind"],
    )
    for kind in f.episodes:
        episodes.add_metric([kind], 1)
    yield episodes

    spent = GaugeMetricFamily(
        "usage_bot_budget_spent_credits",
        "Credits spent in the budget's current period, as the worker last judged it.",
        labels=["budget"],
    )
    limit = GaugeMetricFamily(
        "usage_bot_budget_limit_credits", "The budget's limit for its period.", labels=["budget"]
    )
    ratio = GaugeMetricFamily(
        "usage_bot_budget_used_ratio",
        "Spent over limit in the current period (1 = the limit reached).",
        labels=["budget"],
    )
    projected = GaugeMetricFamily(
        "usage_bot_budget_projected_credits",
        "The forecast of the period's total spend (absent without a forecast).",
        labels=["budget"],
    )
    for name, state in sorted(f.budgets.items()):
        spent.add_metric([name], state.spent_credits)
        limit.add_metric([name], state.limit_credits)
        if state.limit_credits > 0:
            ratio.add_metric([name], state.spent_credits / state.limit_credits)
        if state.forecast is not None:
            projected.add_metric([name], state.forecast.projected_credits)
    yield spent
    yield limit
    yield ratio
    yield projected
