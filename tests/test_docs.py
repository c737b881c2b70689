"""The README documents every command and every environment variable (sqlite-utils' habit)."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime
from pathlib import Path

from bot.cli import build_parser
from bot.commands import handle_command
from bot.messages.commands import WORDS, help_text
from bot.store import Store

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
CONFIG = (ROOT / "bot" / "config.py").read_text()


def subcommands(parser: argparse.ArgumentParser, prefix: str = "") -> list[str]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(f"{prefix}{name}")
                found += subcommands(sub, f"{prefix}{name} ")
    return found


def test_every_command_is_in_the_readme() -> None:
    commands = subcommands(build_parser())
    assert "query alerts" in commands
    missing = [c for c in commands if f"usage-bot {c}" not in README]
    assert not missing


def test_every_environment_variable_is_in_the_readme() -> None:
    names = set(re.findall(r'reader\.\w+\(\s*"([A-Z_]+)"', CONFIG))
    assert {"USAGE_API_KEY", "SLACK_BOT_TOKEN", "BOT_POLL_SECONDS", "PORT"} <= names
    assert not [n for n in names if f"`{n}`" not in README]


def test_the_worker_does_not_load_matplotlib_until_something_fires() -> None:
    import subprocess
    import sys

    code = "import sys, bot.cli, bot.worker, bot.notify; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def _section(title: str) -> str:
    start = README.index(title)
    end = README.find("\n## ", start + len(title))
    return README[start : end if end != -1 else None]


def test_every_usage_subcommand_is_documented_and_answered() -> None:
    """Each word `/usage` knows is in the README's /usage section and in the help it
    gives, and is really dispatched (not answered as an unknown word)."""
    section = _section("## Asking Slack: `/usage`")
    assert {"summary", "budget", "silence"} <= set(WORDS)
    store = Store()
    try:
        for word in WORDS:
            assert f"`{word}" in section, f"/usage {word} is not in the README"
            if word != "help":
                assert f"/usage {word}" in help_text(), f"/usage {word} is not in the help"
            reply = handle_command(word, store=store, now=datetime(2026, 11, 30, tzinfo=UTC))
            assert "I don't know" not in reply.plain(), word
    finally:
        store.close()


def test_every_module_is_in_the_readme_module_map() -> None:
    """ "How it works" names every module of bot/ (a package by its folder), so a newcomer
    finds where each job lives."""
    section = _section("## How it works")
    package = ROOT / "bot"
    missing = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).parts
        if path.name in ("__init__.py", "__main__.py") and len(parts) == 1:
            continue
        name = f"`{parts[0]}/`" if len(parts) > 1 else f"`{path.name}`"
        stem = path.stem
        if name not in section or (len(parts) > 1 and stem != "__init__" and stem not in section):
            missing.append(str(path.relative_to(ROOT)))
    assert not missing
