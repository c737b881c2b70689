"""`usage-bot migrate` (Procfile `release`) and what `check` says about the store."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bot(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "SLACK_", "USAGE_"))}
    clean.pop("DATABASE_URL", None)
    clean.pop("DYNO", None)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_migrate_applies_every_migration_once_and_exits(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    first = bot("migrate", tmp_path=tmp_path, BOT_DB_PATH=str(db))
    assert first.returncode == 0, first.stderr
    with sqlite3.connect(db) as conn:
        names = [r[0] for r in conn.execute("select name from _sqlite_migrations order by id")]
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
    assert names[0] == "m001_initial" and len(names) == len(set(names)) >= 13
    assert {"events", "polls", "alert_states", "snapshot_days"} <= tables
    assert f"{len(names)} migrations ({names[-1]})" in first.stdout
    again = bot("migrate", tmp_path=tmp_path, BOT_DB_PATH=str(db))
    assert again.returncode == 0 and again.stdout == first.stdout  # nothing run twice


def test_the_procfile_migrates_in_the_release_phase() -> None:
    lines = (ROOT / "Procfile").read_text().splitlines()
    assert "release: usage-bot migrate" in lines
    assert {"worker: usage-bot run", "web: usage-bot serve"} <= set(lines)


def test_check_names_the_store_and_warns_on_a_heroku_dyno(tmp_path: Path) -> None:
    plain = bot("check", tmp_path=tmp_path, BOT_DB_PATH="bot.db")
    assert plain.returncode == 0, plain.stderr
    assert "state in SQLite at bot.db" in plain.stdout and "warning" not in plain.stderr
    dyno = bot("check", tmp_path=tmp_path, DYNO="worker.1")
    assert dyno.returncode == 0
    assert "Heroku dyno (worker.1) with SQLite" in dyno.stderr
    assert "wiped on every restart" in dyno.stderr


def test_a_database_url_is_validated_and_never_echoed(tmp_path: Path) -> None:
    bad = bot("check", tmp_path=tmp_path, DATABASE_URL="mysql://bob:hunter2@db/x")
    assert bad.returncode == 1
    assert "DATABASE_URL: must be a PostgreSQL URL" in bad.stderr
    assert "hunter2" not in bad.stderr + bad.stdout
    good = bot("check", tmp_path=tmp_path, DATABASE_URL="postgres://bob:hunter2@db:5432/x")
    assert good.returncode == 0
    assert "DATABASE_URL is set, but this version keeps its state in SQLite" in good.stderr
    assert "hunter2" not in good.stderr + good.stdout
