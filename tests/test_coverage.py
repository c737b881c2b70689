"""Coverage as a number (bot.coverage, Store.coverage_hours) and honest counts over a
known gap: the pure computation with explicit times, then each place it is shown."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from bot import commands, messages
from bot.budget import as_json, status
from bot.budget_book import summary_figures
from bot.cli import main
from bot.config import Settings
from bot.coverage import (
    Coverage,
    HourCoverage,
    Interval,
    Snapshot,
    arrival_rate,
    coverage,
    estimate_gap,
    hourly,
    intervals,
    overlaps,
)
from bot.digest import digest_text
from bot.engine import Engine
from bot.messages import budget as budget_words
from bot.messages import notices
from bot.metrics import UsageCube, batch_from_events
from bot.models import TOTAL, Budget, DailyUsage, Evaluation, EventsPage, Gap, Rule, Summary
from bot.monitor import Monitor
from bot.store import Store
from tests.helpers import SECRET, VOLUME_DOWN, Rig, engine_for, make_event, outage_stream, serve_app

START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday

D = date(2026, 11, 29)


def at(hour: int, minute: int = 0, day: date = D) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def snap(moment: datetime, **finished: int) -> Snapshot:
    """A snapshot with the account's finished jobs per day: d0=..., d1=... (D-1, D)."""
    days = {"d0": D - timedelta(days=1), "d1": D, "d2": D + timedelta(days=1)}
    return Snapshot(moment, {days[k]: v for k, v in finished.items()})


def per_minute(start: datetime, count: int, every: timedelta = timedelta(minutes=1)) -> dict:  # type: ignore[type-arg]
    return {start + i * every: 1 for i in range(count)}


# -- the pure computation ------------------------------------------------------------------


def test_consecutive_snapshots_give_what_finished_between_them() -> None:
    spans = intervals([snap(at(10, 15), d1=130), snap(at(10, 0), d1=100), snap(at(10, 30), d1=160)])
    assert [(s.start, s.end, s.finished) for s in spans] == [
        (at(10, 0), at(10, 15), 30.0),
        (at(10, 15), at(10, 30), 30.0),
    ]


def test_a_pair_across_midnight_is_split_at_midnight() -> None:
    # 23:50 saw D-1 at 500; 00:10 saw D-1 final at 520 and D at 30.
    spans = intervals(
        [snap(at(23, 50, D - timedelta(days=1)), d0=500), snap(at(0, 10), d0=520, d1=30)]
    )
    assert [(s.start, s.end, s.finished) for s in spans] == [
        (at(23, 50, D - timedelta(days=1)), at(0, 0), 20.0),
        (at(0, 0), at(0, 10), 30.0),
    ]


def test_snapshots_more_than_a_day_apart_are_not_bridged() -> None:
    old = snap(at(10, 0, D - timedelta(days=1)), d0=100)
    new = Snapshot(at(10, 0, D + timedelta(days=1)), {D: 900, D + timedelta(days=1): 40})
    assert intervals([old, new]) == []


@pytest.mark.parametrize(
    ("stored", "expected"),
    [(120, 1.0), (90, 0.75), (0, 0.0)],
)
def test_an_hour_compares_stored_finished_events_with_the_summary(
    stored: int, expected: float
) -> None:
    snaps = [
        snap(at(10) + timedelta(minutes=15 * i), d1=100 + 30 * i) for i in range(5)
    ]  # 10:00 .. 11:00
    result = coverage(snaps, per_minute(at(10, 0), stored, timedelta(seconds=30)), at(10), at(11))
    (hour,) = result.hours
    assert (hour.stored, hour.reported, hour.spanned) == (stored, 120.0, 3600.0)
    assert hour.ratio == pytest.approx(expected)
    assert result.ratio == pytest.approx(expected)
    assert result.low is (expected < 0.99)


def test_an_interval_straddling_an_hour_is_split_by_time_and_hours_without_summary_say_so() -> None:
    spans = [Interval(at(10, 50), at(11, 10), 40.0, 0.0)]
    minutes = {at(10, 55): 18, at(11, 5): 22}
    result = hourly(spans, minutes, at(9), at(12))
    nine, ten, eleven = result.hours
    assert nine.spanned == 0 and nine.ratio is None
    assert (ten.stored, ten.reported, ten.spanned) == (18, 20.0, 600.0)
    assert (eleven.stored, eleven.reported, eleven.spanned) == (22, 20.0, 600.0)
    assert eleven.ratio == pytest.approx(1.1)  # a single hour may exceed 100 %
    assert result.ratio == 1.0  # the sums: 40 of 40 (capped at 1.0)
    assert result.to_json() == {
        "start": "2026-11-29T09:00:00Z",
        "end": "2026-11-29T12:00:00Z",
        "stored": 40,
        "reported": 40.0,
        "coverage": 1.0,
    }


def test_events_outside_the_spanned_part_of_an_hour_are_not_compared() -> None:
    spans = [Interval(at(10, 0), at(10, 30), 30.0, 0.0)]
    result = hourly(spans, {at(10, 10): 30, at(10, 45): 50}, at(10), at(11))
    assert result.hours[0].stored == 30 and result.ratio == 1.0


def test_no_report_means_no_figure() -> None:
    empty = Coverage(at(10), at(11), (HourCoverage(at(10), 5, 0.0, 3600.0),))
    assert empty.ratio is None and not empty.low


def test_a_gap_is_estimated_from_the_arrival_rate_around_it() -> None:
    gap = Gap(at(10, 0), at(10, 30))
    page = [at(10, 30) + timedelta(seconds=6 * i) for i in range(100)]  # 10 a minute
    before = [at(9, 30) + timedelta(seconds=12 * i) for i in range(151)]  # 5 a minute
    estimate = estimate_gap(gap, [arrival_rate(page), arrival_rate(before)])
    assert estimate.basis == "arrival rate"
    assert estimate.events == pytest.approx(7.5 * 30, rel=0.02)


def test_a_gap_the_summary_spans_is_estimated_from_its_jobs() -> None:
    gap = Gap(at(10, 5), at(10, 25))
    spans = [
        Interval(at(10, 0), at(10, 15), 30.0, 600.0),
        Interval(at(10, 15), at(10, 30), 60.0, 900.0),
    ]
    estimate = estimate_gap(gap, [1.0], spans, events_per_job=2.0)
    assert estimate.basis == "summary"
    assert estimate.finished_jobs == pytest.approx(20.0 + 40.0)
    assert estimate.events == pytest.approx(120.0)


def test_overlaps_is_about_the_open_span_of_a_gap() -> None:
    gaps = [Gap(at(10, 0), at(10, 30))]
    assert overlaps(gaps, at(9, 30), at(10, 1))
    assert not overlaps(gaps, at(9, 0), at(10, 0))  # ends where the last stored event is
    assert not overlaps(gaps, at(10, 30), at(11, 0))


# -- the gap notice -------------------------------------------------------------------------


def test_the_gap_notice_says_about_how_many_events_were_missed() -> None:
    text = notices.events_gap(100, at(10), at(10, 30), 612.4, "arrival rate")
    assert "About 610 events were probably missed (from the arrival rate around it)" in text
    assert "Probably none or very few" in notices.events_gap(100, at(10), at(10, 1), 0.3)
    assert "About" not in notices.events_gap(100, at(10), at(10, 30))
    within = notices.events_gap(100, at(10), at(10), 200.0)
    assert "events of 2026-11-29 10:00:00 UTC may be missing" in within, within


def test_the_worker_opens_a_gap_notice_with_an_estimate_close_to_the_truth(store: Store) -> None:
    rig = Rig(store)
    try:
        rig.tick()
        rig.tick(timedelta(hours=3))  # ~700 events arrived; only the newest 100 can be read
        (gap,) = store.gaps()
        text = store.open_episodes()["events gap"]
        found = re.search(r"About ([\d,]+) events were probably missed", text)
        assert found, text
        estimate = int(found.group(1).replace(",", ""))
        truth = sum(
            1
            for item in rig.sim.events_until(rig.clock())
            if gap.newest_stored_at
            < datetime.fromisoformat(item["created_at"].replace("Z", "+00:00"))
            < gap.oldest_seen_at
        )
        assert 0.6 * truth <= estimate <= 1.4 * truth, (estimate, truth)
    finally:
        rig.http.close()


# -- the engine: no downward breach over a gap -------------------------------------------


def test_a_volume_drop_inside_a_known_gap_is_not_judged() -> None:
    items, outage, end = outage_stream(START)
    # Without the gap the drop fires (tests/test_engine.py); with the gap it is ours.
    plain = Monitor(engine_for([VOLUME_DOWN], items)).run(end, START)
    assert [t.state for t in plain if t.at >= outage.start][:1] == ["firing"]
    engine = engine_for([VOLUME_DOWN], items)
    engine.add_gaps([Gap(outage.start - timedelta(minutes=1), outage.end)])
    monitor = Monitor(engine)
    transitions = monitor.run(end, START)
    assert [t for t in transitions if t.at >= outage.start] == []
    during = [
        e
        for e in engine.evaluate(VOLUME_DOWN, outage.start, outage.end + timedelta(minutes=55))
        if e.group == ("original",)
    ]
    assert during and all(not e.judged and not e.breach for e in during)


def test_over_a_gap_a_rule_in_both_directions_still_judges_a_rise() -> None:
    rule = Rule(name="vol", metric="volume", bucket=3600, baseline=86400, z=4, direction="both")
    engine = Engine([rule])
    engine.add_gaps([Gap(at(10), at(10, 30))])
    rise = Evaluation("vol", (), at(11), 500.0, 100.0, 6.0, 500.0, breach=True, window=3600.0)
    fall = Evaluation("vol", (), at(11), 10.0, 100.0, -6.0, 10.0, breach=True, window=3600.0)
    later = Evaluation("vol", (), at(12), 10.0, 100.0, -6.0, 10.0, breach=True, window=3600.0)
    assert engine._over_gap(rule, rise) == rise
    assert not engine._over_gap(rule, fall).judged
    assert engine._over_gap(rule, later) == later  # the window 11:00-12:00 misses the gap


# -- budgets: estimated over a gap ------------------------------------------------------


def test_a_budget_whose_period_holds_a_gap_is_estimated_and_says_so() -> None:
    now = at(12)
    events = [make_event(i, at(0) + timedelta(minutes=10 * i), credits=10.0) for i in range(60)]
    cube = UsageCube(900)
    cube.add(batch_from_events(events))
    # The summary counted 900 credits today; events hold 600: the gap lost 300.
    daily = {(D, TOTAL): DailyUsage(D, TOTAL, 90, 90, 0, 900.0)}
    account = Budget(name="acct", limit=10_000, period="day")
    gap = Gap(at(3), at(4))
    figures = summary_figures(daily, account.scope)
    clean = status(account, cube, figures, now)
    marked = status(account, cube, figures, now, [gap])
    assert clean.spent == pytest.approx(900.0) and marked.spent == pytest.approx(900.0)
    assert not clean.estimated and marked.estimated
    state = as_json(marked)
    assert state["estimated"] is True
    assert "Estimated: events were lost in a gap" in budget_words.spent_line(state)
    assert "~900" in budget_words.budgets_report([state], "as of 1 min ago")
    segment = as_json(
        status(
            Budget(name="seg", limit=1e4, period="day", scope=(("segment", "enterprise"),)),
            cube,
            None,
            now,
            [gap],
        )
    )
    assert "probably low" in budget_words.spent_line(segment)


# -- the store, the CLI, /usage summary, /healthz, the digest -------------------------------


def fill(store: Store, now: datetime, *, lost: int = 0) -> None:
    """Three hours of one finished job a minute, snapshots every 15 minutes; `lost`
    events of the second hour are never stored (a gap)."""
    start = (now - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    events = [make_event(i, start + timedelta(minutes=i, seconds=30)) for i in range(180)]
    kept = [e for i, e in enumerate(events) if not 60 <= i < 60 + lost]
    for chunk in range(0, len(kept), 90):
        store.save_events(EventsPage(100, tuple(reversed(kept[chunk : chunk + 90]))), now)
    base = 1000
    for k in range(13):
        polled = start + timedelta(minutes=15 * k)
        day = polled.date()
        done = base + sum(1 for e in events if e.created_at < polled)
        row = DailyUsage(day, TOTAL, done, done, 0, 60.0 * done)
        summary = Summary(1, day, day, done, done, 0, 60.0 * done, (row,), False)
        store.save_summary(summary, polled)


def test_store_coverage_hours_and_the_query_table(tmp_path: Path) -> None:
    now = datetime(2026, 11, 29, 13, 0, 30, tzinfo=UTC)
    store = Store(tmp_path / "bot.db")
    try:
        fill(store, now, lost=30)
        result = store.coverage_hours(now, hours=4)
        assert [(h.hour.hour, h.stored, round(h.reported)) for h in result.hours] == [
            (10, 60, 60),
            (11, 30, 60),
            (12, 60, 60),
            (13, 0, 0),
        ]
        assert result.ratio == pytest.approx(150 / 180)
        text = commands.coverage_text(store, now, hours=4)
        assert "Coverage, last 4 h" in text and "83.3%" in text
        assert re.search(r"2026-11-29 11:00\s+30\s+60\.0\s+50\.0%", text), text
        assert "no summary" in text  # 13:00: no snapshot after it yet
        summary = commands.summary_text(store, 1, now)
        assert "Coverage, last 24 h: 83.3% (150 of about 180 finished jobs" in summary
    finally:
        store.close()


def test_the_summary_footer_stays_quiet_when_coverage_is_full(store: Store) -> None:
    now = datetime(2026, 11, 29, 13, 0, 30, tzinfo=UTC)
    fill(store, now)
    assert store.coverage_hours(now).ratio == 1.0
    assert "Coverage" not in commands.summary_text(store, 1, now)


def test_query_coverage_prints_the_table(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(db_path)
    fill(store, datetime.now(UTC), lost=10)
    store.close()
    monkeypatch.setenv("BOT_DB_PATH", str(db_path))
    assert main(["query", "coverage", "--hours", "6"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Coverage, last 6 h (UTC;")
    assert "hour (UTC)" in out and "reported" in out


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as http:
        yield http


def test_healthz_carries_the_coverage_figure(db_path: Path, client: httpx.Client) -> None:
    store = Store(db_path)
    fill(store, datetime.now(UTC), lost=18)
    store.close()
    for url in serve_app(Settings(db_path=str(db_path), slack_signing_secret=SECRET, port=0)):
        body = client.get(f"{url}/healthz").json()
    assert body["status"] == "ok" and body["events_stored"] == 162  # the old fields stay
    assert body["coverage"]["stored"] < body["coverage"]["reported"]
    assert body["coverage"]["coverage"] == pytest.approx(0.9, abs=0.02)
    assert set(body["coverage"]) == {"start", "end", "stored", "reported", "coverage"}


def test_the_digest_shows_coverage_and_marks_estimated_figures() -> None:
    payload = {
        "day": "2026-11-28",
        "timezone": "UTC",
        "at": "2026-11-29T09:00:00Z",
        "models": [
            {
                "model": "pro",
                "jobs": 100,
                "finished": 90,
                "failed": 3,
                "credits": 5000,
                "median_7d": 4800,
            }
        ],
        "budgets": [],
        "alerts": [],
        "chart": {"days": ["2026-11-28"], "credits": {"pro": [5000.0]}},
        "coverage": {"start": "", "end": "", "stored": 855, "reported": 900.0, "coverage": 0.95},
        "estimated": True,
    }
    text = digest_text(payload)
    assert "Coverage: 95.0% of the finished jobs the summary reports were stored" in text
    assert "855 of about 900" in text
    assert "_Estimated: events were lost in a gap that day" in text
    payload["estimated"] = False
    assert "Estimated" not in digest_text(payload)
    assert messages.digest_coverage_lines(None, False) == []
