"""Shared fixtures: a real store on each engine (SQLite in memory or on disk, and a fresh
database on a real PostgreSQL server), a database path, logging restored after each test.
Factories and other shared code are in tests/helpers.py.

PostgreSQL: `TEST_DATABASE_URL` names a server the tests may create databases on (`.ci/run`
starts one); without it, the first pytest process starts a throwaway server of the
machine's PostgreSQL binaries (bot/standins/postgres.py) for the whole run, its workers
included, and stops it at the end."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.standins import postgres
from bot.store import Store

_started: postgres.Server | None = None

# Files whose tests take 10 s or more, longest first. Under `-n` (pyproject: --dist loadfile
# --no-loadscope-reorder) they are handed out first, so the workers finish together rather
# than one starting the 55 s chaos file when the others are done.
SLOW_FILES = (
    "test_chaos.py",
    "test_slack_groups.py",
    "test_group_restart.py",
    "test_scenarios.py",
    "test_demo.py",
    "test_fast_alert.py",
    "test_soak.py",
)


def pytest_configure(config: pytest.Config) -> None:
    """Start the run's PostgreSQL server once, before xdist starts its workers (they
    inherit TEST_DATABASE_URL)."""
    global _started
    if os.environ.get("TEST_DATABASE_URL") or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    folder = Path(tempfile.mkdtemp(prefix="usage-bot-pg-"))
    folder.chmod(0o755)
    _started = postgres.start(folder / "server")
    os.environ["TEST_DATABASE_URL"] = _started.url


def pytest_unconfigure(config: pytest.Config) -> None:
    if _started is not None:
        _started.stop()
        shutil.rmtree(_started.folder.parent, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return SLOW_FILES.index(name) if name in SLOW_FILES else len(SLOW_FILES)

    items.sort(key=rank)  # stable: the order within each file, and of the others, is kept


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`main()` installs its own root handler on the stderr pytest captured for that test;
    a later test's background thread logging through it would write to a closed file."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def postgres_url() -> str:
    """A new empty database on the run's PostgreSQL server."""
    return postgres.create_database(os.environ["TEST_DATABASE_URL"])


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a store keeps its state, once per engine: a SQLite file, a PostgreSQL URL."""
    if request.param == "postgres":
        return postgres.create_database(os.environ["TEST_DATABASE_URL"])
    return tmp_path / "bot.db"


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """A fresh store on each engine (SQLite in memory; a new PostgreSQL database)."""
    if request.param == "postgres":
        db = Store(postgres.create_database(os.environ["TEST_DATABASE_URL"]))
    else:
        db = Store(None)
    yield db
    db.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "bot.db"
