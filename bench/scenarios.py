"""Detection quality of the default rules on labelled scenarios built from the simulator.

    .venv/bin/python bench/scenarios.py [--quick] [--workers N]

The scenarios, their labels and the matching live in `bot.standins.scenarios` (shared with
tests/test_scenarios.py): each is a seeded simulator stream with scripted incidents, each
labelled with the rule and model that should page for it, or marked as a benign trap that
must stay quiet. The stream goes through `bot.backtest` (the live worker's detection path)
and every `firing` transition is matched against the labels:

- detected: a firing of the expected rule for the incident's model with `at` in
  [start, end + 1 bucket]; time to detect (TTD) is that `at` minus the start;
- co-alert: a firing of another rule for the same model (or the account total) whose
  window overlaps the incident, e.g. total-spend during a spend runaway: legitimate;
- repeat: the expected rule firing again for the same incident (a flap);
- false alert: any other firing.

Reported: recall, false alerts per 30 simulated days, median and max TTD, per incident
kind. The full suite takes a few minutes on two cores; `--quick` is the reduced set the
tests run (tests/test_scenarios.py).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from bot.rules import parse_rules
from bot.standins.scenarios import (
    FULL,
    QUICK,
    START,
    Report,
    default_rules,
    describe,
    false_alert_lines,
    problem_lines,
    report,
    run_suite,
    when,
)


def _minutes(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f} min"


def format_report(rep: Report) -> str:
    """A readable table: one row per labelled incident, then false alerts and figures."""
    out: list[str] = []
    header = (
        f"{'scenario':<20} {'kind':<28} {'model':<9} {'size':<9} {'len':>5} "
        f"{'start':<16} {'detected':<9} {'TTD':>7} {'co':>3} {'rep':>3} "
        f"{'peak z':>7} {'judged':>7}"
    )
    out.append(header)
    out.append("-" * len(header))
    for result in rep.results:
        s = result.scenario
        if not result.outcomes:
            out.append(f"{s.name:<20} {'(no incident)':<28}")
        for o in result.outcomes:
            i = o.labelled.incident
            minutes = int((i.end - i.start).total_seconds() // 60)
            length = f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"
            if o.labelled.rule is None:
                detected = f"PAGED {len(o.paged)}" if o.paged else "quiet"
            else:
                detected = "yes" if o.detection else "MISSED"
            ttd = o.ttd
            ttd_text = "-" if ttd is None else f"{ttd.total_seconds() / 60:.0f}m"
            peak = "-" if math.isnan(o.peak.zscore) else f"{o.peak.zscore:.1f}"
            judged = f"{o.peak.judged}/{o.peak.evaluations}" if o.labelled.rule else "-"
            out.append(
                f"{s.name:<20} {o.labelled.kind:<28} {i.model or 'all':<9} "
                f"{o.labelled.size:<9} {length:>5} {when(i.start):<16} {detected:<9} "
                f"{ttd_text:>7} {len(o.co_alerts):>3} {len(o.repeats):>3} {peak:>7} {judged:>7}"
            )
    out.append("")
    out.append("Per kind of incident:")
    out.append(
        f"  {'kind':<16} {'n':>3} {'detected':>8} {'recall':>7} {'<=2 bkt':>8} "
        f"{'median TTD':>11} {'max TTD':>9}"
    )
    for kind, f in sorted(rep.kinds.items()) + [("overall", rep.overall)]:
        out.append(
            f"  {kind:<16} {f.incidents:>3} {f.detected:>8} {f.recall:>7.2f} "
            f"{f.within_two_buckets:>8} {_minutes(f.median_ttd):>11} {_minutes(f.max_ttd):>9}"
        )
    out.append("")
    out.append(
        f"Simulated days: {rep.days}; false alerts: {rep.false_alerts} "
        f"({rep.false_per_30_days:.2f} per 30 days); co-alerts: {rep.co_alerts}; "
        f"repeats: {rep.repeats}"
    )
    outages = [
        o
        for r in rep.results
        for o in r.outcomes
        if o.labelled.rule is None
        and o.labelled.incident.kind == "outage"
        and o.labelled.incident.start > START
    ]
    if outages:
        caught = sum(bool(o.paged) for o in outages)
        out.append(
            f"Outages (volume drops) that drew any alert: {caught} of {len(outages)} "
            "(no default rule watches volume)"
        )
    sparse = [r for r in rep.results if r.half_failed_windows]
    if sparse:
        exercised = ", ".join(f"{r.scenario.name} {r.half_failed_windows}" for r in sparse)
        out.append(
            f"Windows with >= half of <= 4 finished jobs failed (trap exercised): {exercised}"
        )
    if rep.false_alerts:
        out.append("")
        out.append("False alerts:")
        out.extend(f"  {line}" for line in false_alert_lines(rep))
    extra = [
        (r.scenario.name, o, t)
        for r in rep.results
        for o in r.outcomes
        for t in [*o.co_alerts, *o.repeats]
    ]
    if extra:
        out.append("")
        out.append("Co-alerts and repeats:")
        for name, o, t in extra:
            tag = "repeat" if t in o.repeats else "co-alert"
            incident = o.labelled.incident
            out.append(f"  {name} ({incident.model} {o.labelled.kind}) {tag}: {describe(t)}")
    problems = problem_lines(rep)
    if problems:
        out.append("")
        out.append("Missed or later than two buckets:")
        out.extend(f"  {line}" for line in problems)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="run the reduced CI set")
    ap.add_argument("--workers", type=int, default=None, help="processes (default: CPUs)")
    ap.add_argument("--rules", type=Path, default=None, help="a rules file to measure instead")
    args = ap.parse_args(argv)
    scenarios = QUICK if args.quick else FULL
    rules = default_rules()
    if args.rules is not None:
        rules = parse_rules(args.rules.read_text(encoding="utf-8"), str(args.rules)).rules
    began = time.perf_counter()
    results = run_suite(scenarios, args.workers, rules)
    rep = report(results, rules)
    print(format_report(rep))
    print(
        f"\nRecall {rep.overall.recall:.2f}, false alerts {rep.false_per_30_days:.2f} per 30 "
        f"days, median TTD {_minutes(rep.overall.median_ttd)}, max TTD "
        f"{_minutes(rep.overall.max_ttd)}; {len(scenarios)} scenarios in "
        f"{time.perf_counter() - began:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
