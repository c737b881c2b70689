"""Tests for the simulated usage API: traffic, aggregates, HTTP semantics, faults, server."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jsonschema
import pytest

from bot.standins.simulator import (
    MODEL_PRICES,
    SEGMENTS,
    CompressedClock,
    Incident,
    ManualClock,
    Simulator,
    demo_incidents,
)

MONDAY = datetime(2026, 11, 23, tzinfo=UTC)
KEY = "sim-key"

# usage-api.md section 3, written out as JSON Schema.
_COUNTS = {
    "total_jobs": {"type": "integer", "minimum": 0},
    "completed_jobs": {"type": "integer", "minimum": 0},
    "failed_jobs": {"type": "integer", "minimum": 0},
    "credits_used": {"type": "number", "minimum": 0},
}
_MODEL_ROW = {
    "type": "object",
    "required": ["model", *_COUNTS],
    "properties": {"model": {"enum": list(MODEL_PRICES)}, **_COUNTS},
}
SUMMARY_SCHEMA = {
    "type": "object",
    "required": ["days", "start_date", "end_date", *_COUNTS, "by_model", "daily"],
    "properties": {
        "days": {"type": "integer", "minimum": 1, "maximum": 90},
        "start_date": {"type": "string", "format": "date"},
        "end_date": {"type": "string", "format": "date"},
        **_COUNTS,
        "by_model": {"type": "array", "items": _MODEL_ROW},
        "daily": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["date", *_COUNTS],
                "properties": {
                    "date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
                    **_COUNTS,
                    "by_model": {"type": "array", "items": _MODEL_ROW},
                },
            },
        },
    },
}
_NULLABLE_STR = {"type": ["string", "null"]}
EVENTS_SCHEMA = {
    "type": "object",
    "required": ["limit", "items"],
    "properties": {
        "limit": {"type": "integer", "minimum": 1, "maximum": 100},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "created_at", "request_id", "method", "endpoint"],
                "properties": {
                    "id": {"type": "string", "pattern": "^evt_"},
                    "created_at": {
                        "type": "string",
                        "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$",
                    },
                    "request_id": {"type": "string", "pattern": "^req_"},
                    "method": {"enum": ["GET", "POST"]},
                    "endpoint": {"type": "string", "pattern": "^/v1/"},
                    "status_code": {"type": "integer"},
                    "job_id": _NULLABLE_STR,
                    "model": {"enum": [*MODEL_PRICES, None]},
                    "output_format": {
                        "enum": ["webm", "mov", "mp4", "gif", "webp", "png_sequence", None]
                    },
                    "status": {"enum": ["pending", "processing", "completed", "failed", None]},
                    "credits_used": {"type": "number", "minimum": 0},
                    "duration_seconds": {"type": ["number", "null"]},
                    "error_code": _NULLABLE_STR,
                    "metadata": {
                        "type": ["object", "null"],
                        "properties": {
                            "customer_id": {"type": "string"},
                            "segment": {"enum": list(SEGMENTS)},
                        },
                    },
                },
            },
        },
    },
}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "request_id"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "request_id": {"type": "string", "pattern": "^req_"},
            },
        }
    },
}


def _sim(at: datetime, **kwargs: Any) -> Simulator:
    return Simulator(start=MONDAY, clock=ManualClock(at), **kwargs)


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts)


@pytest.fixture
def sim() -> Simulator:
    return _sim(MONDAY + timedelta(hours=14))


@pytest.fixture
def client(sim: Simulator) -> Iterator[httpx.Client]:
    transport = httpx.MockTransport(sim.handle)
    with httpx.Client(transport=transport, base_url="http://sim", headers={"X-Api-Key": KEY}) as c:
        yield c


# --- determinism and the event stream ------------------------------------------------------


def test_it_is_deterministic_across_poll_patterns() -> None:
    end = MONDAY + timedelta(hours=10)
    once = _sim(end)
    clock = ManualClock(MONDAY)
    polled = Simulator(start=MONDAY, clock=clock)
    for step in (1, 7, 60, 3, 120, 45, 300):  # irregular polling, mixed calls
        clock.advance(timedelta(minutes=step))
        polled.events_page(100)
        polled.summary(2)
    clock.set(end)
    assert polled.events_until(end) == once.events_until(end)
    assert polled.events_page(100) == once.events_page(100)
    assert polled.summary(7) == once.summary(7)


def test_a_different_seed_gives_different_traffic() -> None:
    end = MONDAY + timedelta(hours=2)
    assert _sim(end, seed=1).events_until(end) != _sim(end, seed=2).events_until(end)


def test_events_become_visible_only_once_created(sim: Simulator) -> None:
    early, late = MONDAY + timedelta(hours=3, seconds=17), MONDAY + timedelta(hours=5)
    first, second = sim.events_until(early), sim.events_until(late)
    assert all(_parse(e["created_at"]) <= early for e in first)
    assert second[: len(first)] == first  # the past never changes
    assert sim.events_until(MONDAY - timedelta(hours=1)) == []


def test_events_page_is_newest_first_capped_at_limit_with_unique_ids(sim: Simulator) -> None:
    page = sim.events_page(100)
    items = page["items"]
    assert page["limit"] == 100 and len(items) == 100
    stamps = [_parse(e["created_at"]) for e in items]
    assert stamps == sorted(stamps, reverse=True)
    assert len({e["id"] for e in items}) == 100
    assert items == list(reversed(sim.events_until(sim.now())[-100:]))
    assert len(sim.events_page(5)["items"]) == 5


def test_event_and_request_ids_are_unique_over_a_day() -> None:
    end = MONDAY + timedelta(days=1)
    events = _sim(end, jobs_per_hour=600).events_until(end)
    assert len({e["id"] for e in events}) == len(events)
    assert len({e["request_id"] for e in events}) == len(events)


def test_events_page_body_matches_the_schema(sim: Simulator) -> None:
    jsonschema.validate(sim.events_page(100), EVENTS_SCHEMA)
    for item in sim.events_until(sim.now()):
        assert item["status_code"] == 200


def test_each_job_has_a_creation_and_a_final_event(sim: Simulator) -> None:
    now = sim.now()
    events = sim.events_until(now)
    by_job: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        if e["job_id"] is not None:
            by_job.setdefault(e["job_id"], []).append(e)
    settled = [evs for evs in by_job.values() if len(evs) == 2]
    assert len(settled) > 0.95 * len(by_job)  # only the last few minutes are in flight
    for created, final in settled:
        assert (created["method"], created["endpoint"]) == ("POST", "/v1/jobs")
        assert created["status"] == "pending" and created["credits_used"] == 0
        assert final["method"] == "GET" and final["endpoint"] == f"/v1/jobs/{final['job_id']}"
        delay = _parse(final["created_at"]) - _parse(created["created_at"])
        assert timedelta(0) < delay <= timedelta(minutes=15)
        if final["status"] == "completed":
            price = MODEL_PRICES[final["model"]]
            assert final["credits_used"] == round(final["duration_seconds"] / 60 * price, 2)
            assert final["error_code"] is None
        else:
            assert final["status"] == "failed" and final["credits_used"] == 0
            assert final["error_code"] in {"internal_error", "timeout"}
    for evs in by_job.values():  # in flight: created, not finished
        if len(evs) == 1:
            assert evs[0]["status"] == "pending"
            assert now - _parse(evs[0]["created_at"]) <= timedelta(minutes=15)


def test_traffic_has_the_documented_mix_and_a_daily_rhythm() -> None:
    end = MONDAY + timedelta(days=1)
    jobs = [e for e in _sim(end).events_until(end) if e["status"] == "pending"]
    n = len(jobs)
    assert 2800 < n < 3700  # a weekday at 120 jobs/hour on weekly average
    models = Counter(e["model"] for e in jobs)
    for model, share in {"original": 0.45, "light": 0.25, "pro": 0.15, "human": 0.15}.items():
        assert models[model] / n == pytest.approx(share, abs=0.03)
    segments = Counter(e["metadata"]["segment"] if e["metadata"] else None for e in jobs)
    assert set(segments) == {*SEGMENTS, None}
    assert 0 < segments[None] / n < 0.06
    assert len({e["metadata"]["customer_id"] for e in jobs if e["metadata"]}) == 12
    hours = Counter(_parse(e["created_at"]).hour for e in jobs)
    assert hours[14] > 2.5 * hours[2]  # business-hours peak, night trough
    durations = sorted(e["duration_seconds"] for e in jobs)
    assert 70 < durations[n // 2] < 90  # lognormal, median 80 s


def test_weekends_are_quieter_than_weekdays() -> None:
    saturday = MONDAY + timedelta(days=5)
    sim = Simulator(start=saturday, clock=ManualClock(saturday + timedelta(days=1)))
    weekend = sim.summary(1)["total_jobs"]
    monday = sim.summary(6)["daily"][0]  # synthetic history, same rates
    assert weekend < 0.75 * monday["total_jobs"]


# --- incidents -----------------------------------------------------------------------------


def _failure_rate(events: list[dict[str, Any]], model: str, inside: Incident | None) -> float:
    created = {e["job_id"]: _parse(e["created_at"]) for e in events if e["status"] == "pending"}
    finals = [e for e in events if e["model"] == model and e["status"] in ("completed", "failed")]
    if inside is not None:
        finals = [e for e in finals if inside.start <= created[e["job_id"]] < inside.end]
    return sum(1 for e in finals if e["status"] == "failed") / len(finals)


def test_failure_spike_raises_that_models_failure_rate_inside_its_window_only() -> None:
    spike = Incident(
        "failure_spike", MONDAY + timedelta(hours=10), MONDAY + timedelta(hours=12), model="pro"
    )
    end = MONDAY + timedelta(hours=16)
    events = _sim(end, jobs_per_hour=600, incidents=[spike]).events_until(end)
    assert _failure_rate(events, "pro", inside=spike) > 0.35
    before = [e for e in events if _parse(e["created_at"]) < spike.start]
    assert _failure_rate(before, "pro", inside=None) < 0.08
    assert _failure_rate(events, "original", inside=spike) < 0.08


def test_incidents_leave_traffic_outside_their_window_untouched() -> None:
    spike = Incident("failure_spike", MONDAY + timedelta(hours=2), MONDAY + timedelta(hours=3))
    end = MONDAY + timedelta(hours=5)
    plain = _sim(end).events_until(end)
    spiked = _sim(end, incidents=[spike]).events_until(end)
    cutoff = spike.start.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert [e for e in spiked if e["created_at"] < cutoff] == [
        e for e in plain if e["created_at"] < cutoff
    ]
    assert {e["job_id"] for e in spiked} == {e["job_id"] for e in plain}  # same jobs, new fates


def test_spend_runaway_multiplies_the_matching_models_spend() -> None:
    runaway = Incident(
        "spend_runaway", MONDAY + timedelta(hours=12), MONDAY + timedelta(hours=13), model="light"
    )
    at = MONDAY + timedelta(hours=13, minutes=20)

    def spend(sim: Simulator, model: str) -> float:
        return float(
            sum(
                e["credits_used"]
                for e in sim.events_until(at)
                if e["model"] == model and runaway.start <= _parse(e["created_at"]) < at
            )
        )

    plain, hot = _sim(at), _sim(at, incidents=[runaway])
    assert spend(hot, "light") > 3 * spend(plain, "light")
    assert spend(hot, "pro") == spend(plain, "pro")
    assert hot.summary(1)["credits_used"] > plain.summary(1)["credits_used"]


def test_a_creep_ramps_its_factor_from_one_then_holds() -> None:
    creep = Incident(
        "spend_runaway",
        MONDAY + timedelta(hours=1),
        MONDAY + timedelta(hours=5),
        model="pro",
        factor=3.0,
        ramp_hours=2,
    )
    start = creep.start.timestamp()
    assert creep.factor_at(start) == 1.0
    assert creep.factor_at(start + 3600) == pytest.approx(2.0)
    assert creep.factor_at(start + 3 * 3600) == creep.factor_at(start + 2 * 3600) == 3.0
    end = MONDAY + timedelta(hours=6)

    def pro_jobs(sim: Simulator, lo: float, hi: float) -> int:
        return sum(
            1
            for e in sim.events_until(end)
            if e["status"] == "pending"
            and e["model"] == "pro"
            and lo <= _parse(e["created_at"]).timestamp() - start < hi
        )

    plain = _sim(end, jobs_per_hour=3000)
    hot = _sim(end, jobs_per_hour=3000, incidents=[creep])
    early = pro_jobs(hot, 0, 1800) / pro_jobs(plain, 0, 1800)
    held = pro_jobs(hot, 2 * 3600, 4 * 3600) / pro_jobs(plain, 2 * 3600, 4 * 3600)
    assert 1.0 < early < 1.6 and 2.6 < held < 3.4


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "failure_spike", "ramp_hours": 1.0},
        {"kind": "spend_runaway", "ramp_hours": -1.0},
        {"kind": "spend_runaway", "ramp_hours": 2.0},  # longer than the incident
    ],
)
def test_invalid_ramps_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Incident(start=MONDAY, end=MONDAY + timedelta(hours=1), **kwargs)


def test_a_busy_hour_doubles_weekday_arrivals_in_that_hour_and_the_history_knows_it() -> None:
    saturday = MONDAY + timedelta(days=5)
    end = saturday + timedelta(days=1)
    plain, busy = _sim(end), _sim(end, busy_hour=(9, 2.0))

    def by_hour(sim: Simulator) -> Counter[tuple[int, int]]:
        return Counter(
            (_parse(e["created_at"]).weekday(), _parse(e["created_at"]).hour)
            for e in sim.events_until(end)
            if e["status"] == "pending"
        )

    a, b = by_hour(plain), by_hour(busy)
    weekday_nine = sum(b[(d, 9)] for d in range(5)) / sum(a[(d, 9)] for d in range(5))
    assert 1.8 < weekday_nine < 2.2
    assert b[(5, 9)] == a[(5, 9)] and b[(2, 10)] == a[(2, 10)]  # weekends, other hours
    # the synthetic history has the busy hour's extra jobs on weekdays only
    flat = {d["date"]: d["total_jobs"] for d in plain.summary(20)["daily"]}
    for day in busy.summary(20)["daily"]:
        when = datetime.fromisoformat(day["date"])
        if when.date() < MONDAY.date():
            extra = day["total_jobs"] - flat[day["date"]]
            assert extra > 0 if when.weekday() < 5 else extra == 0, day["date"]


def test_customer_shares_give_a_big_customer_its_share_and_keep_the_model_mix() -> None:
    end = MONDAY + timedelta(hours=12)
    jobs = [
        e
        for e in _sim(end, customer_shares={"acme": 0.5}, jobs_per_hour=1200).events_until(end)
        if e["status"] == "pending"
    ]
    customers = Counter(e["metadata"]["customer_id"] if e["metadata"] else None for e in jobs)
    assert customers["acme"] / len(jobs) == pytest.approx(0.5, abs=0.03)
    assert customers["globex"] / len(jobs) == pytest.approx(0.13 * 0.5 / 0.85, abs=0.02)
    models = Counter(e["model"] for e in jobs)
    assert models["original"] / len(jobs) == pytest.approx(0.45, abs=0.03)
    with pytest.raises(ValueError):
        _sim(end, customer_shares={"nobody": 0.5})
    with pytest.raises(ValueError):
        _sim(end, customer_shares={"acme": 0.7, "globex": 0.4})


def test_outage_stops_matching_arrivals() -> None:
    outage = Incident(
        "outage", MONDAY + timedelta(hours=9), MONDAY + timedelta(hours=11), segment="enterprise"
    )
    end = MONDAY + timedelta(hours=12)
    created = [
        e
        for e in _sim(end, incidents=[outage]).events_until(end)
        if e["status"] == "pending" and outage.start <= _parse(e["created_at"]) < outage.end
    ]
    segments = Counter(e["metadata"]["segment"] if e["metadata"] else None for e in created)
    assert segments["enterprise"] == 0 and segments["smb"] > 0


def test_a_customer_failure_spike_fails_only_that_customers_jobs() -> None:
    spike = Incident(
        "failure_spike",
        MONDAY + timedelta(hours=9),
        MONDAY + timedelta(hours=11),
        customer="acme",
        failure_rate=0.8,
    )
    end = MONDAY + timedelta(hours=12)

    def failure_rates(sim: Simulator) -> dict[str | None, float]:
        finished = [
            e
            for e in sim.events_until(end)
            if e["status"] in ("completed", "failed")
            # a job's last event trails it by at most 15 minutes: these jobs began in it
            and spike.start + timedelta(minutes=15) <= _parse(e["created_at"]) < spike.end
        ]
        by: dict[str | None, list[bool]] = {}
        for e in finished:
            customer = e["metadata"]["customer_id"] if e["metadata"] else None
            by.setdefault(customer, []).append(e["status"] == "failed")
        return {c: sum(fails) / len(fails) for c, fails in by.items()}

    plain, hot = failure_rates(_sim(end)), failure_rates(_sim(end, incidents=[spike]))
    assert hot["acme"] > 0.5 > 0.1 > plain["acme"]
    assert {c: r for c, r in hot.items() if c != "acme"} == {
        c: r for c, r in plain.items() if c != "acme"
    }


def test_demo_incidents_script_a_pro_spike_a_light_runaway_then_every_model_failing() -> None:
    spike, runaway, outage = demo_incidents(MONDAY)
    assert (spike.kind, spike.model) == ("failure_spike", "pro")
    assert (runaway.kind, runaway.model) == ("spend_runaway", "light")
    assert (outage.kind, outage.model, outage.segment) == ("failure_spike", None, None)
    assert MONDAY < spike.start < spike.end <= runaway.start < runaway.end <= outage.start
    assert outage.end - outage.start == timedelta(minutes=15)
    assert outage.end - MONDAY <= timedelta(hours=12)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"start": MONDAY.replace(tzinfo=None), "end": MONDAY + timedelta(hours=1)},
        {"start": MONDAY, "end": MONDAY},
        {"start": MONDAY, "end": MONDAY + timedelta(hours=1), "model": "ultra"},
        {"start": MONDAY, "end": MONDAY + timedelta(hours=1), "segment": "whale"},
        {"start": MONDAY, "end": MONDAY + timedelta(hours=1), "customer": "nobody"},
        {"start": MONDAY, "end": MONDAY + timedelta(hours=1), "factor": 0.5},
    ],
)
def test_invalid_incidents_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Incident("spend_runaway", **kwargs)


# --- summary -------------------------------------------------------------------------------


def test_summary_body_matches_the_schema(sim: Simulator) -> None:
    jsonschema.validate(sim.summary(90), SUMMARY_SCHEMA)


def test_summary_totals_equal_sums_over_daily() -> None:
    sim = _sim(MONDAY + timedelta(days=1, hours=6), history_days=3)
    body = sim.summary(10)
    daily = body["daily"]
    assert len(daily) == 10 and body["days"] == 10
    assert daily[-1]["date"] == body["end_date"] == "2026-11-24"  # today, partial
    assert daily[0]["date"] == body["start_date"] == "2026-11-15"
    dates = [datetime.fromisoformat(d["date"]) for d in daily]
    assert all(b - a == timedelta(days=1) for a, b in zip(dates, dates[1:], strict=False))
    for day in daily[:5]:  # before the 3 days of history: zero-filled
        assert (day["total_jobs"], day["credits_used"], day["by_model"]) == (0, 0.0, [])
    for key in ("total_jobs", "completed_jobs", "failed_jobs", "credits_used"):
        assert body[key] == pytest.approx(sum(d[key] for d in daily))
        assert body[key] == pytest.approx(sum(m[key] for m in body["by_model"]))
        for day in daily:
            assert day[key] == pytest.approx(sum(m[key] for m in day["by_model"]))
    for row in body["by_model"]:
        per_day = [m for d in daily for m in d["by_model"] if m["model"] == row["model"]]
        assert row["total_jobs"] == sum(m["total_jobs"] for m in per_day)


def test_summary_of_simulated_days_counts_the_events() -> None:
    now = MONDAY + timedelta(days=1, hours=6, seconds=30)
    sim = _sim(now)
    events = sim.events_until(now)
    for day in sim.summary(2)["daily"]:
        todays = [e for e in events if e["created_at"].startswith(day["date"])]
        statuses = Counter(e["status"] for e in todays)
        assert day["total_jobs"] == statuses["pending"]
        assert day["completed_jobs"] == statuses["completed"]
        assert day["failed_jobs"] == statuses["failed"]
        assert day["credits_used"] == pytest.approx(sum(e["credits_used"] for e in todays))


def test_history_before_start_is_synthetic_but_at_the_same_rates() -> None:
    sim = _sim(MONDAY + timedelta(days=1))
    daily = sim.summary(9)["daily"]  # Monday 16th (synthetic) .. Tuesday 24th (today)
    synthetic_monday, simulated_monday = daily[0], daily[7]
    assert synthetic_monday["date"] == "2026-11-16"
    ratio = synthetic_monday["total_jobs"] / simulated_monday["total_jobs"]
    assert 0.9 < ratio < 1.1
    credit_ratio = synthetic_monday["credits_used"] / simulated_monday["credits_used"]
    assert 0.85 < credit_ratio < 1.15
    assert sim.summary(90) == _sim(MONDAY + timedelta(days=1)).summary(90)  # seeded by date


def test_a_steady_streams_history_has_no_weekends_either() -> None:
    """A steady stream runs the same rate at every hour of every day: its synthetic
    history says so too, or a bot reading weekdays' levels from it would expect quiet
    weekends the events never have."""
    sim = _sim(MONDAY + timedelta(days=1), events_per_second=2.0)
    daily = sim.summary(9)["daily"]  # Monday 16th (synthetic) .. Tuesday 24th (today)
    synthetic = {d["date"]: d["total_jobs"] for d in daily[:7]}
    expected = 24 * 3600.0  # jobs a day at one job a second (two events per job)
    assert all(0.98 < jobs / expected < 1.02 for jobs in synthetic.values()), synthetic
    simulated_monday = daily[7]["total_jobs"]
    assert 0.97 < synthetic["2026-11-16"] / simulated_monday < 1.03


def test_summary_shows_jobs_in_flight_today() -> None:
    today = _sim(MONDAY + timedelta(hours=15)).summary(1)["daily"][-1]
    assert today["total_jobs"] > today["completed_jobs"] + today["failed_jobs"]


# --- HTTP semantics (MockTransport) ----------------------------------------------------------


def test_a_valid_key_gets_both_bodies(client: httpx.Client) -> None:
    summary = client.get("/v1/usage/summary", params={"days": 7})
    events = client.get("/v1/usage/events", params={"limit": 20})
    assert summary.status_code == events.status_code == 200
    assert summary.headers["content-type"] == "application/json"
    assert summary.headers["x-request-id"].startswith("req_")
    jsonschema.validate(summary.json(), SUMMARY_SCHEMA)
    jsonschema.validate(events.json(), EVENTS_SCHEMA)
    assert len(events.json()["items"]) == 20


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"X-Api-Key": ""}, "missing_api_key"),
        ({"X-Api-Key": "nope"}, "invalid_api_key"),
    ],
)
def test_bad_credentials_get_401(sim: Simulator, headers: dict[str, str], code: str) -> None:
    with httpx.Client(transport=httpx.MockTransport(sim.handle), base_url="http://sim") as c:
        response = c.get("/v1/usage/events", params={"limit": 5}, headers=headers)
    assert response.status_code == 401
    jsonschema.validate(response.json(), ERROR_SCHEMA)
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/usage/summary", {"days": "0"}),
        ("/v1/usage/summary", {"days": "91"}),
        ("/v1/usage/summary", {"days": "7.5"}),
        ("/v1/usage/summary", {"days": "seven"}),
        ("/v1/usage/events", {"limit": "0"}),
        ("/v1/usage/events", {"limit": "101"}),
        ("/v1/usage/events", {"limit": ""}),
    ],
)
def test_out_of_range_parameters_get_400(
    client: httpx.Client, path: str, params: dict[str, str]
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert response.json()["error"]["request_id"] == response.headers["x-request-id"]


def test_boundary_parameters_are_accepted(client: httpx.Client) -> None:
    for path, params in [
        ("/v1/usage/summary", {"days": "1"}),
        ("/v1/usage/summary", {"days": "90"}),
        ("/v1/usage/events", {"limit": "1"}),
        ("/v1/usage/events", {"limit": "100"}),
    ]:
        assert client.get(path, params=params).status_code == 200


def test_unknown_paths_get_404(client: httpx.Client) -> None:
    response = client.get("/v1/usage/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_every_request_is_recorded(sim: Simulator, client: httpx.Client) -> None:
    sim.inject("500", "summary", times=2)
    statuses = [client.get("/v1/usage/summary", params={"days": 3}).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert [(r.endpoint, r.params, r.status, r.fault) for r in sim.requests] == [
        ("/v1/usage/summary", {"days": "3"}, 500, "500"),
        ("/v1/usage/summary", {"days": "3"}, 500, "500"),
        ("/v1/usage/summary", {"days": "3"}, 200, None),
    ]
    assert all(r.at == sim.now() for r in sim.requests)


# --- faults (MockTransport) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "code", "retry_after"),
    [
        ("429", 429, "rate_limited", None),
        ("429_retry_after", 429, "rate_limited", "1"),
        ("500", 500, "internal_error", None),
        ("503", 503, "internal_error", None),
        ("504", 504, "timeout", None),
        ("401", 401, "invalid_api_key", None),
        ("402", 402, "insufficient_credits", None),
    ],
)
def test_error_faults_answer_with_the_error_envelope(
    sim: Simulator,
    client: httpx.Client,
    kind: str,
    status: int,
    code: str,
    retry_after: str | None,
) -> None:
    sim.inject(kind)
    response = client.get("/v1/usage/events", params={"limit": 10})
    assert response.status_code == status
    jsonschema.validate(response.json(), ERROR_SCHEMA)
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["request_id"] == response.headers["x-request-id"]
    assert response.headers.get("retry-after") == retry_after
    assert client.get("/v1/usage/events", params={"limit": 10}).status_code == 200  # one-shot


def test_hang_fault_raises_read_timeout(sim: Simulator, client: httpx.Client) -> None:
    sim.inject("hang")
    with pytest.raises(httpx.ReadTimeout):
        client.get("/v1/usage/events")
    assert sim.requests[-1].status == 0


def test_drop_fault_raises_remote_protocol_error(sim: Simulator, client: httpx.Client) -> None:
    sim.inject("drop")
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/v1/usage/summary")


def test_non_json_fault_answers_200_with_html(sim: Simulator, client: httpx.Client) -> None:
    sim.inject("non_json")
    response = client.get("/v1/usage/events")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html"
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_wrong_shape_fault_breaks_the_schema(sim: Simulator, client: httpx.Client) -> None:
    sim.inject("wrong_shape", times=2)
    events = client.get("/v1/usage/events")
    summary = client.get("/v1/usage/summary")
    assert events.status_code == summary.status_code == 200
    assert not isinstance(events.json()["items"], list)
    assert isinstance(summary.json()["credits_used"], str)
    for body, schema in [(events.json(), EVENTS_SCHEMA), (summary.json(), SUMMARY_SCHEMA)]:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(body, schema)


def test_huge_fault_answers_a_20_mb_body(sim: Simulator, client: httpx.Client) -> None:
    sim.inject("huge")
    response = client.get("/v1/usage/events")
    assert response.status_code == 200
    assert len(response.content) > 20_000_000


def test_faults_apply_in_order_to_their_endpoint_only(sim: Simulator, client: httpx.Client) -> None:
    sim.inject("503", "summary")
    sim.inject("429")
    assert client.get("/v1/usage/events").status_code == 429  # the summary fault is skipped
    assert client.get("/v1/usage/events").status_code == 200
    assert client.get("/v1/usage/summary").status_code == 503
    assert client.get("/v1/usage/summary").status_code == 200


def test_a_persistent_fault_lasts_until_cleared(sim: Simulator, client: httpx.Client) -> None:
    sim.inject("401", times=-1)
    assert {client.get("/v1/usage/events").status_code for _ in range(5)} == {401}
    sim.clear_faults()
    assert client.get("/v1/usage/events").status_code == 200


@pytest.mark.parametrize(
    ("kind", "endpoint", "times"),
    [("teapot", None, 1), ("500", "jobs", 1), ("500", None, 0), ("500", None, -2)],
)
def test_invalid_faults_are_rejected(
    sim: Simulator, kind: str, endpoint: str | None, times: int
) -> None:
    with pytest.raises(ValueError):
        sim.inject(kind, endpoint, times)


# --- the loopback server -------------------------------------------------------------------


@pytest.fixture
def served() -> Iterator[tuple[Simulator, str]]:
    sim = _sim(MONDAY + timedelta(hours=9), hang_seconds=1.0)
    with sim.serve() as server:
        yield sim, server.url


def test_server_answers_200_and_401(served: tuple[Simulator, str]) -> None:
    _, url = served
    with httpx.Client(base_url=url, timeout=5.0) as c:
        ok = c.get("/v1/usage/events", params={"limit": 3}, headers={"X-Api-Key": KEY})
        denied = c.get("/v1/usage/summary", headers={"X-Api-Key": "wrong"})
    assert ok.status_code == 200 and len(ok.json()["items"]) == 3
    assert ok.headers["x-request-id"].startswith("req_")
    assert denied.status_code == 401
    assert denied.json()["error"]["code"] == "invalid_api_key"
    assert denied.json()["error"]["request_id"] == denied.headers["x-request-id"]


def test_server_hang_hits_the_client_read_timeout(served: tuple[Simulator, str]) -> None:
    sim, url = served
    sim.inject("hang")
    with httpx.Client(base_url=url, timeout=0.2) as c:
        with pytest.raises(httpx.ReadTimeout):
            c.get("/v1/usage/events", headers={"X-Api-Key": KEY})


def test_server_drop_closes_the_connection_unanswered(served: tuple[Simulator, str]) -> None:
    sim, url = served
    sim.inject("drop")
    with httpx.Client(base_url=url, timeout=2.0) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            c.get("/v1/usage/events", headers={"X-Api-Key": KEY})
        assert c.get("/v1/usage/events", headers={"X-Api-Key": KEY}).status_code == 200


def test_server_closes_promptly_while_a_hang_is_in_progress() -> None:
    sim = _sim(MONDAY + timedelta(hours=9), hang_seconds=30.0)
    server = sim.serve()
    sim.inject("hang")
    outcome: list[BaseException | int] = []

    def call() -> None:
        try:
            with httpx.Client(base_url=server.url, timeout=10.0) as c:
                outcome.append(c.get("/v1/usage/events", headers={"X-Api-Key": KEY}).status_code)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 5
    while not sim.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    began = time.monotonic()
    server.close()
    assert time.monotonic() - began < 1.0
    caller.join(timeout=5)
    assert isinstance(outcome[0], httpx.RemoteProtocolError)  # dropped, never answered


def test_server_keeps_stderr_quiet(
    served: tuple[Simulator, str], capfd: pytest.CaptureFixture[str]
) -> None:
    _, url = served
    with httpx.Client(base_url=url, timeout=5.0) as c:
        c.get("/v1/usage/events", headers={"X-Api-Key": KEY})
        c.get("/nope")
    assert capfd.readouterr().err == ""


# --- clocks --------------------------------------------------------------------------------


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(MONDAY)
    assert clock() == clock() == MONDAY
    clock.advance(timedelta(minutes=5))
    assert clock() == MONDAY + timedelta(minutes=5)
    clock.set(MONDAY + timedelta(days=1))
    assert clock() == MONDAY + timedelta(days=1)
    with pytest.raises(ValueError):
        ManualClock(datetime(2026, 11, 23))


def test_compressed_clock_runs_speed_times_real_time() -> None:
    real = [100.0]
    clock = CompressedClock(MONDAY, speed=3600.0, monotonic=lambda: real[0])
    assert clock() == MONDAY
    real[0] += 2.5
    assert clock() == MONDAY + timedelta(hours=2.5)


def test_simulator_reads_its_clock(sim: Simulator) -> None:
    assert sim.now() == MONDAY + timedelta(hours=14)
    newest = sim.events_page(1)["items"][0]
    assert _parse(newest["created_at"]) <= sim.now()
    assert sim.summary(1)["end_date"] == "2026-11-23"
