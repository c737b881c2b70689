"""Replay one labelled stream through whichever `bot` is importable, as a script.

    PYTHONPATH=/path/to/other/tree python -P bot/standins/reference.py SPEC.json

`bot.standins.scenarios` runs this file by its path, in a subprocess whose PYTHONPATH puts
another checkout of the project first (a previous commit, for "the same table for the
previous engine"). So it imports only what every version of the project has had since
`usage-bot backtest` existed: `bot.backtest.load` / `run` and `bot.rules`; nothing of the
current tree. The stream itself (events as JSON Lines, the summary as JSON) was written by
the current tree's simulator, so both engines judge the very same events.

SPEC is a JSON object: `events` (path), `summary` (path), `poll` (seconds between polls of
a replayed worker, or null for the 5-minute marks), `rules` (a rules file, or null for that
tree's default rules). Prints one JSON object describing the run (which `bot` it imported,
whether it could replay polls, its rules), then one per transition.
"""

from __future__ import annotations

import inspect
import json
import sys
import time
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> int:
    from bot import backtest
    from bot.rules import default_rules_text, parse_rules

    spec = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    text = (
        default_rules_text()
        if spec.get("rules") is None
        else Path(spec["rules"]).read_text(encoding="utf-8")
    )
    rules = parse_rules(text).rules
    summary = json.loads(Path(spec["summary"]).read_text(encoding="utf-8"))
    began = time.perf_counter()
    recording = backtest.load(rules, Path(spec["events"]), summary)
    polls = "poll_every" in inspect.signature(backtest.run).parameters
    if spec.get("poll") is not None and polls:
        transitions = backtest.run(recording, poll_every=spec["poll"])
        mode = f"polls every {spec['poll']:g} s"
    else:
        transitions = backtest.run(recording)
        mode = "5-minute marks"
    head: dict[str, Any] = {
        "bot": str(Path(backtest.__file__).resolve().parent),
        "replay": mode,
        "seconds": time.perf_counter() - began,
        "rules": [
            {"name": r.name, "bucket": r.bucket, "source": r.source, "group_by": r.group_by}
            for r in rules
        ],
    }
    out = [json.dumps(head)]
    for t in transitions:
        out.append(
            json.dumps(
                {
                    "rule": t.rule,
                    "group": list(t.group),
                    "group_by": list(t.group_by),
                    "state": t.state,
                    "at": t.at.isoformat(),
                    "value": t.value,
                    "baseline": t.baseline,
                    "zscore": t.zscore,
                    "volume": t.volume,
                }
            )
        )
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
