"""`usage-bot serve`: the HTTP side of the bot (Procfile `web`) on PORT.

For now it answers `GET /healthz` with the freshness of the store; Slack slash commands
and interactivity arrive here with the slash-command issue.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bot.config import Settings
from bot.source import EVENTS_PATH, SUMMARY_PATH
from bot.store import Store
from bot.worker import stop_on_signals

log = logging.getLogger(__name__)


def make_server(settings: Settings, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    db_path = settings.db_path

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path != "/healthz":
                self._reply(404, {"error": "not_found"})
                return
            store = Store(db_path)  # one short-lived connection per request: thread-safe
            try:
                body = {
                    "status": "ok",
                    "events_polled_at": _iso(store.last_success(EVENTS_PATH)),
                    "summary_polled_at": _iso(store.last_success(SUMMARY_PATH)),
                    "events_stored": store.count_events(),
                }
            finally:
                store.close()
            self._reply(200, body)

        def _reply(self, status: int, body: Mapping[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("serve: " + format, *args)

    return ThreadingHTTPServer((host, settings.port), Handler)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def serve(settings: Settings) -> int:
    server = make_server(settings)
    log.info("serving on port %d", settings.port)
    stop = threading.Event()
    stop_on_signals(stop)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stop.wait()
    server.shutdown()
    server.server_close()
    return 0
