"""The `/usage` slash command, transport-free: text in, a `Reply` out.

Sits between the Slack transports (`server.py` over HTTP, `socket_mode.py`) and the
store: it parses what the user typed, reads the store and words the answer with
`messages`. It never raises on user input; a bad word or number gets a short correction.
The `*_text` functions are the plain-text answers, shared with `usage-bot query`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot import breakdown, messages
from bot.api_schema import EVENTS_PATH
from bot.budget import as_json
from bot.budget_book import BudgetBook
from bot.messages import breakdown as breakdown_words
from bot.messages import budget as budget_words
from bot.messages import commands as wording
from bot.messages import feedback as feedback_words
from bot.messages.commands import (
    DAYS,
    DEFAULT_DAYS,
    DEFAULT_EVENTS,
    MODELS_LOOKBACK,
    PUBLIC,
    SEGMENT_DAYS,
    SLACK_EVENTS,
    STATS,
)
from bot.models import (
    EXPECTED,
    FIRING,
    NOISE,
    REMINDER,
    TOTAL,
    AlertState,
    Budget,
    BudgetState,
    DailyUsage,
    Rule,
    Thread,
    Transition,
    format_time,
    parse_time,
)
from bot.rules import parse_duration
from bot.store import Store

MAX_SILENCE = 7 * 86400.0  # a silence longer than a week is a disabled rule: edit rules.yaml


@dataclass(frozen=True)
class Reply:
    """What to answer: ephemeral (only the caller sees it) unless `public`."""

    text: str
    public: bool = False
    blocks: tuple[dict[str, object], ...] | None = None
    correction: bool = False  # the input was wrong; the text says how to put it right

    def plain(self) -> str:
        """The text for a terminal: without Slack's code fences."""
        return "\n".join(line for line in self.text.splitlines() if line.strip() != "```")


# -- the plain-text answers (also what `usage-bot query` prints) -----------------------


def summary_text(store: Store, days: int, now: datetime) -> str:
    """Totals and the per-model table for the `days` ending on the last summary poll."""
    last = store.last_summary_poll()
    end = (last or now).date()
    rows = store.daily_usage(end - timedelta(days=days - 1), end)
    text = messages.summary_report(rows, days, last, now)
    footer = messages.coverage_footer(store.coverage_hours(now))
    return f"{text}\n{footer}" if footer else text


def coverage_text(store: Store, now: datetime, hours: int = 24) -> str:
    """Coverage per UTC hour: finished jobs stored as events vs the summary's count."""
    last = store.last_summary_poll()
    return messages.coverage_report(store.coverage_hours(now, hours), messages.freshness(last, now))


def events_text(store: Store, limit: int, now: datetime) -> str:
    last = store.last_success(EVENTS_PATH)
    return messages.events_report(store.recent_events(limit), last, now)


def alerts_text(store: Store, now: datetime) -> str:
    return messages.alerts_report(_firing(store), store.transitions(10), now)


def alert_stats_text(store: Store, days: int, now: datetime) -> str:
    """Per rule, the alert episodes that began in the last `days`: how many, how many
    were acknowledged, marked expected, marked noise, the median time to acknowledge."""
    start = now - timedelta(days=days)
    return feedback_words.stats_report(store.alert_stats(start, now), days, start, now)


def model_text(store: Store, model: str, days: int, now: datetime) -> str:
    """One model's daily trend: jobs, failed, failure rate, credits, with sparklines."""
    last = store.last_summary_poll()
    end = (last or now).date()
    start = end - timedelta(days=days - 1)
    rows = {r.date: r for r in store.daily_usage(start, end, model=model)}
    # The API lists only the models active on a day, so a day the summary covers
    # (it has an account row) without a row for this model had no jobs for it.
    covered = sorted({r.date for r in store.daily_usage(start, end, model=TOTAL)} | set(rows))
    fresh = messages.freshness(last, now)
    when = (
        f"{covered[0]} .. {covered[-1]} ({days} days, UTC; {fresh})"
        if covered
        else f"last {days} days (UTC; {fresh})"
    )
    head = f"Model {model}, {when}"
    if not rows:
        body = "no daily figures for this model in these days."
    else:
        daily = [rows.get(d) or DailyUsage(d, model, 0, 0, 0, 0.0) for d in covered]
        body = "\n".join(
            [
                messages.table(
                    ["date", "jobs", "failed", "fail rate", "credits"],
                    [*(_model_row(str(r.date), [r]) for r in daily), _model_row("total", daily)],
                ),
                f"credits per day:   {messages.sparkline([r.credits_used for r in daily])}",
                f"fail rate per day: {messages.sparkline([_fail_rate(r) for r in daily])}",
            ]
        )
    return f"{head}\n{body}\n{messages.alerts_report(model_alerts(store, model), [], now)}"


def drivers_text(store: Store, model: str, now: datetime, rules: Sequence[Rule] = ()) -> str:
    """What drives the model's open failure-rate and spend alerts, each in the window it
    was last told with (its firing or latest reminder); with none open (or no rules to
    know them by), its last 24 hours against the 7 days before."""
    by_name = {rule.name: rule for rule in rules}
    texts = []
    for state in sorted(model_alerts(store, model), key=lambda s: (s.rule, s.group)):
        rule, told = by_name.get(state.rule), _last_told(store, state)
        if rule is None or told is None:
            continue
        found = breakdown.explain(told, rule, store.tallies)
        if found is not None:
            group = ", ".join(v or "(none)" for v in state.group) or "account"
            title = f"What drives {state.rule} [{group}]"
            texts.append(breakdown_words.breakdown_text(found, markup=False, title=title))
    if not texts:
        day = breakdown.last_day({"model": model}, now, store.tallies, store.oldest_event_time())
        texts.append(breakdown_words.last_day_text(day))
    return "\n".join(texts)


def _last_told(store: Store, state: AlertState) -> Transition | None:
    """The newest firing or reminder transition of an open alert (None when pruned)."""
    for t in store.transitions(500):  # newest first
        if (t.rule, t.group) == (state.rule, state.group) and t.state in (FIRING, REMINDER):
            return t
    return None


def model_alerts(store: Store, model: str) -> list[AlertState]:
    """The firing alerts on this model (grouped by model, alone or with other fields)."""
    fields = _group_fields(store)
    return [s for s in _firing(store) if _is_about(s, model, fields)]


def models_seen(store: Store, now: datetime) -> list[str]:
    """Models in the stored daily summary of the last MODELS_LOOKBACK days, and in the
    newest events (a model can be in events before the next summary poll)."""
    end = (store.last_summary_poll() or now).date()
    rows = store.daily_usage(end - timedelta(days=MODELS_LOOKBACK - 1), end)
    names = {r.model for r in rows} | {e.model for e in store.recent_events(200) if e.model}
    names.discard(TOTAL)
    return sorted(names)


def thread_links(store: Store, alerts: Sequence[AlertState]) -> list[str]:
    """'rule [group]: <permalink>' for each alert that has a Slack thread."""
    lines = []
    for state in sorted(alerts, key=lambda s: (s.rule, s.group)):
        thread = store.thread(state.rule, state.group)
        if thread is not None:
            group = ", ".join(v or "(none)" for v in state.group) or "account"
            lines.append(f"{state.rule} [{group}]: {permalink(thread)}")
    return lines


def permalink(thread: Thread) -> str:
    """Slack's archive form of a message link: the ts without its dot."""
    return f"https://slack.com/archives/{thread.channel}/p{thread.ts.replace('.', '')}"


# -- the router ---------------------------------------------------------------------


def budget_json(store: Store, budgets: Sequence[Budget], now: datetime) -> dict[str, Any]:
    """Every budget's state, for automation (`query budget --json`, `GET /budget`): as
    the worker judged it last (each state has its `at`), or counted from the store when
    the worker has not judged that budget yet."""
    stored = store.budget_states()
    if all(_judged_as_configured(stored.get(b.name), b) for b in budgets):
        found = [stored[b.name].to_json() for b in budgets]
    else:
        found = [as_json(s) for s in BudgetBook.load(store, budgets, now).states(store, now)]
    last = store.last_success(EVENTS_PATH)
    return {
        "at": format_time(now),
        "last_poll": format_time(last) if last else None,
        "budgets": found,
    }


def _judged_as_configured(state: BudgetState | None, budget: Budget) -> bool:
    """Was the stored state judged under this budget's current definition?"""
    if state is None:
        return False
    return (
        state.limit_credits == round(budget.limit, 4)
        and dict(state.scope) == dict(budget.scope)
        and (state.period_kind, state.timezone) == (budget.period, budget.timezone)
    )


def budget_text(store: Store, budgets: Sequence[Budget], now: datetime) -> str:
    state = budget_json(store, budgets, now)
    last = parse_time(state["last_poll"]) if state["last_poll"] else None
    return budget_words.budgets_report(state["budgets"], messages.freshness(last, now))


def handle_command(
    text: str,
    *,
    store: Store,
    now: datetime,
    user: str | None = None,
    command: str = "/usage",
    budgets: Sequence[Budget] = (),
    rules: Sequence[Rule] = (),
) -> Reply:
    """Answer what the user typed after the command. Never raises on user input.

    `user` is the Slack user id, for callers that log it; the answer does not depend on it.
    `rules` tell `model` which open alerts it can break down (`drivers_text`).
    """
    words = text.split()  # any Unicode whitespace, runs of it, leading and trailing
    public = bool(words) and words[-1].lower() == PUBLIC
    if public:
        words = words[:-1]
    sub, args = (words[0].lower(), words[1:]) if words else ("help", [])

    if sub == "help":
        return Reply(wording.help_text(command), public)
    if sub == "summary":
        days = _number(args, "Days", DAYS, DEFAULT_DAYS)
        if isinstance(days, Reply):
            return days
        if len(args) > 1:
            return _fix(wording.extra_words_text(sub, "summary [days]", command))
        return Reply(_code(summary_text(store, days, now)), public)
    if sub == "events":
        limit = _number(args, "The number of events", SLACK_EVENTS, DEFAULT_EVENTS)
        if isinstance(limit, Reply):
            return limit
        if len(args) > 1:
            return _fix(wording.extra_words_text(sub, "events [limit]", command))
        return Reply(_code(events_text(store, limit, now)), public)
    if sub == "model":
        return _model(args, store, now, public, command, rules)
    if sub == "segment":
        return _segment(args, store, now, public, command)
    if sub == "alerts":
        if args and args[0].lower() == STATS:
            days = _number(args[1:], "Days", DAYS, DEFAULT_DAYS)
            if isinstance(days, Reply):
                return days
            if len(args) > 2:
                return _fix(wording.extra_words_text(sub, "alerts stats [days]", command))
            return Reply(_code(alert_stats_text(store, days, now)), public)
        if args:
            return _fix(wording.extra_words_text(sub, "alerts [stats [days]]", command))
        return Reply(_alerts(store, now), public)
    if sub == "budget":
        if args:
            return _fix(wording.extra_words_text(sub, "budget", command))
        return Reply(_code(budget_text(store, budgets, now)), public)
    if sub == "silence":
        return _silence(args, store, now, user, public, command)
    if sub == "unsilence":
        if len(args) != 1:
            return _fix(wording.unsilence_usage_text(command))
        rule, group = _key(args[0])
        ended = store.unsilence(rule, group)
        if not ended:
            return _fix(wording.no_silence_text(args[0], command))
        return Reply(wording.unsilenced_text(args[0]), public)
    return _fix(wording.unknown_word_text(words[0], command))


@dataclass(frozen=True)
class Action:
    """What a button click did: a line for the clicker, and the parent to edit."""

    text: str
    channel: str | None = None
    ts: str | None = None
    blocks: list[dict[str, object]] | None = None


SILENCE_FOR = {messages.SILENCE_1H: 3600, messages.SILENCE_24H: 86400}
VERDICT_OF = {messages.MARK_EXPECTED: EXPECTED, messages.MARK_NOISE: NOISE}


def handle_action(payload: Mapping[str, Any], *, store: Store, now: datetime) -> Action:
    """A click on a parent's Acknowledge, Silence, Expected or Noise button (Slack
    `block_actions`). Expected and Noise are feedback on the episode: the last click
    wins, whoever made it, and the parent shows who gave it.

    Never raises on odd payloads: anything it cannot read gets a short answer.
    """
    try:
        action = payload["actions"][0]
        target = json.loads(action["value"])
        rule, group = str(target["rule"]), tuple(str(v) for v in target["group"])
        user = str(payload["user"]["id"])
        message = payload.get("message") or {}
        channel = (payload.get("channel") or {}).get("id") or payload["container"]["channel_id"]
        ts = message.get("ts") or payload["container"]["message_ts"]
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, RecursionError):
        # RecursionError: a value of "[[[[..." thousands deep (found by tests/test_fuzz.py)
        return Action(wording.BAD_CLICK_TEXT)
    action_id = action.get("action_id")
    if not isinstance(action_id, str):  # a list is unhashable: `in SILENCE_FOR` would raise
        return Action(wording.IDLE_BUTTON_TEXT)
    answer, kind = None, messages.ACK_NOTE
    if action_id == messages.ACK:
        store.acknowledge(rule, group, user, now)
        store.record_ack(rule, group, _episode(target, store, rule, group, now), user, now)
        note = wording.acknowledged_note(user, now)
    elif action_id in SILENCE_FOR:
        until = now + timedelta(seconds=SILENCE_FOR[action_id])
        for key in store.thread_keys(rule, group):  # an incident's: every key told in it
            store.silence(*key, until, wording.BUTTON_SILENCE_REASON, user, now)
        note = wording.silenced_note(user, until)
    elif action_id in VERDICT_OF:
        verdict, since = VERDICT_OF[action_id], _episode(target, store, rule, group, now)
        before = store.record_verdict(rule, group, since, verdict, user, now)
        note, kind = feedback_words.marked_note(verdict, user, now), messages.FEEDBACK_NOTE
        if before is not None and before.verdict not in (None, verdict) and before.verdict_by:
            answer = feedback_words.overruled_text(note, before.verdict, before.verdict_by)
    else:
        return Action(wording.IDLE_BUTTON_TEXT)
    blocks = message.get("blocks")
    edited = messages.with_note(blocks, note, kind) if isinstance(blocks, list) else None
    return Action(answer or note, channel, ts, edited)


def _episode(
    target: Mapping[str, Any], store: Store, rule: str, group: tuple[str, ...], now: datetime
) -> datetime:
    """The episode a click is about: the first breach its button names, else (a parent
    posted before the buttons named it) the key's latest episode in the store."""
    since = target.get("since")
    if isinstance(since, str):
        try:
            return parse_time(since)
        except (ValueError, OverflowError):
            pass
    return store.episode_since(rule, group) or now


def _key(text: str) -> tuple[str, tuple[str, ...] | None]:
    """`rule` -> every group of the rule; `rule/pro` or `rule/pro/enterprise` -> that group."""
    rule, *group = text.split("/")
    return rule, (tuple(group) if group else None)


def _silence(
    args: list[str], store: Store, now: datetime, user: str | None, public: bool, command: str
) -> Reply:
    if len(args) < 3:
        return _fix(wording.silence_usage_text(command, no_reason=True))
    seconds = parse_duration(args[1]) if args[1].isascii() else None
    if seconds is None or seconds < 60 or seconds > MAX_SILENCE:
        return _fix(wording.bad_duration_text(args[1]))
    rule, group = _key(args[0])
    if not rule or not all(group or ()):
        return _fix(wording.silence_usage_text(command))
    until = now + timedelta(seconds=seconds)
    reason = _escape(" ".join(args[2:]))[:200]
    store.silence(rule, group, until, reason, user, now)
    return Reply(wording.silenced_text(args[0], until, user, reason), public)


def _model(
    args: list[str],
    store: Store,
    now: datetime,
    public: bool,
    command: str,
    rules: Sequence[Rule] = (),
) -> Reply:
    seen = models_seen(store, now)
    if not args:
        return _fix(wording.missing_model_text(seen, command))
    if len(args) > 2:
        return _fix(wording.extra_words_text("model", "model NAME [days]", command))
    days = _number(args[1:], "Days", DAYS, DEFAULT_DAYS)
    if isinstance(days, Reply):
        return days
    name = args[0]
    if name not in seen:
        # Forgive the case ("Pro") when it names exactly one model.
        folded = [m for m in seen if m.casefold() == name.casefold()]
        if len(folded) != 1:
            return _fix(wording.unknown_model_text(name, seen, command))
        name = folded[0]
    text = _code(f"{model_text(store, name, days, now)}\n{drivers_text(store, name, now, rules)}")
    return Reply(_with_links(text, store, model_alerts(store, name)), public)


def _segment(args: list[str], store: Store, now: datetime, public: bool, command: str) -> Reply:
    seen = store.segments()
    if not args or len(args) > 2:
        return _fix(wording.segment_usage_text(seen, command))
    days = _number(args[1:], "Days", SEGMENT_DAYS, SEGMENT_DAYS[1])
    if isinstance(days, Reply):
        return days
    name = next((s for s in seen if s.casefold() == args[0].casefold()), None)
    if name is None:
        return _fix(wording.unknown_segment_text(args[0], seen))
    end = now.date()
    rows = store.segment_daily(name, end - timedelta(days=days - 1), end)
    head = f"Segment {name}, last {days} day{'s' if days != 1 else ''} (UTC, from stored events)"
    body = messages.table(
        ["date", "jobs", "failed", "fail rate", "credits"],
        [*(_model_row(str(r.date), [r]) for r in rows), _model_row("total", rows)],
    )
    spark = messages.sparkline([r.credits_used for r in rows])
    return Reply(_code(f"{head}\n{body}\ncredits per day: {spark}"), public)


def _alerts(store: Store, now: datetime) -> str:
    text = _with_links(_code(alerts_text(store, now)), store, _firing(store))
    silences = store.silences(now)
    if silences:
        text += wording.silences_list([(s.rule, s.group, s.until, s.reason) for s in silences])
    return text


def _with_links(text: str, store: Store, alerts: Sequence[AlertState]) -> str:
    links = thread_links(store, alerts)
    if links:  # outside the code block: Slack links nothing inside one
        text += wording.threads_list(links)
    return text


# -- small pure helpers -----------------------------------------------------------------


def _number(args: Sequence[str], what: str, bounds: tuple[int, int], default: int) -> int | Reply:
    """The first argument as a whole number within bounds, the default when absent, or a
    correction. ASCII digits only: int() would take '７' or '٣', which Slack users do not
    mean as numbers, and a huge digit string is out of range without converting it."""
    if not args:
        return default
    word = args[0]
    low, high = bounds
    if word.isascii() and word.isdigit() and len(word) <= 6 and low <= int(word) <= high:
        return int(word)
    return _fix(wording.bad_number_text(what, word, bounds, default))


def _firing(store: Store) -> list[AlertState]:
    return [s for s in store.alert_states().values() if s.status == "firing"]


def _group_fields(store: Store) -> dict[tuple[str, tuple[str, ...]], tuple[str, ...]]:
    """group_by of each alert key, from its transitions: a state row holds only the
    group's values, and a customer could be called 'pro' as well as a model."""
    return {(t.rule, t.group): t.group_by for t in reversed(store.transitions(500))}


def _is_about(
    state: AlertState, model: str, fields: dict[tuple[str, tuple[str, ...]], tuple[str, ...]]
) -> bool:
    group_by = fields.get((state.rule, state.group))
    if group_by is None:  # no transition kept: judge by the values alone
        return model in state.group
    return any(f == "model" and v == model for f, v in zip(group_by, state.group, strict=False))


def _fail_rate(row: DailyUsage) -> float:
    finished = row.completed_jobs + row.failed_jobs
    return row.failed_jobs / finished if finished else math.nan


def _model_row(name: str, rows: Sequence[DailyUsage]) -> list[str]:
    jobs = sum(r.total_jobs for r in rows)
    completed = sum(r.completed_jobs for r in rows)
    failed = sum(r.failed_jobs for r in rows)
    finished = completed + failed
    rate = f"{failed / finished:.1%}" if finished else "-"
    return [name, f"{jobs:,}", f"{failed:,}", rate, f"{sum(r.credits_used for r in rows):,.1f}"]


def _fix(text: str) -> Reply:
    """A correction: always ephemeral, nobody else needs to see a typo."""
    return Reply(text, public=False, correction=True)


# Slack text helpers, with the wording.
_escape, _quote, _code = wording.escape, wording.quote, wording.code
