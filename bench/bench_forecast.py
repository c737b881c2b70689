"""Forecast quality and budget cost.

Quality: 400 synthetic accounts (a weekly rhythm, day-to-day noise of 10-25%, some flat,
some rising or falling up to 2% a day) over a 35-day history and a 30-day month. For the
projection made at the start of days 2, 8, 15 and 22 it reports the median absolute error
of the month's total, how often the truth falls in the 80% interval, how many days before
the limit the warning came for accounts that cross it, and the false warnings on accounts
that end 10% or more under it.

Cost: judging budgets against a ledger of 60 days of events (420,000 events, 40 groups).

    python bench/bench_forecast.py
"""

from __future__ import annotations

import statistics
import time
import tracemalloc
from datetime import UTC, date, datetime, timedelta

import numpy as np

from bot.budget import SLOT, decide, status
from bot.metrics import KIND_COMPLETED, EventBatch, UsageCube
from bot.models import FORECAST, Budget, Marks

MONTH = date(2026, 11, 1)
RNG = np.random.default_rng(11)


def account(rng: np.random.Generator) -> np.ndarray:
    """65 daily totals: 35 days of history, then November."""
    weekly = np.array([1.0, 1.05, 1.1, 1.05, 0.95, 0.45, 0.35]) * rng.uniform(0.7, 1.3, 7)
    growth = rng.choice([0.0, 0.0, rng.uniform(-0.01, 0.02)])
    noise = rng.uniform(0.10, 0.25)
    first = MONTH - timedelta(days=35)
    days = [first + timedelta(days=i) for i in range(65)]
    level = 1000.0 * (1 + growth) ** np.arange(65)
    shape = weekly[[d.weekday() for d in days]]
    return np.maximum(0.0, level * shape * rng.normal(1.0, noise, 65))


def cube_of(totals: np.ndarray) -> UsageCube:
    """Hourly events at :05 carrying each day's total. Judged at a minute before
    midnight, the cube holds nothing later than that minute's slot."""
    first = datetime.combine(MONTH - timedelta(days=35), datetime.min.time(), UTC)
    hours = np.arange(len(totals) * 24)
    at = np.array([(first + timedelta(hours=int(h), minutes=5)).timestamp() for h in hours])
    credits = np.repeat(totals / 24, 24)
    keep = np.ones(len(at), dtype=bool)
    cube = UsageCube(SLOT)
    cube.add(
        EventBatch(
            epoch=at[keep],
            group=[("pro", "", "")] * int(keep.sum()),
            kind=np.full(int(keep.sum()), KIND_COMPLETED, dtype=np.int8),
            credits=credits[keep],
        )
    )
    return cube


def quality() -> None:
    errors: dict[int, list[float]] = {2: [], 8: [], 15: [], 22: []}
    covered: dict[int, list[bool]] = {2: [], 8: [], 15: [], 22: []}
    lead: list[int] = []
    missed = false_alarms = quiet = crossing = 0
    for _ in range(400):
        totals = account(RNG)
        month_total = float(totals[35:].sum())
        limit = month_total * float(RNG.choice([0.8, 0.9, 1.15, 1.3]))
        budget = Budget("b", limit, thresholds=(100.0,))
        crossed_on = None
        if month_total >= limit:
            running = np.cumsum(totals[35:])
            crossed_on = MONTH + timedelta(days=int(np.argmax(running >= limit)))
        warned_on = None
        cube = cube_of(totals)
        for day in range(2, 31):  # at the end of day - 1, a minute before midnight
            now = datetime.combine(MONTH + timedelta(days=day - 1), datetime.min.time(), UTC)
            state = status(budget, cube, None, now - timedelta(minutes=1))
            if day in errors and state.forecast is not None:
                f = state.forecast
                errors[day].append(abs(f.projected - month_total) / month_total)
                covered[day].append(f.low <= month_total <= f.high)
            fired = [e for e in decide(state, Marks()) if e.kind == FORECAST]
            if fired and warned_on is None:
                warned_on = now.date()
        if crossed_on is not None:
            crossing += 1
            if warned_on is None or warned_on > crossed_on:
                missed += 1
            else:
                lead.append((crossed_on - warned_on).days)
        elif month_total <= 0.91 * limit:
            quiet += 1
            false_alarms += warned_on is not None
    for day in errors:
        print(
            f"projection made on day {day:>2}: median abs error "
            f"{100 * statistics.median(errors[day]):.1f}%, 80% interval covers the truth "
            f"{100 * np.mean(covered[day]):.0f}%"
        )
    print(
        f"accounts crossing the limit: {crossing}; warned before the crossing: "
        f"{crossing - missed} (median {statistics.median(lead) if lead else 0} days ahead, "
        f"p10 {np.percentile(lead, 10) if lead else 0:.0f})"
    )
    print(f"accounts ending >= 9% under the limit: {quiet}; warned anyway: {false_alarms}")


def cost() -> None:
    rng = np.random.default_rng(3)
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    n = 420_000
    epoch = now.timestamp() - rng.uniform(0, 60 * 86400, n)
    groups = [(f"m{i % 4}", f"s{i % 3}", f"c{i % 10}") for i in range(40)]
    tracemalloc.start()
    started = time.perf_counter()
    cube = UsageCube(SLOT)
    cube.add(
        EventBatch(
            epoch=epoch,
            group=[groups[i] for i in rng.integers(0, 40, n)],
            kind=np.full(n, KIND_COMPLETED, dtype=np.int8),
            credits=rng.uniform(10, 200, n),
        )
    )
    built = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    budgets = [
        Budget("account", 1e9),
        Budget("m0", 1e8, scope=(("model", "m0"),), timezone="Europe/Berlin"),
        Budget("s1-week", 1e7, period="week", scope=(("segment", "s1"),)),
        Budget("c3-day", 1e6, period="day", scope=(("customer", "c3"),)),
    ]
    runs = []
    for _ in range(20):
        started = time.perf_counter()
        for budget in budgets:
            status(budget, cube, None, now)
        runs.append(time.perf_counter() - started)
    print(
        f"ledger of {n:,} events, 40 groups, 60 days: built in {built:.2f} s, "
        f"peak {peak / 2**20:.0f} MiB traced; judging 4 budgets: median "
        f"{1000 * statistics.median(runs):.1f} ms"
    )


if __name__ == "__main__":
    quality()
    cost()
