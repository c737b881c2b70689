"""Secrets (API key, Slack token) never reach logs, errors, the database or Slack messages,
at any log level: a real worker process through a real incident, everything it wrote
searched for them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.api_schema import EVENTS_PATH
from bot.models import Transition
from bot.rules import default_rules_text
from bot.standins.simulator import Incident, Simulator
from bot.standins.slack import SlackStandIn
from bot.standins.socket_mode import SocketModeStandIn
from bot.store import Store

API_KEY = "sk_live_9f8e7d6c5b4a39281706"
SLACK_TOKEN = "xoxb-1234567890-0987654321-SeCrEtToKeNvAlUe"
APP_TOKEN = "xapp-1-A0123-4567-AppLeVeLtOkEnVaLuE"
SIGNING_SECRET = "sIgNiNg-5ecret-0a1b2c3d4e5f"
WEBHOOK_SECRET = "wHsEc-budget-hook-9z8y7x6w"
API_TOKEN = "bot-api-bearer-t0k3n-5544"
HOOK_TOKEN = "hook-url-t0k3n-112233"


def test_secrets_appear_nowhere_the_worker_writes(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    spike = Incident(
        "failure_spike",
        now - timedelta(minutes=40),
        now + timedelta(hours=1),
        model="pro",
        failure_rate=0.9,
    )
    sim = Simulator(
        start=now - timedelta(hours=3), jobs_per_hour=900, incidents=[spike], api_key=API_KEY
    )
    db = tmp_path / "bot.db"
    # An alert already in the outbox: the first cycle delivers it with the Slack token.
    store = Store(db)
    firing = Transition(
        "failed-job-rate",
        ("pro",),
        ("model",),
        "firing",
        now,
        0.9,
        0.02,
        9.0,
        40,
        now,
        9.0,
        0.9,
        900.0,
        ("req_1",),
        ("job_1",),
    )
    store.save_decisions([], [firing], {}, now)
    store.close()
    # A budget the account has already passed: its hook goes out (and fails: the URL,
    # with a token in its query, answers 404) in the first cycles, at DEBUG.
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        default_rules_text().replace(
            "budgets: []",
            "budgets:\n  - {name: all, limit: 1, thresholds: [100], webhook: ALL_HOOK_URL}",
        )
    )
    with (
        sim.serve() as api,
        SlackStandIn(token=SLACK_TOKEN, app_token=APP_TOKEN) as slack,
        SocketModeStandIn(web=slack) as sockets,
    ):
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "USAGE_", "BOT_"))
        }
        env.update(
            USAGE_API_BASE_URL=api.url,
            USAGE_API_KEY=API_KEY,
            SLACK_BOT_TOKEN=SLACK_TOKEN,
            SLACK_API_URL=slack.url,
            SLACK_CHANNEL="#usage-alerts",
            BOT_DB_PATH=str(db),
            BOT_POLL_SECONDS="0.2",
            LOG_LEVEL="DEBUG",
            BOT_RULES_PATH=str(rules),
            SLACK_APP_TOKEN=APP_TOKEN,  # Socket Mode connects, to the stand-in
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            BUDGET_WEBHOOK_SECRET=WEBHOOK_SECRET,
            BOT_API_TOKEN=API_TOKEN,
            ALL_HOOK_URL=f"{api.url}/enforce?token={HOOK_TOKEN}",
        )
        sim.inject("401", "events", times=1)  # an error path too
        done = subprocess.run(
            [sys.executable, "-m", "bot", "run", "--cycles", "4"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        connections = sockets.connections
        refused = [r for r in sim.requests if r.endpoint == EVENTS_PATH and r.status == 401]
        opened = [r for r in slack.calls("apps.connections.open") if r.ok]
        posted = [m.text + str(m.blocks) + str(m.metadata) for m in slack.messages("#usage-alerts")]
        posted += [
            r.text + str(r.blocks) for m in slack.messages("#usage-alerts") for r in m.replies
        ]
    assert done.returncode == 0, done.stderr[-2000:]
    assert any("failed-job-rate" in text for text in posted), "the incident was not told"
    assert "DEBUG" in done.stderr  # debug logging really was on
    # The error path really ran: the API refused the key once, the worker said so in its
    # log and in Slack. And Socket Mode really connected with the app token.
    assert len(refused) == 1 and "refuses our key" in done.stderr
    assert any("refuses our key" in text for text in posted)
    assert opened and connections >= 1
    written = done.stdout + done.stderr + "\n".join(posted)
    files = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert "budget all hook" in done.stderr  # the hook was really tried
    for secret in (API_KEY, SLACK_TOKEN, APP_TOKEN, SIGNING_SECRET, WEBHOOK_SECRET, API_TOKEN):
        assert secret not in written
        assert secret.encode() not in files
        assert secret[-12:] not in written  # not even a tail of it
    # The hook URL's token: scrubbed from the logs; the store keeps no URL at all.
    assert HOOK_TOKEN not in written and HOOK_TOKEN.encode() not in files
