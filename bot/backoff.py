"""One backoff policy: how long to wait before the next try after `attempt` failed ones.

Pure: no clock and no sleep. Each caller decides what a wait means (sleep through it, or
store a `retry_at`, or hold a deadline) and injects its random source, so tests can pin
the jitter. The ceiling doubles from `base` per failed attempt up to `cap`; the jitter
multiplies it by a factor drawn uniformly from `jitter = (low, high)`:

* `NO_JITTER` (1, 1): exactly the ceiling, and the random source is not called;
* `FULL_JITTER` (0, 1): anywhere below the ceiling (AWS architecture blog's "full
  jitter"), which spreads the retries of many clients apart;
* e.g. (0.8, 1.2): the ceiling give or take 20 %;
* e.g. (1, 2): between the ceiling and twice it (the usage API's documented advice:
  about 1-2 s, 2-4 s, 4-8 s, capped at 8-16 s, is `Backoff(1, 8, (1, 2))`).

A server's Retry-After is honoured as it stands, up to `max_retry_after` (default: `cap`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

NO_JITTER = (1.0, 1.0)
FULL_JITTER = (0.0, 1.0)
DOUBLE_JITTER = (1.0, 2.0)
_MAX_EXPONENT = 1023  # 2.0 ** 1024 overflows; any cap is reached long before


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: `base` seconds after the first failure, doubling to `cap`."""

    base: float
    cap: float
    jitter: tuple[float, float] = NO_JITTER
    max_retry_after: float | None = None  # None: `cap`

    def __post_init__(self) -> None:
        low, high = self.jitter
        if self.base < 0 or self.cap < 0:
            raise ValueError("base and cap must not be negative")
        if not 0 <= low <= high:
            raise ValueError(f"jitter must be (low, high) with 0 <= low <= high, got {self.jitter}")

    def ceiling(self, attempt: int) -> float:
        """The wait before jitter after `attempt` (1, 2, ...) failed tries."""
        exponent = min(max(0, attempt - 1), _MAX_EXPONENT)
        return min(self.cap, self.base * 2.0**exponent)

    def delay(
        self,
        attempt: int,
        rand: Callable[[], float] = random.random,
        *,
        retry_after: float | None = None,
    ) -> float:
        """Seconds to wait after `attempt` failed tries. `rand` is a uniform [0, 1) source
        (e.g. `random.Random(seed).random`). A server's `retry_after` is honoured as it
        stands, without jitter, but never beyond `max_retry_after` (default `cap`)."""
        if retry_after is not None:
            most = self.cap if self.max_retry_after is None else self.max_retry_after
            return min(retry_after, most)
        low, high = self.jitter
        ceiling = self.ceiling(attempt)
        if low == high:
            return ceiling * low
        # As random.uniform(low, high) computes it, so a seeded source gives the same waits.
        return ceiling * (low + (high - low) * rand())


# The usage API's documented advice (usage-api.md 1): waits of about 1-2 s, 2-4 s, 4-8 s,
# capped at 8-16 s; a Retry-After honoured up to 16 s. `source` retries with it, and the
# events poll's pace (`pace`) backs off with it between polls.
USAGE_API = Backoff(base=1.0, cap=8.0, jitter=DOUBLE_JITTER, max_retry_after=16.0)
