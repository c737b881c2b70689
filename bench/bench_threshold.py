"""How often spend's evidence test crosses its threshold on ordinary traffic.

The test (`detect.poisson_evidence`, fed whole 5-minute slots and the newest slot as far
as the events reach) takes h = ln(K N0 G / B), Wald's bound, with N0 its chances in 30
days: the group's charges, or its slots where a slot holds more than one charge (the
engine's `_threshold`). This bench checks that reading by simulation: charges Poisson at
exactly the normal rate, judged at five polls a slot (a poll a minute, each reading the
partial slot with its due share), every alternative in `detect.EVIDENCE_RATIOS`, a crossing
restarting the test. It prints the crossings per slot and per charge against what the
threshold allows (K e^-h per chance), and the margin in nats (positive: fewer crossings
than allowed). The test runs as the recursion S = max(0, S + step) per alternative, the
same as the largest sum over runs of the newest slots that `poisson_evidence` takes
(checked on one stream at the start).

    .venv/bin/python bench/bench_threshold.py
"""

from __future__ import annotations

import math

import numpy as np

from bot.detect import EVIDENCE_RATIOS, poisson_evidence

RATIOS = np.asarray(EVIDENCE_RATIOS)
POLLS_PER_SLOT = 5
CHAINS = 10_000
SLOTS = 3_000
SEED = 12


def crossings(lam: float, h: float, rng: np.random.Generator) -> float:
    """Crossings per slot of the test at `lam` charges per slot and threshold `h`."""
    log_r, cost = np.log(RATIOS), RATIOS - 1.0
    s = np.zeros((CHAINS, len(RATIOS)))
    count = 0
    for _ in range(SLOTS):
        part = np.zeros(CHAINS)
        crossed = np.zeros(CHAINS, dtype=bool)
        for poll in range(1, POLLS_PER_SLOT + 1):
            part += rng.poisson(lam / POLLS_PER_SLOT, CHAINS)
            due = lam * poll / POLLS_PER_SLOT
            crossed |= (s + part[:, None] * log_r - cost * due >= h).any(axis=1)
        s = np.maximum(0.0, s + part[:, None] * log_r - cost * lam)
        count += int(crossed.sum())
        s[crossed] = 0.0
    return count / (CHAINS * SLOTS)


def check_recursion(rng: np.random.Generator) -> None:
    """The recursion's value at the newest slot is poisson_evidence's (h = 1)."""
    counts = rng.poisson(2.0, 40).astype(np.float64)
    counts[25:] *= 3  # a rise, so the runs matter
    due = np.full(40, 2.0)
    s = np.zeros(len(RATIOS))
    for n, d in zip(counts, due, strict=True):
        s = np.maximum(0.0, s + n * np.log(RATIOS) - (RATIOS - 1.0) * d)
    evidence, _ = poisson_evidence(counts, due, 1.0)
    assert math.isclose(float(evidence), float(s.max()), rel_tol=1e-9), (evidence, s)


def main() -> None:
    rng = np.random.default_rng(SEED)
    check_recursion(rng)
    k = len(RATIOS)
    print(f"{CHAINS * SLOTS:,} slots per row, {POLLS_PER_SLOT} polls a slot, K = {k}")
    print(
        f"{'charges/slot':>12} {'h':>4} {'per slot':>10} {'allowed':>10} {'margin':>7}"
        f" {'per charge':>11} {'margin':>7}"
    )
    for lam in (0.1, 0.5, 1.0, 5.0, 50.0, 500.0):
        for h in (6.0, 8.0):
            per_slot = crossings(lam, h, rng)
            allowed = k * math.exp(-h)
            # The engine counts its chances as slots where a slot holds more than one
            # charge, else as charges: the margin that matters is the first for lam >= 1.
            margin_slot = math.log(allowed / per_slot) if per_slot else math.inf
            per_charge = per_slot / lam
            margin_charge = math.log(allowed / per_charge) if per_charge else math.inf
            print(
                f"{lam:>12g} {h:>4g} {per_slot:>10.2e} {allowed:>10.2e} {margin_slot:>7.2f}"
                f" {per_charge:>11.2e} {margin_charge:>7.2f}"
            )


if __name__ == "__main__":
    main()
