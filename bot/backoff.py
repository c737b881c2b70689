"""One backoff policy: how long to wait before the next try after `attempt` failed ones.

Pure: no clock and no sleep. Each caller decides what a wait means (sleep through it, or
store a `retry_at`, or hold a deadline) and injects its random source, so tests can pin
the jitter. The ceiling doubles from `base` per failed attempt up to `cap`; the jitter
multiplies it by a factor drawn uniformly from `jitter = (low, high)`:

* `NO_JITTER` (1, 1): exactly the ceiling, and the random source is not called;
* `FULL_JITTER` (0, 1): anywhere below the ceiling (AWS architecture blog's "full
  jitter"), which spreads the retries of many clients apart;
* e.g. (0.8, 1.2): the ceiling give or take 20 %.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

NO_JITTER = (1.0, 1.0)
FULL_JITTER = (0.0, 1.0)
_MAX_EXPONENT = 1023  # 2.0 ** 1024 overflows; any cap is reached long before


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: `base` seconds after the first failure, doubling to `cap`."""

    base: float
    cap: float
    jitter: tuple[float, float] = NO_JITTER

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
        stands, without jitter, but never beyond `cap`."""
        if retry_after is not None:
            return min(retry_after, self.cap)
        low, high = self.jitter
        ceiling = self.ceiling(attempt)
        if low == high:
            return ceiling * low
        # As random.uniform(low, high) computes it, so a seeded source gives the same waits.
        return ceiling * (low + (high - low) * rand())
