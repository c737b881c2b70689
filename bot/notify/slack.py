"""The Slack notifier: one parent message per incident (an alert key, or several told
together: `bot.grouping` plans which, and when), everything later in its thread, the
parent edited as keys join and resolve; ops notices and budget/digest posts as top-level
messages.

Every Slack call a transition needs is a recorded step: marked before the call and
completed with its `ts` after. A step found marked but not completed (the process died,
or the connection dropped, after Slack may have posted) is first looked up by its message
metadata, and only posted if it is not there: nothing is posted twice. At a cold start
(`recover`) the same metadata, read from the channels' history in one scan, gives back
what an empty database lost: open incidents (every key a parent lists), budget posts with
their events, digests and open ops episodes.
"""

from __future__ import annotations

import http.client
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot import breakdown, chart, grouping, messages
from bot.errors import BotError, NotifyError
from bot.grouping import Scope, scope_of
from bot.messages import breakdown as breakdown_words
from bot.messages import incidents
from bot.models import (
    FIRING,
    OPEN,
    REMINDER,
    RESOLVED,
    AlertGroup,
    AlertState,
    BudgetEvent,
    ColdStart,
    GroupMember,
    Notice,
    Post,
    Rule,
    Thread,
    Transition,
    budget_post_key,
    format_time,
    parse_time,
)
from bot.notify.console import post_text
from bot.store import Store

log = logging.getLogger("bot.notify")  # the name operators filter on, as before the split

EVENT_TYPE = "usage_alert"
NOTICE_EVENT_TYPE = "usage_bot_notice"
POST_EVENT_TYPE = "usage_bot_post"
# Errors that no retry will cure: recorded on the row and reported once.
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "missing_scope",
        "msg_too_long",
        "invalid_blocks",
        "invalid_metadata_format",
        "no_text",
    }
)
CLOCK_SKEW = 3600.0  # how far Slack's ts may run behind our clock when we look a post up


def make_web_clients(token: str, base_url: str, timeout: int = 10) -> tuple[WebClient, WebClient]:
    """(reader, poster): slack_sdk clients with its retry handlers.

    The reader retries rate limits, server errors and dropped connections. The poster
    retries only 429s (Slack did nothing); after a 5xx or a dropped connection a message
    may have been posted after all, so the outbox looks it up before trying again.
    """
    reader = WebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,
        retry_handlers=[
            RateLimitErrorRetryHandler(max_retry_count=2),
            ServerErrorRetryHandler(max_retry_count=2),
            ConnectionErrorRetryHandler(max_retry_count=2),
        ],
    )
    poster = WebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)],
    )
    return reader, poster


class SlackNotifier:
    """Alerts as Slack threads, each call recorded so that none is made twice."""

    def __init__(
        self,
        *,
        reader: WebClient,
        poster: WebClient,
        store: Store,
        rules: Mapping[str, Rule],
        default_channel: str | None,
        mention: str = "<!here>",
        wall: Callable[[], float] = time.time,
        inhibit: bool = True,
    ) -> None:
        self.reader = reader
        self.poster = poster
        self.store = store
        self.rules = rules
        self.default_channel = default_channel
        self.mention = mention
        self.wall = wall
        self.inhibit = inhibit  # rules.yaml grouping.inhibit
        self.scopes = {name: scope_of(rule, default_channel) for name, rule in rules.items()}
        self._channel_ids: dict[str, str] = {}

    # -- delivery ---------------------------------------------------------------------

    def send(self, transition_id: int, transition: Transition) -> None:
        rule = self.rules.get(transition.rule)
        if rule is None:
            raise NotifyError(f"rule {transition.rule!r} is no longer configured", permanent=True)
        channel = rule.channel or self.default_channel
        if not channel:
            raise NotifyError("no channel: set SLACK_CHANNEL or the rule's channel", permanent=True)
        with _slack_errors():
            if transition.state == FIRING:
                self._fire(transition_id, transition, rule, channel)
            elif transition.state == REMINDER:
                self._remind(transition_id, transition, rule, channel)
            else:
                self._resolve(transition_id, transition, rule, channel)

    def _fire(self, tid: int, t: Transition, rule: Rule, channel: str) -> None:
        thread, group = self._incident(tid, t, rule, channel)
        events = self.store.events_by_request_id(t.request_ids)
        details = [*self._breakdown(t, rule), *messages.detail_blocks(t, events, rule.metric)]
        details = self._member_head(group, t, rule) + details
        open_thread = thread
        self._once(
            tid,
            "details",
            thread.channel,
            lambda: self._post(
                open_thread.channel,
                details,
                messages.details_fallback(t),
                _meta(t, "details"),
                thread_ts=open_thread.ts,
            ),
            lambda since: self._find(
                open_thread.channel, open_thread.ts, f"{t.idempotency_key}:details", since
            ),
        )
        self._chart(tid, t, rule, thread)

    def _breakdown(self, t: Transition, rule: Rule) -> list[dict[str, object]]:
        """What drives a failure-rate or spend alert, counted from the stored events of
        its window (`bot.breakdown`): the head of its details reply. An addition: a fault
        in it is logged and the examples go out without it."""
        try:
            found = breakdown.explain(t, rule, self.store.tallies)
            if found is None:
                return []
            text = breakdown_words.breakdown_text(found)
        except BotError:
            raise  # the store: the details reply is tried again later, whole
        except Exception:
            log.exception("could not break down %s %s", t.rule, list(t.group))
            return []
        return [messages.section(part) for part in _chunks(text, messages.MAX_SECTION)]

    def _chart(self, tid: int, t: Transition, rule: Rule, thread: Thread) -> None:
        """Upload the chart into the thread: best effort, and never twice (an upload leaves
        no metadata to look for, so an attempt whose outcome is unknown is not repeated)."""
        if not t.series or self.store.delivery(tid, "chart") is not None:
            return
        self.store.delivery_attempted(tid, "chart", thread.channel, self.wall())
        try:
            png = chart.render(t.series, t, rule)
            self.poster.files_upload_v2(
                channel=thread.channel,
                thread_ts=thread.ts,
                content=png,
                filename=f"{t.rule}-{t.at:%Y%m%dT%H%M}.png",
                title=messages.chart_title(t),
            )
        except (SlackClientError, OSError, http.client.HTTPException, ValueError) as exc:
            log.warning("could not upload the chart for %s: %s", t.rule, exc)
            return
        self.store.delivery_done(tid, "chart", thread.channel, None)

    def _remind(self, tid: int, t: Transition, rule: Rule, channel: str) -> None:
        """Still firing: a reply in the thread with the figures now and new examples."""
        thread = self.store.thread(t.rule, t.group)
        if thread is None or thread.status != "open":
            # Never told (it fired under a silence that has since ended): tell it now.
            self._fire(tid, t, rule, channel)
            return
        text = messages.reminder_text(t, rule.metric)
        if self._shared(thread):
            text = incidents.member_reminder_text(t, text)
        events = self.store.events_by_request_id(t.request_ids)
        blocks = [messages.section(text), *messages.detail_blocks(t, events, rule.metric)[1:]]
        self._once(
            tid,
            "reminder",
            thread.channel,
            lambda: self._post(
                thread.channel, blocks, text, _meta(t, "reminder"), thread_ts=thread.ts
            ),
            lambda since: self._find(
                thread.channel, thread.ts, f"{t.idempotency_key}:reminder", since
            ),
        )

    def _resolve(self, tid: int, t: Transition, rule: Rule, channel: str) -> None:
        thread = self.store.thread(t.rule, t.group)
        text = messages.resolve_text(t, rule.metric)
        group = self.store.route(tid)
        if group is not None and len(group.members) > 1:  # one of several keys: name it
            told = grouping.as_of(group, tid)
            done = sum(1 for m in told.members if m.state != FIRING)
            text = incidents.member_resolve_text(t, rule.metric, done, len(told.members))
        if thread is None:  # the firing was never told (e.g. it failed for good)
            self._once(
                tid,
                "resolve",
                channel,
                lambda: self._post(channel, [messages.section(text)], text, _meta(t, "resolve")),
                lambda since: self._find(channel, None, f"{t.idempotency_key}:resolve", since),
            )
            return
        self._once(
            tid,
            "resolve",
            thread.channel,
            lambda: self._post(
                thread.channel,
                [messages.section(text)],
                text,
                _meta(t, "resolve"),
                thread_ts=thread.ts,
            ),
            lambda since: self._find(
                thread.channel, thread.ts, f"{t.idempotency_key}:resolve", since
            ),
        )
        if group is not None and len(group.members) > 1 and group.ts is not None:
            self._edit_parent(grouping.as_of(group, tid))
            self.store.save_thread(Thread(**{**thread.__dict__, "status": "resolved"}), t.at)
            return
        # Editing the parent is idempotent: repeating it after a crash does no harm.
        firing = self._firing_of(thread, t)
        said = self.store.feedback(t.rule, t.group, t.since or firing.since or firing.at)
        note = messages.feedback.feedback_note(said)
        blocks = messages.parent_blocks(firing, rule, resolved=t, feedback=note)
        metadata = (
            _meta(firing, "parent", state="resolved")
            if group is None  # a thread told before incidents
            else _group_meta(grouping.as_of(group, tid), self.scopes)
        )
        self.reader.chat_update(
            channel=thread.channel,
            ts=thread.ts,
            text=messages.alert_fallback(t, rule.metric),
            blocks=blocks,
            metadata=metadata,
        )
        self.store.save_thread(Thread(**{**thread.__dict__, "status": "resolved"}), t.at)

    # -- incidents: several keys under one parent (bot.grouping decides) ----------------

    def plan(self, pending: Sequence[tuple[int, Transition]], now: datetime | None) -> list[int]:
        """Route the pending transitions to their incidents (stored before anything is
        told) and return those due at `now`; the rest wait (group_wait, group_interval)."""
        decided = grouping.plan(
            pending,
            self.store.groups_for([tid for tid, _ in pending]),
            self.scopes,
            inhibit=self.inhibit,
            now=now,
        )
        self.store.save_groups(decided.changed)
        return list(decided.due)

    def _incident(
        self, tid: int, t: Transition, rule: Rule, channel: str
    ) -> tuple[Thread, AlertGroup]:
        """The thread a firing is told in: its incident's parent, posted once (listing
        every key of its first batch), or edited to list a key that joins it later."""
        group = self.store.route(tid)
        if group is None:  # sent without a plan: routed now, nothing waits
            self.plan([(tid, t)], None)
            group = self.store.route(tid)
        member = group.member(t.rule, t.group) if group is not None else None
        if group is None or member is None:
            raise NotifyError(f"alert {t.rule} could not be routed to an incident", permanent=True)
        group = grouping.as_of(group, tid)
        if group.ts is None or group.thread_channel is None:
            group = self._post_parent(group, tid, t, rule, channel)
        elif member.how != OPEN and member.fired_tid == tid:
            self._edit_parent(group)
        assert group.thread_channel is not None and group.ts is not None
        thread = Thread(t.rule, t.group, group.thread_channel, group.ts, "open")
        self.store.save_thread(thread, t.at)
        return thread, group

    def _post_parent(
        self, group: AlertGroup, tid: int, t: Transition, rule: Rule, channel: str
    ) -> AlertGroup:
        """The incident's parent, once: its first batch of keys (or the one key, as a
        single alert's parent always looked); found by its metadata after a crash."""
        critical = incidents.severity(group, self.rules) == "critical"
        mention = self.mention if critical else None
        if len(group.members) == 1:
            spark = messages.sparkline([point[1] for point in t.series][-24:])
            blocks = messages.parent_blocks(t, rule, mention=mention, spark=spark)
            text = messages.alert_fallback(t, rule.metric)
        else:
            lead = grouping.lead(group, self.scopes)
            blocks = incidents.group_parent_blocks(group, self.rules, lead, mention=mention)
            text = incidents.group_fallback(group)
        metadata = _group_meta(group, self.scopes)
        opener = group.opened_by if group.opened_by is not None else tid
        channel_id, ts = self._once(
            opener,
            "parent",
            channel,
            lambda: self._post(channel, blocks, text, metadata),
            lambda since: self._find(channel, None, f"{group.id}:parent", since),
        )
        self.store.group_posted(group.id, channel_id, ts)
        return replace(group, thread_channel=channel_id, ts=ts)

    def _edit_parent(self, group: AlertGroup) -> None:
        """Show the incident as it stands: who joined, how many resolved, resolved when
        the last key is. Idempotent: repeating it after a crash does no harm."""
        if len(group.members) < 2 or group.ts is None or group.thread_channel is None:
            return
        lead = grouping.lead(group, self.scopes)
        critical = incidents.severity(group, self.rules) == "critical"
        acked = self.store.acknowledgement(lead.rule, lead.group)
        note = messages.commands.acknowledged_note(*acked) if acked else None
        blocks = incidents.group_parent_blocks(
            group, self.rules, lead, mention=self.mention if critical else None, note=note
        )
        self.reader.chat_update(
            channel=group.thread_channel,
            ts=group.ts,
            text=incidents.group_fallback(group),
            blocks=blocks,
            metadata=_group_meta(group, self.scopes),
        )

    def _member_head(self, group: AlertGroup, t: Transition, rule: Rule) -> list[dict[str, object]]:
        """In the thread of several keys, a key's details reply opens with its name and
        how it came in; a key whose rule is critical joining an incident that was not
        mentions on-call."""
        if len(group.members) < 2:
            return []
        member = group.member(t.rule, t.group)
        how = member.how if member is not None else OPEN
        earlier = group.members[: group.members.index(member)] if member is not None else ()
        mention = None
        if how != OPEN and rule.severity == "critical":
            if not any(self.rules.get(m.rule, rule).severity == "critical" for m in earlier):
                mention = self.mention
        head = grouping.lead(group, self.scopes)
        lead = incidents.key_text(head.group_by, head.group)
        text = incidents.member_head(
            t,
            rule.metric,
            t.window or rule.bucket,
            how,
            lead=f"{head.rule} for {lead}",
            mention=mention,
        )
        return [messages.section(text)]

    def _shared(self, thread: Thread | None) -> bool:
        """Whether a thread holds several keys (an incident's)."""
        if thread is None:
            return False
        return any(g.ts == thread.ts and len(g.members) > 1 for g in self.store.open_groups())

    def _firing_of(self, thread: Thread, resolved: Transition) -> Transition:
        """The firing transition this resolve closes (for the edited parent's figures)."""
        for candidate in self.store.transitions(200):
            if (candidate.rule, candidate.group, candidate.state) == (
                resolved.rule,
                resolved.group,
                FIRING,
            ) and candidate.at <= resolved.at:
                return candidate
        return resolved

    def _once(
        self,
        tid: int,
        step: str,
        channel: str,
        post: Callable[[], tuple[str, str]],
        find: Callable[[float], tuple[str, str] | None],
    ) -> tuple[str, str]:
        """Make one recorded Slack call at most once: (channel id, ts)."""
        done = self.store.delivery(tid, step)
        if done is not None and done.done and done.ts:
            return done.channel, done.ts
        if done is not None:  # tried before, outcome unknown: look before posting again
            found = find(done.attempted_at - CLOCK_SKEW)
            if found is not None:
                self.store.delivery_done(tid, step, found[0], found[1])
                return found
        self.store.delivery_attempted(tid, step, channel, self.wall())
        channel_id, ts = post()
        self.store.delivery_done(tid, step, channel_id, ts)
        return channel_id, ts

    def _post(
        self,
        channel: str,
        blocks: list[dict[str, object]],
        text: str,
        metadata: dict[str, Any],
        thread_ts: str | None = None,
    ) -> tuple[str, str]:
        response = self.poster.chat_postMessage(
            channel=channel,
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
            metadata=metadata,
            unfurl_links=False,
            unfurl_media=False,
        )
        channel_id = str(response["channel"])
        if channel.startswith("#"):
            self._channel_ids[channel] = channel_id
        return channel_id, str(response["ts"])

    def _find(
        self, channel: str, thread_ts: str | None, delivery: str, since: float
    ) -> tuple[str, str] | None:
        """A message of ours with this delivery key, posted since `since` (wall clock)."""
        channel_id = self._channel_id(channel)
        for message in self._messages(channel_id, thread_ts, since):
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if payload.get("delivery") == delivery:
                return channel_id, str(message["ts"])
        return None

    def _messages(
        self, channel_id: str, thread_ts: str | None, since: float
    ) -> Iterator[dict[str, Any]]:
        cursor = None
        while True:
            if thread_ts is None:
                page = self.reader.conversations_history(
                    channel=channel_id,
                    oldest=f"{max(since, 0.0):.6f}",
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
            else:
                page = self.reader.conversations_replies(
                    channel=channel_id,
                    ts=thread_ts,
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
            yield from page.get("messages") or []
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return

    def _channel_id(self, channel: str) -> str:
        if not channel.startswith("#"):
            return channel
        if channel not in self._channel_ids:
            cursor = None
            while True:
                page = self.reader.conversations_list(
                    types="public_channel,private_channel", limit=200, cursor=cursor
                )
                for entry in page.get("channels") or []:
                    self._channel_ids[f"#{entry['name']}"] = entry["id"]
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    break
        if channel not in self._channel_ids:
            raise NotifyError(f"channel {channel} not found", permanent=True)
        return self._channel_ids[channel]

    def send_notice(self, notice: Notice) -> None:
        """A plain message in the default channel, once per episode change."""
        channel = self._notice_channel()
        if channel is None:
            raise NotifyError("no channel for ops notices", permanent=True)
        text = messages.notices.notice_message(notice.state, notice.text)
        delivery = f"notice-{notice.kind}-{notice.state}-{format_time(notice.at)}"
        metadata = {
            "event_type": NOTICE_EVENT_TYPE,
            "event_payload": {"delivery": delivery, "kind": notice.kind, "state": notice.state},
        }
        with _slack_errors():
            # Notices share the step log with transitions, under negative ids.
            self._once(
                -notice.id,
                "notice",
                channel,
                lambda: self._post(channel, [messages.section(text)], text, metadata),
                lambda since: self._find(channel, None, delivery, since),
            )

    def _notice_channel(self) -> str | None:
        return self.default_channel or next(
            (r.channel for r in self.rules.values() if r.channel), None
        )

    def send_post(self, post: Post) -> None:
        """A budget event or digest: one top-level message, once (found again by its key
        in the metadata); a digest gets its chart in the thread, best effort."""
        channel = post.channel or self.default_channel
        if channel is None:
            raise NotifyError(
                f"no channel for {post.kind} posts: set SLACK_CHANNEL", permanent=True
            )
        text = post_text(post)
        found_by: dict[str, Any] = {"delivery": post.key, "kind": post.kind}
        if post.kind == "budget":
            # Every event it tells, whole (when queued so): `recover` takes them back.
            for name in ("events", "event"):  # "event": one, queued by an older version
                if name in post.payload:
                    found_by[name] = post.payload[name]
        metadata = {"event_type": POST_EVENT_TYPE, "event_payload": found_by}
        blocks = [messages.section(part) for part in _chunks(text, messages.MAX_SECTION)]
        with _slack_errors():
            channel_id, ts = self._once(
                -post.id,
                "post",
                channel,
                lambda: self._post(channel, blocks, text[:3000], metadata),
                lambda since: self._find(channel, None, post.key, since),
            )
        if post.kind == "digest" and self.store.delivery(-post.id, "chart") is None:
            self.store.delivery_attempted(-post.id, "chart", channel_id, self.wall())
            try:
                png = chart.daily_credits(
                    post.payload["chart"]["days"], post.payload["chart"]["credits"]
                )
                self.poster.files_upload_v2(
                    channel=channel_id,
                    thread_ts=ts,
                    content=png,
                    filename=f"usage-{post.payload['day']}.png",
                    title=messages.digest_chart_title(post.payload["day"]),
                )
            except (SlackClientError, OSError, http.client.HTTPException, ValueError) as exc:
                log.warning("could not upload the digest chart: %s", exc)
                return
            self.store.delivery_done(-post.id, "chart", channel_id, None)

    # -- cold start ---------------------------------------------------------------------

    def recover(
        self, store: Store, now: datetime, cold: ColdStart | None = None, days: int = 7
    ) -> int:
        """Take back from Slack what a fresh database lost; return how much was adopted.

        A dyno restart loses the SQLite file. Open alerts (when the store holds no alert
        state or thread): without them an alert still firing would get a second parent,
        and its resolution would never reach the first thread. With `cold` (the worker
        began on an empty database), also the budget events and digests told (recorded as
        delivered, budget events with their decision, so neither post nor enforcement
        hook is made again) and the ops episodes Slack last heard opened.

        One scan of each channel's history, from the oldest moment any of them needs (a
        week for alerts and notices; the current budget periods and the digest's day for
        posts), reads the metadata of all three. Nothing is written until every channel
        is read: a transient failure leaves the store as it was, for the next try. A
        channel the bot cannot read is skipped (what it would post there fails too).
        """
        wall = self.wall()
        alert_since = wall - days * 86400
        told_since = alert_since
        if cold is not None:
            told_since = min(alert_since, wall - (now - cold.since).total_seconds())
            told_since -= CLOCK_SKEW
        roles: dict[str, set[str]] = {}
        if not (store.alert_states() or store.threads()):
            for channel in {r.channel for r in self.rules.values() if r.channel}:
                roles.setdefault(channel, set()).add("alerts")
            if self.default_channel:
                roles.setdefault(self.default_channel, set()).add("alerts")
        if cold is not None:
            for configured in cold.post_channels:
                target = configured or self.default_channel
                if target:
                    roles.setdefault(target, set()).add("posts")
            notice_channel = self._notice_channel()
            if notice_channel:
                roles.setdefault(notice_channel, set()).add("notices")
        found = _Found(self.scopes)
        for channel_id, wanted in self._by_id(roles).items():
            oldest = alert_since if wanted == {"alerts"} else told_since
            try:
                with _slack_errors():
                    history = list(self._messages(channel_id, None, oldest))
            except NotifyError as exc:
                if not exc.permanent:
                    raise
                log.warning("cold start: cannot read channel %s, skipped: %s", channel_id, exc)
                continue
            found.read(channel_id, history, wanted, alert_since, now, self.rules)
        return found.adopt(store, now)

    def _by_id(self, roles: Mapping[str, set[str]]) -> dict[str, set[str]]:
        """The channels to read by ID (a name and an ID may be one channel), each with
        what to look for in it; a channel that does not resolve is skipped."""
        by_id: dict[str, set[str]] = {}
        for channel in sorted(roles):
            try:
                with _slack_errors():
                    channel_id = self._channel_id(channel)
            except NotifyError as exc:
                if not exc.permanent:
                    raise
                log.warning("cold start: cannot read channel %s, skipped: %s", channel, exc)
                continue
            by_id.setdefault(channel_id, set()).update(roles[channel])
        return by_id


class _Found:
    """What a cold start's scan found in Slack, written to the store once all is read."""

    def __init__(self, scopes: Mapping[str, Scope]) -> None:
        self.scopes = scopes
        self.groups: dict[str, AlertGroup] = {}  # incidents told firing, oldest first
        self.owner: dict[tuple[str, tuple[str, ...]], str] = {}  # key -> newest incident
        self.budget_events: list[tuple[str, tuple[BudgetEvent, ...], str, str]] = []
        self.posts: list[tuple[str, str, str, str]] = []
        self.episodes: dict[str, tuple[datetime, str] | None] = {}  # None: cleared last

    def read(
        self,
        channel_id: str,
        history: list[dict[str, Any]],
        wanted: set[str],
        alert_since: float,
        now: datetime,
        rules: Mapping[str, Rule],
    ) -> None:
        """One channel's messages, newest first (as conversations.history gives them)."""
        if "notices" in wanted:
            for message in history:  # newest first: the latest notice of a kind decides
                self._notice(message)
        for message in reversed(history):  # oldest first: the newest thread wins
            if "posts" in wanted:
                self._post(channel_id, message)
            if "alerts" in wanted and float(message["ts"]) > alert_since:
                self._alert(channel_id, message, now, rules)

    def _notice(self, message: Mapping[str, Any]) -> None:
        payload = _payload(message, NOTICE_EVENT_TYPE)
        if payload is None or str(payload.get("kind")) in self.episodes:
            return
        opened = payload.get("state") == "open"
        found = (_ts_time(message), _notice_text(message)) if opened else None
        self.episodes[str(payload.get("kind"))] = found

    def _post(self, channel_id: str, message: Mapping[str, Any]) -> None:
        payload = _payload(message, POST_EVENT_TYPE)
        if payload is None or not isinstance(payload.get("delivery"), str):
            return
        ts, delivery, kind = str(message["ts"]), payload["delivery"], str(payload.get("kind"))
        events = _budget_events(payload) if kind == "budget" else None
        if events:
            self.budget_events.append((delivery, events, channel_id, ts))
        else:  # a digest, or a budget post from before events were carried whole
            self.posts.append((delivery, kind, channel_id, ts))

    def _alert(
        self, channel_id: str, message: Mapping[str, Any], now: datetime, rules: Mapping[str, Rule]
    ) -> None:
        payload = _payload(message, EVENT_TYPE)
        if payload is None or payload.get("role") != "parent" or payload.get("state") != "firing":
            return
        group = _incident_of(payload, channel_id, str(message["ts"]), now, rules, self.scopes)
        if group is None or not group.firing:
            return
        self.groups[group.id] = group
        for member in group.firing:
            self.owner[member.key] = group.id  # oldest first: the newest thread wins

    def adopt(self, store: Store, now: datetime) -> int:
        adopted = 0
        for group in self.groups.values():
            # A key firing again in a newer incident is no longer this one's.
            members = tuple(
                m
                if m.state != FIRING or self.owner.get(m.key) == group.id
                else replace(m, state=RESOLVED, resolved_at=now)
                for m in group.members
            )
            group = replace(group, members=members)
            if not group.firing:
                continue
            assert group.thread_channel is not None and group.ts is not None
            threads = [
                Thread(m.rule, m.group, group.thread_channel, group.ts, "open")
                for m in group.firing
            ]
            states = [
                AlertState(m.rule, m.group, FIRING, 1, 0, m.since, abs(m.zscore), m.value)
                for m in group.firing
            ]
            store.adopt_group(group, threads, states)
            adopted += len(states)
            for m in group.firing:
                log.warning(
                    "adopted the open alert %s %s from Slack (ts %s)",
                    m.rule,
                    list(m.group),
                    group.ts,
                )
        events = store.adopt_budget_events(self.budget_events, now)
        posts = store.adopt_posts(self.posts, now)
        opened = [(kind, *found) for kind, found in self.episodes.items() if found is not None]
        episodes = store.adopt_episodes(opened)
        if events or posts or episodes:
            log.warning(
                "cold start: took back from Slack %d budget events, %d other posts "
                "(digests) and %d open episodes: none is told again",
                events,
                posts,
                episodes,
            )
        return adopted + events + posts + episodes


def _incident_of(
    payload: Mapping[str, Any],
    channel_id: str,
    ts: str,
    now: datetime,
    rules: Mapping[str, Rule],
    scopes: Mapping[str, Scope],
) -> AlertGroup | None:
    """The incident a parent's metadata describes: its members as they were last told,
    or (a parent posted before incidents, or cut short) its one key. Keys of rules no
    longer configured are left out."""
    listed = [m for m in payload.get("members") or () if isinstance(m, dict)]
    try:
        found = (
            [_member_of(data, rules) for data in listed]
            if listed
            else [_single(payload, now, rules)]
        )
    except (KeyError, TypeError, ValueError):
        log.warning("cold start: unreadable alert metadata on message %s, skipped", ts)
        return None
    kept = tuple(m for m in found if m is not None and m.rule in rules)
    if not kept:
        return None
    first = kept[0]
    scope = scopes[first.rule]
    delivery = str(payload.get("delivery") or "")
    partition = payload.get("partition")
    if not isinstance(partition, str):
        partition = grouping.partition(scope, first.group_by, first.group)
    opened = min(m.at for m in kept)
    return AlertGroup(
        id=str(payload.get("incident") or delivery.removesuffix(":parent")),
        partition=partition,
        channel=scope.channel,
        status=FIRING,
        opened_at=opened,
        updated_at=max(m.resolved_at or m.at for m in kept),
        members=kept,
        thread_channel=channel_id,
        ts=ts,
    )


def _single(
    payload: Mapping[str, Any], now: datetime, rules: Mapping[str, Rule]
) -> GroupMember | None:
    """The one key of a parent whose metadata lists no members (posted before incidents);
    its figures are not in it (the resolve's edit shows the resolve's)."""
    rule = rules.get(str(payload["rule"]))
    if rule is None:
        return None
    since = parse_time(str(payload["since"])) if payload.get("since") else now
    return GroupMember(
        rule=rule.name,
        group=tuple(str(v) for v in payload.get("group") or ()),
        group_by=rule.group_by,
        metric=rule.metric,
        state=FIRING,
        how=OPEN,
        since=since,
        at=since,
        value=0.0,
        baseline=0.0,
        zscore=float(payload.get("zscore") or 0.0),
    )


def _member_of(data: Mapping[str, Any], rules: Mapping[str, Rule]) -> GroupMember | None:
    rule = rules.get(str(data["rule"]))
    if rule is None:
        return None
    resolved = data.get("resolved_at")
    return GroupMember(
        rule=rule.name,
        group=tuple(str(v) for v in data["group"]),
        group_by=tuple(str(f) for f in data.get("group_by") or rule.group_by),
        metric=rule.metric,
        state=FIRING if data.get("state") == FIRING else RESOLVED,
        how=str(data.get("how") or OPEN),
        since=parse_time(str(data["since"])),
        at=parse_time(str(data["at"])),
        value=float(data.get("value") or 0.0),
        baseline=float(data.get("baseline") or 0.0),
        zscore=float(data.get("zscore") or 0.0),
        resolved_at=parse_time(str(resolved)) if resolved else None,
    )


def _chunks(text: str, size: int) -> list[str]:
    """Split at line ends into pieces Slack accepts in one section each."""
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        if current and len(current) + len(line) + 1 > size:
            pieces.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line[:size]
    return [*pieces, current] if current else pieces


def _meta(t: Transition, role: str, state: str | None = None) -> dict[str, Any]:
    """Slack message metadata: finds a message again from Slack alone."""
    return {
        "event_type": EVENT_TYPE,
        "event_payload": {
            "delivery": f"{t.idempotency_key}:{role}",
            "role": role,
            "rule": t.rule,
            "group": list(t.group),
            "key": t.key,
            "state": state or t.state,
            "since": format_time(t.since or t.at),
            "at": format_time(t.at),
            "zscore": round(t.zscore, 2),
        },
    }


MAX_META_MEMBERS = 50  # keys an incident's metadata carries (Slack caps metadata's size)


def _group_meta(group: AlertGroup, scopes: Mapping[str, Scope]) -> dict[str, Any]:
    """An incident parent's metadata: the fields of a single alert's parent (for its
    lead key), and the incident with every member, so a fresh database can rebuild it."""
    lead = grouping.lead(group, scopes)
    names = [f.rsplit(".", 1)[-1] for f in lead.group_by]
    return {
        "event_type": EVENT_TYPE,
        "event_payload": {
            "delivery": f"{group.id}:parent",
            "role": "parent",
            "rule": lead.rule,
            "group": list(lead.group),
            "key": dict(zip(names, lead.group, strict=False)),
            "state": group.status,
            "since": format_time(min(m.since for m in group.members)),
            "at": format_time(lead.at),
            "zscore": round(lead.zscore, 2),
            "incident": group.id,
            "partition": group.partition,
            "members": [_member_meta(m) for m in group.members[:MAX_META_MEMBERS]],
        },
    }


def _member_meta(m: GroupMember) -> dict[str, Any]:
    data: dict[str, Any] = {
        "rule": m.rule,
        "group": list(m.group),
        "group_by": list(m.group_by),
        "state": m.state,
        "how": m.how,
        "since": format_time(m.since),
        "at": format_time(m.at),
        "value": round(m.value, 6),
        "baseline": round(m.baseline, 6),
        "zscore": round(m.zscore, 2),
    }
    if m.resolved_at is not None:
        data["resolved_at"] = format_time(m.resolved_at)
    return data


def _payload(message: Mapping[str, Any], event_type: str) -> dict[str, Any] | None:
    """The metadata payload of one of our messages of `event_type` (None otherwise)."""
    metadata = message.get("metadata") or {}
    if metadata.get("event_type") != event_type:
        return None
    payload = metadata.get("event_payload")
    return payload if isinstance(payload, dict) else None


def _budget_events(payload: Mapping[str, Any]) -> tuple[BudgetEvent, ...] | None:
    """The budget events a post's metadata carries ("events"; "event" from a version that
    told one a post), when it carries them whole and they are those its key names (posts
    from before that carry only their key)."""
    data = payload.get("events")
    if data is None and "event" in payload:
        data = [payload["event"]]
    if not isinstance(data, list) or not data:
        return None
    try:
        events = tuple(BudgetEvent.from_json(item) for item in data)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return events if budget_post_key(events) == payload.get("delivery") else None


def _ts_time(message: Mapping[str, Any]) -> datetime:
    return datetime.fromtimestamp(float(message["ts"]), UTC)


def _notice_text(message: Mapping[str, Any]) -> str:
    """A notice's own words, without the icon and name `notice_message` put before them."""
    text = str(message.get("text") or "")
    return text.split("usage-bot: ", 1)[-1]


@contextmanager
def _slack_errors() -> Iterator[None]:
    """Map slack_sdk and socket errors to NotifyError once, here (permanent or not)."""
    try:
        yield
    except SlackApiError as exc:
        code = str(exc.response.get("error", "unknown_error"))
        status = exc.response.status_code
        permanent = code in PERMANENT_ERRORS
        raise NotifyError(f"Slack said {code} (HTTP {status})", permanent=permanent) from exc
    except (SlackClientError, OSError, http.client.HTTPException) as exc:
        raise NotifyError(f"Slack unreachable ({type(exc).__name__})") from exc
