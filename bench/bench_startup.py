"""Start-up time and memory of `usage-bot run` on each store: the whole process, from
exec to exit, for one cycle against the loopback simulator (`run --cycles 1`: imports,
config, opening and migrating the store, cold-start backfill of 90 days of summary, the
first events poll, judging), and its peak RSS. SQLite on a new file, and PostgreSQL over
loopback on a new database (a throwaway server of the machine's binaries, durable
settings, or BENCH_DATABASE_URL); then the same again on the now-migrated store.

    .venv/bin/python bench/bench_startup.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.standins import postgres
from bot.standins.simulator import Simulator

RUNS = 5


def run_once(env: dict[str, str]) -> tuple[float, float]:
    """Seconds from exec to exit, and the peak RSS in MiB, of one `run --cycles 1`."""
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--cycles", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - began
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"run failed: {err[-2000:]}")
    return took, usage.ru_maxrss / 1024


def main() -> None:
    now = datetime.now(UTC)
    sim = Simulator(start=now - timedelta(days=8), jobs_per_hour=300)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "SLACK_", "USAGE_"))}
    base.pop("DATABASE_URL", None)
    with (
        tempfile.TemporaryDirectory() as tmp,
        sim.serve() as api,
        postgres.admin_url() as admin,
    ):
        folder = Path(tmp)
        base.update(USAGE_API_BASE_URL=api.url, USAGE_API_KEY="sim-key", LOG_LEVEL="WARNING")
        for name in ("SQLite", "PostgreSQL"):
            first, again = [], []
            for i in range(RUNS):
                env = dict(base)
                if name == "SQLite":
                    env["BOT_DB_PATH"] = str(folder / f"run{i}.db")
                else:
                    env["DATABASE_URL"] = postgres.create_database(admin, "startup")
                first.append(run_once(env))  # a new store: migrations and backfill
                again.append(run_once(env))  # the store as the last run left it
            print(f"{name}: `usage-bot run --cycles 1`, median of {RUNS}")
            for label, runs in (("new store", first), ("existing store", again)):
                seconds = statistics.median(t for t, _ in runs)
                rss = statistics.median(r for _, r in runs)
                print(f"  {label:15} {seconds:.2f} s, peak RSS {rss:.1f} MiB")


if __name__ == "__main__":
    main()
