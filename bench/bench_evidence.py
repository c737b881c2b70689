"""The evidence bound against the product: a sudden failure spike on one model, at
volumes from half a finished job a minute to 5 a second. For each, the jobs a one-sided
CUSUM needs at the false-alert budget (`../shared/detection-bound.md`: h = ln(N0 / B),
bound_jobs = h / KL(p1 || p0)) and the jobs the product needed (finished jobs of the
model from the onset to the firing), replayed as a worker polling every second (a busy
account) or every 15 s sees them (`backtest.run(poll_every=...)`), default failure rule.

    .venv/bin/python bench/bench_evidence.py
"""

from __future__ import annotations

import json
import math
import statistics
from datetime import UTC, datetime, timedelta

from bot import backtest
from bot.rules import default_rules_text, parse_rules
from bot.standins.simulator import BASE_FAILURE_RATE, MODEL_MIX, Incident, ManualClock, Simulator

MODEL = "original"
BUDGET = 0.5  # false alerts per 30 days for the rule
# Seconds between polls of the replayed worker: a busy account is read about every
# second (bot.pace), a quiet one every 15 s here (every minute by default).
ONSET = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # a Tuesday afternoon
# finished jobs of MODEL per second, and the failure rate during the incident
CASES = [(v, p1) for v in (0.5 / 60, 5 / 60, 0.5, 1.35, 5.0) for p1 in (0.5, 0.25)]


def poll_every(per_second: float) -> float:
    return 1.0 if per_second >= 0.5 else 15.0


def bound_jobs(p0: float, p1: float, jobs_per_30_days: float) -> float:
    h = math.log(jobs_per_30_days / BUDGET)
    kl = p1 * math.log(p1 / p0) + (1 - p1) * math.log((1 - p1) / (1 - p0))
    return h / kl


SEEDS = (7, 8, 9)  # three streams per case: one incident's jobs-to-detect is one draw


def run_case(
    per_second: float, p1: float, seed: int
) -> tuple[float, float, float | None, float | None]:
    """(bound jobs, bound seconds, product jobs, product seconds) for one incident."""
    eps = per_second / MODEL_MIX[MODEL] * 2  # events a second: two per job, all models
    before = timedelta(hours=1)
    after = timedelta(hours=4) if per_second < 0.1 else timedelta(minutes=30)
    end = ONSET + after
    spike = Incident("failure_spike", ONSET, end, model=MODEL, failure_rate=p1, sudden=True)
    sim = Simulator(
        start=ONSET - before,
        clock=ManualClock(end),
        events_per_second=eps,
        incidents=[spike],
        seed=seed,
    )
    items = [i for i in sim.events_until(end) if i["created_at"] >= _iso(ONSET - before)]
    rules = parse_rules(default_rules_text()).rules[:1]  # failed-job-rate
    recording = backtest.load(rules, [json.dumps(i) for i in items], sim.summary(90))
    fired = [
        t
        for t in backtest.run(recording, poll_every=poll_every(per_second))
        if t.state == "firing" and t.group == (MODEL,) and t.at >= ONSET
    ]
    p0 = BASE_FAILURE_RATE[MODEL]
    bound = bound_jobs(p0, p1, per_second * 30 * 86400)
    if not fired:
        return bound, bound / per_second, None, None
    at = fired[0].at
    jobs = sum(
        1
        for i in items
        if i.get("model") == MODEL
        and i["status"] in ("completed", "failed")
        and _iso(ONSET) <= i["created_at"] <= _iso(at)
    )
    return bound, bound / per_second, float(jobs), (at - ONSET).total_seconds()


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def main() -> None:
    print(f"failure spike on {MODEL} (p0 {BASE_FAILURE_RATE[MODEL]:.1%}), budget {BUDGET}/30 d,")
    print("a worker polling every second (busy) or 15 s (quiet); jobs: the model's finished")
    print("jobs from the onset to the firing; s: seconds of data time to the firing;")
    print(f"medians of {len(SEEDS)} streams per case")
    row = "{:>8} {:>5} {:>10} {:>9} {:>6} {:>7} {:>6}"
    print(row.format("jobs/s", "p1", "bound jobs", "bound s", "jobs", "s", "ratio"))
    ratios = []
    for per_second, p1 in CASES:
        runs = [run_case(per_second, p1, seed) for seed in SEEDS]
        bound, bound_s = runs[0][:2]
        found = [(j, t) for _, _, j, t in runs if j is not None and t is not None]
        if len(found) < len(runs):
            print(f"  missed in {len(runs) - len(found)} of {len(runs)} streams")
        jobs = statistics.median(j for j, _ in found) if found else None
        seconds = statistics.median(t for _, t in found) if found else None
        if jobs is None or seconds is None:
            print(
                row.format(
                    f"{per_second:.3f}",
                    f"{p1:.0%}",
                    f"{bound:.1f}",
                    f"{bound_s:.0f}",
                    "-",
                    "-",
                    "-",
                )
            )
            continue
        ratios.append(jobs / bound)
        print(
            f"{per_second:8.3f} {p1:5.0%} {bound:10.1f} {bound_s:9.0f} {jobs:6.0f} "
            f"{seconds:7.0f} {jobs / bound:6.2f}"
        )
    if ratios:
        print(f"median ratio {statistics.median(ratios):.2f}, max {max(ratios):.2f}")


if __name__ == "__main__":
    main()
