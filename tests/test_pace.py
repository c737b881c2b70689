"""The events poll's pace (bot.pace): explicit numbers for every case."""

from __future__ import annotations

import pytest

from bot.backoff import USAGE_API
from bot.pace import (
    AFTER_ERROR,
    BACKING_OFF,
    CATCHING_UP,
    KEEPING_PACE,
    QUIET,
    RELAXING,
    Pace,
    PaceSettings,
    next_pace,
)

# events_every 60 s, floor 0.5 s, ceiling 120 a minute (0.5 s apart), pages of 100.
DEFAULT = PaceSettings(relaxed=60.0, floor=0.5, max_per_minute=120, limit=100)
SLOW_CEILING = PaceSettings(relaxed=60.0, floor=0.5, max_per_minute=30, limit=100)  # 2 s
TEST_ENV = PaceSettings(relaxed=0.05, floor=0.5, max_per_minute=120, limit=100)  # 50 ms


@pytest.mark.parametrize(
    ("settings", "previous", "items", "new", "since", "delay", "reason"),
    [
        # The first page: full of new events, no rate yet: read again as soon as allowed.
        (DEFAULT, None, 100, 100, None, 0.5, CATCHING_UP),
        # The first page of a quiet account holds everything there is: one poll a minute.
        (DEFAULT, None, 12, 12, None, 60.0, QUIET),
        (DEFAULT, None, 0, 0, None, 60.0, QUIET),
        # Quiet and staying quiet: exactly events_every.
        (DEFAULT, Pace(60.0, QUIET), 100, 7, 60.0, 60.0, QUIET),
        (DEFAULT, Pace(60.0, QUIET), 40, 0, 60.0, 60.0, QUIET),
        # 30 new a minute is 0.5/s: half a page takes 100 s, over events_every.
        (DEFAULT, Pace(60.0, QUIET), 100, 30, 60.0, 60.0, QUIET),
        # A full page of new events after a minute: at least 100/60 s arrive; half the wait.
        (DEFAULT, Pace(60.0, QUIET), 100, 100, 60.0, 30.0, CATCHING_UP),
        (DEFAULT, Pace(4.0, KEEPING_PACE), 100, 100, 4.0, 2.0, CATCHING_UP),
        (DEFAULT, Pace(0.5, CATCHING_UP), 100, 100, 0.5, 0.5, CATCHING_UP),  # at the ceiling
        (SLOW_CEILING, Pace(3.0, CATCHING_UP), 100, 100, 3.0, 2.0, CATCHING_UP),
        # 50 events/s read every second: 50 new of 100, the page is half new: keep it.
        (DEFAULT, Pace(1.0, KEEPING_PACE), 100, 50, 1.0, 1.0, KEEPING_PACE),
        # 25 events/s: half a page in 2 s; the wait grows at most twofold per poll.
        (DEFAULT, Pace(0.5, CATCHING_UP), 100, 25, 0.5, 1.0, RELAXING),
        (DEFAULT, Pace(1.0, RELAXING), 100, 25, 1.0, 2.0, RELAXING),
        (DEFAULT, Pace(2.0, RELAXING), 100, 50, 2.0, 2.0, KEEPING_PACE),
        # Busier again: speed up at once (100 new in 2 s: 50/s -> 1 s).
        (DEFAULT, Pace(2.0, KEEPING_PACE), 100, 99, 2.0, 1.01, KEEPING_PACE),
        # The account falls silent: relax 1 -> 2 -> 4 ... -> 60 s.
        (DEFAULT, Pace(1.0, KEEPING_PACE), 100, 0, 1.0, 2.0, RELAXING),
        (DEFAULT, Pace(16.0, RELAXING), 100, 0, 16.0, 32.0, RELAXING),
        (DEFAULT, Pace(32.0, RELAXING), 100, 0, 32.0, 60.0, QUIET),
        # BOT_POLL_SECONDS=0.05 (tests): 50 ms whatever the page says, as before.
        (TEST_ENV, None, 100, 100, None, 0.05, CATCHING_UP),
        (TEST_ENV, Pace(0.05, QUIET), 100, 100, 0.05, 0.05, CATCHING_UP),
        (TEST_ENV, Pace(0.05, QUIET), 3, 0, 0.05, 0.05, QUIET),
    ],
)
def test_the_pace_after_a_good_page(
    settings: PaceSettings,
    previous: Pace | None,
    items: int,
    new: int,
    since: float | None,
    delay: float,
    reason: str,
) -> None:
    pace = next_pace(settings, previous, "ok", items=items, new=new, since=since)
    assert (pace.delay, pace.reason) == (pytest.approx(delay, abs=0.01), reason)


@pytest.mark.parametrize(
    ("previous", "rand", "delay", "failures"),
    [
        (Pace(1.0, KEEPING_PACE), 0.0, 1.0, 1),  # the documented 1-2 s
        (Pace(1.0, KEEPING_PACE), 0.999, 2.0, 1),
        (Pace(0.5, CATCHING_UP), 0.0, 1.0, 1),  # never sooner than 1 s after a 429
        (Pace(1.5, BACKING_OFF, failures=1), 0.5, 3.0, 2),  # 2-4 s
        (Pace(3.0, BACKING_OFF, failures=2), 0.5, 6.0, 3),  # 4-8 s
        (Pace(6.0, BACKING_OFF, failures=3), 0.999, 16.0, 4),  # 8-16 s
        (Pace(16.0, BACKING_OFF, failures=9), 0.0, 16.0, 10),  # never faster than before
        (Pace(60.0, QUIET), 0.0, 60.0, 1),  # a quiet account stays at events_every
    ],
)
def test_429_or_5xx_backs_off_as_documented_never_faster(
    previous: Pace, rand: float, delay: float, failures: int
) -> None:
    pace = next_pace(DEFAULT, previous, "throttled", rand=lambda: rand)
    assert (pace.delay, pace.reason, pace.failures) == (
        pytest.approx(delay, abs=0.01),
        BACKING_OFF,
        failures,
    )


def test_backing_off_stops_at_16_s_or_events_every_when_longer() -> None:
    fast = PaceSettings(relaxed=1.0)
    pace = None
    for _ in range(10):
        pace = next_pace(fast, pace, "throttled", rand=lambda: 0.999)
    assert pace is not None and pace.delay == pytest.approx(16.0, abs=0.01)
    pace = Pace(60.0, QUIET)
    for _ in range(10):
        pace = next_pace(DEFAULT, pace, "throttled", rand=lambda: 0.999)
    assert pace.delay == 60.0


def test_after_backing_off_a_full_page_brings_the_pace_back_at_once() -> None:
    backed = Pace(16.0, BACKING_OFF, failures=4)
    pace = next_pace(DEFAULT, backed, "ok", items=100, new=100, since=30.0)
    assert (pace.delay, pace.reason, pace.failures) == (15.0, CATCHING_UP, 0)
    pace = next_pace(DEFAULT, pace, "ok", items=100, new=100, since=15.0)
    assert pace.delay == 7.5


def test_another_failure_waits_events_every() -> None:
    pace = next_pace(DEFAULT, Pace(0.5, CATCHING_UP), "failed")
    assert (pace.delay, pace.reason) == (60.0, AFTER_ERROR)


def test_a_quiet_account_is_polled_once_per_events_every_from_the_start() -> None:
    pace = None
    for polls in range(1, 50):
        pace = next_pace(DEFAULT, pace, "ok", items=20 + polls, new=1, since=pace and pace.delay)
        assert pace.delay == 60.0 and pace.reason == QUIET


def test_a_steady_50_events_a_second_settles_at_one_poll_a_second() -> None:
    pace, delays = None, []
    for _ in range(20):
        since = pace.delay if pace else None
        arrived = 50.0 * since if since else 10_000
        new = min(100, round(arrived))
        pace = next_pace(DEFAULT, pace, "ok", items=100, new=new, since=since)
        delays.append(pace.delay)
    assert delays[0] == 0.5 and delays[-5:] == [pytest.approx(1.0)] * 5


def test_the_ceiling_is_never_exceeded() -> None:
    for settings in (DEFAULT, SLOW_CEILING, PaceSettings(relaxed=10.0, floor=0.1)):
        pace = None
        for new in (100, 100, 99, 100, 80, 100):
            pace = next_pace(settings, pace, "ok", items=100, new=new, since=0.01)
            assert pace.delay >= 60.0 / settings.max_per_minute


@pytest.mark.parametrize(
    "kwargs",
    [
        {"relaxed": 0.0},
        {"relaxed": 1.0, "floor": -1.0},
        {"relaxed": 1.0, "max_per_minute": 0},
        {"relaxed": 1.0, "limit": 0},
    ],
)
def test_impossible_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PaceSettings(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [(1, 1.0, 2.0), (2, 2.0, 4.0), (3, 4.0, 8.0), (4, 8.0, 16.0), (9, 8.0, 16.0)],
)
def test_the_usage_api_backoff_is_the_documented_one(attempt: int, low: float, high: float) -> None:
    assert USAGE_API.delay(attempt, lambda: 0.0) == low
    assert USAGE_API.delay(attempt, lambda: 0.999999) == pytest.approx(high, abs=1e-4)
    assert USAGE_API.delay(attempt, retry_after=3.0) == 3.0
    assert USAGE_API.delay(attempt, retry_after=120.0) == 16.0  # Retry-After capped at 16 s
