"""A daily restart on a fresh disk, then a spend runaway an hour later: how soon it is
caught on each store, against a worker that never restarted (`bot.standins.restart`: an
hourly spend rule over 12 hours of stored events, a 10x runaway on `pro`, the worker
SIGKILLed and started again, the wall clock moving with data time).

    .venv/bin/python bench/bench_restart.py
"""

from __future__ import annotations

import tempfile
import time
from datetime import datetime
from pathlib import Path

from bot.standins import postgres, restart


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, postgres.admin_url() as admin:
        folder = Path(tmp)
        pg = postgres.create_database(admin, "never")
        again = postgres.create_database(admin, "restarted")
        runs = (
            ("SQLite, never restarted", folder / "a.db", None),
            ("SQLite, restarted on a fresh disk", folder / "b.db", folder / "c.db"),
            ("PostgreSQL, never restarted", pg, None),
            ("PostgreSQL, restarted (a new dyno)", again, again),
        )
        for name, first, then in runs:
            began = time.perf_counter()
            fired = restart.spend_alert_after(first, then)
            took = time.perf_counter() - began
            print(f"{name:38} {_after(fired):>24}   ({took:.1f} s to run)")


def _after(fired: datetime | None) -> str:
    if fired is None:
        hours = (restart.END - restart.RUNAWAY.start).total_seconds() / 3600
        return f"not caught in {hours:.0f} h"
    return f"caught after {(fired - restart.RUNAWAY.start).total_seconds() / 60:.0f} min"


if __name__ == "__main__":
    main()
