"""The store's database handle: one small SQL interface over SQLite (sqlite3, the
embedded default) and PostgreSQL (psycopg 3, `DATABASE_URL`), so every query of the
store is written once.

The store's SQL is the dialect both engines share: `?` placeholders (turned into `%s`
for psycopg here), `insert ... on conflict ... do nothing / do update set c =
excluded.c`, `case when` instead of summing booleans. What differs is only here:
connecting, column types in the schema, and how a write transaction is serialised.
Both serialise writers the same way, so the store's check-then-write steps (the lease,
the outbox) mean the same on both: SQLite takes its write lock at BEGIN (IMMEDIATE),
PostgreSQL an advisory transaction lock, across every process and host on the database.

On PostgreSQL a write transaction runs in psycopg's pipeline mode: BEGIN, the lock and
the writes are sent without waiting for their answers, and only a read (or a count
asked for) waits. A transaction of writes alone is one round trip, COMMIT included;
each read in it adds one. A statement that fails still fails its transaction: its error
is raised at the next wait at the latest (the COMMIT's), and the session is dropped, so
the server rolls everything back.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import psycopg

Row = dict[str, Any]
Params = Sequence[Any]

# The key of PostgreSQL's advisory lock that serialises the store's write transactions
# (advisory locks are per database, so two bots' databases on one server never meet).
WRITE_LOCK = 0x75736167  # "usag"


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


def is_postgres_url(target: str | Path | None) -> bool:
    return isinstance(target, str) and target.startswith(("postgres://", "postgresql://"))


def open_database(target: str | Path | None, *, busy_timeout: float = 10.0) -> Database:
    """A PostgreSQL URL gives PostgreSQL; a path gives that SQLite file; None an
    in-memory SQLite database (tests)."""
    if is_postgres_url(target):
        assert isinstance(target, str)
        return PostgresDatabase(target)
    return SqliteDatabase(target, busy_timeout=busy_timeout)


def database_errors() -> tuple[type[Exception], ...]:
    """The exception types a database call may raise; psycopg's only once it is loaded
    (a SQLite-only process never imports it)."""
    found: tuple[type[Exception], ...] = (sqlite3.Error,)
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None:
        found += (psycopg.Error,)
    return found


def quote(name: str) -> str:
    """An identifier, quoted: some column names (`window`) are reserved words."""
    return '"' + name.replace('"', '""') + '"'


class Database:
    """What the store needs of a database; subclasses say how each engine does it."""

    engine: ClassVar[str]
    types: ClassVar[Mapping[type, str]]

    # -- statements ----------------------------------------------------------------------

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        raise NotImplementedError

    def executemany(self, sql: str, rows: Iterable[Params]) -> Cursor:
        raise NotImplementedError

    def query(self, sql: str, params: Params = ()) -> list[Row]:
        """Rows as dicts by column name."""
        return _rows(self.execute(sql, params))

    def queries(self, *statements: tuple[str, Params]) -> list[list[Row]]:
        """Several independent reads, the rows of each (on PostgreSQL sent together:
        one round trip)."""
        return [self.query(sql, params) for sql, params in statements]

    def insert(self, table: str, row: Mapping[str, Any], *, returning: str | None = None) -> Any:
        """Insert one row; with `returning`, the value of that column (e.g. a new id)."""
        sql = _insert_sql(table, tuple(row))
        if returning is None:
            self.execute(sql, list(row.values()))
            return None
        return self.execute(f"{sql} returning {quote(returning)}", list(row.values())).fetchone()[0]

    def insert_all(self, table: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Insert rows that all have the same columns."""
        rows = list(rows)
        if rows:
            self.executemany(_insert_sql(table, tuple(rows[0])), [list(r.values()) for r in rows])

    def insert_batch(self, table: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """`insert_all` for rows whose values are text, numbers of their column's kind
        (no float in an integer column) or None: on PostgreSQL one statement for all of
        them, where `insert_all` sends one a row."""
        self.insert_all(table, rows)

    def upsert_batch(
        self, table: str, rows: Iterable[Mapping[str, Any]], pk: str | Sequence[str]
    ) -> None:
        """`upsert_all` for rows as `insert_batch` takes them: on PostgreSQL one statement."""
        self.upsert_all(table, rows, pk)

    def insert_new(self, table: str, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert rows that all have the same columns, skipping a row whose key is already
        there. Returns how many were inserted (on PostgreSQL, a wait for the count)."""
        rows = list(rows)
        if not rows:
            return 0
        sql = _insert_sql(table, tuple(rows[0])) + " on conflict do nothing"
        return self.executemany(sql, [list(row.values()) for row in rows]).rowcount

    def upsert_all(
        self, table: str, rows: Iterable[Mapping[str, Any]], pk: str | Sequence[str]
    ) -> None:
        """Insert rows, or update the given columns of the row already there with that key."""
        rows = list(rows)
        if not rows:
            return
        keys = (pk,) if isinstance(pk, str) else tuple(pk)
        self.executemany(_upsert_sql(table, tuple(rows[0]), keys), [list(r.values()) for r in rows])

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction, serialised against every other writer of the database;
        nested: a savepoint."""
        raise NotImplementedError
        yield  # pragma: no cover

    def close(self) -> None:
        raise NotImplementedError

    # -- schema --------------------------------------------------------------------------

    def table_names(self) -> set[str]:
        raise NotImplementedError

    def column_type(self, kind: type) -> str:
        return self.types[kind]

    def id_column(self) -> str:
        """An integer primary key the database numbers itself."""
        raise NotImplementedError

    def integrity_ok(self) -> bool:
        raise NotImplementedError

    def create_table(
        self,
        name: str,
        columns: Mapping[str, type],
        pk: str | Sequence[str],
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        keys = (pk,) if isinstance(pk, str) else tuple(pk)
        parts = []
        for column, kind in columns.items():
            if keys == (column,) and kind is int:
                parts.append(f"{quote(column)} {self.id_column()}")
                continue
            part = f"{quote(column)} {self.column_type(kind)}"
            if defaults and column in defaults:
                part += f" default {_literal(defaults[column])}"
            parts.append(part)
        if len(keys) > 1 or columns[keys[0]] is not int:
            parts.append(f"primary key ({', '.join(map(quote, keys))})")
        self.execute(f"create table {quote(name)} ({', '.join(parts)})")

    def create_index(
        self,
        table: str,
        columns: Sequence[str],
        *,
        unique: bool = False,
        where: str | None = None,
        name: str | None = None,
    ) -> None:
        """An index; with `where`, a partial one (the same SQL on both engines)."""
        name = name or f"idx_{table}_{'_'.join(columns)}"
        kind = "unique index" if unique else "index"
        cols = ", ".join(map(quote, columns))
        partial = f" where {where}" if where else ""
        self.execute(f"create {kind} {quote(name)} on {quote(table)} ({cols}){partial}")

    def add_column(
        self, table: str, column: str, kind: type, *, not_null_default: Any = None
    ) -> None:
        sql = f"alter table {quote(table)} add column {quote(column)} {self.column_type(kind)}"
        if not_null_default is not None:
            sql += f" not null default {_literal(not_null_default)}"
        self.execute(sql)


class SqliteDatabase(Database):
    """A SQLite file in WAL mode (or memory), autocommit outside `transaction()`."""

    engine = "sqlite"
    types = {str: "TEXT", int: "INTEGER", float: "FLOAT"}

    def __init__(self, path: str | Path | None, *, busy_timeout: float = 10.0) -> None:
        # timeout: wait for a concurrent writer instead of failing at once.
        where = ":memory:" if path is None else str(path)
        self.conn = sqlite3.connect(
            where,
            timeout=busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            uri=where.startswith("file:"),  # e.g. `?mode=ro`
        )
        if path is not None:
            self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute("PRAGMA synchronous = NORMAL")  # safe with WAL, much faster

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Params]) -> Cursor:
        return self.conn.executemany(sql, rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        # BEGIN IMMEDIATE: a deferred BEGIN that reads before it writes cannot wait for
        # another writer; SQLite fails its upgrade with SQLITE_BUSY at once.
        conn = self.conn
        nested = conn.in_transaction
        conn.execute("SAVEPOINT nested" if nested else "BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if conn.in_transaction:  # a failed COMMIT too: never leave a transaction open
                conn.execute("ROLLBACK TO nested" if nested else "ROLLBACK")
                if nested:
                    conn.execute("RELEASE nested")
            raise
        conn.execute("RELEASE nested" if nested else "COMMIT")

    def close(self) -> None:
        self.conn.close()

    def table_names(self) -> set[str]:
        rows = self.execute("select name from sqlite_master where type = 'table'").fetchall()
        return {row[0] for row in rows}

    def id_column(self) -> str:
        return "INTEGER PRIMARY KEY"  # the rowid itself

    def integrity_ok(self) -> bool:
        return bool(self.execute("PRAGMA integrity_check").fetchone()[0] == "ok")


class PostgresDatabase(Database):
    """A PostgreSQL database over one psycopg connection, autocommit outside
    `transaction()`, reconnected after the server went away."""

    engine = "postgres"
    types = {str: "TEXT", int: "BIGINT", float: "DOUBLE PRECISION"}

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn = self._connect()
        self._pipeline: psycopg.Pipeline | None = None  # while a write transaction is open
        self._unanswered = False  # a statement sent in it may still wait for its answer

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg  # only a process configured for PostgreSQL pays for it

        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise type(exc)(scrub(str(exc), self.url)) from None
        # Sums of integer columns are `numeric`: read them as Python numbers, not Decimal.
        conn.adapters.register_loader("numeric", _number_loader())
        # As SQLite's synchronous=NORMAL: a commit does not wait for its WAL flush. A
        # server crash may forget the last commits, never half of one; the outbox then
        # looks a post up by its metadata before posting again.
        conn.execute("set synchronous_commit = off")
        return conn

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn.closed or self._conn.broken:
            self._conn = self._connect()  # the server came back: carry on
        return self._conn

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        return self._answer(self.conn.execute(_pg_sql(sql), _pg_params(params)))

    def executemany(self, sql: str, rows: Iterable[Params]) -> Cursor:
        cursor = self.conn.cursor()
        cursor.executemany(_pg_sql(sql), [_pg_params(row) for row in rows])
        return self._answer(cursor)

    def insert_batch(self, table: str, rows: Iterable[Mapping[str, Any]]) -> None:
        rows = list(rows)
        if not self._batch(table, rows):
            super().insert_batch(table, rows)

    def upsert_batch(
        self, table: str, rows: Iterable[Mapping[str, Any]], pk: str | Sequence[str]
    ) -> None:
        rows = list(rows)
        keys = (pk,) if isinstance(pk, str) else tuple(pk)
        # One statement may not update a row twice: rows with a key twice go one by one,
        # each after the other as before.
        if (
            len(rows) < 2
            or len({tuple(row[k] for k in keys) for row in rows}) < len(rows)
            or not self._batch(table, rows, _conflict_sql(tuple(rows[0]), keys))
        ):
            super().upsert_batch(table, rows, keys)

    def _batch(self, table: str, rows: list[Mapping[str, Any]], then: str = "") -> bool:
        """Send the rows as one JSON parameter, turned back into rows of the table's own
        column types by the server: one statement to send, parse and run, the JSON
        written by the json module's C encoder where psycopg adapts each value in turn.
        False, having sent nothing, for fewer than two rows, or a value JSON would not
        carry as it is (NaN, an infinity, a bool, a type it does not know)."""
        if len(rows) < 2 or any(type(v) is bool for row in rows for v in row.values()):
            return False
        try:
            data = json.dumps(rows, allow_nan=False)
        except (TypeError, ValueError):
            return False
        self.execute(_batch_insert_sql(table, tuple(rows[0])) + then, [data])
        return True

    def queries(self, *statements: tuple[str, Params]) -> list[list[Row]]:
        if self._pipeline is not None or not _pipeline_supported():
            return super().queries(*statements)
        conn = self.conn
        with self._dropped_on_failure(conn), conn.pipeline():
            cursors = [conn.execute(_pg_sql(sql), _pg_params(params)) for sql, params in statements]
        return [_rows(cursor) for cursor in cursors]

    def _answer(self, cursor: psycopg.Cursor[Any]) -> Cursor:
        if self._pipeline is None:
            return cursor
        self._unanswered = True
        return _Queued(cursor, self)

    def wait(self) -> None:
        """Wait for the answers to what the open transaction has sent so far."""
        if self._pipeline is not None and self._unanswered:
            self._pipeline.sync()
            self._unanswered = False

    @contextmanager
    def transaction(self) -> Iterator[None]:
        conn = self.conn
        if conn.info.transaction_status != _IDLE:  # nested: a savepoint
            with conn.transaction():
                yield
            return
        if not _pipeline_supported():  # a libpq before 14: each statement waits
            with conn.transaction():
                conn.execute("select pg_advisory_xact_lock(%s)", [WRITE_LOCK])
                yield
            return
        # BEGIN and COMMIT are sent here, not by psycopg's transaction(), which in
        # pipeline mode waits after BEGIN and again before COMMIT. On a failure the
        # session goes, and with it what the transaction had open.
        with self._dropped_on_failure(conn), conn.pipeline() as pipeline:
            self._pipeline, self._unanswered = pipeline, True
            try:
                conn.execute("begin")
                conn.execute("select pg_advisory_xact_lock(%s)", [WRITE_LOCK])
                yield
                conn.execute("commit")
            finally:
                self._pipeline = None
        # Leaving the pipeline is the wait: an error of any statement is raised there.

    @staticmethod
    @contextmanager
    def _dropped_on_failure(conn: psycopg.Connection[Any]) -> Iterator[None]:
        """Close the session when what runs in a pipeline fails: the server rolls back
        what it had open, and the next statement reconnects. Rolling back and going on
        would not do: after a failure in a pipeline, psycopg's cache of prepared
        statements may name one whose preparation the server skipped."""
        try:
            yield
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        self._conn.close()

    def table_names(self) -> set[str]:
        rows = self.execute(
            "select table_name from information_schema.tables where table_schema = current_schema()"
        ).fetchall()
        return {row[0] for row in rows}

    def id_column(self) -> str:
        return "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"

    def integrity_ok(self) -> bool:
        return True  # the server checks its own pages; nothing like SQLite's pragma


_IDLE = 0  # psycopg.pq.TransactionStatus.IDLE, without importing psycopg at module load


class _Queued:
    """A statement sent in a write transaction's pipeline, its answer maybe still on the
    way. psycopg waits for the rows when they are fetched; the row count is waited for
    here (without the wait it would read -1, or a partial count)."""

    def __init__(self, cursor: psycopg.Cursor[Any], db: PostgresDatabase) -> None:
        self._cursor = cursor
        self._db = db

    @property
    def rowcount(self) -> int:
        self._db.wait()  # nothing to wait for once the transaction is over
        return self._cursor.rowcount

    @property
    def description(self) -> Any:
        return self._cursor.description

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor)


@lru_cache(maxsize=1)
def _pipeline_supported() -> bool:
    import psycopg

    return bool(psycopg.Pipeline.is_supported())


def scrub(text: str, url: str) -> str:
    """`text` without the password of `url` (a driver error may quote its target)."""
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


@lru_cache(maxsize=1)
def _number_loader() -> type:
    from psycopg.adapt import Loader

    class NumberLoader(Loader):
        def load(self, data: Any) -> int | float:
            text = bytes(data).decode()
            return int(text) if text.lstrip("-").isdigit() else float(text)

    return NumberLoader


@lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    # The store writes no `?` or `%` inside string literals, so this is a plain swap.
    return sql.replace("%", "%%").replace("?", "%s")


def _pg_params(params: Params) -> list[Any]:
    # psycopg sends a bool as boolean, which an integer column refuses.
    return [int(p) if isinstance(p, bool) else p for p in params]


@lru_cache(maxsize=256)
def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    marks = ", ".join("?" * len(columns))
    return f"insert into {quote(table)} ({', '.join(map(quote, columns))}) values ({marks})"


@lru_cache(maxsize=64)
def _batch_insert_sql(table: str, columns: tuple[str, ...]) -> str:
    names = ", ".join(map(quote, columns))
    return (
        f"insert into {quote(table)} ({names}) select {names} "
        f"from json_populate_recordset(null::{quote(table)}, ?::json)"
    )


@lru_cache(maxsize=256)
def _upsert_sql(table: str, columns: tuple[str, ...], keys: tuple[str, ...]) -> str:
    return _insert_sql(table, columns) + _conflict_sql(columns, keys)


@lru_cache(maxsize=256)
def _conflict_sql(columns: tuple[str, ...], keys: tuple[str, ...]) -> str:
    update = [f"{quote(c)} = excluded.{quote(c)}" for c in columns if c not in keys]
    action = f"do update set {', '.join(update)}" if update else "do nothing"
    return f" on conflict ({', '.join(map(quote, keys))}) {action}"


def _literal(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"only numeric defaults are supported, not {value!r}")
    return repr(value)


def _rows(cursor: Cursor) -> list[Row]:
    rows = cursor.fetchall()
    names = [column[0] for column in getattr(cursor, "description", None) or ()]
    return [dict(zip(names, row, strict=True)) for row in rows]
