"""The shared vocabulary: plain frozen dataclasses passed between pipeline stages
(source -> store -> detect -> alerts -> notify). No behaviour beyond parsing, and no I/O:
the store package imports its records from here, so it needs neither `alerts` nor `budget`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

TOTAL = "*"  # the model name used for account-wide rows of the daily summary


def parse_time(text: str) -> datetime:
    """Parse an API timestamp ("2026-11-29T10:00:00Z") into an aware UTC datetime."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def format_time(moment: datetime) -> str:
    """Render an aware datetime the way the API does: UTC with a Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Event:
    """One item of GET /v1/usage/events: a recorded call or job state change."""

    id: str
    created_at: datetime
    request_id: str | None
    method: str | None
    endpoint: str | None
    status_code: int | None
    job_id: str | None
    model: str | None
    output_format: str | None
    status: str | None
    credits_used: float
    duration_seconds: float | None
    error_code: str | None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> Event:
        """Build from a schema-validated API item; optional fields may be absent."""
        metadata = item.get("metadata")
        return cls(
            id=item["id"],
            created_at=parse_time(item["created_at"]),
            request_id=item.get("request_id"),
            method=item.get("method"),
            endpoint=item.get("endpoint"),
            status_code=item.get("status_code"),
            job_id=item.get("job_id"),
            model=item.get("model"),
            output_format=item.get("output_format"),
            status=item.get("status"),
            credits_used=float(item.get("credits_used") or 0.0),
            duration_seconds=item.get("duration_seconds"),
            error_code=item.get("error_code"),
            metadata=dict(metadata) if isinstance(metadata, Mapping) else {},
        )

    def to_api(self) -> dict[str, Any]:
        """The API's shape again (for JSON Lines exports and backtests)."""
        return {
            "id": self.id,
            "created_at": format_time(self.created_at),
            "request_id": self.request_id,
            "method": self.method,
            "endpoint": self.endpoint,
            "status_code": self.status_code,
            "job_id": self.job_id,
            "model": self.model,
            "output_format": self.output_format,
            "status": self.status,
            "credits_used": self.credits_used,
            "duration_seconds": self.duration_seconds,
            "error_code": self.error_code,
            "metadata": dict(self.metadata),
        }

    @property
    def is_failed(self) -> bool:
        return self.status == "failed"

    @property
    def is_finished(self) -> bool:
        return self.status in ("completed", "failed")


@dataclass(frozen=True)
class EventsPage:
    """A validated events response: items newest first, as the API sent them."""

    limit: int
    items: tuple[Event, ...]
    request_id: str | None = None

    @property
    def is_full(self) -> bool:
        return len(self.items) >= self.limit


@dataclass(frozen=True)
class DailyUsage:
    """One day's figures for one model, or for the account when model is TOTAL."""

    date: date
    model: str
    total_jobs: int
    completed_jobs: int
    failed_jobs: int
    credits_used: float


@dataclass(frozen=True)
class Summary:
    """A validated summary response, flattened into daily rows."""

    days: int
    start_date: date
    end_date: date
    total_jobs: int
    completed_jobs: int
    failed_jobs: int
    credits_used: float
    daily: tuple[DailyUsage, ...]
    has_daily_models: bool
    request_id: str | None = None

    @classmethod
    def from_api(cls, body: Mapping[str, Any], request_id: str | None = None) -> Summary:
        rows: list[DailyUsage] = []
        has_models = True
        for day in body["daily"]:
            when = date.fromisoformat(day["date"])
            rows.append(_daily_row(when, TOTAL, day))
            if "by_model" not in day:
                has_models = False
            for entry in day.get("by_model") or ():
                rows.append(_daily_row(when, entry["model"], entry))
        return cls(
            days=body["days"],
            start_date=date.fromisoformat(body["start_date"]),
            end_date=date.fromisoformat(body["end_date"]),
            total_jobs=body["total_jobs"],
            completed_jobs=body["completed_jobs"],
            failed_jobs=body["failed_jobs"],
            credits_used=float(body["credits_used"]),
            daily=tuple(rows),
            has_daily_models=has_models,
            request_id=request_id,
        )


def _daily_row(when: date, model: str, figures: Mapping[str, Any]) -> DailyUsage:
    return DailyUsage(
        date=when,
        model=model,
        total_jobs=figures["total_jobs"],
        completed_jobs=figures["completed_jobs"],
        failed_jobs=figures["failed_jobs"],
        credits_used=float(figures["credits_used"]),
    )


# -- rules (built by config.load_rules from rules.yaml) ---------------------------------

METRICS = ("failure_rate", "spend", "volume")
GROUP_KEYS = ("model", "metadata.segment", "metadata.customer_id")


@dataclass(frozen=True)
class Grouping:
    """How a rule's alerts are told together: one Slack parent per incident (rules.yaml
    `grouping`, like Alertmanager's group_by / group_wait / group_interval). Durations
    are data time, in seconds."""

    group: str | None = None  # rules naming one group share incidents; None: the rule's name
    by: tuple[str, ...] = ()  # fields of the rule's group_by whose values keep incidents apart
    wait: float = 0.0  # a new incident is told once judged this long after its first key fired
    interval: float = 300.0  # keys joining or resolving a told incident: at most this often


@dataclass(frozen=True)
class Rule:
    """One detection rule. Durations are in seconds."""

    name: str
    metric: str  # one of METRICS
    source: str = "events"  # events | summary
    group_by: tuple[str, ...] = ()
    bucket: float = 900.0  # events only; summary rules are daily
    baseline: float = 7 * 86400.0  # trailing history judged against, excluding the point
    method: str = "robust"  # robust | plain
    seasonal: str = "none"  # none | hour_of_day | weekday
    z: float = 4.0
    direction: str = "up"  # up | down | both
    min_volume: int = 0  # finished jobs in the window before a rate is judged
    min_rate: float = 0.0  # absolute floor on a failure rate
    false_alerts: float = 0.5  # failure rates: the evidence test's budget, per 30 days
    min_credits: float = 0.0  # impact floor on spend
    for_: int = 1  # consecutive breaching evaluations before firing
    recover_for: int = 2  # consecutive normal evaluations before resolving
    remind_every: float = 4 * 3600.0  # while firing, say so again in the thread this often
    channel: str | None = None
    severity: str = "warning"  # info | warning | critical
    runbook: str | None = None
    grouping: Grouping = Grouping()


@dataclass(frozen=True)
class PollConfig:
    events_every: float = 60.0
    events_limit: int = 100
    summary_every: float = 900.0
    summary_days: int = 30
    backfill_days: int = 90
    probe_every: float = 300.0  # poll rate of an endpoint while it answers 401/402
    events_floor: float = 0.5  # a busy account's events are read again no sooner than this
    max_requests_per_minute: int = 120  # the ceiling on events polls, however busy


PERIODS = ("day", "week", "month")
SCOPE_KEYS = ("model", "segment", "customer")  # a fine group's fields, in that order


@dataclass(frozen=True)
class Budget:
    """A spending limit per calendar period for one scope of usage."""

    name: str
    limit: float  # credits per period
    period: str = "month"  # one of PERIODS
    timezone: str = "UTC"  # IANA name: where the period's days begin and end
    scope: tuple[tuple[str, str], ...] = ()  # (key, value) pairs of SCOPE_KEYS; () = account
    thresholds: tuple[float, ...] = (50.0, 80.0, 100.0)  # percent of the limit, ascending
    forecast: bool = True  # warn when the projection to the period's end crosses the limit
    credit_price: float | None = None  # money per credit, to show amounts as money too
    currency: str = "USD"
    channel: str | None = None
    webhook: str | None = None  # name of the env var that holds the enforcement hook URL


@dataclass(frozen=True)
class DigestConfig:
    """The daily digest: when, in which zone, and where."""

    at: tuple[int, int] = (9, 0)  # local hour and minute
    timezone: str = "UTC"
    channels: tuple[str, ...] = ()  # () = SLACK_CHANNEL


@dataclass(frozen=True)
class RuleSet:
    """Everything rules.yaml says."""

    poll: PollConfig = field(default_factory=PollConfig)
    mention: str = "<!here>"  # who a critical alert mentions in Slack
    rules: tuple[Rule, ...] = ()
    budgets: tuple[Budget, ...] = ()
    digest: DigestConfig | None = None
    # While an account-wide rule fires, per-group alerts of its metric are told in its
    # incident instead of one of their own (rules.yaml `grouping.inhibit`).
    inhibit: bool = True


# -- what the store keeps: poll log, gaps, outbox rows, threads, silences ----------------


@dataclass(frozen=True)
class Gap:
    """Events between these two times may be lost: more arrived than one page holds."""

    newest_stored_at: datetime
    oldest_seen_at: datetime


@dataclass(frozen=True)
class SaveResult:
    new_events: tuple[Event, ...]
    gap: Gap | None


@dataclass(frozen=True)
class PollRecord:
    """One row of the poll log."""

    endpoint: str
    started_at: datetime
    finished_at: datetime
    status: str  # ok | error
    http_status: int | None = None
    request_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    items_seen: int = 0
    items_new: int = 0
    next_poll_seconds: float | None = None  # the events pace: delay before the next poll
    pace: str | None = None  # and why (bot.pace.REASONS)

    @property
    def duration_ms(self) -> float:
        return (self.finished_at - self.started_at).total_seconds() * 1000.0


@dataclass(frozen=True)
class ColdStart:
    """A worker begun on an empty database (a dyno that lost its disk): besides open
    alerts, what to take back from Slack before anything is told again. Budget events
    and digests go to `post_channels` (None: the default channel) and reach back to
    `since` (data time): the start of the earliest current budget period or of the
    digest's day."""

    post_channels: tuple[str | None, ...]
    since: datetime


@dataclass(frozen=True)
class Post:
    """A queued Slack message other than an alert (a budget event, a digest)."""

    id: int
    key: str
    kind: str  # budget | digest
    channel: str | None  # None: the default channel
    # The outbox row's JSON, as queued: notify words it when it sends (budget_text,
    # digest), so a post stored before a restart renders the same after it.
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class Hook:
    id: int
    key: str  # the idempotency key
    budget: str
    body: str
    attempts: int
    delivered_at: datetime | None
    last_status: int | None


@dataclass(frozen=True)
class Silence:
    id: int
    rule: str
    group: tuple[str, ...] | None  # None: every group of the rule
    until: datetime
    reason: str
    created_by: str | None


@dataclass(frozen=True)
class Notice:
    id: int
    kind: str
    state: str
    text: str
    at: datetime


@dataclass(frozen=True)
class Delivery:
    channel: str
    ts: str | None
    attempted_at: float
    done: bool


@dataclass(frozen=True)
class Thread:
    rule: str
    group: tuple[str, ...]
    channel: str
    ts: str
    status: str


# -- alerts (detect judges, alerts steps the state machine, notify tells) ----------------

OK, PENDING, FIRING = "ok", "pending", "firing"
RESOLVED = "resolved"  # a transition, not a resting state: the key goes back to ok
REMINDER = "reminder"  # still firing after the rule's remind_every: said again in the thread


@dataclass(frozen=True)
class Evaluation:
    """One judgement of one rule for one group at one moment of data time."""

    rule: str
    group: tuple[str, ...]
    at: datetime  # end of the window judged
    value: float  # failure rate, credits or jobs in the window
    baseline: float
    zscore: float  # NaN when there is not enough history to judge
    volume: float  # finished jobs (failure rate), credits (spend) or jobs (volume)
    breach: bool
    judged: bool = True  # False: too little data or volume to say either way
    calm: bool = True  # well inside the normal band (hysteresis: what recovery needs)
    window: float = 0.0  # seconds of data the value covers
    evidence: float = 0.0  # failure rates: the evidence test's CUSUM over its threshold


@dataclass(frozen=True)
class AlertState:
    """Where one alert key stands; persisted between cycles."""

    rule: str
    group: tuple[str, ...]
    status: str = OK  # ok | pending | firing
    breaches: int = 0  # consecutive breaching evaluations
    normals: int = 0  # consecutive normal evaluations while firing
    since: datetime | None = None  # first breach of the current episode
    peak_zscore: float = 0.0
    peak_value: float = 0.0
    told_at: datetime | None = None  # when it was last told (firing or a reminder)


@dataclass(frozen=True)
class Transition:
    """A change worth telling: the alert fired or resolved."""

    rule: str
    group: tuple[str, ...]
    group_by: tuple[str, ...]
    state: str  # firing | reminder | resolved
    at: datetime
    value: float
    baseline: float
    zscore: float
    volume: float
    since: datetime | None
    peak_zscore: float
    peak_value: float
    window: float = 0.0  # seconds of data the value covers
    request_ids: tuple[str, ...] = ()
    job_ids: tuple[str, ...] = ()
    # The metric around the breach, for the chart: (moment, value, baseline, breach).
    series: tuple[tuple[datetime, float, float, bool], ...] = ()

    @property
    def idempotency_key(self) -> str:
        """The same transition, recomputed from the same data anywhere, gets the same key:
        what finds an already-posted Slack message again after a crash or a lost disk."""
        text = json.dumps([self.rule, list(self.group), self.state, self.at.isoformat()])
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    @property
    def key(self) -> dict[str, str]:
        """{"model": "pro"}: group values by the last part of each group_by field."""
        return {f.rsplit(".", 1)[-1]: v for f, v in zip(self.group_by, self.group, strict=True)}


# Event fields an alert's excess is broken down by (bot.breakdown), as the store counts them.
DIMENSIONS = ("model", "error_code", "output_format", "segment", "customer")


@dataclass(frozen=True)
class Tally:
    """Finished and failed jobs and credits of the stored events that carry one value of
    one dimension (`DIMENSIONS`) in a stretch of time: what a breakdown counts from."""

    value: str  # "" for events that carry none
    finished: int
    failed: int
    credits: float


# -- incidents: alert keys told together under one Slack parent (grouping decides) -------

OPEN, JOIN, FOLD = "open", "join", "fold"  # how a key came into its incident


@dataclass(frozen=True)
class GroupMember:
    """One alert key of an incident, with the figures it fired with (what the parent
    lists, and what its Slack metadata carries so a fresh database can rebuild it)."""

    rule: str
    group: tuple[str, ...]
    group_by: tuple[str, ...]
    metric: str
    state: str  # FIRING | RESOLVED
    how: str  # OPEN: in the first parent; JOIN: later; FOLD: by inhibition
    since: datetime
    at: datetime  # when it fired (data time)
    value: float
    baseline: float
    zscore: float
    fired_tid: int | None = None  # its firing transition (None: adopted from Slack)
    resolved_at: datetime | None = None
    resolved_tid: int | None = None

    @property
    def key(self) -> tuple[str, tuple[str, ...]]:
        return self.rule, self.group


@dataclass(frozen=True)
class AlertGroup:
    """An incident: one parent message, the keys told in it, oldest first. Firing while
    any member fires; `updated_at` is the data time of the latest transition routed to
    it (a told incident's next update waits for `interval` after it)."""

    id: str  # the opening transition's idempotency key: stable across databases
    partition: str  # its group name and the values of `by`, e.g. "failures|model=pro"
    channel: str  # as configured (a rule's channel or SLACK_CHANNEL)
    status: str  # FIRING | RESOLVED
    opened_at: datetime
    updated_at: datetime
    members: tuple[GroupMember, ...]
    opened_by: int | None = None  # the transition whose delivery posts the parent
    thread_channel: str | None = None  # the channel id Slack answered with
    ts: str | None = None  # the parent's ts, once posted

    def member(self, rule: str, group: tuple[str, ...]) -> GroupMember | None:
        return next((m for m in self.members if m.key == (rule, group)), None)

    @property
    def firing(self) -> tuple[GroupMember, ...]:
        return tuple(m for m in self.members if m.state == FIRING)


# -- budgets (budget decides, the store records, commands/digest/notify show) -------------

FORECAST = "forecast"
THRESHOLD = "threshold"


@dataclass(frozen=True)
class BudgetEvent:
    """Something to tell about a budget: a threshold crossed, a forecast warning raised
    or ended. `key` is stable for the same event: the idempotency key of its hook."""

    budget: str
    kind: str  # THRESHOLD | FORECAST
    state: str  # "crossed" | "firing" | "resolved"
    period: str  # the period's label
    threshold: float  # percent (THRESHOLD) or 100 (FORECAST)
    at: datetime
    spent: float
    limit: float
    projected: float | None = None
    crossing: date | None = None

    @property
    def key(self) -> str:
        if self.kind == THRESHOLD:
            return f"{self.budget}:{self.period}:{self.threshold:g}"
        return f"{self.budget}:{self.period}:forecast:{self.state}:{self.at:%Y%m%dT%H%M}"

    def to_json(self) -> dict[str, Any]:
        """The event as its post's payload and Slack metadata carry it (so a fresh
        database can take it back from Slack); absent fields are left out."""
        data: dict[str, Any] = {
            "budget": self.budget,
            "kind": self.kind,
            "state": self.state,
            "period": self.period,
            "threshold": self.threshold,
            "at": format_time(self.at),
            "spent": self.spent,
            "limit": self.limit,
            "projected": self.projected,
            "crossing": self.crossing.isoformat() if self.crossing else None,
        }
        return {name: value for name, value in data.items() if value is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BudgetEvent:
        """The inverse of `to_json`; KeyError, TypeError or ValueError when `data` is not
        one (a post queued before the event was carried whole has only kind, state,
        period and threshold)."""
        projected, crossing = data.get("projected"), data.get("crossing")
        return cls(
            budget=str(data["budget"]),
            kind=str(data["kind"]),
            state=str(data["state"]),
            period=str(data["period"]),
            threshold=float(data["threshold"]),
            at=parse_time(str(data["at"])),
            spent=float(data["spent"]),
            limit=float(data["limit"]),
            projected=float(projected) if projected is not None else None,
            crossing=date.fromisoformat(str(crossing)) if crossing else None,
        )


def budget_post_key(events: Sequence[BudgetEvent]) -> str:
    """The outbox and metadata key of the post that tells `events`: one event's own key;
    thresholds of one budget crossed in one cycle, told in one post, share one key
    ("budget:pro-monthly:2026-11:50+80")."""
    first = events[0]
    if len(events) == 1:
        return f"budget:{first.key}"
    thresholds = "+".join(f"{event.threshold:g}" for event in events)
    return f"budget:{first.budget}:{first.period}:{thresholds}"


@dataclass(frozen=True)
class Marks:
    """What was already told for a budget: thresholds crossed in the current period,
    and the period of a forecast warning still standing (None when there is none)."""

    crossed: frozenset[float] = frozenset()
    forecast_period: str | None = None


@dataclass(frozen=True)
class BudgetForecast:
    """A budget's projection to its period's end, as shown (rounded)."""

    projected_credits: float
    low_credits: float
    high_credits: float
    method: str  # "weekday profile" | "recent pace" | "linear pace"
    limit_reached_on: date | None
    interval: str = "80%"


@dataclass(frozen=True)
class BudgetState:
    """A budget's state as judged at `at`, its figures as shown (rounded): what
    `query budget --json`, `GET /budget`, hook bodies and budget posts carry, as the
    JSON `to_json` gives (`budget.as_json`). The store keeps the latest per budget."""

    budget: str
    scope: tuple[tuple[str, str], ...]  # (key, value) pairs; () = the account
    period_kind: str  # day | week | month
    period_label: str
    period_start: datetime
    period_end: datetime
    timezone: str
    at: datetime
    limit_credits: float
    spent_credits: float
    used_percent: float
    thresholds_percent: tuple[float, ...]
    credit_price: float | None
    currency: str | None  # None without a credit price
    data_from: datetime | None
    forecast: BudgetForecast | None
    daily_credits: tuple[tuple[date, float], ...]  # local days of the period
    # A known events gap falls in the period: the spend includes what the summary counted
    # for it (account and model scopes), or lacks what it lost (segments, customers).
    estimated: bool = False

    def to_json(self) -> dict[str, Any]:
        forecast = self.forecast
        return {
            "budget": self.budget,
            "scope": dict(self.scope) or {"account": True},
            "period": {
                "kind": self.period_kind,
                "label": self.period_label,
                "start": format_time(self.period_start),
                "end": format_time(self.period_end),
                "timezone": self.timezone,
            },
            "at": format_time(self.at),
            "limit_credits": self.limit_credits,
            "spent_credits": self.spent_credits,
            "used_percent": self.used_percent,
            "thresholds_percent": list(self.thresholds_percent),
            "credit_price": self.credit_price,
            "currency": self.currency,
            "data_from": format_time(self.data_from) if self.data_from else None,
            "forecast": None
            if forecast is None
            else {
                "projected_credits": forecast.projected_credits,
                "low_credits": forecast.low_credits,
                "high_credits": forecast.high_credits,
                "interval": forecast.interval,
                "method": forecast.method,
                "limit_reached_on": forecast.limit_reached_on.isoformat()
                if forecast.limit_reached_on
                else None,
            },
            "daily_credits": [[day.isoformat(), total] for day, total in self.daily_credits],
            "estimated": self.estimated,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BudgetState:
        """The inverse of `to_json` (numbers kept as they were, so it renders the same)."""
        period, forecast = data["period"], data["forecast"]
        reached = forecast["limit_reached_on"] if forecast is not None else None
        return cls(
            budget=data["budget"],
            scope=tuple((k, v) for k, v in data["scope"].items() if k != "account"),
            period_kind=period["kind"],
            period_label=period["label"],
            period_start=parse_time(period["start"]),
            period_end=parse_time(period["end"]),
            timezone=period["timezone"],
            at=parse_time(data["at"]),
            limit_credits=data["limit_credits"],
            spent_credits=data["spent_credits"],
            used_percent=data["used_percent"],
            thresholds_percent=tuple(data["thresholds_percent"]),
            credit_price=data["credit_price"],
            currency=data["currency"],
            data_from=parse_time(data["data_from"]) if data["data_from"] else None,
            forecast=None
            if forecast is None
            else BudgetForecast(
                projected_credits=forecast["projected_credits"],
                low_credits=forecast["low_credits"],
                high_credits=forecast["high_credits"],
                method=forecast["method"],
                limit_reached_on=date.fromisoformat(reached) if reached else None,
                interval=forecast["interval"],
            ),
            daily_credits=tuple(
                (date.fromisoformat(d), total) for d, total in data["daily_credits"]
            ),
            estimated=bool(data.get("estimated", False)),
        )


# -- feedback on alerts (the buttons record it, the store counts it, tune replays it) -----

EXPECTED, NOISE = "expected", "noise"  # the verdicts a parent's buttons give an episode


@dataclass(frozen=True)
class Feedback:
    """What people said about one alert episode (a key firing from `since`): its verdict,
    the last click winning, and who acknowledged it first."""

    rule: str
    group: tuple[str, ...]
    since: datetime  # the episode's first breach (its transitions' `since`), data time
    verdict: str | None = None  # EXPECTED | NOISE
    verdict_by: str | None = None  # Slack user id
    verdict_at: datetime | None = None
    acked_by: str | None = None
    acked_at: datetime | None = None


@dataclass(frozen=True)
class Episode:
    """One alert episode as the store holds it: fired from `since`, told at `told_at`,
    resolved at `resolved_at` (None: still firing, or its resolve is not stored)."""

    rule: str
    group: tuple[str, ...]
    since: datetime
    told_at: datetime | None = None
    resolved_at: datetime | None = None
    feedback: Feedback | None = None


@dataclass(frozen=True)
class RuleStats:
    """One rule's alert episodes over a span, and what people said about them."""

    rule: str
    alerts: int
    acknowledged: int
    expected: int
    noise: int
    median_ack_seconds: float | None  # from told to the first acknowledgement
