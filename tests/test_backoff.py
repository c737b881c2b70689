"""The one backoff policy (bot/backoff.py) and the parameters each caller gives it."""

from __future__ import annotations

import random

import pytest

from bot import hooks, notify, socket_mode
from bot.backoff import FULL_JITTER, NO_JITTER, Backoff

HOOKS = Backoff(15.0, 900.0, jitter=(0.8, 1.2))


@pytest.mark.parametrize(
    ("policy", "attempt", "low", "high"),
    [
        # source.py's default: full jitter below 1 s doubling to 16 s
        (Backoff(1.0, 16.0, FULL_JITTER), 1, 0.0, 1.0),
        (Backoff(1.0, 16.0, FULL_JITTER), 3, 0.0, 4.0),
        (Backoff(1.0, 16.0, FULL_JITTER), 5, 0.0, 16.0),
        (Backoff(1.0, 16.0, FULL_JITTER), 9, 0.0, 16.0),  # capped
        # notify: 30 s doubling to 15 min, no jitter
        (Backoff(30.0, 900.0), 1, 30.0, 30.0),
        (Backoff(30.0, 900.0), 2, 60.0, 60.0),
        (Backoff(30.0, 900.0), 5, 480.0, 480.0),
        (Backoff(30.0, 900.0), 6, 900.0, 900.0),  # 960 capped
        (Backoff(30.0, 900.0), 40, 900.0, 900.0),
        # hooks: 15 s doubling to 15 min, give or take 20 %
        (HOOKS, 0, 12.0, 18.0),  # before any failure: as after the first
        (HOOKS, 1, 12.0, 18.0),
        (HOOKS, 3, 48.0, 72.0),
        (HOOKS, 7, 720.0, 1080.0),  # 960 capped at 900, then jittered
        # socket_mode: 1 s doubling to 60 s, no jitter
        (Backoff(1.0, 60.0), 1, 1.0, 1.0),
        (Backoff(1.0, 60.0), 6, 32.0, 32.0),
        (Backoff(1.0, 60.0), 7, 60.0, 60.0),
    ],
)
def test_the_delay_stays_within_the_bounds_of_its_attempt(
    policy: Backoff, attempt: int, low: float, high: float
) -> None:
    for edge in (0.0, 0.5, 0.999999):
        assert low <= policy.delay(attempt, lambda e=edge: e) <= high  # type: ignore[misc]
    rng = random.Random(attempt)
    for _ in range(200):
        assert low <= policy.delay(attempt, rng.random) <= high


@pytest.mark.parametrize(
    ("jitter", "rand", "expected"),
    [
        (NO_JITTER, 0.0, 240.0),
        (FULL_JITTER, 0.0, 0.0),
        (FULL_JITTER, 0.25, 60.0),
        ((0.8, 1.2), 0.0, 192.0),
        ((0.8, 1.2), 0.5, 240.0),
    ],
)
def test_the_injected_random_source_shapes_the_jitter(
    jitter: tuple[float, float], rand: float, expected: float
) -> None:
    assert Backoff(30.0, 900.0, jitter).delay(4, lambda: rand) == pytest.approx(expected)


def test_without_jitter_the_random_source_is_not_called() -> None:
    def never() -> float:
        raise AssertionError("called")

    assert Backoff(30.0, 900.0).delay(3, never) == 120.0


def test_a_seeded_random_gives_the_same_waits_and_those_of_random_uniform() -> None:
    first = [HOOKS.delay(n, random.Random(42).random) for n in range(1, 10)]
    again = [HOOKS.delay(n, random.Random(42).random) for n in range(1, 10)]
    assert first == again
    # What hooks.py computed before: min(cap, base * 2 ** (n - 1)) * uniform(0.8, 1.2).
    rng = random.Random(7)
    ours = [HOOKS.delay(n, rng.random) for n in range(1, 10)]
    rng = random.Random(7)
    before = [min(900.0, 15.0 * 2 ** (n - 1)) * rng.uniform(0.8, 1.2) for n in range(1, 10)]
    assert ours == before


def test_the_cap_holds_however_many_attempts_failed() -> None:
    assert Backoff(30.0, 900.0).delay(5000) == 900.0  # no OverflowError from 2.0 ** 4999
    assert Backoff(1.0, 16.0, FULL_JITTER).delay(10**6, lambda: 0.5) == 8.0


@pytest.mark.parametrize(("retry_after", "expected"), [(3.0, 3.0), (120.0, 16.0), (0.0, 0.0)])
def test_retry_after_is_honoured_without_jitter_up_to_the_cap(
    retry_after: float, expected: float
) -> None:
    policy = Backoff(1.0, 16.0, FULL_JITTER)
    assert policy.delay(1, lambda: 0.5, retry_after=retry_after) == expected


@pytest.mark.parametrize(
    ("base", "cap", "jitter"), [(-1.0, 10.0, NO_JITTER), (1.0, 10.0, (1.2, 0.8)), (1, 2, (-0.1, 1))]
)
def test_nonsense_parameters_are_refused(
    base: float, cap: float, jitter: tuple[float, float]
) -> None:
    with pytest.raises(ValueError):
        Backoff(base, cap, jitter)


def test_each_caller_keeps_its_parameters() -> None:
    assert notify.BACKOFF == Backoff(30.0, 900.0, NO_JITTER)
    assert hooks.BACKOFF == HOOKS
    assert socket_mode.RETRY == Backoff(1.0, 60.0, NO_JITTER)
