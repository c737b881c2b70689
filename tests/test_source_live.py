"""The real client against the simulator over loopback HTTP: every documented answer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bot.api_schema import EVENTS_PATH, SUMMARY_PATH
from bot.errors import SchemaDrift, SourceError
from bot.source import UsageClient
from bot.standins.simulator import ManualClock, Simulator, SimulatorServer

START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


_OPEN: list[httpx.Client] = []


@pytest.fixture
def served() -> Iterator[tuple[Simulator, SimulatorServer]]:
    sim = Simulator(start=START, clock=ManualClock(START + timedelta(hours=2)), hang_seconds=1.5)
    with sim.serve() as server:
        yield sim, server
        while _OPEN:
            _OPEN.pop().close()


def client_for(server: SimulatorServer, key: str | None = "sim-key", read: float = 5.0):  # type: ignore[no-untyped-def]
    sleeps: list[float] = []
    http = httpx.Client(base_url=server.url, timeout=httpx.Timeout(read, connect=2.0))
    _OPEN.append(http)
    return UsageClient(http, api_key=key, sleep=sleeps.append, rand=lambda: 1.0), sleeps


def test_200_for_both_endpoints(served: tuple[Simulator, SimulatorServer]) -> None:
    _, server = served
    client, _ = client_for(server)
    page = client.events(100)
    assert len(page.items) == 100 and page.request_id and page.request_id.startswith("req_")
    assert page.items[0].created_at >= page.items[-1].created_at
    summary = client.summary(90)
    assert len([d for d in summary.daily if d.model == "*"]) == 90


@pytest.mark.parametrize(("key", "code"), [(None, "missing_api_key"), ("wrong", "invalid_api_key")])
def test_401_for_missing_and_invalid_keys(
    served: tuple[Simulator, SimulatorServer], key: str | None, code: str
) -> None:
    sim, server = served
    client, sleeps = client_for(server, key=key)
    with pytest.raises(SourceError) as caught:
        client.events(10)
    assert (caught.value.status, caught.value.code, caught.value.transient) == (401, code, False)
    assert caught.value.request_id and len(sim.requests) == 1 and sleeps == []


@pytest.mark.parametrize(
    ("param", "value"), [("days", 0), ("days", 91), ("limit", 0), ("limit", 101)]
)
def test_the_server_answers_400_and_the_client_refuses_to_send(
    served: tuple[Simulator, SimulatorServer], param: str, value: int
) -> None:
    sim, server = served
    path = SUMMARY_PATH if param == "days" else EVENTS_PATH
    raw = httpx.get(f"{server.url}{path}", params={param: value}, headers={"X-Api-Key": "sim-key"})
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "invalid_request"
    client, _ = client_for(server)
    with pytest.raises(ValueError):
        client.summary(value) if param == "days" else client.events(value)
    assert len(sim.requests) == 1  # only the raw request reached the server


def test_429_with_retry_after_waits_as_told(served: tuple[Simulator, SimulatorServer]) -> None:
    sim, server = served
    sim.inject("429_retry_after", "events", times=2)
    client, sleeps = client_for(server)
    client.events(10)
    assert sleeps == [1.0, 1.0] and len(sim.requests) == 3


def test_429_without_retry_after_backs_off_exponentially(
    served: tuple[Simulator, SimulatorServer],
) -> None:
    sim, server = served
    sim.inject("429", "events", times=3)
    client, sleeps = client_for(server)
    client.events(10)
    assert sleeps == [2.0, 4.0, 8.0]  # rand() = 1.0 shows the top of 1-2, 2-4, 4-8 s


@pytest.mark.parametrize("fault", ["500", "503", "504"])
def test_5xx_then_success(served: tuple[Simulator, SimulatorServer], fault: str) -> None:
    sim, server = served
    sim.inject(fault, "summary", times=1)
    client, sleeps = client_for(server)
    assert client.summary(7).days == 7 and len(sleeps) == 1


def test_a_hang_past_the_read_timeout_is_a_transient_timeout(
    served: tuple[Simulator, SimulatorServer],
) -> None:
    sim, server = served
    sim.inject("hang", "events", times=-1)
    client, sleeps = client_for(server, read=0.3)
    with pytest.raises(SourceError) as caught:
        client.events(10)
    assert caught.value.code == "timeout" and caught.value.transient and len(sleeps) == 3


def test_a_dropped_connection_is_retried(served: tuple[Simulator, SimulatorServer]) -> None:
    sim, server = served
    sim.inject("drop", "events", times=1)
    client, sleeps = client_for(server)
    assert client.events(5).items and len(sleeps) == 1


@pytest.mark.parametrize(
    ("fault", "message"),
    [("non_json", "not JSON"), ("wrong_shape", "schema drift at $"), ("huge", "larger than")],
)
def test_untrustworthy_bodies_are_schema_drift(
    served: tuple[Simulator, SimulatorServer], fault: str, message: str
) -> None:
    sim, server = served
    sim.inject(fault, "events", times=-1)
    client, _ = client_for(server)
    with pytest.raises(SchemaDrift, match=message.replace("$", r"\$")) as caught:
        client.events(10)
    assert caught.value.request_id


def test_connection_refused_is_transient() -> None:
    with httpx.Client(base_url="http://127.0.0.1:9", timeout=1.0) as http:
        client = UsageClient(http, api_key="k", sleep=lambda s: None, max_attempts=2)
        with pytest.raises(SourceError) as caught:
            client.events(10)
    assert caught.value.code == "connection_error" and caught.value.transient
