"""The store's connection: opening the database (a SQLite file, or PostgreSQL when
given a `postgres://` URL; `database`), applying the migrations, one write transaction
at a time (`_atomic`), database errors turned into `StoreError` (`translated`), close
and the integrity check.

Every per-concern mixin of `bot.store.Store` derives from `Connection` and shares its
`db` and `_atomic()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bot.errors import StoreError

from . import migrations
from .database import Database, database_errors, open_database, scrub


@contextmanager
def translated(what: str, target: str | Path | None = None) -> Iterator[None]:
    """Turn database errors into StoreError once, here, with what we were doing (and
    never the password of a database URL)."""
    try:
        yield
    except Exception as exc:
        if not isinstance(exc, database_errors()):
            raise
        text = " ".join(str(exc).split())  # one line: psycopg's messages span several
        if isinstance(target, str):
            text = scrub(text, target)
        raise StoreError(f"database error while {what}: {text}") from exc


class Connection:
    """The bot's database: a SQLite file at `target` (a path), PostgreSQL (a
    `postgres://` URL), or an in-memory SQLite database (`None`, tests)."""

    db: Database
    # Set when this store queues something to be told (a transition, an ops notice, a
    # post), after the commit; cleared by `Store.cycle_view`, which reads the outboxes.
    _queued: bool = False
    _hooks_queued: bool = False  # likewise, an enforcement hook to send

    def __init__(self, target: str | Path | None = None, *, busy_timeout: float = 10.0) -> None:
        with translated("opening the database", target):
            self.db = open_database(target, busy_timeout=busy_timeout)
        with translated("migrating the database"):
            migrations.apply(self.db)

    @property
    def engine(self) -> str:
        """ "sqlite" or "postgres"."""
        return self.db.engine

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """One write transaction, serialised against every other writer of the database
        (see `database`); nested: a savepoint."""
        with self.db.transaction():
            yield

    def close(self) -> None:
        self.db.close()

    def migrations_applied(self) -> list[str]:
        """The names of the migrations this database has run, in order."""
        with translated("reading the migrations"):
            return migrations.applied(self.db)

    def integrity_ok(self) -> bool:
        with translated("checking integrity"):
            return self.db.integrity_ok()
