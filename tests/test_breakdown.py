"""What drives an alert: the excess over the baseline split by error code, format, segment
and customer. The arithmetic (its parts add up to the excess, whatever the counts), the
store's counts on both engines, and a failure spike the simulator aims at one customer,
named in the alert's thread by the real worker through the real Slack client."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot import breakdown
from bot.breakdown import Breakdown, failures, spend, split
from bot.messages.breakdown import breakdown_text, split_line
from bot.models import DIMENSIONS, Event, EventsPage, PollConfig, Rule, RuleSet, Tally, Transition
from bot.notify import SlackNotifier, make_web_clients
from bot.source import UsageClient
from bot.standins.simulator import Incident, ManualClock, Simulator
from bot.standins.slack import Message, SlackStandIn
from bot.store import Store
from bot.worker import Worker

START = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # a Monday
AT = START + timedelta(hours=10)

# -- the arithmetic ------------------------------------------------------------------------


def tally(value: str, finished: int = 0, failed: int = 0, credits: float = 0.0) -> Tally:
    return Tally(value, finished, failed, credits)


def test_a_customers_part_is_its_failed_jobs_above_the_baseline_rate_on_its_own_jobs() -> None:
    # 100 finished at a 2% baseline: 2 expected, 22 failed, an excess of 20.
    window = {
        "customer": [tally("acme", 40, 19), tally("globex", 50, 2), tally("", 10, 1)],
        "error_code": [tally("", 78, 0), tally("internal_error", 20, 20), tally("timeout", 2, 2)],
    }
    reference = {
        "error_code": [tally("", 900, 0), tally("internal_error", 5, 5), tally("timeout", 5, 5)]
    }
    found = failures(window, reference, 0.02, AT - timedelta(hours=1), AT)
    assert (found.observed, found.expected, found.finished) == (22, 2.0, 100)
    assert found.excess == pytest.approx(20)
    customers, codes = found.splits
    assert customers.dimension == "customer"
    assert [(p.value, p.excess) for p in customers.top] == [
        ("acme", pytest.approx(19 - 0.8)),
        ("globex", pytest.approx(2 - 1.0)),
        ("", pytest.approx(1 - 0.2)),
    ]
    assert found.share(customers.top[0].excess) == pytest.approx(0.91)
    # An error code is on failed jobs only: the 2 expected are split half and half, as
    # the reference's failures were; the codes' parts add up to the excess too.
    assert [(p.value, p.expected) for p in codes.top] == [("internal_error", 1.0), ("timeout", 1.0)]
    assert codes.total == pytest.approx(20) and customers.total == pytest.approx(20)


def test_a_value_spending_under_its_share_is_an_offset_and_the_shares_still_add_up() -> None:
    # Baseline 1,000 credits, shared 50/30/20 before; now acme spends 2,400 alone.
    window = {"customer": [tally("acme", credits=2400.0), tally("globex", credits=100.0)]}
    reference = {
        "customer": [
            tally("acme", credits=500.0),
            tally("globex", credits=300.0),
            tally("initech", credits=200.0),
        ]
    }
    found = spend(window, reference, 1000.0, AT - timedelta(hours=1), AT, top=3)
    (customers,) = found.splits
    assert found.excess == pytest.approx(1500.0)
    assert [(p.value, p.excess) for p in customers.top] == [("acme", pytest.approx(1900.0))]
    assert customers.offset == pytest.approx(-400.0) and customers.offset_count == 2
    assert split_line(found, customers) == (
        "*customer:* `acme` 127% (+1,900) · offset -27% (2 under their share)"
    )


def test_only_the_largest_are_named_and_the_rest_are_summed_as_others() -> None:
    observed = {f"c{i}": float(10 - i) for i in range(6)}
    found = split("customer", observed, {}, top=2)
    assert [p.value for p in found.top] == ["c0", "c1"]
    assert (found.others, found.others_count) == (8 + 7 + 6 + 5, 4)
    assert found.offset_count == 0 and found.total == sum(observed.values())


def test_a_new_customer_owns_all_its_credits_and_a_window_without_history_shares_itself() -> None:
    window = {"customer": [tally("acme", credits=300.0), tally("newco", credits=700.0)]}
    (known,) = spend(window, {"customer": [tally("acme", credits=1.0)]}, 100.0, AT, AT).splits
    assert [(p.value, p.expected) for p in known.top] == [("newco", 0.0), ("acme", 100.0)]
    (fresh,) = spend(window, {}, 100.0, AT, AT).splits  # no history: the window's own mix
    assert [(p.value, p.expected) for p in fresh.top] == [("newco", 70.0), ("acme", 30.0)]


def test_a_dimension_no_event_carries_is_left_out() -> None:
    window = {"segment": [tally("", 10, 5)], "customer": [tally("acme", 10, 5)]}
    found = failures(window, {}, 0.1, AT, AT)
    assert [s.dimension for s in found.splits] == ["customer"]


values = st.sampled_from(["", "a", "b", "c", "d", "e", "f"])
counts = st.integers(min_value=0, max_value=400)
amounts = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@st.composite
def tallies(draw: st.DrawFn) -> list[Tally]:
    found = {}
    for value in draw(st.lists(values, unique=True, max_size=6)):
        finished = draw(counts)
        found[value] = tally(value, finished, draw(st.integers(0, finished)), draw(amounts))
    return list(found.values())


def assert_adds_up(found: Breakdown) -> None:
    """Every split accounts for the whole excess; named, others and offset shares sum to
    one; contributors push the excess's way, the offset the other way."""
    scale = max(1.0, abs(found.observed), abs(found.expected))
    for s in found.splits:
        assert math.isclose(s.total, found.excess, rel_tol=1e-9, abs_tol=1e-9 * scale)
        sign = math.copysign(1.0, found.excess)
        assert all(p.excess * sign > 0 for p in s.top)
        assert s.others * sign >= 0 and s.offset * sign <= 0
        assert [abs(p.excess) for p in s.top] == sorted(
            (abs(p.excess) for p in s.top), reverse=True
        )
        if abs(found.excess) > 1e-9 * scale:  # below the tolerance above, no shares
            shares = [found.share(p.excess) for p in s.top]
            shares += [found.share(s.others), found.share(s.offset)]
            assert math.isclose(sum(shares), 1.0, abs_tol=1e-6)


@settings(max_examples=300, deadline=None)
@given(
    window=tallies(),
    reference=tallies(),
    rate=st.floats(min_value=0, max_value=1),
    top=st.integers(min_value=1, max_value=5),
)
def test_failure_parts_add_up_to_the_excess(
    window: list[Tally], reference: list[Tally], rate: float, top: int
) -> None:
    # The same events tallied by another dimension: one partition for every value.
    whole = tally("x", sum(t.finished for t in window), sum(t.failed for t in window))
    # Each customer's failures under a code of its own; completed jobs carry none.
    codes = [tally(f"code-{t.value}", t.failed, t.failed) for t in window]
    codes.append(tally("", whole.finished - whole.failed))
    found = failures(
        {"customer": window, "segment": [whole], "error_code": codes},
        {"error_code": reference},
        rate,
        AT,
        AT,
        top,
    )
    assert found.observed == whole.failed and found.finished == whole.finished
    assert_adds_up(found)


@settings(max_examples=300, deadline=None)
@example(  # no excess, up to rounding: every split takes the whole's way, not its own
    window=[tally("", credits=3.0)],
    reference=[tally("", credits=635219.75), tally("a", credits=0.09)],
    baseline=3.0,
    top=1,
)
@given(
    window=tallies(),
    reference=tallies(),
    baseline=amounts,
    top=st.integers(min_value=1, max_value=5),
)
def test_spend_parts_add_up_to_the_excess(
    window: list[Tally], reference: list[Tally], baseline: float, top: int
) -> None:
    found = spend({"customer": window}, {"customer": reference}, baseline, AT, AT, top)
    assert found.observed == pytest.approx(sum(t.credits for t in window))
    assert_adds_up(found)


# -- the store's counts (both engines) -----------------------------------------------------


def job(
    n: int,
    at: datetime,
    *,
    status: str,
    customer: str | None = "acme",
    segment: str | None = "enterprise",
    model: str | None = "pro",
    credits: float = 0.0,
    fmt: str = "webm",
    code: str | None = None,
) -> Event:
    metadata = {k: v for k, v in (("customer_id", customer), ("segment", segment)) if v}
    return Event(
        id=f"evt_{n:06d}",
        created_at=at,
        request_id=f"req_{n:06d}",
        method="GET",
        endpoint="/v1/jobs/job",
        status_code=200,
        job_id=f"job_{n:06d}",
        model=model,
        output_format=fmt,
        status=status,
        credits_used=credits,
        duration_seconds=60.0,
        error_code=code,
        metadata=metadata,
    )


def save(store: Store, events: Sequence[Event]) -> None:
    for start in range(0, len(events), 100):
        page = events[start : start + 100]
        store.save_events(EventsPage(len(page) + 1, tuple(reversed(page))), stored_at=AT)


def test_the_store_counts_finished_failed_and_credits_per_value(store: Store) -> None:
    minute = timedelta(minutes=1)
    events = [
        job(1, AT - 50 * minute, status="pending"),  # started, not finished
        job(2, AT - 40 * minute, status="failed", code="timeout", fmt="mov"),
        job(3, AT - 30 * minute, status="completed", credits=90.5, customer=None, segment=None),
        job(4, AT - 20 * minute, status="completed", credits=30.0, customer="globex"),
        job(5, AT - 10 * minute, status="failed", code="internal_error", model="light"),
        job(6, AT, status="failed", code="timeout"),  # at the end: outside [start, end)
        job(7, AT - 70 * minute, status="failed", code="timeout"),  # before the start
    ]
    save(store, events)
    hour = (AT - timedelta(hours=1), AT)
    assert store.tallies(*hour, {}, "customer") == [
        tally("", 1, 0, 90.5),
        tally("acme", 2, 2, 0.0),
        tally("globex", 1, 0, 30.0),
    ]
    assert store.tallies(*hour, {"model": "pro"}, "error_code") == [
        tally("", 2, 0, 120.5),
        tally("timeout", 1, 1, 0.0),
    ]
    assert store.tallies(*hour, {"model": "pro", "segment": ""}, "output_format") == [
        tally("webm", 1, 0, 90.5)
    ]
    assert store.tallies(*hour, {"customer": "acme"}, "model") == [
        tally("light", 1, 1, 0.0),
        tally("pro", 1, 1, 0.0),
    ]
    assert set(breakdown.dimensions("failure_rate")) == set(DIMENSIONS)
    assert store.tallies(AT, AT, {}, "customer") == []


SPEND_RULE = Rule("spend-per-model", "spend", group_by=("model",), bucket=3600, baseline=86400)


def test_a_spend_alert_names_the_customer_that_runs_away(store: Store) -> None:
    """A day of light spend shared by three customers, then an hour where initech spends
    five times its share: initech owns the excess, from the store on either engine."""
    events, n = [], 0
    start = AT - timedelta(days=1, hours=1)
    for minute in range(25 * 60):
        at = start + timedelta(minutes=minute)
        late = at >= AT - timedelta(hours=1)
        for customer, every in (("acme", 2), ("globex", 3), ("initech", 6)):
            times = 5 if late and customer == "initech" else 1
            if minute % every == 0:
                for _ in range(times):
                    n += 1
                    events.append(
                        job(
                            n,
                            at,
                            status="completed",
                            customer=customer,
                            credits=45.0,
                            model="light",
                        )
                    )
    save(store, events)
    baseline = 45.0 * (30 + 20 + 10)  # credits of an ordinary hour
    t = Transition(
        SPEND_RULE.name,
        ("light",),
        ("model",),
        "firing",
        AT,
        0.0,
        baseline,
        9.0,
        0.0,
        AT,
        9.0,
        0.0,
        window=3600.0,
    )
    found = breakdown.explain(t, SPEND_RULE, store.tallies)
    assert found is not None and found.metric == "spend"
    assert found.observed == pytest.approx(45.0 * (30 + 20 + 50))
    assert found.excess == pytest.approx(45.0 * 40)
    by = {s.dimension: s for s in found.splits}
    assert set(by) == {"output_format", "segment", "customer"}  # no model, no error codes
    (initech,) = by["customer"].top
    assert initech.value == "initech" and found.share(initech.excess) == pytest.approx(
        1.0, abs=0.02
    )
    assert_adds_up(found)


# -- the alert's thread, end to end --------------------------------------------------------

FAILURES = Rule(
    name="failed-job-rate",
    metric="failure_rate",
    group_by=("model",),
    bucket=900,
    baseline=7 * 86400,
    method="plain",
    z=4,
    min_volume=10,
    min_rate=0.05,
)
SPIKE = Incident(
    "failure_spike",
    START + timedelta(hours=10),
    START + timedelta(hours=11),
    model="pro",
    customer="globex",
    failure_rate=0.9,
)
CHANNEL = "#usage-alerts"


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn() as standin:
        yield standin


def parents(slack: SlackStandIn) -> list[Message]:
    return [m for m in slack.messages(CHANNEL) if m.event_type == "usage_alert"]


def test_the_alert_thread_names_the_customer_the_simulator_made_fail(
    slack: SlackStandIn, tmp_path: Path
) -> None:
    clock = ManualClock(START + timedelta(hours=9, minutes=30))
    sim = Simulator(start=START, clock=clock, jobs_per_hour=1200, incidents=[SPIKE])
    store = Store(tmp_path / "bot.db")
    reader, poster = make_web_clients("xoxb-test", slack.url, timeout=3)
    wall = time.time
    notifier = SlackNotifier(
        reader=reader,
        poster=poster,
        store=store,
        rules={FAILURES.name: FAILURES},
        default_channel=CHANNEL,
        wall=wall,
    )
    with httpx.Client(base_url="http://sim", transport=httpx.MockTransport(sim.handle)) as http:
        worker = Worker(
            client=UsageClient(http, api_key="sim-key"),
            store=store,
            ruleset=RuleSet(
                poll=PollConfig(events_every=60, summary_every=3600), rules=(FAILURES,)
            ),
            clock=clock,
            notifier=notifier,
            wall=wall,
        )
        while clock() < SPIKE.end and not parents(slack):
            clock.advance(timedelta(minutes=1))
            assert worker.tick().errors == []
    (parent,) = parents(slack)
    details = parent.replies[0]
    told = "\n".join(str(b["text"]["text"]) for b in details.blocks if "text" in b)
    (firing,) = [t for t in store.transitions() if t.state == "firing"]
    assert firing.group == ("pro",)
    # The details reply opens with what drives it: globex first among the customers,
    # the enterprise segment (globex's) first among the segments.
    customers = next(line for line in told.splitlines() if line.startswith("• *customer:*"))
    assert customers.startswith("• *customer:* `globex` ")
    segments = next(line for line in told.splitlines() if line.startswith("• *segment:*"))
    assert segments.startswith("• *segment:* `enterprise` ")
    assert told.startswith("*What drives it* (")
    assert "`req_" in told  # the examples follow
    # What it says is what the stored events of the window give, and it adds up.
    found = breakdown.explain(firing, FAILURES, store.tallies)
    assert found is not None and told.startswith(breakdown_text(found))
    by = {s.dimension: s for s in found.splits}
    assert set(by) == {"error_code", "output_format", "segment", "customer"}
    assert by["customer"].top[0] == max(by["customer"].top, key=lambda p: p.excess)
    assert found.share(by["customer"].top[0].excess) > 0.6
    assert_adds_up(found)
    store.close()
