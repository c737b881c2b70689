"""A deterministic, seeded simulation of the RemoveBGVideo usage API (usage-api.md section 3).

It stands in for the real service at the far end of `source`: `usage-bot demo` serves it on
loopback, tests use it in-process via `httpx.MockTransport(sim.handle)`, with injectable faults.
"""

from __future__ import annotations

import bisect
import hmac
import itertools
import json
import math
import random
import re
import sys
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, NamedTuple, TypeVar
from urllib.parse import parse_qsl, urlsplit

import httpx

from bot.standins.replies import answer

__all__ = [
    "FAULT_KINDS",
    "MODEL_PRICES",
    "SEGMENTS",
    "CompressedClock",
    "Incident",
    "ManualClock",
    "RequestRecord",
    "Simulator",
    "SimulatorServer",
    "demo_incidents",
]

# Credits per minute of billed video (usage-api.md section 1).
MODEL_PRICES: dict[str, float] = {"original": 60.0, "light": 45.0, "pro": 180.0, "human": 45.0}
MODEL_MIX: dict[str, float] = {"original": 0.45, "light": 0.25, "pro": 0.15, "human": 0.15}
BASE_FAILURE_RATE: dict[str, float] = {
    "original": 0.015,
    "light": 0.02,
    "pro": 0.03,
    "human": 0.025,
}
OUTPUT_FORMATS: dict[str, float] = {
    "webm": 0.30,
    "mp4": 0.30,
    "mov": 0.15,
    "gif": 0.10,
    "webp": 0.08,
    "png_sequence": 0.07,
}
SEGMENTS = ("enterprise", "smb", "self_serve")
# (customer_id, segment, share of jobs); the remaining 3% of jobs carry no metadata.
CUSTOMERS: tuple[tuple[str, str, float], ...] = (
    ("acme", "enterprise", 0.15),
    ("globex", "enterprise", 0.13),
    ("initech", "enterprise", 0.12),
    ("umbrella", "smb", 0.09),
    ("hooli", "smb", 0.08),
    ("stark", "smb", 0.07),
    ("wayne", "smb", 0.07),
    ("pied-piper", "self_serve", 0.06),
    ("vandelay", "self_serve", 0.05),
    ("wonka", "self_serve", 0.05),
    ("tyrell", "self_serve", 0.05),
    ("soylent", "self_serve", 0.05),
)
NO_METADATA_SHARE = 0.03

# Video duration is lognormal: median 80 s, mean about 90.6 s.
_DURATION_MU = math.log(80.0)
_DURATION_SIGMA = 0.5
_TIMEOUT_SHARE = 0.35  # of failures; the rest are internal_error
_MAX_DELAY_SECONDS = 900
_NON_JOB_EVENT_PROB = 0.01  # per minute: an occasional GET /v1/usage/summary call event

# Daily rhythm: cosine peaking at 14:00 UTC (x1.6) with a 02:00 trough (x0.4), weekends x0.6;
# divided by the weekly mean so that `jobs_per_hour` is the average over a week.
_DAILY_SWING = 0.6
_PEAK_HOUR = 14.0
_WEEKEND_FACTOR = 0.6
_WEEK_MEAN = (5 + 2 * _WEEKEND_FACTOR) / 7

# kind -> (status, error code, message, extra headers)
_ERROR_FAULTS: dict[str, tuple[int, str, str, dict[str, str]]] = {
    "429": (429, "rate_limited", "Too many requests.", {}),
    "429_retry_after": (429, "rate_limited", "Too many requests.", {"Retry-After": "1"}),
    "500": (500, "internal_error", "Internal server error.", {}),
    # No 'unavailable' code is documented, so 503 carries internal_error.
    "503": (503, "internal_error", "Service temporarily unavailable.", {}),
    "504": (504, "timeout", "Upstream request timed out.", {}),
    "401": (401, "invalid_api_key", "The API key is unknown or disabled.", {}),
    "402": (402, "insufficient_credits", "The account has no credits left.", {}),
}
FAULT_KINDS: frozenset[str] = frozenset(_ERROR_FAULTS) | {
    "hang",
    "non_json",
    "wrong_shape",
    "huge",
    "drop",
}
HUGE_BODY_BYTES = 20 * 1024 * 1024

_ROUTES = {"/v1/usage/summary": "summary", "/v1/usage/events": "events"}
# route -> (query parameter, lowest, highest, default when absent: the docs' example value)
_PARAMS = {"summary": ("days", 1, 90, 7), "events": ("limit", 1, 100, 20)}
_DIGITS = re.compile(r"[0-9]{1,6}")

_T = TypeVar("_T")
_Agg = dict[str, list[int]]  # model -> [total_jobs, completed_jobs, failed_jobs, credit cents]


# --- public value types -------------------------------------------------------------------


@dataclass(frozen=True)
class Incident:
    """A scripted deviation from normal traffic over [start, end) (aware datetimes)."""

    kind: Literal["failure_spike", "spend_runaway", "outage"]
    start: datetime
    end: datetime
    model: str | None = None  # None = all models
    segment: str | None = None  # None = all segments
    customer: str | None = None  # None = all customers (a customer_id of CUSTOMERS)
    failure_rate: float = 0.5  # failure_spike: probability a matching job fails
    factor: float = 5.0  # spend_runaway: multiplies arrivals of matching jobs
    # failure_spike: jobs *finishing* in [start, end) fail, at the moment they would have
    # finished (a model that breaks under running work), instead of jobs created then
    # failing a while later: the failure rate of finished jobs jumps at `start`.
    sudden: bool = False
    # spend_runaway: a creep instead of a step. The factor rises linearly from 1 at
    # `start` to `factor` at `start + ramp_hours`, then holds until `end`.
    ramp_hours: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("failure_spike", "spend_runaway", "outage"):
            raise ValueError(f"unknown incident kind {self.kind!r}")
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("incident start and end must be timezone-aware")
        if self.end <= self.start:
            raise ValueError("incident end must be after its start")
        if self.model is not None and self.model not in MODEL_PRICES:
            raise ValueError(f"unknown model {self.model!r}")
        if self.segment is not None and self.segment not in SEGMENTS:
            raise ValueError(f"unknown segment {self.segment!r}")
        if self.customer is not None and self.customer not in {c for c, _, _ in CUSTOMERS}:
            raise ValueError(f"unknown customer {self.customer!r}")
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError("failure_rate must be within 0..1")
        if self.factor < 1.0:
            raise ValueError("factor must be at least 1 (use an outage to stop traffic)")
        if self.ramp_hours < 0:
            raise ValueError("ramp_hours must not be negative")
        if self.ramp_hours and self.kind != "spend_runaway":
            raise ValueError("only a spend_runaway ramps")
        if timedelta(hours=self.ramp_hours) > self.end - self.start:
            raise ValueError("the ramp must end by the incident's end")

    def factor_at(self, moment: float) -> float:
        """A spend_runaway's factor at `moment` (epoch seconds) inside its window: `factor`,
        or on its ramp the part of the way from 1 it has come by then."""
        if not self.ramp_hours:
            return self.factor
        done = (moment - self.start.timestamp()) / (self.ramp_hours * 3600)
        return 1.0 + (self.factor - 1.0) * min(1.0, max(0.0, done))


class RequestRecord(NamedTuple):
    """One request the simulator received.

    `status` is the HTTP status answered, or 0 when no answer was given (a dropped
    connection, or a hang under MockTransport, which raises instead).
    """

    endpoint: str
    params: dict[str, str]
    status: int
    at: datetime
    fault: str | None = None


class ManualClock:
    """A clock that moves only when told to; for tests."""

    def __init__(self, t: datetime) -> None:
        self._t = _aware_utc(t)

    def __call__(self) -> datetime:
        return self._t

    def advance(self, delta: timedelta) -> None:
        self._t += delta

    def set(self, t: datetime) -> None:
        self._t = _aware_utc(t)


class CompressedClock:
    """Simulated time running `speed` times faster than real time, from `start`; for the demo."""

    def __init__(
        self, start: datetime, speed: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._start = _aware_utc(start)
        self._speed = speed
        self._monotonic = monotonic
        self._origin = monotonic()

    def __call__(self) -> datetime:
        elapsed = self._monotonic() - self._origin
        return self._start + timedelta(seconds=elapsed * self._speed)

    def restart(self) -> None:
        """Run from `start` again, counting real time from now."""
        self._origin = self._monotonic()


def stepped_creep(
    onset: datetime, factor: float, model: str, steps: int = 12, hours: float = 6
) -> list[Incident]:
    """Spend on `model` rising to `factor` in `steps` steps of `hours` each (3 days by
    default), each step at its level from its start: a creep no single hour shows."""
    return [
        Incident(
            "spend_runaway",
            onset + timedelta(hours=hours * i),
            onset + timedelta(hours=hours * (i + 1)),
            model=model,
            factor=1 + (factor - 1) * (i + 1) / steps,
        )
        for i in range(steps)
    ]


def demo_incidents(start: datetime) -> list[Incident]:
    """The scripted story of `usage-bot demo`: 'pro' jobs start failing 1 h in (for 1 h),
    then 'light' spend runs away 3 h in (for 1 h, 5x arrivals), then every model fails
    for a quarter of an hour 4 h in (one incident, the models joining it as each is
    judged failing)."""
    return [
        Incident(
            "failure_spike",
            start + timedelta(hours=1),
            start + timedelta(hours=2),
            model="pro",
            failure_rate=0.5,
            sudden=True,  # the model breaks under running work: told within a minute or two
        ),
        Incident(
            "spend_runaway",
            start + timedelta(hours=3),
            start + timedelta(hours=4),
            model="light",
            factor=5.0,
        ),
        Incident(
            "failure_spike",
            start + timedelta(hours=4),
            start + timedelta(hours=4, minutes=15),
            failure_rate=0.6,
        ),
    ]


# --- internal records ---------------------------------------------------------------------


class _Event(NamedTuple):
    # NamedTuples rather than frozen dataclasses: several times cheaper to build, and a
    # day of traffic builds thousands of these.
    ts: int  # epoch seconds of created_at
    id: str
    request_id: str
    method: str
    endpoint: str
    job_id: str | None = None
    model: str | None = None
    output_format: str | None = None
    status: str | None = None
    credit_cents: int = 0
    duration_seconds: float | None = None
    error_code: str | None = None
    customer: tuple[str, str] | None = None  # (customer_id, segment)
    at: float = 0.0  # when the API shows it (epoch seconds): ts, or within ts's second

    def as_item(self) -> dict[str, Any]:
        """The event as a usage-api.md 3b item (a fresh dict each call)."""
        return {
            "id": self.id,
            "created_at": _iso(self.ts),
            "request_id": self.request_id,
            "method": self.method,
            "endpoint": self.endpoint,
            "status_code": 200,
            "job_id": self.job_id,
            "model": self.model,
            "output_format": self.output_format,
            "status": self.status,
            "credits_used": self.credit_cents / 100,
            "duration_seconds": self.duration_seconds,
            "error_code": self.error_code,
            "metadata": (
                None
                if self.customer is None
                else {"customer_id": self.customer[0], "segment": self.customer[1]}
            ),
        }


class _Draft(NamedTuple):
    """A job's random attributes, drawn before incidents decide its fate."""

    ts: int
    core: str  # unique id stem shared by the job's id and its events' ids
    model: str
    output_format: str
    duration: float
    customer: tuple[str, str] | None
    u_fail: float
    error_code: str
    delay_ok: int
    delay_fail: int
    request_ids: tuple[str, str]


@dataclass
class _Fault:
    kind: str
    endpoint: str | None
    remaining: int  # -1 = until clear_faults()


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    action: Literal["answer", "hang", "drop"] = "answer"


# --- the simulator ------------------------------------------------------------------------


class Simulator:
    """The simulated usage API: traffic, aggregates, HTTP semantics and injected faults.

    Traffic is generated lazily per whole minute, each minute from its own
    `random.Random` seeded by (seed, minute), so the stream does not depend on when or how
    often it is read. Generation starts at
    midnight UTC of `start`'s date; the `history_days` days before that exist only as
    synthetic daily aggregates in the summary. `clock` defaults to real time from `start`.

    `jobs_per_hour` is the weekly average: the daily rhythm runs from 0.47 to 1.87 times
    it (weekends 0.6 times that), and each job makes two events (created, then completed
    or failed), so the default 120 gives about 0.067 events a second on average.
    `events_per_second` instead serves a steady stream for load tests: that many events a
    second at every hour (jobs at half that rate, no rhythm), each shown at its own moment
    within its second rather than all of a second's events at once. Completions trail
    their jobs by up to 15 minutes, so the full rate holds from 00:15 of `start`'s date.

    Two shapes of normal traffic, in the synthetic history too (they are how the account
    always was, not incidents): `busy_hour` (UTC hour, factor) multiplies arrivals in that
    hour of every weekday (a daily batch, a stand-up); `customer_shares` gives named
    customers that share of all jobs, every minute (a big customer), the others keeping
    their relative weights in the rest. Neither changes the model mix.
    """

    def __init__(
        self,
        *,
        start: datetime,
        clock: Callable[[], datetime] | None = None,
        seed: int = 7,
        jobs_per_hour: float = 120.0,
        incidents: Sequence[Incident] = (),
        api_key: str = "sim-key",
        history_days: int = 90,
        hang_seconds: float = 5.0,
        events_per_second: float | None = None,
        busy_hour: tuple[int, float] | None = None,
        customer_shares: Mapping[str, float] | None = None,
    ) -> None:
        if jobs_per_hour < 0:
            raise ValueError("jobs_per_hour must not be negative")
        if busy_hour is not None and not (0 <= busy_hour[0] < 24 and busy_hour[1] > 0):
            raise ValueError("busy_hour must be (an hour 0..23, a positive factor)")
        self.busy_hour = busy_hour
        self._customer_cum = _customer_cumulative(customer_shares or {})
        if events_per_second is not None and events_per_second < 0:
            raise ValueError("events_per_second must not be negative")
        self.events_per_second = events_per_second
        if events_per_second is not None:
            jobs_per_hour = events_per_second / 2 * 3600
        self.start = _aware_utc(start)
        self.seed = seed
        self.jobs_per_hour = jobs_per_hour
        self.incidents = tuple(incidents)
        self.api_key = api_key
        self.history_days = history_days
        self.hang_seconds = hang_seconds
        self.requests: list[RequestRecord] = []
        self._clock = clock if clock is not None else CompressedClock(self.start, 1.0)
        self._windows = [(i, i.start.timestamp(), i.end.timestamp()) for i in self.incidents]
        self._origin_date = self.start.date()
        self._origin_minute = _day_start_ts(self._origin_date) // 60
        self._lock = threading.RLock()
        self._next_minute = self._origin_minute  # first minute not generated yet
        self._buckets: dict[int, list[_Event]] = {}  # events by minute of created_at
        self._sorted: set[int] = set()
        self._bucket_aggs: dict[int, _Agg] = {}
        self._day_aggs: dict[date, _Agg] = {}
        self._faults: list[_Fault] = []
        self._reply_rng = random.Random(f"{seed}:replies")

    # -- time and traffic --

    def now(self) -> datetime:
        """The simulated current time (aware UTC)."""
        return _aware_utc(self._clock())

    def events_until(self, now: datetime) -> list[dict[str, Any]]:
        """Every event with created_at <= now, oldest first."""
        now_ts = _aware_utc(now).timestamp()
        if now_ts < self._origin_minute * 60:
            return []
        now_minute = int(now_ts // 60)
        with self._lock:
            self._generate_through(now_minute)
            events = [
                e
                for minute in range(self._origin_minute, now_minute + 1)
                for e in self._bucket(minute)
                if e.at <= now_ts
            ]
        return [e.as_item() for e in events]

    def events_page(self, limit: int) -> dict[str, Any]:
        """The 3b body at the clock's now: the newest `limit` events, newest first."""
        if limit < 1:
            raise ValueError("limit must be positive")
        now_ts = self.now().timestamp()
        newest: list[_Event] = []
        if now_ts >= self._origin_minute * 60:
            now_minute = int(now_ts // 60)
            with self._lock:
                self._generate_through(now_minute)
                minute = now_minute
                while len(newest) < limit and minute >= self._origin_minute:
                    bucket = self._bucket(minute)
                    newest.extend(e for e in reversed(bucket) if e.at <= now_ts)
                    minute -= 1
        return {"limit": limit, "items": [e.as_item() for e in newest[:limit]]}

    def summary(self, days: int) -> dict[str, Any]:
        """The 3a body at the clock's now: `days` daily rows ending today, plus totals."""
        if days < 1:
            raise ValueError("days must be positive")
        now = self.now()
        today = now.date()
        total: _Agg = {}
        daily = []
        for offset in range(days - 1, -1, -1):
            day = today - timedelta(days=offset)
            agg = self._day_agg(day, now.timestamp())
            _merge(total, agg)
            daily.append({"date": day.isoformat(), **_counts(agg), "by_model": _by_model(agg)})
        return {
            "days": days,
            "start_date": daily[0]["date"],
            "end_date": daily[-1]["date"],
            **_counts(total),
            "by_model": _by_model(total),
            "daily": daily,
        }

    # -- faults --

    def inject(self, kind: str, endpoint: str | None = None, times: int = 1) -> None:
        """Queue a fault for the next `times` requests to `endpoint` ("summary", "events",
        or None for either); times=-1 keeps it until clear_faults(). Faults apply in order."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if endpoint not in (None, "summary", "events"):
            raise ValueError("endpoint must be 'summary', 'events' or None")
        if times == 0 or times < -1:
            raise ValueError("times must be positive, or -1 for persistent")
        with self._lock:
            self._faults.append(_Fault(kind, endpoint, times))

    def clear_faults(self) -> None:
        """Drop every queued or persistent fault."""
        with self._lock:
            self._faults.clear()

    # -- HTTP --

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request; usable as `httpx.MockTransport(sim.handle)`."""
        reply = self._respond(
            request.method,
            request.url.path,
            dict(request.url.params),
            request.headers.get("X-Api-Key"),
            live=False,
        )
        if reply.action == "hang":
            raise httpx.ReadTimeout("simulated hang", request=request)
        if reply.action == "drop":
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        return httpx.Response(reply.status, headers=reply.headers, content=reply.body)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> SimulatorServer:
        """Serve this simulator over HTTP on a background thread (port 0 = any free port)."""
        return SimulatorServer(self, host, port)

    # -- generation (callers hold self._lock) --

    def _generate_through(self, minute: int) -> None:
        while self._next_minute <= minute:
            self._generate_minute(self._next_minute)
            self._next_minute += 1

    def _generate_minute(self, minute: int) -> None:
        rng = random.Random(f"{self.seed}:{minute}")
        base_rate = self._base_rate(minute)
        drafts = [
            _draw_job(rng, minute, i, self._customer_cum) for i in range(_poisson(rng, base_rate))
        ]
        # Drawn after the jobs so that it never shifts their random draws.
        if rng.random() < _NON_JOB_EVENT_PROB:
            self._add(_non_job_event(rng, minute))
        drafts.extend(self._runaway_drafts(minute, base_rate, next_index=len(drafts)))
        for draft in drafts:
            self._emit(draft)

    def _runaway_drafts(self, minute: int, base_rate: float, next_index: int) -> list[_Draft]:
        # Extra arrivals come from their own stream, so baseline jobs are identical with or
        # without the incident; keeping only matching extras multiplies just their rate.
        extras: list[_Draft] = []
        for k, (incident, start_ts, end_ts) in enumerate(self._windows):
            if incident.kind != "spend_runaway":
                continue
            if not (start_ts < (minute + 1) * 60 and end_ts > minute * 60):
                continue
            rng = random.Random(f"{self.seed}:{minute}:runaway:{k}")
            factor = incident.factor_at(max(start_ts, minute * 60.0) + 30.0)
            for _ in range(_poisson(rng, base_rate * (factor - 1))):
                draft = _draw_job(rng, minute, next_index, self._customer_cum)
                next_index += 1
                if _matches(incident, start_ts, end_ts, draft):
                    extras.append(draft)
        return extras

    def _emit(self, d: _Draft) -> None:
        """Turn a drafted job into its creation and final events, unless an outage drops it."""
        failure_rate = BASE_FAILURE_RATE[d.model]
        fail_delay = d.delay_fail
        for incident, start_ts, end_ts in self._windows:
            if incident.kind == "failure_spike" and incident.sudden:
                finish = d._replace(ts=d.ts + d.delay_ok)
                if _matches(incident, start_ts, end_ts, finish) and (
                    d.u_fail < incident.failure_rate
                ):
                    failure_rate, fail_delay = 1.0, d.delay_ok
                continue
            if not _matches(incident, start_ts, end_ts, d):
                continue
            if incident.kind == "outage":
                return
            if incident.kind == "failure_spike":
                failure_rate = max(failure_rate, incident.failure_rate)
        failed = d.u_fail < failure_rate
        job_id = f"job_{d.core}"
        self._add(
            _Event(
                ts=d.ts,
                id=f"evt_{d.core}0",
                request_id=d.request_ids[0],
                method="POST",
                endpoint="/v1/jobs",
                job_id=job_id,
                model=d.model,
                output_format=d.output_format,
                status="pending",
                duration_seconds=d.duration,
                customer=d.customer,
            )
        )
        credits = round(d.duration / 60 * MODEL_PRICES[d.model], 2)
        self._add(
            _Event(
                ts=d.ts + (fail_delay if failed else d.delay_ok),
                id=f"evt_{d.core}1",
                request_id=d.request_ids[1],
                method="GET",
                endpoint=f"/v1/jobs/{job_id}",
                job_id=job_id,
                model=d.model,
                output_format=d.output_format,
                status="failed" if failed else "completed",
                credit_cents=0 if failed else round(credits * 100),
                duration_seconds=d.duration,
                error_code=d.error_code if failed else None,
                customer=d.customer,
            )
        )

    def _add(self, event: _Event) -> None:
        # Whole seconds by default; a steady stream spreads each second's events over it.
        offset = zlib.crc32(event.id.encode()) / 2**32 if self.events_per_second else 0.0
        event = event._replace(at=event.ts + offset)
        self._buckets.setdefault(event.ts // 60, []).append(event)

    def _bucket(self, minute: int) -> list[_Event]:
        """The events created in `minute`, sorted; only complete once that minute is generated."""
        bucket = self._buckets.setdefault(minute, [])
        if minute not in self._sorted:
            bucket.sort(key=lambda e: (e.at, e.id))
            self._sorted.add(minute)
        return bucket

    def _base_rate(self, minute: int) -> float:
        busy = self._busy(minute)
        if self.events_per_second is not None:
            return self.jobs_per_hour / 60 * busy  # steady: no daily or weekly rhythm
        return self.jobs_per_hour / 60 * _rhythm(minute) * busy

    def _busy(self, minute: int) -> float:
        """The busy hour's factor at `minute` (epoch minutes), 1 outside it."""
        if self.busy_hour is None:
            return 1.0
        hour, factor = self.busy_hour
        weekday = (minute // 1440 + 3) % 7  # 1970-01-01 was a Thursday (weekday 3)
        return factor if weekday < 5 and minute % 1440 // 60 == hour else 1.0

    def forget_before(self, moment: datetime) -> None:
        """Drop generated events of whole days before `moment`, keeping their daily totals,
        so a long soak does not measure the simulator's memory instead of the bot's.
        events_until() no longer returns what was forgotten."""
        cut_day = _aware_utc(moment).date()
        with self._lock:
            day = self._origin_date
            while day < cut_day:
                self._generated_day(day, _day_start_ts(day + timedelta(days=2)))
                day += timedelta(days=1)
            cut = _day_start_ts(cut_day) // 60
            for minute in [m for m in self._buckets if m < cut]:
                del self._buckets[minute]
                self._sorted.discard(minute)
                self._bucket_aggs.pop(minute, None)

    # -- aggregation --

    def _day_agg(self, day: date, now_ts: float) -> _Agg:
        if day >= self._origin_date:
            return self._generated_day(day, now_ts)
        if day >= self._origin_date - timedelta(days=self.history_days):
            with self._lock:
                if day not in self._day_aggs:
                    self._day_aggs[day] = self._synthetic_day(day)
                return self._day_aggs[day]
        return {}

    def _generated_day(self, day: date, now_ts: float) -> _Agg:
        """Totals of the events created on `day` up to now (jobs by creation, outcomes by
        final event)."""
        first = _day_start_ts(day) // 60
        end = first + 1440
        now_minute = int(now_ts // 60)
        if now_minute < first:
            return {}
        with self._lock:
            if day in self._day_aggs:
                return self._day_aggs[day]
            self._generate_through(min(now_minute, end - 1))
            agg: _Agg = {}
            for minute in range(first, min(end, now_minute)):
                if minute not in self._bucket_aggs:
                    self._bucket_aggs[minute] = _aggregate(self._bucket(minute))
                _merge(agg, self._bucket_aggs[minute])
            if now_minute < end:
                visible = [e for e in self._bucket(now_minute) if e.at <= now_ts]
                _merge(agg, _aggregate(visible))
            else:
                self._day_aggs[day] = agg  # the whole day is in the past: it can no longer change
            return agg

    def _synthetic_day(self, day: date) -> _Agg:
        """Plausible aggregates for a day before the simulation, at the same rates as
        generated traffic (no incidents), seeded by the date."""
        rng = random.Random(f"{self.seed}:day:{day.isoformat()}")
        if self.events_per_second is not None:  # steady: every hour alike, weekends too
            expected = 24 * self.jobs_per_hour
        else:  # the cosine swing sums to zero over a day, leaving the day's mean rate
            weekend = _WEEKEND_FACTOR if day.weekday() >= 5 else 1.0
            expected = 24 * self.jobs_per_hour * weekend / _WEEK_MEAN
        if self.busy_hour is not None:  # the busy hour's extra arrivals, minute by minute
            first = _day_start_ts(day) // 60 + 60 * self.busy_hour[0]
            expected += sum(
                self._base_rate(m) * (1 - 1 / self._busy(m)) for m in range(first, first + 60)
            )
        agg: _Agg = {}
        for model, share in MODEL_MIX.items():
            total = _poisson(rng, expected * share)
            failed = min(total, _poisson(rng, total * BASE_FAILURE_RATE[model]))
            completed = total - failed
            mean, sd = _credit_moments(model)
            credits = completed * mean + rng.gauss(0.0, sd * math.sqrt(completed))
            if total:
                agg[model] = [total, completed, failed, max(0, round(credits * 100))]
        return agg

    # -- HTTP core, shared by MockTransport and the loopback server --

    def _respond(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        api_key: str | None,
        *,
        live: bool,
    ) -> _Reply:
        request_id = self._new_request_id()
        at = self.now()
        route = _ROUTES.get(path)
        fault: str | None = None
        if route is None:
            reply = _error(404, "not_found", f"No such endpoint: {path}", request_id)
        elif method != "GET":
            reply = _error(405, "invalid_request", f"{method} is not allowed here", request_id)
        else:
            fault = self._take_fault(route)
            if fault is None:
                reply = self._answer(route, params, api_key, request_id)
            else:
                reply = self._faulty(fault, route, params, api_key, request_id)
        status = (
            0 if reply.action == "drop" or (reply.action == "hang" and not live) else reply.status
        )
        with self._lock:
            self.requests.append(RequestRecord(path, dict(params), status, at, fault))
        return reply

    def _answer(
        self, route: str, params: Mapping[str, str], api_key: str | None, request_id: str
    ) -> _Reply:
        """The fault-free answer: auth, then parameter checks, then the body."""
        if not api_key:
            return _error(401, "missing_api_key", "The X-Api-Key header is missing.", request_id)
        if not hmac.compare_digest(api_key.encode(), self.api_key.encode()):
            return _error(401, "invalid_api_key", "The API key is unknown or disabled.", request_id)
        value = _parse_param(route, params)
        if value is None:
            name, low, high, _ = _PARAMS[route]
            message = f"'{name}' must be an integer from {low} to {high}."
            return _error(400, "invalid_request", message, request_id)
        return _json(200, self._payload(route, value), request_id)

    def _faulty(
        self,
        kind: str,
        route: str,
        params: Mapping[str, str],
        api_key: str | None,
        request_id: str,
    ) -> _Reply:
        if kind in _ERROR_FAULTS:
            status, code, message, headers = _ERROR_FAULTS[kind]
            return _error(status, code, message, request_id, headers)
        if kind == "hang":
            # The real server answers normally after the hang, if anyone is still listening.
            return replace(self._answer(route, params, api_key, request_id), action="hang")
        if kind == "drop":
            return _Reply(0, action="drop")
        if kind == "non_json":
            html = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
            return _Reply(200, html, {"Content-Type": "text/html", "X-Request-Id": request_id})
        value = _parse_param(route, params) or _PARAMS[route][3]
        payload = self._payload(route, value)
        if kind == "wrong_shape":
            if route == "events":
                payload["items"] = {"unexpected": "an object where a list belongs"}
            else:
                payload["credits_used"] = str(payload["credits_used"])
        else:  # huge: a valid body padded far past any sane size limit
            payload["padding"] = "x" * HUGE_BODY_BYTES
        return _json(200, payload, request_id)

    def _payload(self, route: str, value: int) -> dict[str, Any]:
        return self.summary(value) if route == "summary" else self.events_page(value)

    def _take_fault(self, route: str) -> str | None:
        with self._lock:
            for fault in self._faults:
                if fault.endpoint is None or fault.endpoint == route:
                    if fault.remaining > 0:
                        fault.remaining -= 1
                        if fault.remaining == 0:
                            self._faults.remove(fault)
                    return fault.kind
        return None

    def _new_request_id(self) -> str:
        with self._lock:
            return f"req_{self._reply_rng.getrandbits(64):016x}"


# --- loopback server ----------------------------------------------------------------------


class SimulatorServer:
    """The simulator on a real socket: a ThreadingHTTPServer in a daemon thread.

    Use as a context manager; `close()` returns promptly even while a hang is in progress.
    """

    def __init__(self, simulator: Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self._stop = threading.Event()
        self._httpd = _QuietHTTPServer((host, port), _handler_class(simulator, self._stop))
        self.port: int = self._httpd.server_port
        self.url = f"http://{host}:{self.port}"
        self._closed = False
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"simulator-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()  # wakes any hanging handler, which then drops its connection
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=2.0)

    def __enter__(self) -> SimulatorServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _QuietHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (read timeout, oversized body) is expected here; anything
        # else is a simulator bug, so keep the default traceback for it.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _handler_class(simulator: Simulator, stop: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve()

        do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output and the demo console clean

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)  # keep the connection usable for the next request
            url = urlsplit(self.path)
            params: dict[str, str] = {}
            for name, value in parse_qsl(url.query, keep_blank_values=True):
                params.setdefault(name, value)  # first value wins, as in httpx.QueryParams
            api_key = self.headers.get("X-Api-Key")
            reply = simulator._respond(self.command, url.path, params, api_key, live=True)
            if reply.action == "hang" and stop.wait(simulator.hang_seconds):
                reply = _Reply(0, action="drop")  # shutting down: do not answer
            answer(self, reply.status, reply.headers, reply.body, drop=reply.action == "drop")

    return Handler


# --- helpers ------------------------------------------------------------------------------


def _aware_utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware (UTC)")
    return t.astimezone(UTC)


def _day_start_ts(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _rhythm(minute: int) -> float:
    """Relative arrival rate for a minute since the epoch; averages 1.0 over a week."""
    hour = (minute % 1440 + 0.5) / 60
    weekday = (minute // 1440 + 3) % 7  # 1970-01-01 was a Thursday (weekday 3)
    daily = 1 + _DAILY_SWING * math.cos(2 * math.pi * (hour - _PEAK_HOUR) / 24)
    return daily * (_WEEKEND_FACTOR if weekday >= 5 else 1.0) / _WEEK_MEAN


def _poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw; Knuth's method for small means, a normal approximation for large."""
    if lam <= 0:
        return 0
    if lam > 60:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit = math.exp(-lam)
    k = 0
    p = rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _cumulative(weights: Sequence[float]) -> list[float]:
    """Cumulative weights for `_pick`; the last is infinite so float slack cannot overflow."""
    out = list(itertools.accumulate(weights))
    out[-1] = math.inf
    return out


_MODELS = list(MODEL_MIX)
_MODEL_CUM = _cumulative(list(MODEL_MIX.values()))
_FORMATS = list(OUTPUT_FORMATS)
_FORMAT_CUM = _cumulative(list(OUTPUT_FORMATS.values()))
_CUSTOMER_CHOICES: list[tuple[str, str] | None] = [(c, s) for c, s, _ in CUSTOMERS] + [None]
_CUSTOMER_CUM = _cumulative([w for _, _, w in CUSTOMERS] + [NO_METADATA_SHARE])


def _pick(rng: random.Random, choices: Sequence[_T], cumulative: Sequence[float]) -> _T:
    """rng.choices(k=1) without its per-call overhead (weights sum to 1)."""
    return choices[bisect.bisect(cumulative, rng.random())]


def _customer_cumulative(shares: Mapping[str, float]) -> list[float]:
    """`_pick`'s weights for the customers, with `shares` of the jobs for the named ones
    and the rest spread over the others (and no metadata) by their usual weights."""
    known = {c for c, _, _ in CUSTOMERS}
    if not set(shares) <= known:
        raise ValueError(f"unknown customers {sorted(set(shares) - known)}")
    if any(v < 0 for v in shares.values()) or sum(shares.values()) > 1:
        raise ValueError("customer shares must be at least 0 and sum to at most 1")
    if not shares:
        return _CUSTOMER_CUM
    weights = [w for c, _, w in CUSTOMERS if c not in shares] + [NO_METADATA_SHARE]
    scale = (1 - sum(shares.values())) / sum(weights)
    return _cumulative(
        [shares[c] if c in shares else w * scale for c, _, w in CUSTOMERS]
        + [NO_METADATA_SHARE * scale]
    )


def _draw_job(
    rng: random.Random, minute: int, index: int, customers: Sequence[float] = ()
) -> _Draft:
    # Every draw happens unconditionally and in a fixed order, so incidents (which only
    # read these values) never shift the random stream of the jobs that follow.
    ts = minute * 60 + rng.randrange(60)
    model = _pick(rng, _MODELS, _MODEL_CUM)
    customer = _pick(rng, _CUSTOMER_CHOICES, customers or _CUSTOMER_CUM)
    output_format = _pick(rng, _FORMATS, _FORMAT_CUM)
    duration = round(min(max(rng.lognormvariate(_DURATION_MU, _DURATION_SIGMA), 1.0), 1800.0), 1)
    u_fail = rng.random()
    error_code = "timeout" if rng.random() < _TIMEOUT_SHARE else "internal_error"
    delay_ok = round(15 + duration * rng.uniform(0.8, 2.5))
    delay_fail = round(rng.uniform(300, 420) if error_code == "timeout" else rng.uniform(30, 180))
    request_ids = (f"req_{rng.getrandbits(64):016x}", f"req_{rng.getrandbits(64):016x}")
    # Minute (fixed width), index, random tail: unique by construction, random-looking.
    core = f"{minute:07x}{index:03x}{rng.getrandbits(24):06x}"
    return _Draft(
        ts,
        core,
        model,
        output_format,
        duration,
        customer,
        u_fail,
        error_code,
        min(delay_ok, _MAX_DELAY_SECONDS),
        min(delay_fail, _MAX_DELAY_SECONDS),
        request_ids,
    )


def _non_job_event(rng: random.Random, minute: int) -> _Event:
    ts = minute * 60 + rng.randrange(60)
    # 'x' never occurs in the hex job stems, so these ids cannot collide with job events.
    event_id = f"evt_{minute:07x}x{rng.getrandbits(24):06x}"
    request_id = f"req_{rng.getrandbits(64):016x}"
    return _Event(ts, event_id, request_id, "GET", "/v1/usage/summary")


def _matches(incident: Incident, start_ts: float, end_ts: float, d: _Draft) -> bool:
    if not start_ts <= d.ts < end_ts:
        return False
    if incident.model is not None and incident.model != d.model:
        return False
    customer, segment = d.customer if d.customer else (None, None)
    if incident.customer is not None and incident.customer != customer:
        return False
    return incident.segment is None or incident.segment == segment


def _credit_moments(model: str) -> tuple[float, float]:
    """Mean and standard deviation of one completed job's credits."""
    s2 = _DURATION_SIGMA**2
    mean_duration = math.exp(_DURATION_MU + s2 / 2)
    sd_duration = math.sqrt((math.exp(s2) - 1) * math.exp(2 * _DURATION_MU + s2))
    per_second = MODEL_PRICES[model] / 60
    return mean_duration * per_second, sd_duration * per_second


def _aggregate(events: Sequence[_Event]) -> _Agg:
    agg: _Agg = {}
    for e in events:
        if e.model is None:
            continue
        row = agg.setdefault(e.model, [0, 0, 0, 0])
        if e.status == "pending":
            row[0] += 1
        elif e.status == "completed":
            row[1] += 1
        elif e.status == "failed":
            row[2] += 1
        row[3] += e.credit_cents
    return agg


def _merge(into: _Agg, other: _Agg) -> None:
    for model, row in other.items():
        target = into.setdefault(model, [0, 0, 0, 0])
        for i, value in enumerate(row):
            target[i] += value


def _counts(agg: _Agg) -> dict[str, Any]:
    total = [sum(row[i] for row in agg.values()) for i in range(4)]
    return {
        "total_jobs": total[0],
        "completed_jobs": total[1],
        "failed_jobs": total[2],
        "credits_used": total[3] / 100,
    }


def _by_model(agg: _Agg) -> list[dict[str, Any]]:
    return [
        {"model": model, **_counts({model: agg[model]})}
        for model in MODEL_PRICES
        if model in agg and any(agg[model])
    ]


def _parse_param(route: str, params: Mapping[str, str]) -> int | None:
    """The route's integer parameter (its default when absent), or None when invalid."""
    name, low, high, default = _PARAMS[route]
    raw = params.get(name)
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw):
        return None
    value = int(raw)
    return value if low <= value <= high else None


def _json(status: int, payload: Mapping[str, Any], request_id: str) -> _Reply:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return _Reply(status, body, {"Content-Type": "application/json", "X-Request-Id": request_id})


def _error(
    status: int,
    code: str,
    message: str,
    request_id: str,
    headers: Mapping[str, str] | None = None,
) -> _Reply:
    body = {"error": {"code": code, "message": message, "request_id": request_id}}
    reply = _json(status, body, request_id)
    return replace(reply, headers={**reply.headers, **(headers or {})})
