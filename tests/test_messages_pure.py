"""The wording (bot.messages) and the backoff policy stay pure: importing them loads no
I/O library and not the store."""

from __future__ import annotations

import subprocess
import sys

IMPURE = ("httpx", "sqlite3", "slack_sdk", "bot.store", "bot.notify", "numpy")


def test_messages_and_backoff_import_no_io() -> None:
    code = (
        "import sys, bot.messages, bot.backoff; "
        f"print(','.join(m for m in {IMPURE!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""
