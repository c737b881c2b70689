"""Notifiers: the last stage (... -> alerts -> notify). They deliver what the store's
outbox holds and mark it delivered; a failure leaves the row for the next cycle.

The console notifier is the default when SLACK_BOT_TOKEN is unset.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Protocol, TextIO

from bot import messages
from bot.alerts import Transition
from bot.errors import BotError
from bot.models import Rule
from bot.store import Store

log = logging.getLogger(__name__)


class Notifier(Protocol):
    def send(self, transition: Transition) -> None:
        """Deliver one transition or raise NotifyError."""


class ConsoleNotifier:
    """Prints alerts to stdout as plain text."""

    def __init__(self, rules: Mapping[str, Rule], out: TextIO | None = None) -> None:
        self.rules = rules
        self.out = out or sys.stdout

    def send(self, transition: Transition) -> None:
        rule = self.rules.get(transition.rule)
        metric = rule.metric if rule else "spend"
        bucket = rule.bucket if rule else 3600.0
        print(messages.alert_text(transition, metric, bucket), file=self.out, flush=True)


def deliver(store: Store, notifier: Notifier, now: datetime) -> int:
    """Send every undelivered transition in order; stop at the first failure."""
    sent = 0
    for transition_id, transition in store.undelivered():
        try:
            notifier.send(transition)
        except BotError as exc:
            log.warning(
                "could not deliver %s (%s): %s; will retry", transition.rule, transition.state, exc
            )
            break
        store.mark_delivered(transition_id, now)
        sent += 1
    return sent
