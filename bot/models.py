"""The shared vocabulary: plain frozen dataclasses passed between pipeline stages
(source -> store -> detect -> alerts -> notify). No behaviour beyond parsing."""

from __future__ import annotations

from collections.abc import Mapping
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
    min_credits: float = 0.0  # impact floor on spend
    for_: int = 1  # consecutive breaching evaluations before firing
    recover_for: int = 2  # consecutive normal evaluations before resolving
    remind_every: float = 4 * 3600.0  # while firing, say so again in the thread this often
    channel: str | None = None
    severity: str = "warning"  # info | warning | critical
    runbook: str | None = None


@dataclass(frozen=True)
class PollConfig:
    events_every: float = 60.0
    events_limit: int = 100
    summary_every: float = 900.0
    summary_days: int = 30
    backfill_days: int = 90
    probe_every: float = 300.0  # poll rate of an endpoint while it answers 401/402


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
