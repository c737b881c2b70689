"""Shared fixtures: a real SQLite store (in memory or on disk), a database path, logging
restored after each test. Factories and other shared code are in tests/helpers.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.store import Store

# Files whose tests take 10 s or more, longest first. Under `-n` (pyproject: --dist loadfile
# --no-loadscope-reorder) they are handed out first, so the workers finish together rather
# than one starting the 55 s chaos file when the others are done.
SLOW_FILES = ("test_chaos.py", "test_scenarios.py", "test_demo.py", "test_soak.py")


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
def store() -> Iterator[Store]:
    db = Store(None)
    yield db
    db.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "bot.db"
