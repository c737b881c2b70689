"""A picture of an alert: the metric around the breach, its baseline band and the
breaching points, as PNG bytes for the Slack thread.

matplotlib is imported inside `render` only: a worker that never fires never loads it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure
from bot.models import Rule, Transition

Point = tuple[datetime, float, float, bool]  # (moment, value, baseline, breach)


def warm() -> None:
    """Import matplotlib now rather than on the first alert (a second or two): for the
    demo, whose clock runs 600 times faster than the import."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401


def render(series: Sequence[Point], transition: Transition, rule: Rule) -> bytes:
    """PNG of `series` (oldest first) with the breaching evaluations marked."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a worker dyno
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    scale = 100.0 if rule.metric == "failure_rate" else 1.0
    times = [float(mdates.date2num(p[0])) for p in series]
    values = [p[1] * scale for p in series]
    baselines = [p[2] * scale for p in series]
    fig, ax = plt.subplots(figsize=(8, 3), dpi=100)
    try:
        ax.plot(times, baselines, color="#888888", linewidth=1, label="baseline")
        ax.fill_between(times, [0.0] * len(times), baselines, color="#dddddd", alpha=0.6)
        ax.plot(times, values, color="#1f6feb", linewidth=1.5, label=_label(rule))
        hits = [(float(mdates.date2num(p[0])), p[1] * scale) for p in series if p[3]]
        if hits:
            ax.scatter(
                [h[0] for h in hits],
                [h[1] for h in hits],
                color="#d1242f",
                s=14,
                zorder=3,
                label="breach",
            )
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
        ax.axvline(
            float(mdates.date2num(transition.at)), color="#d1242f", linewidth=0.8, linestyle="--"
        )
        ax.set_title(
            f"{transition.rule} {' '.join(v for v in transition.group)}".strip(), fontsize=10
        )
        ax.legend(loc="upper left", fontsize=8, frameon=False)
        ax.tick_params(labelsize=8)
        fig.autofmt_xdate()
        return _png(fig)
    finally:
        plt.close(fig)


def _label(rule: Rule) -> str:
    return {"failure_rate": "failure rate %", "spend": "credits", "volume": "jobs"}[rule.metric]


def daily_credits(days: Sequence[str], series: Mapping[str, Sequence[float]]) -> bytes:
    """PNG of credits per day, stacked by model (the digest's 30-day picture)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3), dpi=100)
    try:
        names = sorted(series)
        labels = [d[5:] for d in days]  # MM-DD
        ax.stackplot(range(len(days)), *[series[n] for n in names], labels=names, alpha=0.85)
        step = max(1, len(days) // 10)
        ax.set_xticks(range(0, len(days), step), labels[::step])
        ax.set_title("credits per day by model", fontsize=10)
        ax.legend(loc="upper left", fontsize=8, frameon=False)
        ax.tick_params(labelsize=8)
        return _png(fig)
    finally:
        plt.close(fig)


def _png(fig: Figure) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
