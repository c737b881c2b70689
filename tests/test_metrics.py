"""`GET /metrics` on `usage-bot serve`: real loopback HTTP, a real SQLite file filled
through the store's own writers, the body parsed by prometheus_client's parser."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from bot import __version__
from bot.api_schema import EVENTS_PATH, SUMMARY_PATH
from bot.config import Settings
from bot.models import (
    TOTAL,
    AlertState,
    BudgetForecast,
    BudgetState,
    DailyUsage,
    EventsPage,
    PollRecord,
    Summary,
)
from bot.store import Store
from tests.helpers import make_event, make_firing, serve_app

TOKEN = "metrics-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as http:
        yield http


def serve(db_path: Path, token: str | None = TOKEN) -> Iterator[str]:
    yield from serve_app(Settings(db_path=str(db_path), port=0, api_token=token))


@pytest.fixture
def url(db_path: Path) -> Iterator[str]:
    Store(db_path).close()  # a fresh, migrated store: nothing polled yet
    yield from serve(db_path)


def scrape(client: httpx.Client, url: str) -> Samples:
    answer = client.get(f"{url}/metrics", headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == CONTENT_TYPE_LATEST
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        assert family.name.startswith("usage_bot_")
        assert family.documentation, family.name  # every metric says what it is
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def named(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def poll(
    store: Store,
    endpoint: str,
    status: str = "ok",
    *,
    code: str | None = None,
    at: datetime | None = None,
) -> None:
    finished = at or datetime.now(UTC)
    store.log_poll(
        PollRecord(
            endpoint,
            finished - timedelta(seconds=1),
            finished,
            status,
            200 if status == "ok" else 500,
            request_id="req_poll01",
            error_code=code,
        )
    )


def budget_state(now: datetime) -> BudgetState:
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    return BudgetState(
        budget="pro-monthly",
        scope=(("model", "pro"),),
        period_kind="month",
        period_label=start.strftime("%B %Y"),
        period_start=start,
        period_end=start + timedelta(days=31),
        timezone="UTC",
        at=now,
        limit_credits=10_000.0,
        spent_credits=2_500.0,
        used_percent=25.0,
        thresholds_percent=(80.0, 100.0),
        credit_price=None,
        currency=None,
        data_from=start,
        forecast=BudgetForecast(9_000.0, 8_000.0, 10_500.0, "weekday profile", None),
        daily_credits=((start.date(), 2_500.0),),
    )


def test_metrics_need_the_bearer_token(url: str, client: httpx.Client) -> None:
    missing = client.get(f"{url}/metrics")
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    wrong = client.get(f"{url}/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.content == b""
    basic = client.get(f"{url}/metrics", headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401
    good = client.get(f"{url}/metrics", headers=AUTH)
    assert good.status_code == 200
    assert good.headers["content-type"] == CONTENT_TYPE_LATEST
    assert TOKEN not in good.text


def test_metrics_are_off_without_a_token(db_path: Path, client: httpx.Client) -> None:
    for base in serve(db_path, token=None):
        assert client.get(f"{base}/metrics", headers=AUTH).status_code == 404
        assert client.get(f"{base}/metrics").status_code == 404


def test_a_fresh_store_scrapes_without_an_error(url: str, client: httpx.Client) -> None:
    samples = scrape(client, url)
    (build,) = named(samples, "usage_bot_build_info")
    assert (
        dict(build)["version"] == __version__
        and value(samples, "usage_bot_build_info", **dict(build)) == 1
    )
    assert named(samples, "usage_bot_polls_total") == {}
    assert value(samples, "usage_bot_event_gaps_total") == 0
    assert value(samples, "usage_bot_event_gap_seconds_total") == 0
    for outbox in ("alerts", "posts", "notices"):
        assert value(samples, "usage_bot_slack_outbox_pending", outbox=outbox) == 0
        assert value(samples, "usage_bot_slack_outbox_failed", outbox=outbox) == 0
    for absent in (
        "usage_bot_newest_event_age_seconds",
        "usage_bot_last_successful_poll_age_seconds",
        "usage_bot_alerts_firing",
        "usage_bot_slack_outbox_oldest_pending_age_seconds",
        "usage_bot_ops_episode_open",
        "usage_bot_budget_used_ratio",
        "usage_bot_coverage_ratio",
    ):
        assert named(samples, absent) == {}, absent


def fill(store: Store, now: datetime) -> None:
    """A store as the worker leaves it: events, polls (ok and failed), two keys firing and
    one ok, an undelivered and a failed alert transition, a pending and a failed post, an
    open ops episode with its notice, a budget state."""
    events = (
        make_event(1, now - timedelta(hours=2), status="failed"),
        make_event(2, now - timedelta(hours=1)),
    )
    store.save_events(EventsPage(100, tuple(reversed(events))), stored_at=now)
    poll(store, EVENTS_PATH, at=now - timedelta(seconds=120))
    poll(store, SUMMARY_PATH, at=now - timedelta(seconds=600))
    poll(store, EVENTS_PATH, "error", code="rate_limited", at=now - timedelta(seconds=60))
    since = now - timedelta(hours=1)
    store.save_decisions(
        [
            AlertState("failed-job-rate", ("pro",), "firing", 2, 0, since, 6.2, 0.4),
            AlertState("failed-job-rate", ("light",), "firing", 2, 0, since, 5.0, 0.3),
            AlertState("total-spend", (), "ok", 0, 0, None, 0.0, 0.0),
        ],
        [
            make_firing(since),
            make_firing(since, rule="total-spend", group=(), request_ids=("req_000098",)),
        ],
        {"failed-job-rate": now},
        now - timedelta(seconds=300),
    )
    (spend,) = [tid for tid, t in store.undelivered() if t.rule == "total-spend"]
    store.delivery_failed(spend, "channel_not_found", permanent=True, retry_at=0.0, now=now)
    store.queue_post("digest:1", "digest", None, {"day": "x"}, now - timedelta(seconds=30))
    store.queue_post("digest:2", "digest", None, {"day": "y"}, now - timedelta(seconds=20))
    (_, second) = store.undelivered_posts(wall=1e12)
    store.post_failed(second.id, "not_in_channel", permanent=True, retry_at=0.0, now=now)
    store.episode("events gap", True, "events may be missing", now - timedelta(seconds=10))
    store.save_budget_states([budget_state(now)], now)
    # The summary says 4 jobs finished between two polls that span both events: 50 % seen.
    # (Their day is the second poll's: just after midnight the first is still on the day
    # before, and must not see that day's 100 jobs as new.)
    day = (now - timedelta(minutes=10)).date()
    for polled, finished in ((now - timedelta(minutes=150), 0), (now - timedelta(minutes=10), 4)):
        store.save_summary(account_summary(polled, day, finished), polled)


def account_summary(polled: datetime, day: date, finished: int) -> Summary:
    """A 2-day summary as polled at `polled`: 100 jobs the day before `day`, `finished`
    on `day` (the days up to the poll's own)."""
    today = polled.date()
    figures = {day - timedelta(days=1): 100, day: finished}
    rows = tuple(
        DailyUsage(d, TOTAL, n, n, 0, 60.0 * n) for d, n in sorted(figures.items()) if d <= today
    )
    done = sum(row.total_jobs for row in rows)
    return Summary(2, today - timedelta(days=1), today, done, done, 0, 60.0 * done, rows, False)


def near(actual: float, expected: float) -> bool:
    """An age measured by the server's clock a moment after the test's."""
    return expected <= actual <= expected + 30


def test_each_metric_reads_its_value_from_the_store(db_path: Path, client: httpx.Client) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    store = Store(db_path)
    fill(store, now)
    for url in serve(db_path):
        first = scrape(client, url)
        # Counters begin at 0 for every series the poll log holds (see exposition.py).
        assert named(first, "usage_bot_polls_total") == {
            (("endpoint", EVENTS_PATH), ("status", "error")): 0,
            (("endpoint", EVENTS_PATH), ("status", "ok")): 0,
            (("endpoint", SUMMARY_PATH), ("status", "ok")): 0,
        }
        assert named(first, "usage_bot_poll_errors_total") == {
            (("code", "rate_limited"), ("endpoint", EVENTS_PATH)): 0
        }
        assert near(value(first, "usage_bot_newest_event_age_seconds"), 3600)
        age = "usage_bot_last_successful_poll_age_seconds"
        assert near(value(first, age, endpoint=EVENTS_PATH), 120)
        assert near(value(first, age, endpoint=SUMMARY_PATH), 600)
        assert named(first, "usage_bot_alerts_firing") == {
            (("rule", "failed-job-rate"),): 2,
            (("rule", "total-spend"),): 0,
        }
        pending, failed = "usage_bot_slack_outbox_pending", "usage_bot_slack_outbox_failed"
        oldest = "usage_bot_slack_outbox_oldest_pending_age_seconds"
        assert value(first, pending, outbox="alerts") == 1
        assert value(first, failed, outbox="alerts") == 1
        assert near(value(first, oldest, outbox="alerts"), 300)
        assert value(first, pending, outbox="posts") == 1
        assert value(first, failed, outbox="posts") == 1
        assert near(value(first, oldest, outbox="posts"), 30)
        assert value(first, pending, outbox="notices") == 1
        assert value(first, failed, outbox="notices") == 0
        assert near(value(first, oldest, outbox="notices"), 10)
        assert named(first, "usage_bot_ops_episode_open") == {(("kind", "events gap"),): 1}
        assert value(first, "usage_bot_budget_spent_credits", budget="pro-monthly") == 2_500
        assert value(first, "usage_bot_budget_limit_credits", budget="pro-monthly") == 10_000
        assert value(first, "usage_bot_budget_used_ratio", budget="pro-monthly") == 0.25
        assert value(first, "usage_bot_budget_projected_credits", budget="pro-monthly") == 9_000
        assert value(first, "usage_bot_event_gaps_total") == 0
        assert value(first, "usage_bot_coverage_ratio") == pytest.approx(0.5)

        # The worker goes on: polls of every outcome, and a full page past a gap.
        for _ in range(3):
            poll(store, EVENTS_PATH)
        poll(store, EVENTS_PATH, "error", code="rate_limited")
        poll(store, EVENTS_PATH, "error", code="rate_limited")
        poll(store, EVENTS_PATH, "error", code="teapot")  # not a code we know: "other"
        poll(store, SUMMARY_PATH, "error")  # no error envelope
        page = (
            make_event(4, now - timedelta(minutes=5)),
            make_event(3, now - timedelta(minutes=50)),
        )
        assert store.save_events(EventsPage(2, page), stored_at=now).gap is not None
        second = scrape(client, url)
        assert named(second, "usage_bot_polls_total") == {
            (("endpoint", EVENTS_PATH), ("status", "error")): 3,
            (("endpoint", EVENTS_PATH), ("status", "ok")): 3,
            (("endpoint", SUMMARY_PATH), ("status", "error")): 1,
            (("endpoint", SUMMARY_PATH), ("status", "ok")): 0,
        }
        assert named(second, "usage_bot_poll_errors_total") == {
            (("code", "rate_limited"), ("endpoint", EVENTS_PATH)): 2,
            (("code", "other"), ("endpoint", EVENTS_PATH)): 1,
            (("code", "unknown"), ("endpoint", SUMMARY_PATH)): 1,
        }
        assert value(second, "usage_bot_event_gaps_total") == 1
        # The newest event stored before the gap was an hour old; the page began 50 min ago.
        assert value(second, "usage_bot_event_gap_seconds_total") == 600
        assert near(value(second, "usage_bot_newest_event_age_seconds"), 300)
        assert near(value(second, age, endpoint=EVENTS_PATH), 0)

        # Retention prunes the older polls: the counters do not drop.
        store.prune(datetime(2000, 1, 1, tzinfo=UTC), now - timedelta(seconds=90))
        poll(store, EVENTS_PATH)
        third = scrape(client, url)
        assert value(third, "usage_bot_polls_total", endpoint=EVENTS_PATH, status="ok") == 4
        assert value(third, "usage_bot_polls_total", endpoint=EVENTS_PATH, status="error") == 3

        # A week without a poll prunes them all, and row ids start again at 1.
        store.prune(datetime(2000, 1, 1, tzinfo=UTC), now + timedelta(days=1))
        poll(store, SUMMARY_PATH)
        poll(store, SUMMARY_PATH)
        fourth = scrape(client, url)
        assert value(fourth, "usage_bot_polls_total", endpoint=SUMMARY_PATH, status="ok") == 2
        assert value(fourth, "usage_bot_polls_total", endpoint=EVENTS_PATH, status="ok") == 4
        assert value(fourth, "usage_bot_event_gaps_total") == 1
    store.close()


def test_no_request_or_job_id_reaches_the_exposition(db_path: Path, client: httpx.Client) -> None:
    """Ids are unbounded: the logs carry them, the metrics never do."""
    store = Store(db_path)
    fill(store, datetime.now(UTC).replace(microsecond=0))
    store.close()
    for url in serve(db_path):
        answer = client.get(f"{url}/metrics", headers=AUTH)
        assert answer.status_code == 200
        assert "req_" not in answer.text and "job_" not in answer.text
        for family in text_string_to_metric_families(answer.text):
            for sample in family.samples:
                assert not {"request_id", "job_id"} & set(sample.labels), family.name


def test_a_store_that_cannot_be_read_gives_a_short_503(
    tmp_path: Path, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    for url in serve(tmp_path):  # a folder, not a database file
        answer = client.get(f"{url}/metrics", headers=AUTH)
        assert answer.status_code == 503
        assert answer.json() == {"error": "store_unavailable"}
        assert TOKEN not in answer.text and "Traceback" not in answer.text
        # the token is checked before the store is opened
        assert client.get(f"{url}/metrics").status_code == 401
    assert "store_unavailable" not in caplog.text  # the log names the real cause
    assert any("unable to open database file" in r.getMessage() for r in caplog.records)
