"""The store's connection: opening the SQLite file (WAL, busy timeout, migrations),
one write transaction at a time (`_atomic`, BEGIN IMMEDIATE), sqlite3 errors turned
into `StoreError` (`translated`), close and the integrity check.

Every per-concern mixin of `bot.store.Store` derives from `Connection` and shares its
`db` and `_atomic()`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlite_utils import Database

from bot.errors import StoreError

from .migrations import migrations


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn sqlite3 errors into StoreError once, here, with what we were doing."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"database error while {what}: {exc}") from exc


class Connection:
    """The bot's SQLite file. `path=None` gives an in-memory database (tests)."""

    db: Database

    def __init__(self, path: str | Path | None = None, *, busy_timeout: float = 10.0) -> None:
        with translated("opening the database"):
            if path is None:
                self.db = Database(memory=True)
            else:
                # timeout: wait for a concurrent writer instead of failing at once.
                self.db = Database(sqlite3.connect(str(path), timeout=busy_timeout))
                self.db.enable_wal()
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA synchronous = NORMAL")  # safe with WAL, much faster
            migrations.apply(self.db)

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """One write transaction, its lock taken at once (BEGIN IMMEDIATE). A deferred
        BEGIN that reads before it writes cannot wait for another writer: SQLite fails
        its upgrade with SQLITE_BUSY at once, busy timeout or not. Nested: a savepoint."""
        conn = self.db.conn
        if conn.in_transaction:
            with self.db.atomic():
                yield
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # a failed COMMIT too: never leave a transaction open
                conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.db.close()

    def migrations_applied(self) -> list[str]:
        """The names of the migrations this database has run, in order."""
        with translated("reading the migrations"):
            rows = self.db.execute(
                "select name from _sqlite_migrations where migration_set = ? order by id",
                [migrations.name],
            ).fetchall()
        return [row[0] for row in rows]

    def integrity_ok(self) -> bool:
        with translated("checking integrity"):
            return bool(self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")
