"""Notifiers: the last stage (... -> alerts -> notify). They deliver what the store's
outbox holds, oldest first, and mark it delivered; a transient failure leaves the row for
a later cycle (with backoff), a permanent one is recorded and reported once. Transitions
that a silence or an acknowledgement holds back are marked delivered without being told
(the decision is `alerts.hold_back`; this module gathers its facts from the store).

Slack (`notify.slack`): one parent message per incident (an alert key, or several told
together: `bot.grouping`), everything later in its thread, each call recorded so that
none is made twice; at a cold start it takes back
from Slack's message metadata what a fresh database lost (`recover`). The console
notifier (`notify.console`) is the default when SLACK_BOT_TOKEN is unset.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from bot.alerts import HoldReason, hold_back
from bot.backoff import Backoff
from bot.errors import BotError, NotifyError
from bot.messages import notices
from bot.models import REMINDER, RESOLVED, ColdStart, Notice, Post, Transition, format_time
from bot.notify.console import ConsoleNotifier, post_text
from bot.notify.slack import (
    CLOCK_SKEW,
    EVENT_TYPE,
    NOTICE_EVENT_TYPE,
    PERMANENT_ERRORS,
    POST_EVENT_TYPE,
    SlackNotifier,
    make_web_clients,
)
from bot.store import Store

__all__ = [
    "BACKOFF",
    "CLOCK_SKEW",
    "EVENT_TYPE",
    "NOTICE_EVENT_TYPE",
    "PERMANENT_ERRORS",
    "POST_EVENT_TYPE",
    "ConsoleNotifier",
    "Notifier",
    "SlackNotifier",
    "deliver",
    "make_web_clients",
    "post_text",
]

log = logging.getLogger(__name__)

BACKOFF = Backoff(base=30.0, cap=900.0)  # between delivery attempts of one row: 30 s to 15 min


class Notifier(Protocol):
    def send(self, transition_id: int, transition: Transition) -> None:
        """Deliver one transition or raise NotifyError."""

    def plan(self, pending: Sequence[tuple[int, Transition]], now: datetime | None) -> list[int]:
        """Which of the pending transitions (oldest first, none held back) to send at
        `now`; the others wait (Slack: for their incident, see `bot.grouping`). A
        notifier without this method sends them all."""

    def recover(self, store: Store, now: datetime, cold: ColdStart | None = None) -> int:
        """On a fresh database, adopt alerts that are still open where they were told;
        with `cold` (the worker began on an empty database) also the budget events,
        digests and open ops episodes already told, so none is told again."""

    def send_notice(self, notice: Notice) -> None:
        """Tell ops about an episode opening or clearing (bad key, gap, schema drift)."""

    def send_post(self, post: Post) -> None:
        """Deliver a budget event or a daily digest or raise NotifyError."""


def deliver(
    store: Store, notifier: Notifier, now: datetime, wall: Callable[[], float] = time.time
) -> int:
    """Send undelivered transitions in order; stop at the first transient failure.

    Those a silence or an acknowledgement holds back are marked delivered first; the
    notifier's plan then says which of the others are due (an incident's first parent
    waits for its group_wait), and those are sent, oldest first."""
    sent = 0
    pending = []
    for transition_id, transition in store.undelivered(wall()):
        if _held_back(store, transition, now) is not None:
            store.mark_delivered(transition_id, now)  # decided, and deliberately not told
            continue
        pending.append((transition_id, transition))
    due = _due(notifier, pending, now)
    for transition_id, transition in pending:
        if transition_id not in due:
            continue  # waits for its incident; so does everything after it of its key
        try:
            try:
                notifier.send(transition_id, transition)
            except BotError:
                raise
            except Exception as exc:
                # A bug in rendering must not block every later alert behind this one.
                log.exception("alert %s could not be rendered", transition.rule)
                raise NotifyError(f"internal error: {type(exc).__name__}", permanent=True) from exc
        except NotifyError as exc:
            attempts = store.attempts(transition_id) + 1
            retry_at = wall() + BACKOFF.delay(attempts)
            store.delivery_failed(
                transition_id, str(exc), permanent=exc.permanent, retry_at=retry_at, now=now
            )
            if exc.permanent:
                log.error(
                    "alert %s (%s) cannot be delivered, giving up: %s",
                    transition.rule,
                    transition.state,
                    exc,
                )
                # Told once to the default channel (as an ops notice), where that works.
                store.episode(
                    f"undeliverable {transition.rule}",
                    True,
                    notices.undeliverable(transition.rule, exc),
                    now,
                )
                continue  # later alerts still go out
            log.warning(
                "alert %s (%s) not delivered (attempt %d), retrying later: %s",
                transition.rule,
                transition.state,
                attempts,
                exc,
            )
            break  # keep the order: nothing overtakes a message that is still due
        store.mark_delivered(transition_id, now)
        store.episode(
            f"undeliverable {transition.rule}",
            False,
            notices.deliverable(transition.rule),
            now,
        )
        sent += 1
    for notice in store.undelivered_notices():
        try:
            notifier.send_notice(notice)
        except NotifyError as exc:
            if not exc.permanent:
                log.warning("ops notice %s not delivered, retrying later: %s", notice.kind, exc)
                break
            log.error("ops notice %s cannot be delivered: %s", notice.kind, exc)
            store.notice_done(notice.id, now, failed=True)
            continue
        store.notice_done(notice.id, now)
        sent += 1
    for post in store.undelivered_posts(wall()):
        try:
            notifier.send_post(post)
        except NotifyError as exc:
            # Posts are independent (each its own key): one backing off holds up no other.
            retry_at = wall() + BACKOFF.delay(post.attempts + 1)
            store.post_failed(
                post.id, str(exc), permanent=exc.permanent, retry_at=retry_at, now=now
            )
            (log.error if exc.permanent else log.warning)(
                "%s %s not delivered: %s", post.kind, post.key, exc
            )
            continue
        store.post_done(post.id, now)
        sent += 1
    return sent


def _due(notifier: Notifier, pending: Sequence[tuple[int, Transition]], now: datetime) -> set[int]:
    """The notifier's plan; without one (or when planning fails), everything is due and
    each transition is sent on its own."""
    plan = getattr(notifier, "plan", None)
    if plan is None or not pending:
        return {tid for tid, _ in pending}
    try:
        return set(plan(pending, now))
    except BotError:
        raise
    except Exception:
        # A bug in grouping must not hold back every alert: each is sent (and routed) alone.
        log.exception("could not plan the delivery of %d alerts", len(pending))
        return {tid for tid, _ in pending}


def _held_back(store: Store, t: Transition, now: datetime) -> HoldReason | None:
    """Gather the facts `alerts.hold_back` decides on (reading only those that can matter
    for this transition's state) and log a hold."""
    silence = store.silenced(t.rule, t.group, now)
    reason = hold_back(
        t,
        silenced_until=silence.until if silence is not None else None,
        acknowledged=t.state == REMINDER and store.acknowledgement(t.rule, t.group) is not None,
        has_thread=t.state == RESOLVED and store.thread(t.rule, t.group) is not None,
        now=now,
    )
    if reason == HoldReason.SILENCED and silence is not None:
        log.info(
            "alert %s %s (%s) silenced until %s: %s",
            t.rule,
            list(t.group),
            t.state,
            format_time(silence.until),
            silence.reason,
        )
    elif reason is not None:
        log.info("alert %s %s (%s) held back: %s", t.rule, list(t.group), t.state, reason)
    return reason
