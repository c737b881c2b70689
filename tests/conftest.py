"""Shared fixtures: a real SQLite store (in memory or on disk) and event factories."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.models import Event, Transition
from bot.store import Store

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


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`main()` installs its own root handler on the stderr pytest captured for that test;
    a later test's background thread logging through it would write to a closed file."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def store() -> Iterator[Store]:
    db = Store(None)
    yield db
    db.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "bot.db"


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
