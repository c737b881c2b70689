"""The NAB adapter (bench/nab_detector.py) runs the product: its rules file is one
`usage-bot check` accepts, and what it scores is what `monitor.Monitor` fires.

bench is not a package and tests do not import it (test_layers): as the NAB scorer does,
a child process loads the adapter from its file and scores the series given to it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
ADAPTER = ROOT / "bench" / "nab_detector.py"
RULES = ROOT / "bench" / "nab_rules.yaml"
FIVE_MINUTES = np.timedelta64(300, "s")
START = np.datetime64("2026-03-02T00:00:00", "s")

# Run in the child: load the adapter from its path, score every case read from stdin.
CHILD = """
import importlib.util, json, sys
import numpy as np
spec = importlib.util.spec_from_file_location("nab_detector", sys.argv[1])
adapter = importlib.util.module_from_spec(spec)
spec.loader.exec_module(adapter)
out = {}
for name, case in json.load(sys.stdin).items():
    values = np.asarray(case["values"], dtype=np.float64)
    stamps = np.asarray(case["timestamps"], dtype="datetime64[s]")
    try:
        out[name] = adapter.detect(values, stamps, **case.get("kwargs", {})).tolist()
    except Exception as exc:
        out[name] = f"{type(exc).__name__}: {exc}"
json.dump(out, sys.stdout)
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "SLACK_", "USAGE_"))}
    env.pop("DATABASE_URL", None)
    env.pop("DYNO", None)
    return env


def score(cases: dict[str, tuple[Any, Any, dict[str, Any]]]) -> dict[str, Any]:
    payload = {
        name: {
            "values": [float(v) for v in values],
            "timestamps": [str(t) for t in stamps],
            "kwargs": kwargs,
        }
        for name, (values, stamps, kwargs) in cases.items()
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(ADAPTER)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def daily(rows: int, step: np.timedelta64 = FIVE_MINUTES, seed: int = 7) -> tuple[Any, Any]:
    """A series with a daily rhythm and a little noise, `rows` rows `step` apart."""
    stamps = START + step * np.arange(rows)
    hours = (stamps - START).astype(np.int64) / 3600.0
    rng = np.random.default_rng(seed)
    values = 50 + 10 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 1.0, rows)
    return values, stamps


DAYS = 8  # the seasonal baseline takes over after 6 days (3 of them to trust its scale)
SHIFT_ROW = 6 * 288 + 72  # day 6, 06:00
HOLE = range(7 * 288, 7 * 288 + 72)  # day 7, six hours without rows
PREFIXES = (150, *range(SHIFT_ROW - 1, SHIFT_ROW + 8), DAYS * 288 - 7)


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("rules")
    rate_rule = folder / "rate.yaml"
    rate_rule.write_text("rules:\n  - name: rate\n    metric: failure_rate\n")
    unknown_key = folder / "bad.yaml"
    unknown_key.write_text("rules:\n  - name: nab\n    metric: spend\n    window: 448\n")

    values, stamps = daily(DAYS * 288)
    shifted = values.copy()
    shifted[SHIFT_ROW:] += 20  # the daily swing's amplitude is 10
    hourly_values, hourly_stamps = daily(20 * 24, np.timedelta64(3600, "s"))
    hourly_values[15 * 24 :] -= 40
    holed = np.setdiff1d(np.arange(DAYS * 288), HOLE)
    cases: dict[str, tuple[Any, Any, dict[str, Any]]] = {
        "calm": (values, stamps, {}),
        "shift": (shifted, stamps, {}),
        "hourly": (hourly_values, hourly_stamps, {}),
        "hourly, polled": (hourly_values, hourly_stamps, {"polls": True}),
        "holed": (values[holed], stamps[holed], {}),
        "rate": (values, stamps, {"rules": str(rate_rule)}),
        "bad": (values, stamps, {"rules": str(unknown_key)}),
    }
    for cut in PREFIXES:
        cases[f"shift[:{cut}]"] = (shifted[:cut], stamps[:cut], {})
    return score(cases)


def test_the_rules_file_is_one_usage_bot_check_accepts(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "check", str(RULES)],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK: 1 rules (nab)")


def test_one_score_per_row_each_0_or_1(scored: dict[str, Any]) -> None:
    for name, rows in (("calm", DAYS * 288), ("holed", DAYS * 288 - 72), ("hourly", 20 * 24)):
        assert len(scored[name]) == rows
        assert set(scored[name]) <= {0.0, 1.0}


def test_a_level_shift_scores_1_soon_after_it_and_nothing_before(scored: dict[str, Any]) -> None:
    fired = np.flatnonzero(scored["shift"])
    # Scored on the row after the one that tipped it: the slot is judged once closed.
    assert fired.size and SHIFT_ROW <= fired[0] <= SHIFT_ROW + 3, fired
    assert not any(scored["calm"])
    hourly = np.flatnonzero(scored["hourly"])
    assert hourly.size and 15 * 24 <= hourly[0] <= 15 * 24 + 1, hourly  # the next hourly row


def test_rows_missing_for_hours_are_a_gap_not_a_drop(scored: dict[str, Any]) -> None:
    """Read as no spend, six hours without rows would page on the first row after them
    (the rule watches both directions); the adapter tells the engine they are a gap."""
    assert not any(scored["holed"])


def test_scores_are_causal(scored: dict[str, Any]) -> None:
    """The scores of a prefix are the prefix of the scores (NAB's --check-causal)."""
    for cut in PREFIXES:
        assert scored[f"shift[:{cut}]"] == scored["shift"][:cut], cut


def test_judged_row_by_row_as_a_polling_worker_would_the_scores_are_the_same(
    scored: dict[str, Any],
) -> None:
    """One pass over the whole series (as `usage-bot backtest`) and a `Monitor.run` at
    every row with only the data that has come (as the worker) agree."""
    assert any(scored["hourly"])
    assert scored["hourly, polled"] == scored["hourly"]


def test_only_rules_the_product_accepts_and_the_adapter_can_feed(scored: dict[str, Any]) -> None:
    assert scored["bad"].startswith("ConfigError: ")
    assert "window: unknown key" in scored["bad"]
    assert scored["rate"].startswith("ValueError: ")
    assert "fed as spend events" in scored["rate"]
