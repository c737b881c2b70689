"""Spend detection times: runaways (short windows), creeps (the creep test) and a rise on a
Sunday night (hour-of-week), each one simulated stream replayed through the product's
backtest with the default rules. The README's "Spend: short windows and the creep test"
table.

    .venv/bin/python bench/bench_spend.py
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bot import backtest
from bot.models import FIRING, Transition
from bot.rules import default_rules_text, parse_rules
from bot.standins.simulator import Incident, ManualClock, Simulator, stepped_creep

START = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday
RULES = [r for r in parse_rules(default_rules_text()).rules if r.source != "summary"]


def first_firing(
    incidents: list[Incident], end: datetime, jobs_per_hour: float, seed: int, poll: float | None
) -> list[Transition]:
    sim = Simulator(
        start=START,
        clock=ManualClock(end),
        jobs_per_hour=jobs_per_hour,
        incidents=incidents,
        seed=seed,
    )
    recording = backtest.load(
        RULES, [json.dumps(i) for i in sim.events_until(end)], sim.summary(60)
    )
    onset = min(i.start for i in incidents)
    return [
        t
        for t in backtest.run(recording, poll_every=poll)
        if t.state == FIRING and t.at >= onset and t.rule == "spend-per-model"
    ]


def runaway(factor: float, jobs_per_hour: float) -> str:
    """A runaway on `pro` on day 9, replayed as a worker polling every minute."""
    onset = START + timedelta(days=9, hours=14, minutes=7)
    spike = Incident("spend_runaway", onset, onset + timedelta(hours=1), model="pro", factor=factor)
    fired = first_firing([spike], onset + timedelta(hours=2), jobs_per_hour, 1, 60.0)
    return f"{(fired[0].at - onset).total_seconds() / 60:.0f} min" if fired else "missed"


def creep(factor: float, jobs_per_hour: float) -> str:
    """`original` rising linearly (6-hour steps) to `factor` over 3 days from day 10, at
    the 5-minute marks."""
    onset = START + timedelta(days=10, hours=9)
    steps = stepped_creep(onset, factor, "original")
    fired = first_firing(steps, onset + timedelta(days=3), jobs_per_hour, 5, None)
    return f"{(fired[0].at - onset).total_seconds() / 3600:.1f} h" if fired else "missed"


def sunday(weeks: int, seed: int) -> str:
    """3x on `light` from 22:00 on the last Sunday of `weeks` weeks, 300 jobs an hour."""
    onset = START + timedelta(days=7 * weeks - 1, hours=22)
    rise = Incident("spend_runaway", onset, onset + timedelta(hours=1), model="light", factor=3)
    fired = first_firing([rise], onset + timedelta(hours=3), 300, seed, None)
    return f"{(fired[0].at - onset).total_seconds() / 60:.0f} min" if fired else "missed"


def main() -> None:
    volumes = (60, 300, 3000)
    print("jobs an hour:", ", ".join(str(v) for v in volumes))
    for factor in (10, 5):
        print(f"{factor}x runaway on pro:", ", ".join(runaway(factor, v) for v in volumes))
    print("2x creep over 3 days:", ", ".join(creep(2, v) for v in volumes))
    print("3x creep over 3 days at 300:", creep(3, 300))
    print(
        "3x on a Sunday night after 4 / 5 / 6 weeks:",
        " / ".join(sunday(w, s) for w, s in ((4, 3), (5, 11), (6, 3))),
    )


if __name__ == "__main__":
    main()
