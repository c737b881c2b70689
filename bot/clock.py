"""Wall-clock time and stop signals: the small shared home of the processes' entry points.

`worker`, `server` and `socket_mode` need the current time and a SIGTERM handler; they
get both here without importing each other (the web process never loads the worker).
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from types import FrameType

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM (Heroku gives 30 s of grace) and SIGINT set `stop`; the cycle finishes."""

    def handle(signum: int, frame: FrameType | None) -> None:
        log.info("received %s: finishing the current cycle", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
