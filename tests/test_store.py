"""The store, on SQLite and on PostgreSQL alike (the `store` and `database` fixtures run
each test on both): idempotent events, atomic writes, the gap detector, summaries."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import date, timedelta
from math import inf, nan
from pathlib import Path

import pytest

from bot.models import TOTAL, DailyUsage, EventsPage, PollRecord, SaveResult, Summary
from bot.store import CYCLE_SQL, CycleView, Store
from bot.store.database import database_errors
from bot.store.hooks import insert_hook
from tests.helpers import T0, event_series, make_event, make_firing


def page(events: list, limit: int = 100) -> EventsPage:  # type: ignore[type-arg]
    return EventsPage(
        limit=limit, items=tuple(sorted(events, key=lambda e: e.created_at, reverse=True))
    )


def test_the_same_events_twice_are_stored_once(store: Store) -> None:
    events = event_series(50)
    first = store.save_events(page(events), stored_at=T0)
    second = store.save_events(page(events), stored_at=T0)
    assert len(first.new_events) == 50 and second.new_events == ()
    assert store.count_events() == 50


def test_a_page_with_a_repeated_id_stores_it_once(store: Store) -> None:
    events = event_series(3)
    result = store.save_events(page([*events, events[0]]), stored_at=T0)
    assert len(result.new_events) == 3 and store.count_events() == 3


def test_events_round_trip_with_metadata(store: Store) -> None:
    events = event_series(5)
    store.save_events(page(events), stored_at=T0)
    assert store.events_between(T0, T0 + timedelta(hours=1)) == events
    assert store.recent_events(2) == [events[4], events[3]]


def test_events_of_any_text_and_number_round_trip(store: Store) -> None:
    # On PostgreSQL a page's new events go as one JSON parameter: what JSON escapes
    # (quotes, backslashes, control characters, non-ASCII) and numbers come back as they were.
    odd = [
        replace(
            make_event(n, T0 + n * timedelta(seconds=1)),
            id=f"evt_{n} {text}",
            request_id=text,
            method=None,
            status_code=None if n % 2 else 503,
            error_code=text[::-1],
            credits_used=credits,
            duration_seconds=None if n % 3 else credits / 7,
            metadata={"customer_id": text, "segment": "\u00e9t\u00e9", "nested": {"k": [1, None]}},
        )
        for n, (text, credits) in enumerate(
            [
                ('quote " and \\ backslash', 0.1 + 0.2),
                ("tab\tnewline\n\u2028 and \U0001f600", 1e-300),
                ("{'json': null}", 123456789012.5),
                ("%s ? $1 ::json", 60),
            ]
        )
    ]
    assert len(store.save_events(page(odd), stored_at=T0).new_events) == 4
    assert store.events_between(T0, T0 + timedelta(hours=1)) == odd
    assert store.save_events(page(odd), stored_at=T0).new_events == ()  # known, by odd ids too
    # JSON has no NaN or infinity: such a page is stored all the same (a row at a time).
    strange = [replace(make_event(10 + n, T0), credits_used=x) for n, x in enumerate([nan, inf])]
    assert len(store.save_events(page(strange), stored_at=T0).new_events) == 2
    assert store.count_events() == 6


def test_batched_upserts_insert_update_and_keep_the_last_of_a_key_twice(store: Store) -> None:
    # On PostgreSQL upsert_batch sends its rows as one statement; rows it cannot (a key
    # twice, NaN) go one by one. Either way the result is that of one upsert a row.
    def cursors() -> dict[str, str]:
        return dict(store.db.execute("select * from rule_cursors").fetchall())

    with store.db.transaction():
        store.db.upsert_batch("rule_cursors", [{"rule": "a", "evaluated_through": "1"}], "rule")
        store.db.upsert_batch(
            "rule_cursors",
            [{"rule": r, "evaluated_through": t} for r, t in [("a", "2"), ("b", "2"), ("c", "2")]],
            "rule",
        )
    assert cursors() == {"a": "2", "b": "2", "c": "2"}
    with store.db.transaction():
        store.db.upsert_batch(
            "rule_cursors",
            [{"rule": r, "evaluated_through": t} for r, t in [("a", "3"), ("d", "3"), ("a", "4")]],
            "rule",
        )
    assert cursors() == {"a": "4", "b": "2", "c": "2", "d": "3"}
    row = {"group_key": "[]", "status": "firing", "breaches": 2, "normals": 0}
    with store.db.transaction():
        store.db.upsert_batch(
            "alert_states",
            [{**row, "rule": "x", "peak_zscore": 1.5}, {**row, "rule": "y", "peak_zscore": nan}],
            ("rule", "group_key"),
        )
        store.db.upsert_batch(
            "alert_states",
            [{**row, "rule": "x", "peak_zscore": 2.5}, {**row, "rule": "z", "peak_zscore": -1.0}],
            ("rule", "group_key"),
        )
    zscores = dict(store.db.execute("select rule, peak_zscore from alert_states").fetchall())
    assert zscores["x"] == 2.5 and zscores["z"] == -1.0 and set(zscores) == {"x", "y", "z"}


def test_a_crash_inside_the_transaction_leaves_no_partial_rows(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real_row = Store._row

    def failing_row(event, stored_at):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 30:
            raise RuntimeError("power cut")
        return real_row(event, stored_at)

    monkeypatch.setattr(Store, "_row", staticmethod(failing_row))
    with pytest.raises(RuntimeError):
        store.save_events(page(event_series(60)), stored_at=T0)
    assert store.count_events() == 0
    monkeypatch.setattr(Store, "_row", staticmethod(real_row))
    assert len(store.save_events(page(event_series(60)), stored_at=T0).new_events) == 60


def test_failed_write_transactions_leave_nothing_and_later_ones_work(store: Store) -> None:
    """On PostgreSQL a write transaction is sent as one pipeline: a statement that fails
    is raised at the commit at the latest, and what was sent after it is skipped. Here
    the statement after the failing one is used for the fifth time, when psycopg
    prepares it: its skipped preparation must not break the writes that follow."""
    store.episode("kept", True, "open", T0)
    for attempt in range(10):
        failing = attempt in (3, 4, 5)
        raises = pytest.raises(database_errors()) if failing else contextlib.nullcontext()
        with raises, store._atomic():
            if failing:
                store.db.insert("episodes", {"kind": "kept", "since": "", "text": "again"})
            store.db.execute(
                "insert into episodes (kind, since, text) values (?, '', '')", [str(attempt)]
            )
        assert (str(attempt) in store.open_episodes()) is not failing
    assert store.open_episodes()["kept"] == "open" and len(store.open_episodes()) == 8


def test_the_outbox_says_whether_anything_waits_to_be_told(store: Store) -> None:
    assert not store.outbox_waiting()
    store.save_decisions([], [make_firing()], {}, T0)
    assert store.outbox_waiting()
    ((transition_id, _),) = store.undelivered()
    store.mark_delivered(transition_id, T0)
    assert not store.outbox_waiting()
    store.episode("events gap", True, "a gap", T0)  # queues an ops notice
    assert store.outbox_waiting()
    (notice,) = store.undelivered_notices()
    store.notice_done(notice.id, T0, failed=True)
    assert not store.outbox_waiting()
    store.queue_post("digest 1", "digest", None, {}, T0)
    assert store.outbox_waiting()


def test_the_cycle_view_says_whether_anything_waits_and_the_store_what_it_queued_since(
    store: Store,
) -> None:
    view = store.cycle_view("delivery")
    assert not view.outbox_waiting and not store.waiting_since(view)
    store.save_decisions([], [make_firing()], {}, T0)  # queued through this store: flagged
    assert store.waiting_since(view)
    view = store.cycle_view("delivery")
    assert view.outbox_waiting and store.waiting_since(view)
    ((transition_id, _),) = store.undelivered()
    store.mark_delivered(transition_id, T0)
    view = store.cycle_view("delivery")  # the flag is cleared by each view
    assert not store.waiting_since(view)
    store.save_decisions([], [make_firing()], {}, T0)  # the same transition: not added again
    assert not store.waiting_since(view)
    for queue in (
        lambda: store.episode("events gap", True, "a gap", T0),
        lambda: store.queue_post("digest 1", "digest", None, {}, T0),
    ):
        view = store.cycle_view("delivery")
        assert view.outbox_waiting == store.outbox_waiting()
        for notice in store.undelivered_notices():
            store.notice_done(notice.id, T0)
        view = store.cycle_view("delivery")
        assert not store.waiting_since(view)
        queue()
        assert store.waiting_since(view)


def test_the_cycle_view_says_whether_a_hook_waits(store: Store) -> None:
    view = store.cycle_view("delivery")
    assert not view.hooks_waiting and not store.hooks_waiting_since(view)
    store._hooks_queued = True  # as save_budget_events sets it when it queues a hook
    assert store.hooks_waiting_since(view)
    with store.db.transaction():
        insert_hook(store.db, "b:2026-11:50", "b", "{}", T0)
    view = store.cycle_view("delivery")
    assert view.hooks_waiting and not store._hooks_queued
    (hook,) = store.hooks(due=0.0)
    store.hook_tried(hook.id, status=500, error="boom", retry_at=1e12, now=T0)
    assert store.cycle_view("delivery").hooks_waiting  # backing off: still waiting
    store.hook_tried(hook.id, status=200, error=None, retry_at=None, now=T0)
    assert not store.cycle_view("delivery").hooks_waiting


def test_the_cycles_waiting_checks_read_indexes_of_the_waiting_rows(store: Store) -> None:
    # A year of delivered alerts, notices, posts and hooks must not make every cycle's
    # first read scan them all: each check is answered from a partial index.
    if store.engine == "postgres":
        store.db.execute("set enable_seqscan = off")  # what the planner does on big tables
        rows = store.db.execute("explain " + CYCLE_SQL, ["delivery"]).fetchall()
    else:
        rows = store.db.execute("explain query plan " + CYCLE_SQL, ["delivery"]).fetchall()
    plan = "\n".join(str(row[-1]) for row in rows)
    for table in ("alert_transitions", "notices", "posts", "hooks"):
        assert f"idx_{table}_waiting" in plan, plan


def test_events_and_their_poll_row_are_written_together(store: Store) -> None:
    def row(saved: SaveResult) -> PollRecord:
        new = len(saved.new_events)
        return PollRecord("/v1/usage/events", T0, T0, "ok", 200, items_seen=5, items_new=new)

    assert len(store.save_events(page(event_series(5)), stored_at=T0, log=row).new_events) == 5
    assert store.save_events(page(event_series(5)), stored_at=T0, log=row).new_events == ()
    assert [p["items_new"] for p in store.polls()] == [0, 5]
    # An empty page writes its row too.
    store.save_events(EventsPage(100, ()), stored_at=T0, log=row)
    assert [p["items_new"] for p in store.polls()] == [0, 0, 5]

    # A failure while writing the row undoes the events: both or neither.
    def failing(saved: SaveResult) -> PollRecord:
        raise RuntimeError("power cut")

    later = [make_event(n, T0 + timedelta(hours=1)) for n in (10, 11, 12)]
    with pytest.raises(RuntimeError):
        store.save_events(page(later), stored_at=T0, log=failing)
    assert store.count_events() == 5 and len(store.polls()) == 3


def test_a_summary_and_its_poll_row_are_written_together(store: Store) -> None:
    def row() -> PollRecord:
        return PollRecord("/v1/usage/summary", T0, T0, "ok", 200, "req_s", items_seen=1)

    def failing() -> PollRecord:
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        store.save_summary(summary([("2026-11-29", [("pro", 1, 180.0)])]), T0, log=failing)
    assert store.last_summary_poll() is None and store.polls() == []
    store.save_summary(summary([("2026-11-29", [("pro", 1, 180.0)])]), T0, log=row)
    assert store.last_summary_poll() == T0
    assert [p["request_id"] for p in store.polls()] == ["req_s"]


def test_decisions_with_nothing_to_write_take_no_write_transaction(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_write() -> None:
        raise AssertionError("a write transaction")

    monkeypatch.setattr(store, "_atomic", no_write)
    assert store.save_decisions([], [], {}, T0) == 0


def test_the_gap_detector_on_a_crafted_sequence(store: Store) -> None:
    minute = timedelta(minutes=1)
    # First full page: nothing stored yet, so no gap can be claimed.
    assert store.save_events(page(event_series(10), limit=10), stored_at=T0).gap is None
    # Overlapping full page (oldest item already stored): no gap.
    overlap = [make_event(i, T0 + i * minute) for i in range(5, 15)]
    assert store.save_events(page(overlap, limit=10), stored_at=T0).gap is None
    # A partial page newer than anything stored: all events arrived, no gap.
    assert (
        store.save_events(page([make_event(20, T0 + 20 * minute)], limit=10), stored_at=T0).gap
        is None
    )
    # A full page entirely newer than the newest stored event: a gap.
    jump = [make_event(i, T0 + i * minute) for i in range(100, 110)]
    gap = store.save_events(page(jump, limit=10), stored_at=T0).gap
    assert gap is not None
    assert gap.newest_stored_at == T0 + 20 * minute and gap.oldest_seen_at == T0 + 100 * minute
    assert store.gaps() == [gap]
    # Whole-second timestamps: a full page of unseen events whose oldest shares the second
    # of the newest stored one is a gap too (that second's other events were never shown);
    # one that holds an event we have is not.
    second = T0 + 109 * minute
    same_second = [make_event(i, second) for i in range(200, 210)]
    tie = store.save_events(page(same_second, limit=10), stored_at=T0).gap
    assert tie is not None and tie.newest_stored_at == tie.oldest_seen_at == second
    overlapping = [make_event(i, second) for i in range(205, 215)]
    assert store.save_events(page(overlapping, limit=10), stored_at=T0).gap is None
    assert store.gaps() == [gap, tie]


def summary(
    days: list[tuple[str, list[tuple[str, int, float]]]], with_models: bool = True
) -> Summary:
    body_daily = []
    for day, models in days:
        entry: dict[str, object] = {
            "date": day,
            "total_jobs": sum(m[1] for m in models),
            "completed_jobs": sum(m[1] for m in models),
            "failed_jobs": 0,
            "credits_used": sum(m[2] for m in models),
        }
        if with_models:
            entry["by_model"] = [
                {
                    "model": m,
                    "total_jobs": n,
                    "completed_jobs": n,
                    "failed_jobs": 0,
                    "credits_used": c,
                }
                for m, n, c in models
            ]
        body_daily.append(entry)
    totals = {
        k: sum(d[k] for d in body_daily)
        for k in ("total_jobs", "completed_jobs", "failed_jobs", "credits_used")
    }  # type: ignore[misc]
    return Summary.from_api(
        {
            "days": len(days),
            "start_date": days[0][0],
            "end_date": days[-1][0],
            "daily": body_daily,
            **totals,
        }
    )


def test_summary_snapshots_keep_latest_daily_figures_per_model(store: Store) -> None:
    store.save_summary(
        summary([("2026-11-28", [("pro", 5, 900.0)]), ("2026-11-29", [("pro", 1, 180.0)])]), T0
    )
    # Later poll: today grew, and "light" appeared; the model absent today is cleared.
    store.save_summary(summary([("2026-11-29", [("light", 2, 90.0)])]), T0 + timedelta(minutes=15))
    rows = store.daily_usage(date(2026, 11, 28), date(2026, 11, 29))
    assert rows == [
        DailyUsage(date(2026, 11, 28), TOTAL, 5, 5, 0, 900.0),
        DailyUsage(date(2026, 11, 28), "pro", 5, 5, 0, 900.0),
        DailyUsage(date(2026, 11, 29), TOTAL, 2, 2, 0, 90.0),
        DailyUsage(date(2026, 11, 29), "light", 2, 2, 0, 90.0),
    ]
    assert store.last_summary_poll() == T0 + timedelta(minutes=15)
    assert not store.is_empty()


def test_a_summary_poll_writes_only_the_daily_figures_that_changed(store: Store) -> None:
    final = ("2026-11-28", [("pro", 5, 900.0)])
    first = store.save_summary(summary([final, ("2026-11-29", [("pro", 1, 180.0)])]), T0)
    later = T0 + timedelta(minutes=15)
    second = store.save_summary(summary([final, ("2026-11-29", [("pro", 2, 360.0)])]), later)
    rows = store.db.query("select date, model, snapshot_id from daily_usage")
    assert {(r["date"], r["model"], r["snapshot_id"]) for r in rows} == {
        ("2026-11-28", TOTAL, first),  # unchanged: not written again
        ("2026-11-28", "pro", first),
        ("2026-11-29", TOTAL, second),
        ("2026-11-29", "pro", second),
    }
    assert store.daily_usage(date(2026, 11, 29), date(2026, 11, 29))[1].total_jobs == 2


def test_a_cycle_reads_the_summary_poll_the_episodes_and_the_lease_together(
    store: Store,
) -> None:
    assert store.cycle_view("delivery") == CycleView(None, {}, None)
    store.save_summary(summary([("2026-11-29", [("pro", 1, 180.0)])]), T0)
    store.episode("events gap", True, "a gap", T0)
    assert store.hold_lease("delivery", "me", 100.0, 60.0)
    view = store.cycle_view("delivery")
    # The episode queued an ops notice: something waits to be told.
    assert view == CycleView(T0, {"events gap": "a gap"}, ("me", 160.0), True)
    # The lease as read: ours with more than half its time left holds without a query,
    # another's is judged again under the write lock.
    assert store.hold_lease("delivery", "me", 120.0, 60.0, known=view.lease)
    assert not store.hold_lease("delivery", "other", 120.0, 60.0, known=view.lease)
    assert store.hold_lease("delivery", "other", 161.0, 60.0, known=view.lease)  # lapsed
    assert store.cycle_view("delivery").lease == ("other", 221.0)
    # Ours with less than half its time left is renewed; another's in force is not taken.
    assert store.hold_lease("delivery", "other", 200.0, 60.0)
    assert not store.hold_lease("delivery", "me", 200.0, 60.0)
    assert store.cycle_view("delivery").lease == ("other", 260.0)


def test_poll_log_rows(store: Store) -> None:
    assert store.is_empty()
    store.log_poll(
        PollRecord(
            "/v1/usage/events",
            T0,
            T0 + timedelta(seconds=1),
            "ok",
            200,
            "req_1",
            items_seen=3,
            items_new=2,
        )
    )
    store.log_poll(PollRecord("/v1/usage/events", T0, T0, "error", 503, "req_2", "timeout", "boom"))
    newest, oldest = store.polls()
    assert (newest["status"], newest["error_code"], newest["request_id"]) == (
        "error",
        "timeout",
        "req_2",
    )
    assert (oldest["items_seen"], oldest["items_new"], oldest["duration_ms"]) == (3, 2, 1000.0)
    assert store.last_success("/v1/usage/events") == T0 + timedelta(seconds=1)


def test_a_database_survives_reopening_and_a_sqlite_file_uses_wal(database: str | Path) -> None:
    first = Store(database)
    first.save_events(page(event_series(5)), stored_at=T0)
    if first.engine == "sqlite":
        assert first.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    applied = first.migrations_applied()
    first.close()
    again = Store(database)  # migrations are idempotent
    assert again.migrations_applied() == applied
    assert again.count_events() == 5 and again.integrity_ok()
    again.close()


def test_pruning_keeps_recent_rows_and_drops_old_ones(store: Store) -> None:
    day = timedelta(days=1)
    store.save_events(page(event_series(10, T0 - 20 * day, step=day)), stored_at=T0)
    store.log_poll(PollRecord("/v1/usage/events", T0 - 9 * day, T0 - 9 * day, "ok"))
    store.log_poll(PollRecord("/v1/usage/events", T0, T0, "ok"))
    removed = store.prune(events_before=T0 - 15 * day, log_before=T0 - 7 * day)
    assert removed["events"] == 5 and removed["polls"] == 1
    assert min(e.created_at for e in store.recent_events(100)) == T0 - 15 * day
    assert len(store.polls()) == 1 and store.integrity_ok()
