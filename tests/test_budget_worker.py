"""Budgets in the worker: thresholds told once each, in order, across restarts; the
enforcement hook signed, retried through a receiver's 500s and accepted exactly once;
the daily digest once per day across a restart at its minute."""

from __future__ import annotations

import io
import json
import statistics
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from bot import digest, hooks
from bot.budget_book import BudgetBook
from bot.commands import budget_json
from bot.errors import NotifyError
from bot.models import Budget, DigestConfig, PollConfig, RuleSet
from bot.notify import ConsoleNotifier
from bot.source import UsageClient
from bot.standins.simulator import ManualClock, Simulator
from bot.store import Store
from bot.worker import HookSettings, Worker

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday
POLL = PollConfig(events_every=60, summary_every=900, summary_days=30, probe_every=300)
SECRET = "whsec-test-0123456789"


@dataclass
class Receiver:
    """A backend's enforcement endpoint: verifies, answers 500 to the first two tries of
    each key, then accepts; remembers what it accepted."""

    failures_per_key: int = 2
    seen: list[tuple[str, bool]] = field(default_factory=list)  # (key, signature ok)
    accepted: list[dict[str, object]] = field(default_factory=list)
    clock: ManualClock | None = None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert receiver.clock is not None
                ok = hooks.verify(
                    SECRET,
                    self.headers.get(hooks.TIMESTAMP_HEADER, ""),
                    body,
                    self.headers.get(hooks.SIGNATURE_HEADER, ""),
                    now=receiver.clock().timestamp(),
                )
                key = self.headers.get(hooks.IDEMPOTENCY_HEADER, "")
                receiver.seen.append((key, ok))
                tries = sum(1 for k, _ in receiver.seen if k == key)
                if not ok:
                    self.send_response(401)
                elif tries <= receiver.failures_per_key:
                    self.send_response(500)
                else:
                    if all(a["idempotency_key"] != key for a in receiver.accepted):
                        receiver.accepted.append(json.loads(body))
                    self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    got = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), got.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield got, f"http://127.0.0.1:{server.server_address[1]}/pause-model?token=abc"
    server.shutdown()
    server.server_close()
    thread.join()


class Rig:
    """Workers on one database file, against one simulator and one manual clock."""

    def __init__(self, db_path: Path, ruleset: RuleSet, hook_url: str | None = None) -> None:
        self.clock = ManualClock(START)
        self.sim = Simulator(start=START, clock=self.clock)
        self.db_path = db_path
        self.ruleset = ruleset
        self.hook_url = hook_url
        self.out = io.StringIO()
        self.http = httpx.Client(
            base_url="http://sim", transport=httpx.MockTransport(self.sim.handle)
        )
        self.hook_http = httpx.Client(timeout=5.0)
        self.store: Store | None = None
        self.worker: Worker | None = None
        self.start_worker()

    def start_worker(self) -> None:
        """A fresh process's worth of state: new store connection, new worker."""
        if self.store is not None:
            self.store.close()
        self.store = Store(self.db_path)
        urls = {b.name: self.hook_url for b in self.ruleset.budgets if self.hook_url}
        self.worker = Worker(
            client=UsageClient(self.http, api_key="sim-key", sleep=lambda s: None),
            store=self.store,
            ruleset=self.ruleset,
            clock=self.clock,
            notifier=ConsoleNotifier({}, out=self.out),
            wall=lambda: self.clock().timestamp(),
            hooks=HookSettings(urls, SECRET, self.hook_http),
        )

    def tick(self, advance: timedelta = timedelta(minutes=1)) -> None:
        self.clock.advance(advance)
        assert self.worker is not None
        report = self.worker.tick()
        assert report.errors == []

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
        self.http.close()
        self.hook_http.close()

    def told(self, label: str) -> list[str]:
        return [line for line in self.out.getvalue().splitlines() if line.startswith(label)]


def month_to_date(db_path: Path) -> float:
    """What the pro model has spent in November at START, as the bot counts it."""
    rig = Rig(db_path, RuleSet(poll=POLL))
    rig.tick(timedelta(0))
    assert rig.store is not None
    probe = Budget("probe", 1e12, scope=(("model", "pro"),))
    spent = BudgetBook.load(rig.store, [probe], START).states(rig.store, START)[0].spent
    rig.close()
    return spent


def test_thresholds_and_the_hook_are_told_once_each_across_a_restart(
    tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    got, url = receiver
    db_path = tmp_path / "bot.db"
    spent = month_to_date(db_path)
    assert spent > 0
    # 50% and 80% are behind us at the first judged cycle; 100% is an hour or two away
    budget = Budget("pro-monthly", spent * 1.002, scope=(("model", "pro"),), webhook="PRO_HOOK_URL")
    rig = Rig(db_path, RuleSet(poll=POLL, budgets=(budget,)), url)
    got.clock = rig.clock
    for _ in range(30):
        rig.tick()
    rig.start_worker()  # a restart half-way: nothing is told again
    for _ in range(150):
        rig.tick()
    rig.start_worker()
    for _ in range(20):  # long enough for every backoff to run out
        rig.tick(timedelta(minutes=5))
    assert rig.store is not None
    told = rig.told("BUDGET")
    # 50% and 80%, crossed in one cycle, are one message; each has its own hook.
    assert [
        line.split(" passed ")[1].split(" of its")[0] for line in told if " passed " in line
    ] == [
        "50% and 80%",
        "100%",
    ]
    keys = [f"pro-monthly:2026-11:{t}" for t in ("50", "80", "100")]
    assert [e.key for e in reversed(rig.store.budget_events()) if e.kind == "threshold"] == keys
    # each event reached the backend exactly once, after two 500s, correctly signed
    assert [a["idempotency_key"] for a in got.accepted] == keys
    assert all(ok for _, ok in got.seen)
    assert Counter(key for key, _ in got.seen) == {key: 3 for key in keys}
    assert [h.key for h in rig.store.hooks()] == keys
    assert all(h.delivered_at is not None and h.attempts == 3 for h in rig.store.hooks())
    hundred = got.accepted[-1]
    assert hundred["threshold_percent"] == 100.0
    assert hundred["scope"] == {"model": "pro"}
    assert float(hundred["spent_credits"]) >= budget.limit  # type: ignore[arg-type]
    # what the worker judged last is what automation reads, without re-counting events
    answer = budget_json(rig.store, [budget], rig.clock())
    (state,) = answer["budgets"]
    assert state == rig.store.budget_states()["pro-monthly"].to_json()
    assert state["used_percent"] >= 100 and state["scope"] == {"model": "pro"}
    moved = replace(budget, limit=budget.limit * 2)  # a changed budget is counted afresh
    assert budget_json(rig.store, [moved], rig.clock())["budgets"][0]["used_percent"] < 60
    # the URL's token never reaches the store or the log of what was told
    assert "token=abc" not in rig.out.getvalue()
    rig.close()


def test_a_forged_or_stale_hook_signature_does_not_verify() -> None:
    body = b'{"budget": "b"}'
    now = 1_800_000_000
    good = hooks.sign(SECRET, now, body)
    assert hooks.verify(SECRET, str(now), body, good, now=now + 10)
    assert not hooks.verify(SECRET, str(now), body + b" ", good, now=now)
    assert not hooks.verify("another-secret", str(now), body, good, now=now)
    assert not hooks.verify(SECRET, str(now), body, good, now=now + 301)  # too old
    assert not hooks.verify(SECRET, "１２３", body, good, now=now)  # not ASCII digits
    assert good.startswith("sha256=") and len(good) == 7 + 64


def test_the_digest_is_posted_once_a_day_across_a_restart_at_its_minute(tmp_path: Path) -> None:
    """At 09:30 Berlin (08:30 UTC) the digest is due: the worker queues it and is
    restarted before it can post; the next worker posts it once; later cycles that
    day add nothing; the next day's comes at its minute."""
    config = DigestConfig(at=(9, 30), timezone="Europe/Berlin")
    budget = Budget("account", 5e7, credit_price=0.001)
    rig = Rig(tmp_path / "bot.db", RuleSet(poll=POLL, budgets=(budget,), digest=config))
    rig.clock.set(datetime(2026, 11, 24, 8, 0, tzinfo=UTC))
    for _ in range(29):
        rig.tick()
    assert rig.told("DIGEST") == []  # 08:29 UTC is 09:29 in Berlin
    assert rig.worker is not None and rig.store is not None
    rig.worker.notifier = FailingNotifier()  # the process dies before it can post
    rig.tick()  # 08:30 UTC
    assert rig.store.has_post("digest:2026-11-24:default")
    rig.start_worker()
    for _ in range(90):
        rig.tick()
    digests = rig.told("DIGEST")
    assert len(digests) == 1
    text = rig.out.getvalue()
    assert "Usage digest for Monday 23 November 2026* (Europe/Berlin)" in text
    assert "vs Mondays" in text and "Budget account" in text and "($" in text
    assert "Credits against the median of the 4 Mondays before." in text
    rig.clock.set(datetime(2026, 11, 25, 8, 29, tzinfo=UTC))
    rig.tick()
    assert len(rig.told("DIGEST")) == 2
    assert "Tuesday 24 November 2026" in rig.out.getvalue()
    rig.close()


class FailingNotifier(ConsoleNotifier):
    def __init__(self) -> None:
        super().__init__({}, out=io.StringIO())

    def send_post(self, post: object) -> None:
        raise NotifyError("connection reset")  # and then the process is restarted


def test_a_quiet_sunday_is_compared_with_sundays_not_with_the_week(tmp_path: Path) -> None:
    """Weekends run at 60% of weekdays: against the 7 days before it a Sunday would read
    about -40%; against the median of the Sundays before, about nothing."""
    rig = Rig(tmp_path / "bot.db", RuleSet(poll=POLL, digest=DigestConfig(at=(9, 0))))
    rig.tick()  # Monday 09:01 UTC: Sunday's digest
    assert rig.store is not None
    post = json.loads(
        rig.store.db.execute("select payload from posts where kind = 'digest'").fetchone()[0]
    )
    assert post["day"] == "2026-11-22"  # a Sunday
    assert post["weekday_median"]["weeks"] == 4
    week_before = {m: statistics.median(c[-8:-1]) for m, c in post["chart"]["credits"].items()}
    for row in post["models"]:
        assert row["weeks"] == 4
        assert row["credits"] / week_before[row["model"]] - 1 < -0.25  # what it used to say
        assert abs(row["credits"] / row["median_weekday"] - 1) < 0.15
    assert len(rig.told("DIGEST")) == 1
    text = rig.out.getvalue()
    assert "vs Sundays" in text and "Credits against the median of the 4 Sundays before." in text
    total = next(row for row in text.splitlines() if row.startswith("total "))
    change = int(total.split()[-1].rstrip("%"))
    assert abs(change) < 10, total
    rig.close()


def test_the_weekday_median_counts_only_the_weeks_the_bot_knows() -> None:
    days = [float(d) for d in range(30)]  # the last is yesterday, index 29
    known = [True] * 30
    assert digest.same_weekday(days, known) == (statistics.median([22, 15, 8, 1]), 4)
    known[8] = known[1] = False  # before the bot held anything: no zero to count
    assert digest.same_weekday(days, known) == (18.5, 2)
    assert digest.same_weekday(days[-7:], known[-7:]) == (None, 0)
    payload = {
        "day": "2026-11-22",
        "timezone": "UTC",
        "at": "2026-11-23T09:00:00Z",
        "models": [
            {"model": "pro", "jobs": 6, "finished": 6, "failed": 0, "credits": 90.0}
            | {"median_weekday": 100.0, "weeks": 2}
        ],
        "weekday_median": {"credits": 100.0, "weeks": 2},
        "budgets": [],
        "alerts": [],
        "chart": {"days": ["2026-11-22"], "credits": {"pro": [90.0]}},
    }
    text = digest.digest_text(payload)
    assert "vs Sundays" in text and "-10%" in text
    assert (
        "Credits against the median of the 2 Sundays before (all that are stored; up to 4)." in text
    )
    payload["weekday_median"] = {"credits": None, "weeks": 0}
    payload["models"][0] |= {"median_weekday": None, "weeks": 0}
    assert "Credits: no earlier Sunday is stored yet to compare with." in digest.digest_text(
        payload
    )


def test_digest_figures_match_the_summary_for_a_utc_day(tmp_path: Path) -> None:
    """In UTC the digest's day is a summary day: its per-model figures are the API's."""
    config = DigestConfig(at=(0, 5), timezone="UTC")
    rig = Rig(tmp_path / "bot.db", RuleSet(poll=POLL, digest=config))
    rig.tick()
    assert rig.store is not None
    post = json.loads(
        rig.store.db.execute("select payload from posts where kind = 'digest'").fetchone()[0]
    )
    yesterday = date(2026, 11, 22)
    rows = {r.model: r for r in rig.store.daily_usage(yesterday, yesterday)}
    for row in post["models"]:
        assert row["credits"] == pytest.approx(rows[row["model"]].credits_used, rel=1e-6)
        assert row["jobs"] == pytest.approx(rows[row["model"]].total_jobs)
    rig.close()
