"""Detection quality of the default rules on labelled scenarios built from the simulator,
against the evidence bound, optionally beside a previous engine's on the same events.

    .venv/bin/python bench/scenarios.py [--quick | --set full|quick|classic] [--workers N]
        [--rules FILE] [--compare [REF]] [--json PATH]

The scenarios, their labels, the matching and the bound live in `bot.standins.scenarios`
(shared with tests/test_scenarios.py): each is a seeded simulator stream with scripted
incidents, each labelled with the rule and model that should page for it, or marked as a
benign trap that must stay quiet. The stream goes through `bot.backtest` (the live
worker's detection path; most streams replayed as the worker polling at its own pace would
see them) and every `firing` transition is matched against the labels:

- detected: a firing of the expected rule for the incident's model with `at` in
  [start, end + 1 bucket]; time to detect (TTD) is that `at` minus the start;
- co-alert: a firing of another rule for the same model (or the account total) whose
  window overlaps the incident, e.g. total-spend during a spend runaway: legitimate;
- repeat: the expected rule firing again for the same incident (a flap);
- false alert: any other firing.

Reported: one row per labelled incident and trap; recall, false alerts per 30 simulated
days, median and max TTD per incident kind; then each labelled incident against its
evidence bound (`../shared/detection-bound.md`: failure rates in jobs, Bernoulli CUSUM;
spend in minutes, compound Poisson in the Gaussian approximation), the medians per volume
band and issue 12's targets.

`--compare REF` checks REF out into a temporary worktree (`git worktree add --detach`) and
runs the very same events through that tree's `bot.backtest` in a subprocess
(`bot/standins/reference.py`, with that tree's default rules unless `--rules`), printing
its tables beside the current engine's. Without a REF it compares with PREVIOUS_ENGINE,
the last commit before issue 12's work. `--json PATH` writes every figure.

The full suite takes several minutes on two cores (`--quick`: the reduced set the tests
run, well under a minute).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bot.rules import parse_rules
from bot.standins.scenarios import (
    CLASSIC,
    FULL,
    QUICK,
    START,
    Reference,
    Report,
    Row,
    band_medians,
    default_rules,
    describe,
    false_alert_lines,
    problem_lines,
    reference_report,
    report,
    run_suite,
    targets,
    when,
)

# The engine before issue 12 (judging at 5-minute marks, no evidence test): the parent of
# 21ac4f1 "Detection judges at every poll and weighs sequential evidence (issue 12, part 1)".
PREVIOUS_ENGINE = "225cd2a"
SETS = {"full": FULL, "quick": QUICK, "classic": CLASSIC}


def _minutes(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f} min"


def _short(value: float | None) -> str:
    """Minutes to 2 significant figures below 10, whole above; - for none, inf as such."""
    if value is None or math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.2g}" if value < 10 else f"{value:.0f}"


def format_report(rep: Report) -> str:
    """A readable table: one row per labelled incident, then false alerts and figures."""
    out: list[str] = []
    header = (
        f"{'scenario':<20} {'kind':<32} {'model':<9} {'size':<12} {'len':>5} "
        f"{'start':<16} {'detected':<9} {'TTD':>7} {'co':>3} {'rep':>3} "
        f"{'peak z':>7} {'judged':>7}"
    )
    out.append(header)
    out.append("-" * len(header))
    for result in rep.results:
        s = result.scenario
        if not result.outcomes:
            out.append(f"{s.name:<20} {'(no incident)':<32}")
        for o in result.outcomes:
            i = o.labelled.incident
            minutes = int((i.end - i.start).total_seconds() // 60)
            length = f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"
            if o.labelled.rule is None:
                detected = f"PAGED {len(o.paged)}" if o.paged else "quiet"
            else:
                detected = "yes" if o.detection else "MISSED"
            ttd = o.ttd
            ttd_text = "-" if ttd is None else f"{_short(ttd.total_seconds() / 60)}m"
            peak = "-" if math.isnan(o.peak.zscore) else f"{o.peak.zscore:.1f}"
            judged = (
                f"{o.peak.judged}/{o.peak.evaluations}"
                if o.labelled.rule and o.peak.evaluations
                else "-"
            )
            out.append(
                f"{s.name:<20} {o.labelled.kind:<32} {i.model or 'all':<9} "
                f"{o.labelled.size:<12} {length:>5} {when(i.start):<16} {detected:<9} "
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
    quiet = sum(1 for o in rep.traps if not o.paged)
    out.append(
        f"Simulated days: {rep.days:.1f}; false alerts: {rep.false_alerts} "
        f"({rep.false_per_30_days:.2f} per 30 days); traps quiet: {quiet} of "
        f"{len(rep.traps)}; co-alerts: {rep.co_alerts}; repeats: {rep.repeats}"
    )
    outages = [
        o
        for r in rep.results
        for o in r.outcomes
        if o.labelled.rule is None
        and o.labelled.simulated
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


def format_bounds(rows: Sequence[Row], reference: Sequence[Row] | None, label: str) -> str:
    """One line per labelled incident: its bound, the product's jobs and minutes to
    detect and their ratio, and the reference engine's beside them."""
    out = [
        "Each labelled incident against its evidence bound (../shared/detection-bound.md):",
        "vol: the group's normal finished jobs/min; bound: a one-sided CUSUM at 0.5 false",
        "alerts per 30 days (failure: jobs, h / KL; spend: minutes, Gaussian compound",
        "Poisson per 5-min slot), minutes incl. the worker's poll interval; jobs: finished",
        "jobs of the group from the start to the firing; ratio: failure jobs / bound jobs,",
        "spend minutes / bound minutes; c.min, c.rat: spend's bound on charged jobs, exact",
        "Poisson with the stream's charge delay (bot/standins/bound.py), and minutes / it;",
        "o.rat: a runaway's exact bound with no delay, at the note's h (jobs seen as they",
        "start), over the note's: above 1.5, no detector is expected within 1.5x of it.",
    ]
    head = (
        f"{'scenario':<16} {'kind':<14} {'model':<8} {'start':<13} {'vol':>6} {'p1|x':>6} "
        f"{'b.jobs':>7} {'b.min':>6} {'jobs':>7} {'min':>6} {'ratio':>6} {'c.min':>6} "
        f"{'c.rat':>6} {'o.rat':>6}"
    )
    if reference is not None:
        head += f" | {label[:7]:>7} {'min':>6} {'ratio':>6}"
    out.append(head)
    out.append("-" * len(head))
    for k, row in enumerate(rows):
        i = row.labelled.incident
        b = row.bound
        line = (
            f"{row.scenario[:16]:<16} {row.labelled.kind[:14]:<14} {i.model or 'all':<8} "
            f"{when(i.start)[:13]:<13} {_short(b.volume):>6} {row.size:>6g} "
            f"{_short(b.jobs):>7} {_short(b.minutes):>6} "
            f"{'-' if row.jobs is None else row.jobs:>7} {_short(row.minutes):>6} "
            f"{_ratio(row.ratio):>6} {_short(b.charged_minutes):>6} "
            f"{_ratio(row.charged_ratio):>6} {_ratio(row.onset_ratio):>6}"
        )
        if reference is not None:
            ref = reference[k]
            line += (
                f" | {'-' if ref.jobs is None else ref.jobs:>7} {_short(ref.minutes):>6} "
                f"{_ratio(ref.ratio):>6}"
            )
        out.append(line)
    return "\n".join(out)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_bands(rows: Sequence[Row], title: str) -> str:
    out = [
        f"Medians per volume band ({title}):",
        f"  {'family':<8} {'band':<11} {'n':>3} {'found':>5} {'ratio':>6} {'TTD min':>8} "
        f"{'bound min':>9} {'c.ratio':>7}",
    ]
    for b in band_medians(rows):
        out.append(
            f"  {b['family']:<8} {b['band']:<11} {b['incidents']:>3} {b['detected']:>5} "
            f"{_ratio(b['median_ratio']):>6} {_short(b['median_minutes']):>8} "
            f"{_short(b['median_bound_minutes']):>9} {_ratio(b['median_charged_ratio']):>7}"
        )
    return "\n".join(out)


def format_targets(rep: Report, title: str) -> str:
    out = [f"Issue 12's targets ({title}):"]
    for what, measured, met in targets(rep):
        mark = "  " if met is None else ("ok" if met else "NO")
        out.append(f"  [{mark}] {what}: {measured}")
    return "\n".join(out)


def _as_json(rep: Report, seconds: float) -> dict[str, Any]:
    return {
        "seconds": seconds,
        "days": rep.days,
        "recall": rep.overall.recall,
        "false_alerts": rep.false_alerts,
        "false_per_30_days": rep.false_per_30_days,
        "traps": [
            {
                "scenario": r.scenario.name,
                "note": o.labelled.note,
                "start": o.labelled.incident.start.isoformat(),
                "paged": [describe(t) for t in o.paged],
            }
            for r in rep.results
            for o in r.outcomes
            if o.labelled.rule is None
        ],
        "kinds": {
            kind: {
                "incidents": f.incidents,
                "detected": f.detected,
                "median_ttd_minutes": None if math.isnan(f.median_ttd) else f.median_ttd,
            }
            for kind, f in rep.kinds.items()
        },
        "rows": [row.as_dict() for row in rep.rows],
        "bands": band_medians(rep.rows),
        "targets": [{"target": w, "measured": m, "met": ok} for w, m, ok in targets(rep)],
        "false": false_alert_lines(rep),
        "streams": [
            {
                "scenario": r.scenario.name,
                "days": r.scenario.days,
                "replay": r.replay,
                "seconds": r.seconds,
                "cpu_seconds": r.cpu_seconds,
            }
            for r in rep.results
        ],
    }


@contextmanager
def checkout(ref: str) -> Iterator[tuple[Path, str]]:
    """REF in a temporary detached worktree of this repository: (its folder, its commit)."""
    here = Path(__file__).resolve().parent
    top = subprocess.run(
        ["git", "-C", str(here), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    commit = subprocess.run(
        ["git", "-C", top, "rev-parse", "--verify", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    folder = Path(tempfile.mkdtemp(prefix="scenarios-ref-")) / "tree"
    subprocess.run(
        ["git", "-C", top, "worktree", "add", "--detach", str(folder), commit],
        capture_output=True,
        check=True,
    )
    try:
        yield folder, commit
    finally:
        subprocess.run(
            ["git", "-C", top, "worktree", "remove", "--force", str(folder)],
            capture_output=True,
            check=False,
        )
        folder.parent.rmdir()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="run the reduced CI set")
    ap.add_argument("--set", choices=sorted(SETS), default=None, help="which scenarios")
    ap.add_argument("--workers", type=int, default=None, help="processes (default: CPUs)")
    ap.add_argument("--rules", type=Path, default=None, help="a rules file to measure instead")
    ap.add_argument(
        "--compare",
        nargs="?",
        const=PREVIOUS_ENGINE,
        default=None,
        metavar="REF",
        help=f"also run a git REF's engine on the same events (default {PREVIOUS_ENGINE})",
    )
    ap.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = ap.parse_args(argv)
    scenarios = SETS[args.set or ("quick" if args.quick else "full")]
    rules = default_rules()
    if args.rules is not None:
        rules = parse_rules(args.rules.read_text(encoding="utf-8"), str(args.rules)).rules
    began = time.perf_counter()
    if args.compare is None:
        results = run_suite(scenarios, args.workers, rules)
        commit = ""
    else:
        with checkout(args.compare) as (tree, commit):
            reference = Reference(tree, args.rules, f"{args.compare} ({commit[:7]})")
            results = run_suite(scenarios, args.workers, rules, reference)
    seconds = time.perf_counter() - began
    rep = report(results, rules)
    ref = reference_report(results)
    named = (
        args.compare if commit.startswith(str(args.compare)) else f"{args.compare} ({commit[:7]})"
    )
    label = f"previous engine {named}" if ref else ""
    print(format_report(rep))
    print()
    ref_rows = ref.rows if ref is not None else None
    print(format_bounds(rep.rows, ref_rows, "prev"))
    print()
    print(format_bands(rep.rows, "this engine"))
    if ref is not None:
        print(format_bands(ref.rows, label))
    print()
    print(format_targets(rep, "this engine"))
    if ref is not None:
        print(format_targets(ref, label))
        replays = sorted({r.replay for r in ref.results})
        print()
        print(f"=== {label}, judged at {', '.join(replays)}, on the same events ===")
        print(format_report(ref))
    cpu = sum(r.cpu_seconds for r in results)
    ref_cpu = sum(r.reference.cpu_seconds for r in results if r.reference is not None)
    print(
        f"\nRecall {rep.overall.recall:.2f}, false alerts {rep.false_per_30_days:.2f} per 30 "
        f"days, median TTD {_minutes(rep.overall.median_ttd)}, max TTD "
        f"{_minutes(rep.overall.max_ttd)}; {len(scenarios)} scenarios ({rep.days:.1f} days) in "
        f"{seconds:.0f} s, {cpu:.0f} s of CPU"
        + (f" (+{ref_cpu:.0f} s the reference's)" if ref else "")
    )
    if args.json is not None:
        body: dict[str, Any] = {"engine": _as_json(rep, seconds)}
        if ref is not None:
            body["reference"] = {"commit": commit, **_as_json(ref, seconds)}
        args.json.write_text(json.dumps(body, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
