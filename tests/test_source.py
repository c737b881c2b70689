"""The usage-API client: retries, error mapping and schema validation (MockTransport)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from bot.errors import SchemaDrift, SourceError
from bot.source import MAX_BODY_BYTES, UsageClient
from tests.helpers import EVENT

SUMMARY = {
    "days": 1,
    "start_date": "2026-11-29",
    "end_date": "2026-11-29",
    "total_jobs": 3,
    "completed_jobs": 2,
    "failed_jobs": 1,
    "credits_used": 120.5,
    "by_model": [
        {
            "model": "pro",
            "total_jobs": 3,
            "completed_jobs": 2,
            "failed_jobs": 1,
            "credits_used": 120.5,
        }
    ],
    "daily": [
        {
            "date": "2026-11-29",
            "total_jobs": 3,
            "completed_jobs": 2,
            "failed_jobs": 1,
            "credits_used": 120.5,
            "by_model": [
                {
                    "model": "pro",
                    "total_jobs": 3,
                    "completed_jobs": 2,
                    "failed_jobs": 1,
                    "credits_used": 120.5,
                }
            ],
        }
    ],
}


def error_body(code: str, request_id: str = "req_err") -> dict[str, object]:
    return {"error": {"code": code, "message": f"{code} happened", "request_id": request_id}}


class Script:
    """A MockTransport handler that plays responses in order and records requests."""

    def __init__(self, *responses: httpx.Response | Exception) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.responses.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def make_client(handler: Callable[[httpx.Request], httpx.Response], **kw: object):  # type: ignore[no-untyped-def]
    sleeps: list[float] = []
    http = httpx.Client(base_url="https://api.test", transport=httpx.MockTransport(handler))
    options = {"api_key": "secret-key", "sleep": sleeps.append, "rand": lambda: 0.5, **kw}
    return UsageClient(http, **options), sleeps  # type: ignore[arg-type]


def test_it_sends_the_key_and_parses_events() -> None:
    script = Script(
        httpx.Response(
            200, json={"limit": 20, "items": [EVENT]}, headers={"X-Request-Id": "req_ok"}
        )
    )
    client, _ = make_client(script)
    page = client.events(20)
    assert script.requests[0].headers["X-Api-Key"] == "secret-key"
    assert script.requests[0].url.params["limit"] == "20"
    assert page.request_id == "req_ok"
    (event,) = page.items
    assert event.job_id == "job_1" and event.is_failed and event.metadata["segment"] == "enterprise"


def test_it_parses_the_summary_into_daily_rows() -> None:
    client, _ = make_client(Script(httpx.Response(200, json=SUMMARY)))
    summary = client.summary(1)
    assert summary.credits_used == 120.5 and summary.has_daily_models
    assert [(r.model, r.failed_jobs) for r in summary.daily] == [("*", 1), ("pro", 1)]


@pytest.mark.parametrize(("days", "limit"), [(0, None), (91, None), (None, 0), (None, 101)])
def test_it_refuses_out_of_range_parameters_before_sending(
    days: int | None, limit: int | None
) -> None:
    script = Script()
    client, _ = make_client(script)
    with pytest.raises(ValueError):
        client.summary(days) if days is not None else client.events(limit or 0)
    assert script.requests == []


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "invalid_request"),
        (401, "missing_api_key"),
        (401, "invalid_api_key"),
        (402, "insufficient_credits"),
        (404, "not_found"),
    ],
)
def test_it_never_retries_client_errors(status: int, code: str) -> None:
    script = Script(httpx.Response(status, json=error_body(code, "req_x")))
    client, sleeps = make_client(script)
    with pytest.raises(SourceError) as caught:
        client.events(10)
    assert len(script.requests) == 1 and sleeps == []
    err = caught.value
    assert (err.status, err.code, err.request_id, err.transient) == (status, code, "req_x", False)


def test_it_backs_off_as_the_api_documents_on_5xx_then_succeeds() -> None:
    script = Script(
        httpx.Response(500, json=error_body("internal_error")),
        httpx.Response(503, json=error_body("timeout")),
        httpx.Response(200, json={"limit": 5, "items": []}),
    )
    client, sleeps = make_client(script)
    assert client.events(5).items == ()
    # The documented 1-2 s, then 2-4 s: rand()=0.5 lands in the middle of each.
    assert sleeps == [1.5, 3.0]


def test_the_documented_waits_double_within_their_ranges_up_to_8_16_s() -> None:
    for rand, expected in ((0.0, [1.0, 2.0, 4.0, 8.0, 8.0]), (0.999, [2.0, 4.0, 8.0, 16.0, 16.0])):
        script = Script(*[httpx.Response(429, json=error_body("rate_limited")) for _ in range(6)])
        client, sleeps = make_client(script, max_attempts=6, rand=lambda r=rand: r)
        with pytest.raises(SourceError):
            client.events(5)
        assert sleeps == pytest.approx(expected, abs=0.02)  # [1,2], [2,4], [4,8], [8,16] ...


def test_it_honours_retry_after_and_caps_it() -> None:
    script = Script(
        httpx.Response(429, json=error_body("rate_limited"), headers={"Retry-After": "3"}),
        httpx.Response(429, json=error_body("rate_limited"), headers={"Retry-After": "120"}),
        httpx.Response(429, json=error_body("rate_limited")),
        httpx.Response(200, json={"limit": 5, "items": []}),
    )
    client, sleeps = make_client(script)
    client.events(5)
    assert sleeps == [3.0, 16.0, 6.0]  # Retry-After, Retry-After capped at 16 s, 4-8 s


def test_it_gives_up_after_max_attempts_with_the_last_error() -> None:
    script = Script(
        *[httpx.Response(503, json=error_body("timeout", f"req_{i}")) for i in range(4)]
    )
    client, sleeps = make_client(script, max_attempts=4)
    with pytest.raises(SourceError) as caught:
        client.summary(7)
    assert len(script.requests) == 4 and len(sleeps) == 3
    assert caught.value.transient and caught.value.request_id == "req_3"


def test_a_sleep_that_reports_stop_ends_the_retries() -> None:
    script = Script(*[httpx.Response(503, json=error_body("timeout")) for _ in range(4)])
    client, _ = make_client(script, sleep=lambda s: True)
    with pytest.raises(SourceError):
        client.events(5)
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    "exc", [httpx.ConnectTimeout("slow"), httpx.ReadTimeout("slow"), httpx.ConnectError("refused")]
)
def test_network_errors_are_transient_and_retried(exc: Exception) -> None:
    script = Script(exc, httpx.Response(200, json={"limit": 5, "items": []}))
    client, sleeps = make_client(script)
    client.events(5)
    assert len(script.requests) == 2 and len(sleeps) == 1


def test_non_json_body_is_schema_drift() -> None:
    script = Script(*[httpx.Response(200, text="<html>maintenance</html>")] * 4)
    client, _ = make_client(script)
    with pytest.raises(SchemaDrift) as caught:
        client.events(5)
    assert "not JSON" in str(caught.value) and caught.value.path == "$"


def test_wrong_shape_names_the_field_path() -> None:
    bad = dict(EVENT, credits_used="lots")
    script = Script(
        *[
            httpx.Response(
                200, json={"limit": 5, "items": [EVENT, bad]}, headers={"X-Request-Id": "req_d"}
            )
        ]
        * 4
    )
    client, _ = make_client(script)
    with pytest.raises(SchemaDrift) as caught:
        client.events(5)
    assert caught.value.path == "$.items[1].credits_used"
    assert caught.value.request_id == "req_d"
    assert "schema drift at $.items[1].credits_used" in str(caught.value)


def test_summary_missing_daily_is_drift() -> None:
    body = {k: v for k, v in SUMMARY.items() if k != "daily"}
    client, _ = make_client(Script(*[httpx.Response(200, json=body)] * 4))
    with pytest.raises(SchemaDrift, match=r"must contain \['daily'\]"):
        client.summary(1)


def test_a_huge_body_is_refused_without_buffering_it_all() -> None:
    huge = b'{"limit": 5, "items": [' + b" " * (MAX_BODY_BYTES + 10) + b"]}"
    client, _ = make_client(Script(*[httpx.Response(200, content=huge)] * 4))
    with pytest.raises(SchemaDrift, match="larger than"):
        client.events(5)


def test_an_error_without_an_envelope_still_maps_by_status() -> None:
    client, _ = make_client(Script(httpx.Response(404, text="nope")))
    with pytest.raises(SourceError) as caught:
        client.events(5)
    assert caught.value.status == 404 and caught.value.code is None and not caught.value.transient


def test_the_key_never_appears_in_errors() -> None:
    client, _ = make_client(Script(httpx.Response(401, json=error_body("invalid_api_key"))))
    with pytest.raises(SourceError) as caught:
        client.events(5)
    assert "secret-key" not in str(caught.value) and "secret-key" not in repr(caught.value.__dict__)


def test_an_event_round_trips_through_to_api() -> None:
    from bot.models import Event

    event = Event.from_api(EVENT)
    again = Event.from_api(json.loads(json.dumps(event.to_api())))
    assert again == event
