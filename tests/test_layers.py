"""The layer contract (pyproject.toml's [tool.importlinter]) holds, and it has teeth.

`.ci/run` runs `lint-imports` on the tree; here the same contract is run on a copy of the
package with one deliberate violation planted per contract, and each must break it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_of_the_package(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "bot", tmp_path / "bot", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = lint(copy_of_the_package(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "contract"),
    [
        ("detect.py", "import httpx", "The pure core does no I/O"),
        ("engine.py", "import bot.store", "The pure core does no I/O"),
        ("commands.py", "import sqlite3", "Only the store package touches the database"),
        ("store/events.py", "import bot.alerts", "The store knows only records"),
        ("worker.py", "import httpx", "speak HTTP through httpx"),
        ("commands.py", "import slack_sdk", "Only the Slack edge imports slack_sdk"),
        ("server.py", "import prometheus_client", "Only the metrics exposition imports"),
        ("worker.py", "import bot.standins.simulator", "does not depend on the stand-ins"),
        ("models.py", "import bot.config", "No import cycles"),
    ],
)
def test_a_planted_violation_breaks_its_contract(
    tmp_path: Path, module: str, planted: str, contract: str
) -> None:
    tree = copy_of_the_package(tmp_path)
    path = tree / "bot" / module
    text = path.read_text()
    # After the module docstring and `from __future__`, where an import may stand.
    anchor = "from __future__ import annotations\n"
    assert anchor in text
    path.write_text(text.replace(anchor, f"{anchor}\n{planted}  # planted\n", 1))
    result = lint(tree)
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts")[-1]
    assert contract in " ".join(broken.split()), result.stdout


def _imported_modules(path: Path) -> set[str]:
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_tests_share_rigs_through_helpers_and_bench_through_the_package() -> None:
    """No test module imports another test module or `bench`; bench imports the installed
    package, with no sys.path edits (shared code lives in tests/helpers.py or the package)."""
    offenders = [
        f"{path.name} imports {name}"
        for path in sorted((ROOT / "tests").glob("*.py"))
        for name in _imported_modules(path)
        if name.startswith(("tests.test_", "bench")) or name == "tests.conftest"
    ]
    offenders += [
        f"bench/{path.name} edits sys.path"
        for path in sorted((ROOT / "bench").glob("*.py"))
        if "sys.path" in path.read_text()
    ]
    assert not offenders
