"""The product, run as a Numenta Anomaly Benchmark (NAB) detector.

    python ../shared/nab/nab_score.py --detector bench/nab_detector.py:detect
    python ../shared/nab/nab_score.py --detector bench/nab_detector.py:detect --check-causal 5
    python ../shared/nab/nab_score.py --detector bench/nab_detector.py:detect \\
        --kwargs '{"rules": "path/to/other_rules.yaml"}'

Each series is fed to `engine.Engine` as one account's spend and judged by
`monitor.Monitor`, the path the worker and `usage-bot backtest` drive, under the rules in
`bench/nab_rules.yaml` (or the file `rules` names), read with the product's own loader
(`bot.rules.load_rules`): a rule the product cannot express fails here as it does in
`usage-bot check`, and nothing else about detection is set here. The rules must be
events rules on spend: a series holds no jobs, failures or daily summary. NAB counts a
detection where the score crosses a threshold, so the score is the page itself: 1 on the
row where a rule's alert fires (a FIRING transition), 0 elsewhere. Figures, the rules
file's neighbours and how sensitive they are to the constants below: README, "Detection
quality: Numenta Anomaly Benchmark"; `bench/nab_grid.py` reruns the grid.

How a row becomes spend (the adapter's only choices, the same for every series, fixed
before any rule was scored and not tuned on NAB):

* Units. Spend has a zero; NAB series have arbitrary units and offsets (temperatures,
  CPU %, counts, latencies). The first LEARN_ROWS rows fix an affine map: their minimum
  and maximum (their range; |minimum| or 1 when they are flat) go to MARGIN and
  MARGIN + 1, so zero credits sit MARGIN ranges below the first rows' minimum, and a
  value below that zero is no spend (clipped to 0). One range is UNIT credits per slot:
  the engine's absolute floor (ABS_FLOOR, 0.5 on the square-root scale, for near-empty
  series) then binds only within 1e-4 of a range of zero, while its relative floor
  (REL_FLOOR: per unit of z, a move must exceed 5% of the level's square root) does
  bind, and the level it is relative to is measured from that zero. Scores of the first
  LEARN_ROWS rows are 0: the map is not known before them (NAB does not score them
  either; they are inside its probation, at least 169 rows).
* Time. Row times are data time, shifted by less than 5 minutes so that the first row
  sits on a mark of the engine's 5-minute slots. A row's value is held from its time until
  the next row's, for at most HOLD_ROWS row intervals (the median gap of the first rows);
  a slot's spend is the time-weighted mean of what is held over it. So a 5-minute series
  gives one slot per row, a 1-minute one the mean of 5 rows, an hourly one its value in 12
  slots, whatever the rule's bucket. A row whose time does not advance (duplicates; one
  series steps back an hour) holds for no time.
* Gaps. Time no hold covers (the next row came late) is told to the engine as a `Gap`,
  as the worker tells it where events may be missing: a window over it is not judged as
  a drop (a rise still is).

Where the score goes: a transition at moment `at` judged the windows ending at `at` (the
slots before it) and is scored on the first row at or after `at`, which is when the
worker would tell it: an aligned 5-minute series scores one row after the row that tipped
it, since a slot is judged once it has closed. By default one `Monitor.run` judges the
whole series (as `usage-bot backtest` does); `polls=True` runs it at every row with only
the slots and gaps that row completes, as a worker polling at each row would, and gives
the same scores (slower). Either way every moment is judged from the slots before it and
scored on a row no earlier than its data, so the scores are causal (`--check-causal`
verifies that the scores of a prefix are the prefix of the scores). Reminders and
resolutions are not scored: NAB rewards the first detection in a window.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bot.engine import STEP, Engine
from bot.metrics import KIND_COMPLETED, EventBatch
from bot.models import FIRING, Gap, Rule
from bot.monitor import Monitor
from bot.rules import load_rules, parse_rules

RULES = Path(__file__).with_name("nab_rules.yaml")
LEARN_ROWS = 100  # rows that fix the units and the row interval (NAB's probation is >= 169)
MARGIN = 1.0  # zero credits sit this many first-row ranges below the first rows' minimum
UNIT = 1e6  # credits per slot for one first-row range: far above the engine's ABS_FLOOR
HOLD_ROWS = 3  # a value is held for at most this many row intervals; beyond is a gap

FloatArray = npt.NDArray[np.float64]


def detect(
    values: npt.ArrayLike,
    timestamps: npt.ArrayLike,
    rules: str | None = None,
    polls: bool = False,
) -> Any:
    """Per-row NAB scores in [0, 1]: 1 on the rows where the product's alert fires.

    `rules`: another rules file; `polls`: judge row by row, as a worker polling at each
    row would (slower; the same scores).
    """
    path = Path(rules) if rules else RULES
    return scores(values, timestamps, spend_rules(load_rules(path).rules, str(path)), polls)


def detect_text(values: npt.ArrayLike, timestamps: npt.ArrayLike, text: str) -> Any:
    """As `detect`, with the rules file given as text (`bench/nab_grid.py` uses it)."""
    return scores(values, timestamps, spend_rules(parse_rules(text, "<rules>").rules, "<rules>"))


def spend_rules(rules: Sequence[Rule], where: str) -> tuple[Rule, ...]:
    """The rules, if the adapter can feed them: events rules on spend (a series is one
    account's credits; it holds no jobs, failures or daily summary)."""
    if not rules:
        raise ValueError(f"{where}: no rules")
    for rule in rules:
        if rule.metric != "spend" or rule.source != "events":
            raise ValueError(
                f"{where}: rule {rule.name!r}: NAB series are fed as spend events; "
                f"metric {rule.metric} from {rule.source} has nothing to judge"
            )
    return tuple(rules)


def scores(
    values: npt.ArrayLike, timestamps: npt.ArrayLike, rules: Sequence[Rule], polls: bool = False
) -> FloatArray:
    x = np.asarray(values, dtype=np.float64)
    n = x.shape[0]
    out = np.zeros(n)
    if n <= LEARN_ROWS:
        return out
    seconds = np.asarray(timestamps).astype("datetime64[s]").astype(np.int64)
    times = np.maximum.accumulate(seconds)  # data time never steps back
    times = times - times[0] % STEP  # the first row on a mark
    slots, credits, gaps = usage(x, times)
    engine = Engine(rules)
    monitor = Monitor(engine)
    start = _utc(int(slots[0]) * STEP - STEP)
    if not polls:
        engine.add_events(_batch(slots, credits))
        engine.add_gaps(Gap(_utc(a), _utc(b)) for a, b in gaps)
        for t in monitor.run(_utc(int(times[-1])), start):
            if t.state == FIRING:
                out[int(np.searchsorted(times, t.at.timestamp(), side="left"))] = 1.0
    else:
        # At each row, what the worker would hold: the slots before it (complete now that
        # it has come) and the gaps that ended by it; then judge up to it.
        held = told = 0
        for row, now in enumerate(times.tolist()):
            upto = int(np.searchsorted(slots * STEP, now, side="left"))
            engine.add_events(_batch(slots[held:upto], credits[held:upto]))
            held = max(held, upto)
            while told < len(gaps) and gaps[told][1] <= now:
                engine.add_gaps([Gap(_utc(gaps[told][0]), _utc(gaps[told][1]))])
                told += 1
            if any(t.state == FIRING for t in monitor.run(_utc(now), start)):
                out[row] = 1.0
    out[:LEARN_ROWS] = 0.0
    return out


def _batch(slots: npt.NDArray[np.int64], credits: FloatArray) -> EventBatch:
    """One event per slot, at the slot's start, spending its credits."""
    return EventBatch(
        epoch=(slots * STEP).astype(np.float64),
        group=[("nab", "", "")] * len(slots),
        kind=np.full(len(slots), KIND_COMPLETED, dtype=np.int8),
        credits=credits,
    )


def usage(
    x: FloatArray, times: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], FloatArray, list[tuple[int, int]]]:
    """(slots, credits per slot, gaps as (from, to) seconds) for one series.

    Each row's mapped value is held from its time to the next row's (at most HOLD_ROWS
    row intervals); a slot's credits are the time-weighted mean held over it.
    """
    head = x[:LEARN_ROWS]
    low, span = float(head.min()), float(head.max() - head.min())
    if not span > 0:
        span = abs(low) or 1.0
    y = np.maximum((x - low) / span + MARGIN, 0.0) * UNIT
    interval = float(np.median(np.diff(times[: LEARN_ROWS + 1])))
    longest = HOLD_ROWS * max(interval, 1.0)
    ends = np.empty_like(times)
    ends[:-1] = np.minimum(times[1:], times[:-1] + longest)
    ends[-1] = times[-1] + longest
    lost = np.flatnonzero(ends[:-1] < times[1:])
    gaps = [(int(ends[i]), int(times[i + 1])) for i in lost]
    first, last = int(times[0]) // STEP, -(-int(ends[-1]) // STEP)
    bounds = np.arange(first, last + 1) * STEP
    spent = _held_per_slot(times, ends, y, bounds)
    covered = _held_per_slot(times, ends, np.ones_like(y), bounds) > 0
    return np.arange(first, last)[covered], spent[covered], gaps


def _held_per_slot(
    starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64], y: FloatArray, bounds: Any
) -> FloatArray:
    """Time-weighted mean of y held over [starts, ends) in each slot between `bounds`:
    the integral of the holds (flat between them) read at the slot edges."""
    edges = np.empty(2 * len(starts), dtype=np.float64)
    edges[0::2], edges[1::2] = starts, ends
    held = y * (ends - starts)
    area = np.empty_like(edges)
    area[1::2] = np.cumsum(held)
    area[0::2] = area[1::2] - held
    return np.asarray(np.diff(np.interp(bounds, edges, area)) / STEP, dtype=np.float64)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
