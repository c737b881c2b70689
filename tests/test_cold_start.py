"""A worker restarted on an empty database (Heroku loses the disk on every restart) takes
back from Slack's message metadata what it had told, in the same scan as its open alerts:
budget threshold and forecast posts with their decisions (so the enforcement hook is not
sent again either), the day's digest and the ops episodes still open. Nothing is posted
twice, and what was told for another period or day holds back nothing.

The real WebClient against the Slack stand-in over loopback, workers against the
simulator, hooks to a loopback receiver, each life on its own SQLite file."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from bot.budget_book import BudgetBook
from bot.hooks import IDEMPOTENCY_HEADER
from bot.models import Budget, DigestConfig, PollConfig, RuleSet
from bot.notify import NOTICE_EVENT_TYPE, POST_EVENT_TYPE, SlackNotifier, make_web_clients
from bot.source import UsageClient
from bot.standins.simulator import ManualClock, Simulator
from bot.standins.slack import BOT_USER_ID, SlackStandIn
from bot.store import Store
from bot.worker import HookSettings, Worker

START = datetime(2026, 11, 24, 8, 45, tzinfo=UTC)  # a Tuesday; the digest is due at 09:00
POLL = PollConfig(events_every=60, summary_every=900, summary_days=30, probe_every=300)
DIGEST = DigestConfig(at=(9, 0), timezone="UTC")
SECRET = "whsec-test-0123456789"
DEFAULT = "#usage"
BILLING = "#billing"


class HookReceiver:
    """A backend's enforcement endpoint on loopback: accepts every hook, counts the keys."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.keys.append(self.headers.get(IDEMPOTENCY_HEADER, ""))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/enforce"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[HookReceiver]:
    got = HookReceiver()
    yield got
    got.close()


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    # Message ts on the simulated clock, as Slack's are on the wall clock the bot reads.
    channels = {"usage": "C0USAGE01", "billing": "C0BILL001"}
    with SlackStandIn(channels=channels, ts_start=int(START.timestamp())) as standin:
        yield standin


class Life:
    """One worker process: its own SQLite file and Slack clients; the Slack workspace,
    the usage API and the clock outlive it."""

    def __init__(
        self,
        db: Path,
        slack: SlackStandIn,
        sim: Simulator,
        clock: ManualClock,
        ruleset: RuleSet,
        hook_url: str,
        *,
        prepare: bool = True,
    ) -> None:
        self.clock = clock
        self.store = Store(db)
        reader, poster = make_web_clients("xoxb-test", slack.url, timeout=3)

        def wall() -> float:
            return clock().timestamp()

        notifier = SlackNotifier(
            reader=reader,
            poster=poster,
            store=self.store,
            rules={},
            default_channel=DEFAULT,
            wall=wall,
        )
        self.http = httpx.Client(base_url="http://sim", transport=httpx.MockTransport(sim.handle))
        self.hook_http = httpx.Client(timeout=5.0)
        urls = {b.name: hook_url for b in ruleset.budgets if b.webhook}
        self.worker = Worker(
            client=UsageClient(self.http, api_key="sim-key", sleep=lambda s: None),
            store=self.store,
            ruleset=ruleset,
            clock=clock,
            notifier=notifier,
            wall=wall,
            hooks=HookSettings(urls, SECRET, self.hook_http),
            default_channel=DEFAULT,
        )
        if prepare:  # as `run()` does before its first cycle
            self.worker.prepare()

    def run(self, minutes: int, *, refused: bool = False) -> None:
        for _ in range(minutes):
            self.clock.advance(timedelta(minutes=1))
            errors = self.worker.tick().errors
            assert all("HTTP 401" in error for error in errors) if refused else errors == []

    def close(self) -> None:
        self.http.close()
        self.hook_http.close()
        self.store.close()


def posted(slack: SlackStandIn, event_type: str = POST_EVENT_TYPE) -> Counter[str]:
    """How often each delivery key went out in a successful chat.postMessage."""
    keys: Counter[str] = Counter()
    for request in slack.calls("chat.postMessage"):
        metadata = request.params.get("metadata") or {}
        if request.ok and metadata.get("event_type") == event_type:
            keys[metadata["event_payload"]["delivery"]] += 1
    return keys


def pro_month_to_date(db: Path, at: datetime = START) -> float:
    """What the pro model has spent in November at `at`, as the bot counts it."""
    clock = ManualClock(at)
    sim = Simulator(start=at, clock=clock)
    store = Store(db)
    with httpx.Client(base_url="http://sim", transport=httpx.MockTransport(sim.handle)) as http:
        client = UsageClient(http, api_key="sim-key", sleep=lambda s: None)
        worker = Worker(client=client, store=store, ruleset=RuleSet(poll=POLL), clock=clock)
        assert worker.tick().errors == []
    probe = Budget("probe", 1e12, scope=(("model", "pro"),))
    spent = BudgetBook.load(store, [probe], at).states(store, at)[0].spent
    store.close()
    return spent


def monthly(db: Path) -> RuleSet:
    """A pro budget whose 50% and 80% are behind us at START and 100% days away, on
    course to pass its limit this month: two thresholds crossed in one cycle (one post,
    each with its hook) and a forecast warning, in #billing; the digest in the default
    channel at 09:00."""
    spent = pro_month_to_date(db)
    assert spent > 0
    budget = Budget(
        "pro-monthly", spent / 0.9, scope=(("model", "pro"),), channel=BILLING, webhook="PRO_HOOK"
    )
    return RuleSet(poll=POLL, budgets=(budget,), digest=DIGEST)


THRESHOLDS = ["pro-monthly:2026-11:50", "pro-monthly:2026-11:80"]
BOTH = "budget:pro-monthly:2026-11:50+80"  # the one post that tells them


def first_life(
    tmp_path: Path, slack: SlackStandIn, receiver: HookReceiver
) -> tuple[RuleSet, Simulator, ManualClock, Counter[str]]:
    """A worker that told the budget's thresholds and forecast and the day's digest, and
    sent the hooks; what it posted."""
    ruleset = monthly(tmp_path / "probe.db")
    clock = ManualClock(START)
    sim = Simulator(start=START, clock=clock)
    first = Life(tmp_path / "first.db", slack, sim, clock, ruleset, receiver.url)
    first.run(30)  # to 09:15: the digest went out at 09:00
    first.close()
    told = posted(slack)
    assert BOTH in told
    assert any(":forecast:firing:" in key for key in told)
    assert "digest:2026-11-24:#usage" in told
    assert len(told) == 3 and set(told.values()) == {1}
    assert receiver.keys == THRESHOLDS
    (both,) = [m for m in slack.messages(BILLING) if "passed" in (m.text or "")]
    assert "passed 50% and 80% of its limit." in (both.text or "")
    carried = both.metadata["event_payload"]["events"]  # every event it tells, whole
    assert [(e["kind"], e["threshold"]) for e in carried] == [("threshold", 50), ("threshold", 80)]
    return ruleset, sim, clock, told


def test_a_restart_on_an_empty_database_posts_no_budget_notice_digest_or_hook_again(
    slack: SlackStandIn, receiver: HookReceiver, tmp_path: Path
) -> None:
    ruleset, sim, clock, told = first_life(tmp_path, slack, receiver)
    # The dyno restarts with an empty disk, against the same Slack and the same usage.
    second = Life(tmp_path / "second.db", slack, sim, clock, ruleset, receiver.url)
    assert second.store.has_post("digest:2026-11-24:#usage")  # taken back before any cycle
    second.run(30)
    assert posted(slack) == told  # not one post more
    assert receiver.keys == THRESHOLDS  # nor a hook
    assert second.store.hooks() == []
    marks = second.store.budget_marks("pro-monthly", "2026-11")
    assert marks.crossed == {50.0, 80.0} and marks.forecast_period == "2026-11"
    assert second.store.undelivered_posts(clock().timestamp()) == []
    second.close()


def test_with_slack_down_at_a_cold_start_budgets_wait_for_the_look_then_tell_nothing_twice(
    slack: SlackStandIn, receiver: HookReceiver, tmp_path: Path
) -> None:
    ruleset, sim, clock, told = first_life(tmp_path, slack, receiver)
    slack.outage()
    second = Life(tmp_path / "second.db", slack, sim, clock, ruleset, receiver.url)
    second.run(1)  # polled and stored; the budgets wait (judged now, they would be told)
    assert second.store.budget_states() == {} and not second.store.has_post(
        "digest:2026-11-24:#usage"
    )
    slack.outage(False)
    second.run(10)  # the look is tried again (after its backoff) and the budgets go on
    assert "pro-monthly" in second.store.budget_states()
    assert posted(slack) == told
    assert receiver.keys == THRESHOLDS
    second.close()


def test_a_threshold_told_two_weeks_ago_this_month_is_found_and_not_told_again(
    receiver: HookReceiver, tmp_path: Path
) -> None:
    """The scan reaches back to the start of the budget's period, not only a week."""
    early = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
    spent = pro_month_to_date(tmp_path / "probe.db", early)
    budget = Budget("pro-monthly", spent / 0.6, scope=(("model", "pro"),), webhook="PRO_HOOK")
    ruleset = RuleSet(poll=POLL, budgets=(budget,))
    clock = ManualClock(early)
    sim = Simulator(start=early, clock=clock)
    with SlackStandIn(channels={"usage": "C0USAGE01"}, ts_start=int(early.timestamp())) as slack:
        first = Life(tmp_path / "first.db", slack, sim, clock, ruleset, receiver.url)
        first.run(5)  # 60% on the 10th: the 50% threshold and a forecast warning
        first.close()
        told = posted(slack)
        assert "budget:pro-monthly:2026-11:50" in told and len(told) == 2
        clock.set(START)  # two weeks on, well past the limit, a new dyno on an empty disk
        second = Life(tmp_path / "second.db", slack, sim, clock, ruleset, receiver.url)
        second.run(5)
        second.close()
        assert posted(slack) == told + Counter(["budget:pro-monthly:2026-11:80+100"])
    assert receiver.keys == [f"pro-monthly:2026-11:{t}" for t in (50, 80, 100)]


def test_what_was_told_for_another_day_holds_back_nothing_of_today(
    slack: SlackStandIn, receiver: HookReceiver, tmp_path: Path
) -> None:
    """Yesterday's thresholds and digest are taken back (they are in the scan) and
    today's are still told, once; a budget post from before its metadata carried the
    event whole is taken back by its key alone."""
    daily = Budget("pro-daily", 1.0, period="day", scope=(("model", "pro"),), forecast=False)
    hooked = Budget("all-daily", 2.0, period="day", forecast=False, webhook="ALL_HOOK")
    ruleset = RuleSet(poll=POLL, budgets=(daily, hooked), digest=DIGEST)
    clock = ManualClock(START - timedelta(days=1))
    sim = Simulator(start=START - timedelta(days=1), clock=clock)
    first = Life(tmp_path / "first.db", slack, sim, clock, ruleset, receiver.url, prepare=False)
    first.run(20)  # Monday 09:05
    first.close()
    # Each budget passed all three thresholds in its first cycle: one post each.
    monday = {
        *(f"budget:{name}:2026-11-23:50+80+100" for name in ("pro-daily", "all-daily")),
        "digest:2026-11-23:#usage",
    }
    assert set(posted(slack)) == monday
    # A Tuesday post by an older version of the bot: its key, no event in the metadata.
    slack.add_message(
        DEFAULT,
        "Budget pro-daily passed 50% of its limit.",
        user=BOT_USER_ID,
        metadata={
            "event_type": POST_EVENT_TYPE,
            "event_payload": {"delivery": "budget:pro-daily:2026-11-24:50", "kind": "budget"},
        },
    )

    clock.set(START)  # Tuesday 08:45, a new dyno on an empty disk
    second = Life(tmp_path / "second.db", slack, sim, clock, ruleset, receiver.url, prepare=False)
    second.run(20)
    second.close()
    # The older post told pro-daily's 50%: the post of the cycle that crosses all three
    # tells 80% and 100% only.
    tuesday = {
        "budget:pro-daily:2026-11-24:80+100",
        "budget:all-daily:2026-11-24:50+80+100",
        "digest:2026-11-24:#usage",
    }
    told = posted(slack)
    assert set(told) == monday | tuesday
    assert set(told.values()) == {1}
    assert Counter(receiver.keys) == {
        f"all-daily:{day}:{t}": 1 for day in ("2026-11-23", "2026-11-24") for t in (50, 80, 100)
    }
    store = Store(tmp_path / "second.db")
    assert all(store.has_post(key) for key in monday)  # Monday's were taken back
    assert store.budget_marks("all-daily", "2026-11-23").crossed == {50.0, 80.0, 100.0}
    store.close()


def test_an_open_episode_is_not_announced_again_and_its_end_is_told(
    slack: SlackStandIn, receiver: HookReceiver, tmp_path: Path
) -> None:
    clock = ManualClock(START)
    sim = Simulator(start=START, clock=clock)
    sim.inject("401", "events", times=-1)
    ruleset = RuleSet(poll=POLL)
    first = Life(tmp_path / "first.db", slack, sim, clock, ruleset, receiver.url)
    first.run(10, refused=True)
    first.close()
    refused = [m.text for m in slack.messages(DEFAULT) if "refuses our key" in (m.text or "")]
    assert len(refused) == 1
    second = Life(tmp_path / "second.db", slack, sim, clock, ruleset, receiver.url)
    second.run(10, refused=True)  # still refused: not announced again
    sim.clear_faults()
    second.run(10)  # accepted again: the episode told open before the restart is closed
    second.close()
    texts = [m.text or "" for m in slack.messages(DEFAULT)]
    assert sum("refuses our key" in text for text in texts) == 1
    assert sum("accepts our key again" in text for text in texts) == 1
    notices = posted(slack, NOTICE_EVENT_TYPE)
    assert set(notices.values()) == {1}
