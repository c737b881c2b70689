"""What several test files share: event and transition factories, a filled store, the
environment of a bot process, Slack request signing, float-tolerant comparison.

Test modules import from here (or get fixtures from conftest.py), never from each other.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from slack_sdk.signature import Clock

from bot.api_schema import EVENTS_PATH
from bot.config import Settings
from bot.engine import Engine
from bot.metrics import batch_from_items
from bot.models import (
    AlertState,
    Event,
    EventsPage,
    PollConfig,
    PollRecord,
    Rule,
    RuleSet,
    Summary,
    Thread,
    Transition,
    parse_time,
)
from bot.notify import SlackNotifier, make_web_clients
from bot.server import make_server
from bot.source import UsageClient
from bot.standins.simulator import Incident, ManualClock, Simulator
from bot.standins.slack import RecordedRequest, SlackStandIn
from bot.store import Store
from bot.worker import Worker

T0 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # a Monday


def make_event(
    n: int,
    at: datetime,
    *,
    model: str = "pro",
    status: str | None = "completed",
    credits: float = 60.0,
    segment: str | None = "enterprise",
) -> Event:
    return Event(
        id=f"evt_{n:06d}",
        created_at=at,
        request_id=f"req_{n:06d}",
        method="GET",
        endpoint="/v1/jobs/job",
        status_code=200,
        job_id=f"job_{n:06d}",
        model=model,
        output_format="webm",
        status=status,
        credits_used=credits,
        duration_seconds=60.0,
        error_code="internal_error" if status == "failed" else None,
        metadata={"customer_id": "acme", "segment": segment} if segment else {},
    )


def event_series(
    count: int, start: datetime = T0, step: timedelta = timedelta(minutes=1)
) -> list[Event]:
    return [make_event(i, start + i * step) for i in range(count)]


def make_firing(
    at: datetime = T0,
    *,
    rule: str = "failed-job-rate",
    group: tuple[str, ...] = ("pro",),
    request_ids: tuple[str, ...] = ("req_000099",),
    job_ids: tuple[str, ...] = ("job_000099",),
    state: str = "firing",
) -> Transition:
    """A failure-rate transition as the engine makes them (40% against 2%, z 6.2)."""
    return Transition(
        rule=rule,
        group=group,
        group_by=("model",),
        state=state,
        at=at,
        value=0.4,
        baseline=0.02,
        zscore=6.2,
        volume=20,
        since=at,
        peak_zscore=6.2,
        peak_value=0.4,
        window=900.0,
        request_ids=request_ids,
        job_ids=job_ids,
    )


# -- comparison ----------------------------------------------------------------------


def same(a: object, b: object) -> bool:
    """Equal decisions, and equal figures up to float rounding (NaN equals NaN)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (a != a and b != b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if hasattr(a, "__dataclass_fields__") and type(a) is type(b):
        return all(same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return a == b


# -- the /usage command's store -------------------------------------------------------

POLLED = T0 + timedelta(hours=1)
NOW = POLLED + timedelta(minutes=5)
THREAD_URL = "https://slack.com/archives/C0123ABCD/p1795400000123456"

# (date, [(model, total, completed, failed, credits)]): light is absent on the 23rd.
DAYS = [
    ("2026-11-21", [("pro", 100, 90, 10, 600.0), ("light", 50, 50, 0, 100.0)]),
    ("2026-11-22", [("pro", 80, 78, 2, 480.0), ("light", 40, 40, 0, 80.0)]),
    ("2026-11-23", [("pro", 120, 100, 20, 700.0)]),
]


def summary_body() -> dict[str, Any]:
    """A summary response (usage-api.md 3a) for DAYS, totals summed from the models."""
    fields = ("total_jobs", "completed_jobs", "failed_jobs", "credits_used")
    daily: list[dict[str, Any]] = []
    for day, models in DAYS:
        by_model: list[dict[str, Any]] = [
            dict(zip(("model", *fields), figures, strict=True)) for figures in models
        ]
        totals = {k: sum(entry[k] for entry in by_model) for k in fields}
        daily.append({"date": day, **totals, "by_model": by_model})
    return {
        "days": len(DAYS),
        "start_date": DAYS[0][0],
        "end_date": DAYS[-1][0],
        **{k: sum(d[k] for d in daily) for k in fields},
        "daily": daily,
    }


def fill(store: Store) -> None:
    """Six events (one failed), a 3-day summary, one firing alert with its Slack thread."""
    events = [*event_series(5), make_event(99, T0 + timedelta(minutes=9), status="failed")]
    store.save_events(EventsPage(100, tuple(reversed(events))), stored_at=T0)
    store.log_poll(PollRecord(EVENTS_PATH, NOW - timedelta(seconds=30), NOW, "ok", 200))
    store.save_summary(Summary.from_api(summary_body()), POLLED)
    firing = make_firing()
    store.save_decisions(
        [AlertState("failed-job-rate", ("pro",), "firing", 1, 0, T0, 6.2, 0.4)],
        [firing],
        {"failed-job-rate": T0},
        T0,
    )
    store.save_thread(
        Thread("failed-job-rate", ("pro",), "C0123ABCD", "1795400000.123456", "open"), T0
    )


# -- what drives an alert (/usage model, query model, serve, Socket Mode) ----------------

FAILURE_RULE = Rule(
    "failed-job-rate", "failure_rate", group_by=("model",), bucket=900, baseline=7 * 86400
)
CUSTOMERS = (("acme", "enterprise"), ("globex", "enterprise"), ("initech", "smb"))


def failing_hour(store: Store, at: datetime, customer: str = "globex") -> None:
    """A week of pro jobs before `at` (each customer's every ten minutes, one in twenty
    failing), then an hour in which every job of `customer` fails: the failure-rate alert
    on pro firing on that hour (1 h window, 5% baseline), saved with its state."""
    events: list[Event] = []
    start = at - timedelta(days=7, hours=1)
    for step in range(7 * 24 * 6 + 6):
        moment = start + timedelta(minutes=10 * step)
        for name, segment in CUSTOMERS:
            n = len(events)
            late = moment >= at - timedelta(hours=1)
            failed = (late and name == customer) or n % 20 == 7
            event = make_event(n, moment, status="failed" if failed else "completed")
            events.append(replace(event, metadata={"customer_id": name, "segment": segment}))
    for first in range(0, len(events), 100):
        page = events[first : first + 100]
        store.save_events(EventsPage(len(page) + 1, tuple(reversed(page))), stored_at=at)
    firing = replace(make_firing(at), window=3600.0, baseline=0.05)
    store.save_decisions(
        [AlertState(firing.rule, firing.group, "firing", 1, 0, at, 6.2, 0.4)],
        [firing],
        {firing.rule: at},
        at,
    )


# -- API bodies ----------------------------------------------------------------------

EVENT = {
    "id": "evt_1",
    "created_at": "2026-11-29T10:00:00Z",
    "request_id": "req_1",
    "method": "POST",
    "endpoint": "/v1/jobs",
    "status_code": 200,
    "job_id": "job_1",
    "model": "pro",
    "output_format": "webm",
    "status": "failed",
    "credits_used": 0,
    "duration_seconds": 61.2,
    "error_code": "internal_error",
    "metadata": {"customer_id": "acme", "segment": "enterprise"},
    "something_new": "extra fields are tolerated",
}


# -- bot processes -------------------------------------------------------------------


def bot_env(url: str, db: str | Path, **extra: str) -> dict[str, str]:
    """The environment of a `usage-bot` child: the simulator at `url`, the store at `db`
    (a SQLite path, or a PostgreSQL URL given as DATABASE_URL)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "USAGE_", "BOT_"))}
    env.pop("DATABASE_URL", None)
    env.update(USAGE_API_BASE_URL=url, USAGE_API_KEY="sim-key")
    env["DATABASE_URL" if isinstance(db, str) else "BOT_DB_PATH"] = str(db)
    env.update({"BOT_POLL_SECONDS": "0.2", **extra})
    return env


# -- Slack request signing -----------------------------------------------------------

SECRET = "test-signing-secret-0123456789abcdef"
FORM = "application/x-www-form-urlencoded"


def signed(body: bytes, *, at: float | None = None, secret: str = SECRET) -> dict[str, str]:
    """Headers as Slack sends them, computed here by hand (not with the code under test)."""
    timestamp = str(int(time.time() if at is None else at))
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256)
    return {
        "Content-Type": FORM,
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest.hexdigest()}",
    }


# -- Slack look-ups ------------------------------------------------------------------------


def second_looks(slack: SlackStandIn, since: float) -> list[RecordedRequest]:
    """The notifier's look-ups for a message it may already have posted (a step attempted
    but never recorded as done): a thread's replies, or the channel's history from an hour
    before that attempt, which came after `since` (wall clock). Not the cold-start
    scan (a week back, or further for budget posts), which any run on a database without
    alert states or threads, or found empty, makes, with or without a lost post."""
    return [
        r
        for r in slack.requests
        if r.method == "conversations.replies"
        or r.method == "conversations.history"
        and float(r.params.get("oldest") or 0) >= since
    ]


# -- rigs shared by several test files -----------------------------------------------

RIG_START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
RIG_RULES = RuleSet(
    poll=PollConfig(events_every=60, summary_every=900, summary_days=30, probe_every=300)
)


class Rig:
    """A worker wired to an in-process simulator on a manual clock."""

    def __init__(self, store: Store, **sim_options: object) -> None:
        self.clock = ManualClock(RIG_START)
        self.sim = Simulator(start=RIG_START, clock=self.clock, **sim_options)  # type: ignore[arg-type]
        self.http = httpx.Client(
            base_url="http://sim", transport=httpx.MockTransport(self.sim.handle)
        )
        self.sleeps: list[float] = []
        client = UsageClient(self.http, api_key="sim-key", sleep=self.sleeps.append)
        self.store = store
        self.worker = Worker(client=client, store=store, ruleset=RIG_RULES, clock=self.clock)

    def tick(self, advance: timedelta = timedelta(minutes=1)):  # type: ignore[no-untyped-def]
        self.clock.advance(advance)
        return self.worker.tick()

    def hits(self, endpoint: str) -> int:
        return sum(1 for r in self.sim.requests if r.endpoint == endpoint)

    def stored(self) -> set[str]:
        return stored_ids(self.store)

    def produced(self, after: datetime, until: datetime) -> set[str]:
        """Ids of the events the API produced in (after, until]: what a cycle at `until`
        had to fetch when the one at `after` had stored everything before it."""
        return produced_ids(self.sim, after, until)


def stored_ids(store: Store) -> set[str]:
    return {e.id for e in store.recent_events(100_000)}


def produced_ids(sim: Simulator, after: datetime, until: datetime) -> set[str]:
    return {e["id"] for e in sim.events_until(until) if parse_time(e["created_at"]) > after}


# A failure-rate rule over two days of baseline: fast to build, used by engine and
# feedback tests alike.
FAILURES_2D = Rule(
    name="failed-job-rate",
    metric="failure_rate",
    group_by=("model",),
    bucket=900,
    baseline=2 * 86400,
    method="plain",
    z=4,
    min_volume=10,
    min_rate=0.05,
    recover_for=2,
)


# A model going silent: jobs per hour against the same hour of earlier days.
VOLUME_DOWN = Rule(
    name="volume-drop",
    metric="volume",
    group_by=("model",),
    bucket=3600,
    baseline=4 * 86400,
    seasonal="hour_of_day",
    z=4,
    direction="down",
    min_volume=20,
)


def outage_stream(start: datetime) -> tuple[list[dict[str, Any]], Incident, datetime]:
    """Ten days of traffic (300 jobs an hour) from `start`, model `original` silent from
    12:00 to 16:00 on the last day: the events, the outage and the end."""
    end = start + timedelta(days=10)
    outage = Incident(
        "outage",
        start + timedelta(days=9, hours=12),
        start + timedelta(days=9, hours=16),
        model="original",
    )
    sim = Simulator(start=start, clock=ManualClock(end), jobs_per_hour=300, incidents=[outage])
    return sim.events_until(end), outage, end


def engine_for(rules: list[Rule], items: list[dict], summary: dict | None = None) -> Engine:  # type: ignore[type-arg]
    engine = Engine(rules)
    engine.add_events(batch_from_items(items))
    if summary is not None:
        parsed = Summary.from_api(summary)
        engine.add_daily(parsed.daily, final_before=parsed.end_date)
    return engine


def serve_app(settings: Settings, clock: Clock | None = None) -> Iterator[str]:
    """`serve`'s HTTP server on a free loopback port, in a thread; yields its URL."""
    server: ThreadingHTTPServer = make_server(settings, "127.0.0.1", clock=clock)
    # A short poll interval: shutdown() waits for it, once per test.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- a backlog of alerts to deliver (chaos, two workers) ---------------------------

KEYS = [f"customer-{i:02d}" for i in range(20)]


def seed_backlog(db: str | Path, now: datetime) -> None:
    """Twenty alert keys that fired and resolved, all still to be told (the outbox), with
    their alert states (ok again) as the worker that judged them left them: so no life
    takes the database for a fresh one and adopts threads from Slack's history, and a
    post whose record a kill prevented can only be found by looking before posting."""
    store = Store(db)
    transitions = []
    for i, key in enumerate(KEYS):
        at = now - timedelta(hours=2) + timedelta(minutes=5 * i)
        common = dict(
            rule="failed-job-rate",
            group=(key,),
            group_by=("model",),
            baseline=0.02,
            volume=40.0,
            since=at,
            peak_zscore=9.0,
            peak_value=0.6,
            window=900.0,
        )
        transitions.append(
            Transition(
                state="firing",
                at=at,
                value=0.6,
                zscore=9.0,
                request_ids=(f"req_{i}",),
                job_ids=(f"job_{i}",),
                **common,
            )
        )
        transitions.append(
            Transition(
                state="resolved", at=at + timedelta(minutes=30), value=0.01, zscore=0.1, **common
            )
        )
    states = [AlertState("failed-job-rate", (key,)) for key in KEYS]
    store.save_decisions(states, transitions, {}, now)
    store.close()


# -- a worker telling Slack: the simulator in-process, the Slack stand-in over loopback --


class Wall:
    """Real-time stand-in for delivery backoff, moved by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class SlackRig:
    """One worker with its store and real Slack clients; Slack, the API and the clock
    outlive it (a restart is a second rig on the same database)."""

    def __init__(
        self,
        db: str | Path,
        slack: SlackStandIn,
        sim: Simulator,
        clock: ManualClock,
        rules: tuple[Rule, ...],
        *,
        poll: PollConfig,
        channel: str = "#usage-alerts",
        inhibit: bool = True,
    ) -> None:
        self.wall = Wall()
        self.store = Store(db)
        reader, poster = make_web_clients("xoxb-test", slack.url, timeout=3)
        self.notifier = SlackNotifier(
            reader=reader,
            poster=poster,
            store=self.store,
            rules={rule.name: rule for rule in rules},
            default_channel=channel,
            wall=self.wall,
            inhibit=inhibit,
        )
        self.http = httpx.Client(base_url="http://sim", transport=httpx.MockTransport(sim.handle))
        self.clock = clock
        self.worker = Worker(
            client=UsageClient(self.http, api_key="sim-key"),
            store=self.store,
            ruleset=RuleSet(poll=poll, rules=rules, inhibit=inhibit),
            clock=clock,
            notifier=self.notifier,
            wall=self.wall,
        )

    def run_until(self, moment: datetime, step: timedelta = timedelta(minutes=2)) -> None:
        while self.clock() < moment:
            self.clock.advance(step)
            self.worker.tick()

    def close(self) -> None:
        self.http.close()
        self.store.close()
