"""The README documents every command and every environment variable (sqlite-utils' habit)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from bot.cli import build_parser

README = (Path(__file__).parent.parent / "README.md").read_text()
CONFIG = (Path(__file__).parent.parent / "bot" / "config.py").read_text()


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
