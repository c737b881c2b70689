"""Socket Mode over a real loopback WebSocket: slash commands, button clicks, reconnects.

The real slack_sdk client (inside `SocketModeTransport`) calls apps.connections.open on
the Web API stand-in and connects to the Socket Mode stand-in, which sends envelopes as
Slack does and hands back the acks.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient

from bot import messages
from bot.commands import handle_command
from bot.config import Settings
from bot.models import Rule, Thread
from bot.server import answer_command
from bot.socket_mode import SocketModeTransport
from bot.standins.simulator import Simulator
from bot.standins.slack import SlackStandIn
from bot.standins.socket_mode import SocketModeStandIn
from bot.store import Store
from tests.helpers import FAILURE_RULE, NOW, T0, bot_env, fill, make_firing

APP_TOKEN = "xapp-1-A0APP-1234567890-5f3c9e0d1b2a4c6e8f7a9b0c1d2e3f4a"
BOT_TOKEN = "xoxb-test"
RULE = Rule(name="failed-job-rate", metric="failure_rate", group_by=("model",), z=4)
WAIT = 10.0  # generous: only a broken transport waits this long


def slash_payload(text: str) -> dict[str, Any]:
    """A slash command as Slack sends it over Socket Mode: the HTTP form's fields."""
    return {
        "token": "ignored",
        "team_id": "T0TEAM",
        "team_domain": "usage-test",
        "channel_id": "C0ALERTS",
        "channel_name": "usage-alerts",
        "user_id": "U123",
        "user_name": "ops",
        "command": "/usage",
        "text": text,
        "api_app_id": "A0APP",
        "is_enterprise_install": "false",
        "response_url": "https://hooks.slack.com/commands/T0TEAM/1/x",
        "trigger_id": "1.2.3",
    }


def ask(sockets: SocketModeStandIn, text: str) -> dict[str, Any] | None:
    return sockets.request(
        "slash_commands", slash_payload(text), accepts_response_payload=True, timeout=WAIT
    )


def wait_until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def db(db_path: Path) -> Path:
    store = Store(db_path)
    fill(store)
    store.close()
    return db_path


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(token=BOT_TOKEN, app_token=APP_TOKEN) as standin:
        yield standin


@pytest.fixture
def sockets(slack: SlackStandIn) -> Iterator[SocketModeStandIn]:
    with SocketModeStandIn(web=slack) as standin:
        yield standin


@pytest.fixture(autouse=True)
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Everything at DEBUG, slack_sdk included, with no scrubber: the app token must
    not be in any of it, whatever the test did."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="slack_sdk")
    yield caplog
    assert APP_TOKEN not in caplog.text
    assert APP_TOKEN[-16:] not in caplog.text


Connect = Callable[..., SocketModeTransport]


@pytest.fixture
def connect(slack: SlackStandIn, sockets: SocketModeStandIn, db: Path) -> Iterator[Connect]:
    """Start a transport against the stand-ins and wait for its connection."""
    started: list[SocketModeTransport] = []

    def start(token: str = APP_TOKEN, **options: Any) -> SocketModeTransport:
        settings = Settings(
            db_path=str(db),
            slack_app_token=token,
            slack_bot_token=BOT_TOKEN,
            slack_api_url=slack.url,
        )
        transport = SocketModeTransport(settings, clock=lambda: NOW, **options)
        started.append(transport.start())
        if token == APP_TOKEN:
            assert sockets.wait_for_connections(1, WAIT)
        return transport

    yield start
    for transport in started:
        transport.close()


def reconnects(logs: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in logs.records
        if r.levelno == logging.WARNING and "reconnecting" in r.getMessage()
    ]


def test_a_slash_command_is_answered_in_its_ack_as_handle_command_answers(
    connect: Connect, sockets: SocketModeStandIn, db: Path
) -> None:
    connect()
    store = Store(db)
    expected = handle_command("summary 7", store=store, now=NOW, user="U123")
    store.close()
    ack = ask(sockets, "summary 7")
    assert ack is not None
    assert ack["payload"] == {"response_type": "ephemeral", "text": expected.text}
    assert "total   390        358      32       8.2%  1,960.0" in expected.text
    # The very body `serve` answers over HTTP, `public` included.
    form = {"command": "/usage", "text": "alerts public", "user_id": "U123"}
    ack = ask(sockets, "alerts public")
    assert ack is not None
    assert ack["payload"] == answer_command(str(db), form, NOW)
    assert ack["payload"]["response_type"] == "in_channel"


def test_model_breaks_down_its_open_alert_with_the_rules_the_worker_was_given(
    connect: Connect, sockets: SocketModeStandIn
) -> None:
    connect(rules=(FAILURE_RULE,))
    ack = ask(sockets, "model pro")
    assert ack is not None
    assert (
        "What drives failed-job-rate [pro] (the 15 min ending 00:00 UTC): "
        in (ack["payload"]["text"])
    )


def test_a_bad_command_gets_its_correction_in_the_ack(
    connect: Connect, sockets: SocketModeStandIn
) -> None:
    connect()
    ack = ask(sockets, "summary 500")
    assert ack is not None
    assert ack["payload"]["response_type"] == "ephemeral"
    assert "from 1 to 90" in ack["payload"]["text"]


def test_a_button_click_acknowledges_the_alert_and_edits_its_parent(
    connect: Connect, sockets: SocketModeStandIn, slack: SlackStandIn, db: Path
) -> None:
    firing = make_firing()
    posted = WebClient(token=BOT_TOKEN, base_url=slack.url).chat_postMessage(
        channel="#usage-alerts",
        text=messages.alert_fallback(firing, RULE.metric),
        blocks=messages.parent_blocks(firing, RULE),
    )
    channel, ts = str(posted["channel"]), str(posted["ts"])
    store = Store(db)
    store.save_thread(Thread(RULE.name, ("pro",), channel, ts, "open"), T0)
    store.close()
    parent = slack.message(channel, ts)
    buttons = next(b for b in parent.blocks or [] if b["type"] == "actions")["elements"]
    ack_button = next(e for e in buttons if e["action_id"] == messages.ACK)
    connect()

    ack = sockets.request(
        "interactive",
        {
            "type": "block_actions",
            "user": {"id": "U123"},
            "channel": {"id": channel},
            "container": {"channel_id": channel, "message_ts": ts},
            "message": {"ts": ts, "text": parent.text, "blocks": parent.blocks},
            "actions": [{"action_id": messages.ACK, "value": ack_button["value"]}],
        },
        timeout=WAIT,
    )

    assert ack is not None and "payload" not in ack  # acked at once, empty
    assert wait_until(lambda: slack.message(channel, ts).edited)
    assert "Acknowledged by <@U123> at 01:05 UTC" in str(slack.message(channel, ts).blocks)
    store = Store(db)
    assert store.acknowledgement(RULE.name, ("pro",)) == ("U123", NOW)
    store.close()


def test_expected_and_noise_over_socket_mode_are_recorded_and_shown_once(
    connect: Connect, sockets: SocketModeStandIn, slack: SlackStandIn, db: Path
) -> None:
    """Feedback per episode from the worker's Socket Mode: who and when recorded, the last
    click winning, one feedback line on the parent."""
    firing = make_firing()  # the episode fill() stored: pro, firing since T0
    posted = WebClient(token=BOT_TOKEN, base_url=slack.url).chat_postMessage(
        channel="#usage-alerts",
        text=messages.alert_fallback(firing, RULE.metric),
        blocks=messages.parent_blocks(firing, RULE),
    )
    channel, ts = str(posted["channel"]), str(posted["ts"])
    connect()

    def click(action_id: str, user: str, edits: int) -> None:
        parent = slack.message(channel, ts)  # as Slack holds it now
        buttons = next(b for b in parent.blocks or [] if b["type"] == "actions")["elements"]
        value = next(e["value"] for e in buttons if e["action_id"] == action_id)
        ack = sockets.request(
            "interactive",
            {
                "type": "block_actions",
                "user": {"id": user},
                "channel": {"id": channel},
                "container": {"channel_id": channel, "message_ts": ts},
                "message": {"ts": ts, "text": parent.text, "blocks": parent.blocks},
                "actions": [{"action_id": action_id, "value": value}],
            },
            timeout=WAIT,
        )
        assert ack is not None and "payload" not in ack  # acked at once, empty
        assert wait_until(lambda: len(slack.message(channel, ts).edits) >= edits)

    click(messages.MARK_NOISE, "U1", 1)
    click(messages.MARK_EXPECTED, "U2", 2)

    blocks = slack.message(channel, ts).blocks or []
    shown = [b for b in blocks if b.get("block_id") == messages.FEEDBACK_NOTE]
    assert [b["elements"][0]["text"] for b in shown] == [
        ":ballot_box_with_check: Marked expected by <@U2> at 01:05 UTC"
    ]
    store = Store(db)
    said = store.feedback(RULE.name, ("pro",), T0)
    store.close()
    assert said is not None
    assert (said.verdict, said.verdict_by, said.verdict_at) == ("expected", "U2", NOW)


def test_a_dropped_connection_is_replaced_and_answers_again(
    connect: Connect, sockets: SocketModeStandIn, slack: SlackStandIn, logs: Any
) -> None:
    connect(ping_interval=0.25, quiet_after=60)
    assert ask(sockets, "help") is not None
    sockets.drop()  # TCP closed, no close frame
    assert sockets.wait_for_connections(2, WAIT)
    opened = slack.calls("apps.connections.open")
    assert len(opened) >= 2 and all(call.ok for call in opened)
    ack = ask(sockets, "summary 7")
    assert ack is not None and "Usage 2026-11-21" in ack["payload"]["text"]
    assert reconnects(logs)


def test_the_watchdog_leaves_a_connection_the_client_already_replaced(
    connect: Connect, sockets: SocketModeStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drop is seen twice: slack_sdk's monitor reconnects, and the watchdog finds the old
    connection's ping failed. Its late replace must not hang up the fresh connection (a
    command under way on it would get no answer)."""
    transport = connect(ping_interval=1, quiet_after=120)
    client = transport._client
    assert client is not None
    judged = client.current_session
    sockets.drop()
    assert sockets.wait_for_connections(2, WAIT)  # replaced (slack_sdk's monitor, or ours)
    assert wait_until(lambda: client.current_session is not judged and client.is_connected())
    # What the late call itself does, on this thread: on a loaded machine slack_sdk's own
    # monitor may replace the connection again, for its own reasons, at any moment (so
    # neither counting connections nor comparing sessions afterwards tells the two apart).
    ours: list[object] = []
    me, replace = threading.get_ident(), client.connect_to_new_endpoint

    def spied(*args: Any, **kwargs: Any) -> None:
        if threading.get_ident() == me:
            ours.append(kwargs)
        replace(*args, **kwargs)

    monkeypatch.setattr(client, "connect_to_new_endpoint", spied)
    client.reconnect("a ping could not be sent", judged)  # the watchdog, late
    assert ours == []
    ack = ask(sockets, "summary 7")
    assert ack is not None and "Usage 2026-11-21" in ack["payload"]["text"]


def test_a_silent_connection_is_replaced_by_the_watchdog(
    connect: Connect, sockets: SocketModeStandIn, slack: SlackStandIn, logs: Any
) -> None:
    # slack_sdk would call it stale after 4 pings (2 s here); the watchdog acts at 1.25 s.
    connect(ping_interval=0.5, quiet_after=1.25)
    sockets.go_silent()  # open, but no pong and no message any more
    assert sockets.wait_for_connections(2, WAIT)
    assert len(slack.calls("apps.connections.open")) >= 2
    ack = ask(sockets, "summary 7")
    assert ack is not None and "Usage 2026-11-21" in ack["payload"]["text"]
    assert any("nothing heard for" in line for line in reconnects(logs))


def test_a_refused_connection_is_retried_and_logged_without_the_token(
    connect: Connect, slack: SlackStandIn, logs: Any
) -> None:
    wrong = APP_TOKEN[:-6] + "000000"
    connect(token=wrong)
    assert wait_until(lambda: len(slack.calls("apps.connections.open")) >= 1)
    assert wait_until(lambda: "could not connect (invalid_auth)" in logs.text)
    assert wrong not in logs.text and wrong[-16:] not in logs.text


def test_settings_that_cannot_work_are_refused() -> None:
    with pytest.raises(ValueError, match="SLACK_APP_TOKEN"):
        SocketModeTransport(Settings())
    with pytest.raises(ValueError, match="ping_interval"):
        SocketModeTransport(Settings(slack_app_token=APP_TOKEN), ping_interval=5, quiet_after=8)


def test_usage_bot_run_answers_over_socket_mode_and_stops_cleanly(
    slack: SlackStandIn, sockets: SocketModeStandIn, db: Path, tmp_path: Path
) -> None:
    sim = Simulator(start=datetime.now(UTC) - timedelta(hours=2))
    log_file = tmp_path / "stderr.txt"  # a file, not a pipe: DEBUG lines never block the bot
    with sim.serve() as api, log_file.open("w") as stderr:
        env = bot_env(api.url, db, SLACK_APP_TOKEN=APP_TOKEN, SLACK_API_URL=slack.url)
        env.update(BOT_POLL_SECONDS="0.5", LOG_LEVEL="DEBUG", PYTHONFAULTHANDLER="1")
        proc = subprocess.Popen([sys.executable, "-m", "bot", "run"], env=env, stderr=stderr)
        try:
            connected = sockets.wait_for_connections(1, 30)
            ack = ask(sockets, "help") if connected else None
        finally:
            proc.send_signal(signal.SIGTERM)
            stopped = _wait_or_dump(proc)
    err = log_file.read_text()
    assert connected and stopped and proc.returncode == 0, err[-4000:]
    assert ack is not None and "summary [days]" in ack["payload"]["text"]
    assert "Socket Mode: connected" in err and "Traceback" not in err
    assert APP_TOKEN not in err


def _wait_or_dump(proc: subprocess.Popen[bytes]) -> bool:
    """Wait for the process; if it hangs, make it print every thread's stack and end."""
    try:
        proc.wait(timeout=30)
        return True
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)  # faulthandler dumps the threads, then it dies
        proc.wait(timeout=30)
        return False
