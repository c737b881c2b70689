"""Score variants of the NAB rules file over the NAB corpus (how bench/nab_rules.yaml was
picked).

    python bench/nab_grid.py --set z=4,5,6 --set recover_for=12,72 [--nab ../shared/nab]

Every combination of the `--set` values is written into a copy of the rule in
bench/nab_rules.yaml and read back by the product's loader (`bot.rules.parse_rules`), so
only what a rules file can say is tried; `--adapter MARGIN=0.5,2` varies the adapter's
own constants (bench/nab_detector.py) instead. Each variant is run through
`nab_detector.detect_text` and scored by the NAB scorer's own functions (threshold
optimised per profile on the whole corpus: there is no hold-out, so the best of a grid
is an optimistic figure). Results print best first, standard profile.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import nab_detector  # bench/, next to this script
import yaml

HERE = Path(__file__).resolve().parent


def _value(text: str) -> Any:
    return yaml.safe_load(text)


def _scorer(folder: str) -> ModuleType:
    """The NAB scorer next to the data (shared/nab/nab_score.py), loaded from its file."""
    spec = importlib.util.spec_from_file_location("nab_score", Path(folder) / "nab_score.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _axes(specs: list[str]) -> list[tuple[str, list[Any]]]:
    axes = []
    for spec in specs:
        key, _, values = spec.partition("=")
        axes.append((key.strip(), [_value(v) for v in values.split(",")]))
    return axes


def _row(figures: list[float], tp: int, fp: int) -> str:
    standard, low_fp, low_fn = figures
    return f"{standard:7.2f} {low_fp:7.2f} {low_fn:7.2f}  TP {tp:3d}  FP {fp:4d}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nab", default=str(HERE.parent.parent / "shared" / "nab"))
    ap.add_argument("--rules", default=str(nab_detector.RULES))
    ap.add_argument("--set", action="append", default=[], help="rule field=v1,v2,...")
    ap.add_argument("--adapter", action="append", default=[], help="CONSTANT=v1,v2,...")
    ap.add_argument("--files", action="append", help="glob over 'category/name.csv'")
    args = ap.parse_args(argv)

    nab_score = _scorer(args.nab)
    corpus = nab_score.load_corpus(args.nab, args.files)
    profiles = nab_score.load_profiles(str(Path(args.nab) / "config" / "profiles.json"))
    weights = [nab_score.RowWeights(s) for s in corpus]
    base = yaml.safe_load(Path(args.rules).read_text(encoding="utf-8"))
    rule_axes, adapter_axes = _axes(args.set), _axes(args.adapter)
    axes = rule_axes + adapter_axes
    rows = []
    for combo in itertools.product(*(values for _, values in axes)):
        chosen = dict(zip((k for k, _ in axes), combo, strict=True))
        doc = yaml.safe_load(yaml.safe_dump(base))
        for key, _ in rule_axes:
            doc["rules"][0][key] = chosen[key]
        text = yaml.safe_dump(doc, sort_keys=False)
        saved = {k: getattr(nab_detector, k) for k, _ in adapter_axes}
        for key, _ in adapter_axes:
            setattr(nab_detector, key, chosen[key])
        try:
            t0 = time.perf_counter()
            all_scores = [nab_detector.detect_text(s.values, s.timestamps, text) for s in corpus]
            seconds = time.perf_counter() - t0
        finally:
            for key, value in saved.items():
                setattr(nab_detector, key, value)
        res = nab_score.score_corpus(corpus, all_scores, profiles, weights)
        figures = [res[p]["score"] for p in nab_score.PROFILE_ORDER]
        std = res["standard"]
        label = " ".join(f"{k}={v}" for k, v in chosen.items()) or "(as is)"
        rows.append((figures, std["tp_windows"], std["fp_rows"], seconds, label))
        print(
            f"{_row(figures, std['tp_windows'], std['fp_rows'])}  {seconds:5.1f}s  {label}",
            flush=True,
        )
    print("\nbest first (standard / low FP / low FN):")
    for figures, tp, fp, _, label in sorted(rows, key=lambda r: -r[0][0]):
        print(f"{_row(figures, tp, fp)}  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
