"""The worker: one `tick(now)` runs poll -> store (-> detect -> decide -> notify) once;
`run()` repeats it at the events poll's pace (`bot.pace`) until told to stop.

Faults of one cycle are logged and the loop goes on. An endpoint that answers 401/402
is reported once and then only probed every `probe_every` seconds until it recovers.
At start the notifier takes back from Slack what an empty database lost (`prepare`);
until it has, budgets and the digest wait, or they would be told a second time.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from bot import digest, messages
from bot.api_schema import EVENTS_PATH, SUMMARY_PATH
from bot.budget import BudgetStatus, period_of
from bot.budget_book import BudgetBook, judge
from bot.clock import utc_now
from bot.coverage import GapEstimate, arrival_rate, estimate_gap
from bot.engine import STEP, Engine
from bot.errors import BotError, SchemaDrift, SourceError, StoreError
from bot.hooks import send_hooks
from bot.messages import notices
from bot.metrics import batch_from_events
from bot.models import (
    FIRING,
    ColdStart,
    DigestConfig,
    Event,
    Gap,
    PollRecord,
    RuleSet,
    SaveResult,
    Summary,
    Transition,
)
from bot.monitor import Monitor, enrich
from bot.notify import BACKOFF, ConsoleNotifier, Notifier, deliver
from bot.pace import Outcome, Pace, PaceSettings, next_pace
from bot.source import UsageClient
from bot.store import Store

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

_BLOCKING_STATUSES = frozenset({401, 402})
STEP_DELTA = timedelta(seconds=STEP)
DELIVERY_LEASE = "delivery"
PRUNE_EVERY = timedelta(hours=1)
MIN_EVENTS_KEPT = timedelta(days=8)  # /usage events and examples reach back at least this
LOGS_KEPT = timedelta(days=7)
GAP_RATE_WINDOW = timedelta(hours=1)  # stored events before a gap its estimate reads
# An events-gap episode clears only after this long without a gap: at the API's page limit
# gaps come and go every few polls, and that is one episode to tell, not one a second.
GAP_CLEARS_AFTER = timedelta(minutes=10)
BUDGET_EVERY = timedelta(minutes=15)  # budgets are judged at least this often without data


@dataclass
class TickReport:
    """What one cycle did (for tests, the demo and the --cycles loop)."""

    polled: list[str] = field(default_factory=list)
    new_events: int = 0
    failed_by_model: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    transitions: int = 0
    fired: list[Transition] = field(default_factory=list)  # the firings among them
    delivered: int = 0
    budget_events: int = 0
    hooks: int = 0


@dataclass(frozen=True)
class HookSettings:
    """Where budget enforcement hooks go: URL per budget name, the signing secret, and
    the HTTP client that carries them (None: hooks stay queued)."""

    urls: Mapping[str, str] = field(default_factory=dict)
    secret: str | None = field(default=None, repr=False)
    client: httpx.Client | None = None


class Worker:
    """Owns the per-cycle pipeline; all I/O objects are injected."""

    def __init__(
        self,
        *,
        client: UsageClient,
        store: Store,
        ruleset: RuleSet,
        clock: Callable[[], datetime] = utc_now,
        notifier: Notifier | None = None,
        wall: Callable[[], float] = time.time,
        lease_seconds: float | None = None,
        hooks: HookSettings | None = None,
        default_channel: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.store = store
        self.ruleset = ruleset
        self.clock = clock
        self.rules = {rule.name: rule for rule in ruleset.rules}
        self.notifier = notifier or ConsoleNotifier(self.rules)
        self.wall = wall  # real time, for delivery backoff (data time may run faster)
        # A dead holder's lease lapses after this; three cycles by default.
        self.lease_seconds = lease_seconds or 3 * ruleset.poll.events_every
        self.monitor: Monitor | None = None  # built from the store on the first cycle
        self.book: BudgetBook | None = None  # likewise, when budgets or a digest exist
        self._judged_at: datetime | None = None  # when the budgets were last judged
        # Cold start: was the database empty when this process began, and has Slack been
        # read for what it lost (`_adopt`)? Until then, budgets and the digest wait.
        self._fresh: bool | None = None
        self._adopted = False
        self._adopt_tries = 0
        self._adopt_after: float | None = None  # wall clock: the next try after a failure
        self._digest_day: date | None = None  # the digest this worker has queued last
        self.hooks = hooks or HookSettings()
        self.default_channel = default_channel
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._had_lease: bool | None = None
        self._pruned_at: datetime | None = None
        self._last_attempt: dict[str, datetime] = {}
        # The events poll's pace, in real (monotonic) seconds: see bot.pace.
        self.monotonic = monotonic
        self.pace_settings = pace_settings(ruleset, ruleset.poll.events_every)
        self.pace: Pace | None = None  # after the last events poll
        self._good_poll_at: float | None = None  # start of the last good events poll
        self._gap_seen_at: datetime | None = None  # when this process last saw an events gap
        # The open ops episodes, read once a cycle and kept up to date with this worker's
        # own changes (`_episode`), so each poll's "no change" costs no query.
        self._episodes: dict[str, str] = {}
        # The rule cursors as stored: only those that moved are written (`_detect`).
        self._stored_cursors: dict[str, datetime] = {}
        self.polled_at: float | None = None  # start of the last events poll (monotonic)

    def pace_every(self, relaxed: float) -> None:
        """Set the quiet interval of the events poll (BOT_POLL_SECONDS or events_every)."""
        self.pace_settings = pace_settings(self.ruleset, relaxed)

    def next_delay(self) -> float:
        """Seconds from the start of the last cycle to the next one: the pace's delay."""
        return self.pace.delay if self.pace is not None else self.pace_settings.relaxed

    # -- one cycle ------------------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> TickReport:
        """Run one cycle at `now` (data time; defaults to the clock). A database that
        cannot be reached (PostgreSQL restarting, the network to it down) ends the cycle
        with a told error, like any other store fault; the next cycle tries again."""
        now = now or self.clock()
        report = TickReport()
        try:
            self._tick(now, report)
        except StoreError as exc:
            report.errors.append(str(exc))
            log.error("cycle could not finish: %s", exc)
            # What this cycle stored may not have reached detection: rebuild from the store.
            self.monitor = self.book = None
        return report

    def _tick(self, now: datetime, report: TickReport) -> None:
        poll = self.ruleset.poll
        self._note_fresh()
        # What other processes may change, read together at the start of the cycle.
        view = self.store.cycle_view(DELIVERY_LEASE)
        last_summary, self._episodes = view.last_summary_poll, dict(view.episodes)
        summaries: list[Summary | None] = []
        if last_summary is None and self.store.is_empty() and self._is_due(SUMMARY_PATH, now, 0.0):
            summaries.append(self._poll_summary(now, poll.backfill_days, report))  # cold start
            if summaries[-1] is not None:
                last_summary = now  # just stored
        events: tuple[Event, ...] = ()
        if self._is_due(EVENTS_PATH, now, 0.0):
            events = self._poll_events(now, report)
        summary_age = (now - last_summary).total_seconds() if last_summary else None
        if (summary_age is None or summary_age >= poll.summary_every) and self._is_due(
            SUMMARY_PATH, now, poll.summary_every
        ):
            summaries.append(self._poll_summary(now, poll.summary_days, report))
        # Polling and storing are idempotent; judging and telling belong to one worker.
        if not self._hold_lease(view.lease):
            self.monitor = self.book = None  # rebuilt from the store if this takes over
            return
        try:
            self._adopt(now)  # once; again after a failure, with backoff
            if self.rules:
                self._detect(now, events, [s for s in summaries if s is not None], report)
            self._budgets(now, events, any(s is not None for s in summaries), report)
            # Most cycles have nothing to tell: the cycle's first read says so (with what
            # this store queued since), where deliver reads each outbox in turn.
            if self.store.waiting_since(view):
                report.delivered = deliver(self.store, self.notifier, now, self.wall)
            # Likewise the hooks: read only when one waits (due now or backing off).
            if self.hooks.client is not None and self.store.hooks_waiting_since(view):
                report.hooks = send_hooks(
                    self.store,
                    self.hooks.client,
                    self.hooks.urls,
                    self.hooks.secret,
                    now,
                    self.wall,
                )
            self._prune(now)
        except BotError as exc:  # e.g. the database is locked: told, and the loop goes on
            report.errors.append(str(exc))
            log.error("cycle could not finish: %s", exc)

    def _budgets(
        self, now: datetime, events: Sequence[Event], new_summary: bool, report: TickReport
    ) -> None:
        """Judge the budgets when there is new data (or every BUDGET_EVERY, for the time
        that passes: a period ends, the forecast's day moves on); queue the digest once
        when it is due. A quiet cycle costs no query and no write here."""
        digest_config = self.ruleset.digest
        if not self.ruleset.budgets and digest_config is None:
            return
        if not self._adopt(now):  # a fresh database: first, what Slack was already told
            return
        if self.book is None:
            self.book = BudgetBook.load(
                self.store, self.ruleset.budgets, now, digest=digest_config is not None
            )
            self._judged_at = None
        else:
            self.book.add(events)
        if new_summary:
            self.book.forget_daily()
        due_day = digest.due(digest_config, now) if digest_config else None
        stale = self._judged_at is None or now - self._judged_at >= BUDGET_EVERY
        digest_due = due_day is not None and due_day != self._digest_day
        if not (events or new_summary or stale or digest_due):
            return
        try:
            # A digest alone has no budget to judge: its figures need no reads here.
            states = self.book.states(self.store, now) if self.ruleset.budgets else []
            report.budget_events = judge(self.store, states, self.hooks.urls, now)
            self._judged_at = now
            if digest_config is not None and due_day is not None and digest_due:
                self._queue_digest(digest_config, due_day, states, now)
                self._digest_day = due_day
        except BotError:
            self.book = None  # rebuilt from the store next cycle
            raise
        self.book.forget_before(now)

    def _queue_digest(
        self, config: DigestConfig, day: date, states: Sequence[BudgetStatus], now: datetime
    ) -> None:
        """Once per (day, channel): the store's unique post key holds across restarts and
        a second worker; this worker asks the store once a day."""
        assert self.book is not None
        for channel in config.channels or (self.default_channel,):
            key = digest.key(day, channel)
            if self.store.has_post(key):
                continue
            payload = digest.compose(self.store, self.book, states, config, now)
            if self.store.queue_post(key, "digest", channel, payload, now):
                log.info("daily digest for %s queued for %s", day, channel or "default")

    def _prune(self, now: datetime) -> None:
        """Hourly: drop events older than the rules look back (and a margin), logs after
        a week, so the database stays bounded however long the worker runs."""
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        lookback = timedelta(seconds=self.monitor.engine.history_seconds() if self.monitor else 0)
        ledger = self.book.history if self.book else timedelta(0)
        keep_events = max(lookback, ledger, MIN_EVENTS_KEPT) + timedelta(days=1)
        removed = self.store.prune(now - keep_events, now - LOGS_KEPT)
        if any(removed.values()):
            gone = ", ".join(f"{table} {count}" for table, count in removed.items() if count)
            log.info("pruned old rows: %s", gone)

    def _hold_lease(self, known: tuple[str, float] | None = None) -> bool:
        """Only the worker holding the lease judges and tells (see Store.hold_lease);
        `known`: the lease as read this cycle."""
        held = self.store.hold_lease(
            DELIVERY_LEASE, self.id, self.wall(), self.lease_seconds, known=known
        )
        if held != self._had_lease:
            if held:
                log.info("this worker (%s) delivers alerts", self.id)
            else:
                log.warning(
                    "another worker holds the lease on this database: this one polls "
                    "and stores but neither judges nor posts (is a second worker running?)"
                )
            self._had_lease = held
        return held

    def close(self) -> None:
        """Give the delivery lease back at a clean stop, so a successor takes over at once."""
        self.store.release_lease(DELIVERY_LEASE, self.id)

    # -- detect and decide ------------------------------------------------------------------

    def prepare(self, now: datetime | None = None) -> None:
        """At start, before the first cycle: take back from Slack what a fresh database
        lost (`_adopt`), then rebuild detection state from the store."""
        now = now or self.clock()
        self._note_fresh()
        self._adopt(now)
        if self.rules and self.monitor is None:
            self.monitor = self._restore(now)

    def _note_fresh(self) -> None:
        """Once, before this process polls anything: is the database empty?"""
        if self._fresh is None:
            self._fresh = self.store.is_empty()

    def _adopt(self, now: datetime) -> bool:
        """Once per process, ask the notifier to take back from Slack the open alerts
        and, on a database found empty (a dyno's lost disk), the budget events, digests
        and open ops episodes already told (`Notifier.recover`). A failure (Slack down)
        is retried with backoff; alerts are judged meanwhile, and told later. Return
        whether budgets and the digest may be judged: on a fresh database not before
        Slack has been read, or they would be told a second time."""
        if self._adopted:
            return True
        if self._adopt_after is None or self.wall() >= self._adopt_after:
            try:
                self.notifier.recover(self.store, now, cold=self._cold_start(now))
            except BotError as exc:
                self._adopt_tries += 1
                delay = BACKOFF.delay(self._adopt_tries)
                self._adopt_after = self.wall() + delay
                log.warning(
                    "could not look in Slack for what was told before (try %d, again in "
                    "%.0f s): %s",
                    self._adopt_tries,
                    delay,
                    exc,
                )
            else:
                self._adopted = True
        return self._adopted or not self._fresh

    def _cold_start(self, now: datetime) -> ColdStart | None:
        """On a database found empty: where budget events and digests are posted, and
        since when (the earliest current budget period, the digest's day)."""
        if not self._fresh:
            return None
        channels: list[str | None] = []
        since = now
        for budget in self.ruleset.budgets:
            channels.append(budget.channel)
            since = min(since, period_of(budget, now).start)
        config = self.ruleset.digest
        if config is not None:
            channels.extend(config.channels or (self.default_channel,))
            since = min(since, digest.day_start(config, now))
        return ColdStart(tuple(dict.fromkeys(channels)), since)

    def _detect(
        self,
        now: datetime,
        events: Sequence[Event],
        summaries: Sequence[Summary],
        report: TickReport,
    ) -> None:
        """Feed what this cycle stored to the engine, judge, persist the decisions."""
        if self.monitor is None:
            self.prepare(now)
            assert self.monitor is not None
        else:
            self.monitor.engine.add_events(batch_from_events(events))
            for summary in summaries:
                self.monitor.engine.add_daily(summary.daily, final_before=summary.end_date)
        engine = self.monitor.engine
        transitions = [
            enrich(t, engine, self.store.events_between)
            # Every cycle that brought events also judges the window ending now.
            for t in self.monitor.run(until=now, start=now - STEP_DELTA, live=bool(events))
        ]
        moved = {
            rule: at
            for rule, at in self.monitor.cursors.items()
            if self._stored_cursors.get(rule) != at
        }
        try:
            added = self.store.save_decisions(
                self.monitor.take_changes().values(), transitions, moved, now
            )
            self._stored_cursors.update(moved)
        except BotError:
            # The decisions exist only in memory now: forget them, and the next cycle
            # rebuilds from the store and makes them again from the same data.
            self.monitor = None
            raise
        report.transitions += added
        report.fired += [t for t in transitions if t.state == FIRING]
        for t in transitions:
            log.info(
                "alert %s: %s value=%.4g baseline=%.4g z=%.1f request_ids=%s job_ids=%s",
                t.state,
                messages.describe_key(t),
                t.value,
                t.baseline,
                t.zscore,
                ",".join(t.request_ids[:3]) or "-",
                ",".join(t.job_ids[:3]) or "-",
            )
        engine.forget_before(now - timedelta(seconds=engine.history_seconds()))

    def _restore(self, now: datetime) -> Monitor:
        """A monitor from what the store holds: events, daily figures, states, cursors."""
        engine = Engine(self.ruleset.rules)
        history = timedelta(seconds=engine.history_seconds())
        engine.add_events(self.store.event_batch_since(now - history))
        engine.add_gaps(self.store.gaps())
        last_summary = self.store.last_summary_poll()
        if last_summary is not None:
            rows = self.store.daily_usage(now.date() - timedelta(days=120), now.date())
            engine.add_daily(rows, final_before=last_summary.date())
        self._stored_cursors = self.store.cursors()
        return Monitor(engine, self.store.alert_states(), self._stored_cursors)

    def _is_due(self, endpoint: str, now: datetime, every: float) -> bool:
        """Blocked endpoints wait probe_every between attempts; others `every`."""
        last = self._last_attempt.get(endpoint)
        if last is None:
            return True
        if refusal(endpoint) in self._episodes:
            every = max(every, self.ruleset.poll.probe_every)
        return now - last >= timedelta(seconds=every)

    def _poll_events(self, now: datetime, report: TickReport) -> tuple[Event, ...]:
        started = time.perf_counter()
        begun = self.polled_at = self.monotonic()
        since = begun - self._good_poll_at if self._good_poll_at is not None else None
        paces: list[Pace] = []  # the pace the poll-log row was written with

        def logged(saved: SaveResult) -> PollRecord:
            """The poll-log row, written in the events' own transaction."""
            items, new = len(page.items), len(saved.new_events)
            pace = next_pace(self.pace_settings, self.pace, "ok", items=items, new=new, since=since)
            paces.append(pace)
            elapsed = time.perf_counter() - started
            return self._poll_record(
                EVENTS_PATH,
                now,
                elapsed,
                request_id=page.request_id,
                seen=items,
                new=new,
                pace=pace,
            )

        try:
            page = self.client.events(self.ruleset.poll.events_limit)
            saved = self.store.save_events(page, stored_at=now, log=logged)
        except BotError as exc:
            transient = isinstance(exc, SourceError) and exc.transient
            self._step_pace("throttled" if transient else "failed")
            self._finish(EVENTS_PATH, now, started, report, error=exc, pace=self.pace)
            return ()
        report.new_events += len(saved.new_events)
        self._good_poll_at = begun
        self.pace = paces[-1]
        self._finish(
            EVENTS_PATH,
            now,
            started,
            report,
            request_id=page.request_id,
            seen=len(page.items),
            new=len(saved.new_events),
            pace=self.pace,
            written=True,
        )
        gap_text = notices.EVENTS_GAP_CLOSED
        if saved.gap is not None:
            if self.monitor is not None:
                self.monitor.engine.add_gaps([saved.gap])
            estimate = self._gap_estimate(page.items, saved.gap)
            gap_text = notices.events_gap(
                page.limit,
                saved.gap.newest_stored_at,
                saved.gap.oldest_seen_at,
                estimate.events,
                estimate.basis,
            )
        if saved.gap is not None:
            self._gap_seen_at = now
            self._episode("events gap", True, gap_text, now)
        elif self._gap_seen_at is None or now - self._gap_seen_at >= GAP_CLEARS_AFTER:
            self._episode("events gap", False, gap_text, now)
        if saved.gap is not None:
            log.warning(
                "events gap: more than %d events arrived between polls; events between %s and "
                "%s may be missing (request_id=%s)",
                page.limit,
                saved.gap.newest_stored_at.isoformat(),
                saved.gap.oldest_seen_at.isoformat(),
                page.request_id,
            )
        for event in saved.new_events:
            if event.is_failed:
                model = event.model or "unknown"
                report.failed_by_model[model] = report.failed_by_model.get(model, 0) + 1
                log.info(
                    "job failed: model=%s error_code=%s request_id=%s job_id=%s",
                    event.model,
                    event.error_code,
                    event.request_id,
                    event.job_id,
                )
        return saved.new_events

    def _gap_estimate(self, page: Sequence[Event], gap: Gap) -> GapEstimate:
        """How many events the gap probably held: the arrival rate of the page that
        revealed it and of the hour stored before it (or the summary, if it spans it)."""
        before = self.store.events_between(
            gap.newest_stored_at - GAP_RATE_WINDOW, gap.newest_stored_at + timedelta(seconds=1)
        )
        events, finished = len(before), sum(1 for e in before if e.is_finished)
        per_job = events / finished if finished else None
        return estimate_gap(
            gap,
            [
                arrival_rate([e.created_at for e in page]),
                arrival_rate([e.created_at for e in before]),
            ],
            self.store.summary_intervals(gap.newest_stored_at, gap.oldest_seen_at),
            per_job,
        )

    def _poll_summary(self, now: datetime, days: int, report: TickReport) -> Summary | None:
        started = time.perf_counter()

        def logged() -> PollRecord:
            """The poll-log row, written in the summary's own transaction."""
            elapsed = time.perf_counter() - started
            return self._poll_record(
                SUMMARY_PATH, now, elapsed, request_id=summary.request_id, seen=len(summary.daily)
            )

        try:
            summary = self.client.summary(days)
            self.store.save_summary(summary, polled_at=now, log=logged)
        except BotError as exc:
            self._finish(SUMMARY_PATH, now, started, report, error=exc)
            return None
        self._finish(
            SUMMARY_PATH,
            now,
            started,
            report,
            request_id=summary.request_id,
            seen=len(summary.daily),
            written=True,
        )
        return summary

    # -- bookkeeping ----------------------------------------------------------------------

    def _step_pace(
        self, outcome: Outcome, *, items: int = 0, new: int = 0, since: float | None = None
    ) -> None:
        self.pace = next_pace(
            self.pace_settings, self.pace, outcome, items=items, new=new, since=since
        )

    def _finish(
        self,
        endpoint: str,
        now: datetime,
        started: float,
        report: TickReport,
        *,
        request_id: str | None = None,
        seen: int = 0,
        new: int = 0,
        error: BotError | None = None,
        pace: Pace | None = None,
        written: bool = False,
    ) -> None:
        """Log the poll (one line and, unless `written` already with the events, one
        poll-log row) and track 401/402 episodes."""
        elapsed = time.perf_counter() - started
        self._last_attempt[endpoint] = now
        source = error if isinstance(error, SourceError) else None
        if source is not None:
            request_id = source.request_id
        then = f"; next in {pace.delay:.2f}s ({pace.reason})" if pace is not None else ""
        if error is None:
            report.polled.append(endpoint)
            log.info(
                "poll %s ok request_id=%s items=%d new=%d %.0fms%s",
                endpoint,
                request_id,
                seen,
                new,
                elapsed * 1000,
                then,
            )
        else:
            report.errors.append(str(error))
            log.warning("poll %s failed: %s (%.0fms)%s", endpoint, error, elapsed * 1000, then)
        try:
            if not written:
                self.store.log_poll(
                    self._poll_record(
                        endpoint,
                        now,
                        elapsed,
                        request_id=request_id,
                        seen=seen,
                        new=new,
                        error=error,
                        pace=pace,
                    )
                )
            self._track_episodes(endpoint, now, error is None, source)
        except BotError as exc:  # a log we cannot write must not hide the poll itself
            log.error("could not record the poll of %s: %s", endpoint, exc)

    @staticmethod
    def _poll_record(
        endpoint: str,
        now: datetime,
        elapsed: float,
        *,
        request_id: str | None = None,
        seen: int = 0,
        new: int = 0,
        error: BotError | None = None,
        pace: Pace | None = None,
    ) -> PollRecord:
        """The poll-log row of a poll begun at `now` that took `elapsed` seconds."""
        source = error if isinstance(error, SourceError) else None
        return PollRecord(
            endpoint=endpoint,
            started_at=now,
            finished_at=now + timedelta(seconds=elapsed),
            status="ok" if error is None else "error",
            http_status=source.status if source else (200 if error is None else None),
            request_id=source.request_id if source else request_id,
            error_code=(source.code if source else "store_error") if error else None,
            error_message=str(error) if error else None,
            items_seen=seen,
            items_new=new,
            next_poll_seconds=round(pace.delay, 3) if pace is not None else None,
            pace=pace.reason if pace is not None else None,
        )

    def _track_episodes(
        self, endpoint: str, now: datetime, ok: bool, error: SourceError | None
    ) -> None:
        """Open or clear the ops episodes a poll reveals; each change is told once."""
        refused = error is not None and error.status in _BLOCKING_STATUSES
        drift = isinstance(error, SchemaDrift)
        # Only a good answer clears an episode; a timeout says nothing about the key.
        if ok or refused:
            text = (
                notices.key_refused(endpoint, error, self.ruleset.poll.probe_every)
                if refused
                else notices.key_accepted(endpoint)
            )
            if self._episode(refusal(endpoint), refused, text, now):
                (log.error if refused else log.warning)("%s", text)
        if ok or drift:
            text = (
                notices.schema_drift(endpoint, error) if drift else notices.schema_matches(endpoint)
            )
            if self._episode(f"schema drift {endpoint}", drift, text, now):
                (log.error if drift else log.warning)("%s", text)

    def _episode(self, kind: str, is_open: bool, text: str, now: datetime) -> bool:
        """`Store.episode` judged on this cycle's view of the open episodes (the write,
        when there is one, checks again); the view follows."""
        changed = self.store.episode(kind, is_open, text, now, known=self._episodes)
        if is_open:
            self._episodes.setdefault(kind, text)
        else:
            self._episodes.pop(kind, None)
        return changed


def refusal(endpoint: str) -> str:
    """The episode kind of an endpoint answering 401/402."""
    return f"refused {endpoint}"


def pace_settings(ruleset: RuleSet, relaxed: float) -> PaceSettings:
    """The pace's bounds from rules.yaml's poll section and the quiet interval."""
    poll = ruleset.poll
    return PaceSettings(
        relaxed=relaxed,
        floor=poll.events_floor,
        max_per_minute=poll.max_requests_per_minute,
        limit=poll.events_limit,
    )


def run(
    worker: Worker,
    *,
    every: float,
    stop: threading.Event,
    cycles: int | None = None,
    on_tick: Callable[[TickReport], None] | None = None,
) -> int:
    """Tick at the worker's pace until `stop` is set or `cycles` ticks have run.

    `every` is the quiet interval (events_every, or BOT_POLL_SECONDS): a quiet account is
    polled once per `every`; a busy one sooner, as `bot.pace` decides. Each cycle starts
    `worker.next_delay()` seconds after the previous cycle's events poll started (or the
    cycle itself, when it polled no events), at once when that is past.
    """
    worker.pace_every(every)
    done = 0

    def cycle() -> None:
        nonlocal done
        try:  # nothing may escape from here: one bad cycle must not end the loop
            report = worker.tick()
            if on_tick is not None:
                on_tick(report)
        except Exception:
            log.exception("cycle failed; the worker carries on")
        done += 1
        if cycles is not None and done >= cycles:
            stop.set()

    try:
        worker.prepare()
    except BotError as exc:  # the first cycle tries again
        log.error("could not rebuild detection state from the store: %s", exc)
    monotonic = worker.monotonic
    started = monotonic()
    cycle()  # the first cycle runs at once, not after one interval
    while not stop.is_set():
        polled = worker.polled_at
        base = polled if polled is not None and polled >= started else started
        wait = base + worker.next_delay() - monotonic()
        if wait > 0:
            stop.wait(wait)
            continue
        started = monotonic()
        cycle()
    return done
