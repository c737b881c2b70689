"""The console notifier: alerts, ops notices and posts printed as plain text; the
default when SLACK_BOT_TOKEN is unset."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TextIO

from bot import digest, messages
from bot.messages import budget as budget_words
from bot.models import ColdStart, Notice, Post, Rule, Transition
from bot.store import Store


class ConsoleNotifier:
    """Prints alerts to stdout as plain text."""

    def __init__(self, rules: Mapping[str, Rule], out: TextIO | None = None) -> None:
        self.rules = rules
        self.out = out or sys.stdout

    def send(self, transition_id: int, transition: Transition) -> None:
        rule = self.rules.get(transition.rule)
        metric = rule.metric if rule else "spend"
        bucket = rule.bucket if rule else 3600.0
        print(messages.alert_text(transition, metric, bucket), file=self.out, flush=True)

    def plan(self, pending: Sequence[tuple[int, Transition]], now: datetime | None) -> list[int]:
        return [tid for tid, _ in pending]  # no threads here: nothing to wait for

    def recover(self, store: Store, now: datetime, cold: ColdStart | None = None) -> int:
        return 0  # nothing to read back from stdout

    def send_notice(self, notice: Notice) -> None:
        print(messages.notices.notice_line(notice.state, notice.text), file=self.out, flush=True)

    def send_post(self, post: Post) -> None:
        print(messages.notices.post_line(post.kind, post_text(post)), file=self.out, flush=True)


def post_text(post: Post) -> str:
    if post.kind == "budget":
        # "event": one, queued by a version that told each event in a post of its own
        events = post.payload.get("events") or [post.payload["event"]]
        return budget_words.event_text(events, post.payload["status"])
    return digest.digest_text(post.payload)
