"""`usage-bot migrate` (Procfile `release`) on both engines, what `check` says about the
store, and a store that cannot be opened."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bot.standins.postgres import free_port
from bot.store import Store
from bot.store.migrations import MIGRATIONS

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
        names = [r[0] for r in conn.execute("select name from schema_migrations order by id")]
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
    assert names[0] == "m001_initial" and len(names) == len(set(names)) >= 13
    assert {"events", "polls", "alert_states", "snapshot_days"} <= tables
    assert f"store migrated: SQLite at {db}, {len(names)} migrations ({names[-1]})" in first.stdout
    again = bot("migrate", tmp_path=tmp_path, BOT_DB_PATH=str(db))
    assert again.returncode == 0 and again.stdout == first.stdout  # nothing run twice


def test_migrate_on_postgres_writes_no_local_file(tmp_path: Path, postgres_url: str) -> None:
    first = bot("migrate", tmp_path=tmp_path, DATABASE_URL=postgres_url, BOT_DB_PATH="local.db")
    assert first.returncode == 0, first.stderr
    store = Store(postgres_url)
    names = store.migrations_applied()
    assert store.engine == "postgres" and names == [fn.__name__ for fn in MIGRATIONS]
    assert {"events", "polls", "alert_states", "snapshot_days"} <= store.db.table_names()
    store.close()
    where = urlsplit(postgres_url)
    said = f"PostgreSQL at 127.0.0.1:{where.port}{where.path}, {len(names)} migrations"
    assert f"store migrated: {said}" in first.stdout
    assert where.password and where.password not in first.stdout + first.stderr
    assert list(tmp_path.iterdir()) == []  # no SQLite file, no journal
    again = bot("migrate", tmp_path=tmp_path, DATABASE_URL=postgres_url)
    assert again.returncode == 0 and again.stdout == first.stdout


def test_two_processes_opening_a_fresh_postgres_database_migrate_it_once(
    postgres_url: str,
) -> None:
    """The web and worker dynos may start together on a fresh database: the migrations
    run under the write lock, so the second waits and then finds nothing to do."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bot", "migrate"],
            env={**os.environ, "DATABASE_URL": postgres_url},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    store = Store(postgres_url)
    assert store.migrations_applied() == [fn.__name__ for fn in MIGRATIONS]
    store.close()


def test_a_sqlite_file_migrated_by_sqlite_utils_carries_on(tmp_path: Path) -> None:
    """Files of the first version kept their record in sqlite-utils' `_sqlite_migrations`:
    reopened, they run nothing twice and keep their rows."""
    db = tmp_path / "old.db"
    Store(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("alter table schema_migrations rename to gone")
        conn.execute(
            "create table _sqlite_migrations (id integer primary key, migration_set text, "
            "name text, applied_at text)"
        )
        conn.execute(
            "insert into _sqlite_migrations (migration_set, name, applied_at) "
            "select 'usage-bot', name, applied_at from gone order by id"
        )
        conn.execute("drop table gone")
        conn.execute("insert into leases values ('kept', 'me', 1.0)")
    store = Store(db)  # would fail creating tables that exist if it ran m001 again
    assert store.migrations_applied() == [fn.__name__ for fn in MIGRATIONS]
    assert store.hold_lease("kept", "other", 0.5, 60) is False
    store.close()


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
    assert "Heroku Postgres" in dyno.stderr  # and what to do about it
    postgres = bot("check", tmp_path=tmp_path, DYNO="worker.1", DATABASE_URL=POSTGRES)
    assert postgres.returncode == 0, postgres.stderr
    assert "state in PostgreSQL at db.example:5432/x" in postgres.stdout
    assert "warning" not in postgres.stderr


POSTGRES = "postgres://bob:hunter2@db.example:5432/x"


def test_a_database_url_is_validated_and_never_echoed(tmp_path: Path) -> None:
    bad = bot("check", tmp_path=tmp_path, DATABASE_URL="mysql://bob:hunter2@db/x")
    assert bad.returncode == 1
    assert "DATABASE_URL: must be a PostgreSQL URL" in bad.stderr
    assert "hunter2" not in bad.stderr + bad.stdout
    good = bot("check", tmp_path=tmp_path, DATABASE_URL=POSTGRES)
    assert good.returncode == 0
    assert "hunter2" not in good.stderr + good.stdout


@pytest.mark.parametrize("command", ["migrate", "run", "query alerts"])
@pytest.mark.parametrize("fault", ["wrong password", "nobody listening", "no such database"])
def test_a_wrong_or_unreachable_database_url_stops_with_one_line(
    tmp_path: Path, postgres_url: str, fault: str, command: str
) -> None:
    where = urlsplit(postgres_url)
    if fault == "wrong password":
        url = postgres_url.replace(f":{where.password}@", ":not-the-password@")
    elif fault == "nobody listening":
        url = postgres_url.replace(f":{where.port}/", f":{free_port()}/")
    else:
        url = postgres_url.replace(where.path, "/no_such_db")
    done = bot(*command.split(), tmp_path=tmp_path, DATABASE_URL=url, USAGE_API_KEY="k")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("usage-bot: DATABASE_URL: cannot open the store (PostgreSQL at")
    assert "Traceback" not in done.stderr
    for secret in (where.password or "", "not-the-password"):
        assert secret not in done.stderr + done.stdout
    assert list(tmp_path.iterdir()) == []
