"""The events poll's pace: how soon to read `GET /v1/usage/events` again, and why.

Pure: no clock, no sleep. The API shows only the newest 100 events, so an account busier
than 100 events per poll interval is mostly unseen unless the bot reads sooner. From the
last page (how many items, how many were new to us), the time since the previous good
poll and the outcome, `next_pace` returns the delay before the next events poll and a
reason for the poll log:

* **catching up**: the page was full and held nothing we knew: events may have been
  missed. The arrival rate is at least `limit / since`; read again at half that interval.
* **keeping pace**: pages overlap what we hold and come sooner than `relaxed`. The
  delay aims for pages about half new: `fill * limit / rate`, `rate = new / since`.
* **relaxing**: fewer events arrive; the delay grows towards `relaxed`, at most doubling
  per poll (a lull of a few seconds does not send a busy account to a minute's wait).
* **quiet**: at `relaxed` (events_every, or BOT_POLL_SECONDS): one poll per interval.
* **backing off**: the API answered 429, 5xx or timed out (after the client's own
  retries): the documented exponential backoff with jitter, never sooner than before.
* **after an error**: any other failure (a 401, a bad body, a locked database): `relaxed`.

Every delay is at least `shortest`: the floor and the ceiling's spacing
(60 / max_per_minute), unless `relaxed` itself is set shorter (BOT_POLL_SECONDS below
the ceiling's spacing, for tests: then the pace never polls faster than that).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bot.backoff import USAGE_API

CATCHING_UP = "catching up"
KEEPING_PACE = "keeping pace"
RELAXING = "relaxing"
QUIET = "quiet"
BACKING_OFF = "backing off"
AFTER_ERROR = "after an error"
REASONS = (CATCHING_UP, KEEPING_PACE, RELAXING, QUIET, BACKING_OFF, AFTER_ERROR)

FILL = 0.5  # aim for pages about half new: room for bursts of twice the estimated rate

Outcome = Literal["ok", "throttled", "failed"]


@dataclass(frozen=True)
class PaceSettings:
    """The bounds of the pace, in seconds of real time."""

    relaxed: float  # events_every, or BOT_POLL_SECONDS: the interval of a quiet account
    floor: float = 0.5  # poll.events_floor: never sooner than this
    max_per_minute: int = 120  # poll.max_requests_per_minute: the ceiling
    limit: int = 100  # events per page

    def __post_init__(self) -> None:
        if self.relaxed <= 0 or self.floor <= 0:
            raise ValueError("relaxed and floor must be positive")
        if self.max_per_minute < 1 or self.limit < 1:
            raise ValueError("max_per_minute and limit must be at least 1")

    @property
    def shortest(self) -> float:
        """The shortest delay: the floor and the ceiling's spacing, but never above
        `relaxed` (an explicit shorter interval wins)."""
        return min(self.relaxed, max(self.floor, 60.0 / self.max_per_minute))

    @property
    def longest_backoff(self) -> float:
        """Backing off waits at most this: `relaxed`, or 16 s when that is shorter."""
        return max(self.relaxed, USAGE_API.cap * USAGE_API.jitter[1])


@dataclass(frozen=True)
class Pace:
    """The delay before the next events poll (from the start of the last one) and why."""

    delay: float
    reason: str
    failures: int = 0  # consecutive polls the API refused with 429/5xx/timeouts
    rate: float | None = None  # estimated new events per second, when there was one


def next_pace(
    settings: PaceSettings,
    previous: Pace | None,
    outcome: Outcome,
    *,
    items: int = 0,
    new: int = 0,
    since: float | None = None,
    rand: Callable[[], float] = random.random,
) -> Pace:
    """The pace after one events poll.

    Args:
        previous: the pace that led to this poll (None before the first).
        outcome: "ok"; "throttled" (429, 5xx, timeout, dropped connection); "failed".
        items, new: the page's items and how many of them were not stored before.
        since: seconds from the start of the previous good poll to this one's (None for
            the first good poll).
        rand: uniform [0, 1) source for the backoff's jitter.
    """
    relaxed, shortest = settings.relaxed, settings.shortest
    before = previous.delay if previous is not None else relaxed
    if outcome == "throttled":
        failures = (previous.failures if previous is not None else 0) + 1
        wait = USAGE_API.delay(failures, rand)
        delay = min(max(before, wait), settings.longest_backoff)
        return Pace(delay, BACKING_OFF, failures)
    if outcome == "failed":
        return Pace(relaxed, AFTER_ERROR)
    full_of_new = items >= settings.limit and new >= items
    if full_of_new:
        # Events may have been missed: at least `limit` arrived in `since` seconds.
        if since is None or since <= 0:
            return Pace(shortest, CATCHING_UP)
        rate = settings.limit / since
        return Pace(_clamp(FILL * since, shortest, relaxed), CATCHING_UP, rate=rate)
    if since is None or since <= 0:
        return Pace(relaxed, QUIET)  # the first page held everything there is
    rate = new / since
    wanted = FILL * settings.limit / rate if rate > 0 else relaxed
    wanted = _clamp(wanted, shortest, relaxed)
    if wanted > before:  # relax step by step, at most doubling
        delay = min(wanted, max(before, shortest) * 2.0)
    else:
        delay = wanted
    if delay >= relaxed:
        return Pace(relaxed, QUIET, rate=rate)
    return Pace(delay, RELAXING if delay > before else KEEPING_PACE, rate=rate)


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(value, high))
