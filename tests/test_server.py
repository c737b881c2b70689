"""`usage-bot serve`: the slash-command endpoint over a real socket, signed like Slack,
with its state in SQLite and in PostgreSQL (the `db` fixture runs each test on both)."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from slack_sdk.signature import Clock, SignatureVerifier

from bot.config import Settings
from bot.models import Budget
from bot.server import make_server
from bot.store import Store
from tests.helpers import FAILURE_RULE, FORM, SECRET, fill, serve_app, signed

# Slack's worked example from "Verifying requests from Slack".
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TIMESTAMP = "1531420618"
SLACK_BODY = (
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
    "channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
    "command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands"
    "%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
    "trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


class FixedClock(Clock):
    def __init__(self, now: float) -> None:
        self.moment = now

    def now(self) -> float:
        return self.moment


def slash_body(text: str, command: str = "/usage") -> bytes:
    return urlencode(
        {
            "token": "ignored",
            "team_id": "T1",
            "channel_id": "C1",
            "user_id": "U2CERLKJA",
            "command": command,
            "text": text,
            "response_url": "https://hooks.slack.com/commands/T1/1/x",
            "trigger_id": "1.2.3",
        }
    ).encode()


@pytest.fixture
def db(database: str | Path) -> str | Path:
    """A filled store, once per engine: a SQLite file, a PostgreSQL database."""
    store = Store(database)
    fill(store)
    store.close()
    return database


def settings_for(db: str | Path, **options: Any) -> Settings:
    """`serve`'s settings with its state in `db` (DATABASE_URL for a PostgreSQL URL)."""
    if isinstance(db, str):
        return Settings(database_url=db, **options)
    return Settings(db_path=str(db), **options)


@pytest.fixture
def url(db: str | Path) -> Iterator[str]:
    yield from serve_app(settings_for(db, slack_signing_secret=SECRET, port=0))


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as http:
        yield http


def post(client: httpx.Client, url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return client.post(f"{url}/slack/commands", content=body, headers=headers)


def test_a_signed_summary_command_answers_within_three_seconds(
    url: str, client: httpx.Client
) -> None:
    body = slash_body("summary 7")
    started = time.monotonic()
    response = post(client, url, body, signed(body))
    assert time.monotonic() - started < 3.0
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["response_type"] == "ephemeral"
    assert "Usage 2026-11-21 .. 2026-11-23 (7 days" in answer["text"]
    assert "total   390        358      32       8.2%  1,960.0" in answer["text"]
    assert "blocks" not in answer


def test_public_answers_in_channel_and_a_correction_stays_ephemeral(
    url: str, client: httpx.Client
) -> None:
    body = slash_body("alerts public")
    answer = post(client, url, body, signed(body)).json()
    assert answer["response_type"] == "in_channel"
    assert "https://slack.com/archives/C0123ABCD/p1795400000123456" in answer["text"]
    body = slash_body("summary 500 public")
    answer = post(client, url, body, signed(body)).json()
    assert answer["response_type"] == "ephemeral"
    assert "from 1 to 90" in answer["text"]


def _forged(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, {**signed(body), "X-Slack-Signature": "v0=" + "0" * 64}


def _wrong_secret(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, signed(body, secret="not-the-secret")


def _no_timestamp(body: bytes) -> tuple[bytes, dict[str, str]]:
    headers = signed(body)
    del headers["X-Slack-Request-Timestamp"]
    return body, headers


def _no_signature(body: bytes) -> tuple[bytes, dict[str, str]]:
    headers = signed(body)
    del headers["X-Slack-Signature"]
    return body, headers


def _stale(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, signed(body, at=time.time() - 6 * 60)


def _from_the_future(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, signed(body, at=time.time() + 6 * 60)


def _one_byte_changed(body: bytes) -> tuple[bytes, dict[str, str]]:
    # A captured request replayed with "summary+7" turned into "summary+8".
    headers = signed(body)
    return body.replace(b"summary+7", b"summary+8"), headers


def _timestamp_not_a_number(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, {**signed(body), "X-Slack-Request-Timestamp": "soon"}


def _timestamp_huge(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, {**signed(body), "X-Slack-Request-Timestamp": "9" * 5000}


def _unsigned(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, {"Content-Type": FORM}


@pytest.mark.parametrize(
    "tamper",
    [
        _forged,
        _wrong_secret,
        _no_timestamp,
        _no_signature,
        _stale,
        _from_the_future,
        _one_byte_changed,
        _timestamp_not_a_number,
        _timestamp_huge,
        _unsigned,
    ],
)
def test_unsigned_forged_stale_or_altered_requests_get_401(
    url: str, client: httpx.Client, tamper: object
) -> None:
    assert callable(tamper)
    body, headers = tamper(slash_body("summary 7"))
    response = post(client, url, body, headers)
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_signature"}
    assert "Usage" not in response.text


def test_a_non_ascii_signature_header_gets_401(url: str, client: httpx.Client) -> None:
    # compare_digest() raises on non-ASCII text; the server must not.
    body = slash_body("summary")
    headers = [
        (k.encode(), v.encode()) for k, v in signed(body).items() if k != "X-Slack-Signature"
    ]
    headers.append((b"X-Slack-Signature", "v0=\xe9t\xe9".encode("latin-1")))
    response = client.post(f"{url}/slack/commands", content=body, headers=headers)
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"command": "/usage", "text": "summary"}', "application/json"),
        (b'{"command": "/usage", "text": "summary"}', FORM),
        (b"token=x&text=summary", FORM),  # no command
        (b"", FORM),
        (b"command=%2Fusage&text=summary", "text/plain"),
    ],
)
def test_a_signed_body_that_is_not_a_slash_command_gets_400(
    url: str, client: httpx.Client, body: bytes, content_type: str
) -> None:
    headers = {**signed(body), "Content-Type": content_type}
    response = post(client, url, body, headers)
    assert response.status_code == 400
    assert response.json() == {"error": "not_a_slash_command"}


def test_a_body_over_64_kb_gets_413_unread(url: str, client: httpx.Client) -> None:
    body = slash_body("summary " + "x" * 70_000)
    response = post(client, url, body, signed(body))
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("length_header", "status"),
    [("Content-Length: 10000000\r\n", 413), ("", 411), ("Content-Length: 12x\r\n", 400)],
)
def test_a_claimed_length_is_judged_before_any_body_is_read(
    url: str, length_header: str, status: int
) -> None:
    # Raw HTTP: no client would send these headers without the body behind them.
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(f"POST /slack/commands HTTP/1.1\r\nHost: x\r\n{length_header}\r\n".encode())
        head = conn.recv(1024).decode("latin-1")
    assert head.startswith(f"HTTP/1.0 {status} ")


def test_without_a_signing_secret_the_endpoint_answers_503(
    db: str | Path, client: httpx.Client
) -> None:
    for url in serve_app(settings_for(db, slack_signing_secret=None, port=0)):
        body = slash_body("summary")
        response = post(client, url, body, signed(body))
        assert response.status_code == 503
        assert "SLACK_SIGNING_SECRET" in response.json()["error"]
        assert client.get(f"{url}/healthz").status_code == 200


def test_a_store_that_cannot_be_opened_gets_a_polite_answer_and_logs_no_secret(
    tmp_path: Path, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    missing = tmp_path / "no" / "such" / "dir" / "bot.db"
    for url in serve_app(Settings(db_path=str(missing), slack_signing_secret=SECRET, port=0)):
        body = slash_body("summary")
        response = post(client, url, body, signed(body))
        assert response.status_code == 200
        assert "could not read the usage store" in response.json()["text"]
    assert "slash command failed (user U2CERLKJA)" in caplog.text
    assert SECRET not in caplog.text
    assert "hooks.slack.com" not in caplog.text and "trigger_id" not in caplog.text  # no body


def test_healthz_still_answers_and_unknown_paths_404(url: str, client: httpx.Client) -> None:
    health = client.get(f"{url}/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["events_stored"] == 6
    assert client.get(f"{url}/nope").status_code == 404
    assert client.post(f"{url}/nope", content=b"").status_code == 404


def test_the_server_agrees_with_slacks_published_example(
    db: str | Path, client: httpx.Client
) -> None:
    # Slack's example is from 2018: a clock stopped at its timestamp lets it through.
    settings = settings_for(db, slack_signing_secret=SLACK_SECRET, port=0)
    clock = FixedClock(float(SLACK_TIMESTAMP))
    for url in serve_app(settings, clock):
        headers = {
            "Content-Type": FORM,
            "X-Slack-Request-Timestamp": SLACK_TIMESTAMP,
            "X-Slack-Signature": SLACK_SIGNATURE,
        }
        response = post(client, url, SLACK_BODY.encode(), headers)
        assert response.status_code == 200
        assert "`/webhook-collect summary 30`" in response.json()["text"]  # empty text: help
        clock.moment += 301  # five minutes and a second later, the same request is stale
        assert post(client, url, SLACK_BODY.encode(), headers).status_code == 401


def test_slacks_example_signature_with_the_verifier_itself() -> None:
    verifier = SignatureVerifier(SLACK_SECRET, FixedClock(float(SLACK_TIMESTAMP)))
    computed = verifier.generate_signature(timestamp=SLACK_TIMESTAMP, body=SLACK_BODY)
    assert computed == SLACK_SIGNATURE
    assert verifier.is_valid(SLACK_BODY, SLACK_TIMESTAMP, SLACK_SIGNATURE)
    assert not SignatureVerifier(SLACK_SECRET).is_valid(  # the real clock: too old
        SLACK_BODY, SLACK_TIMESTAMP, SLACK_SIGNATURE
    )
    # Our hand-made signer (used by the other tests) agrees with Slack too.
    assert (
        signed(SLACK_BODY.encode(), at=1531420618, secret=SLACK_SECRET)["X-Slack-Signature"]
        == SLACK_SIGNATURE
    )


def test_get_budget_needs_the_bearer_token_and_answers_every_budget(
    db: str | Path, client: httpx.Client
) -> None:
    budgets = (Budget("pro-monthly", 10_000.0, scope=(("model", "pro"),)),)
    token = "api-token-0123456789"
    settings = settings_for(db, slack_signing_secret=SECRET, port=0, api_token=token)
    server = make_server(settings, "127.0.0.1", budgets=budgets)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert client.get(f"{base}/budget").status_code == 401
        wrong = client.get(f"{base}/budget", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
        answer = client.get(f"{base}/budget", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
        (state,) = answer.json()["budgets"]
        assert state["budget"] == "pro-monthly" and state["limit_credits"] == 10_000.0
        assert token not in answer.text
        # the slash command over the same server knows the budgets too
        body = slash_body("budget")
        reply = post(client, base, body, signed(body)).json()
        assert "pro-monthly" in reply["text"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_model_breaks_down_its_open_alert_with_the_rules_serve_was_given(
    db: str | Path, client: httpx.Client
) -> None:
    settings = settings_for(db, slack_signing_secret=SECRET, port=0)
    server = make_server(settings, "127.0.0.1", rules=(FAILURE_RULE,))
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        body = slash_body("model pro")
        reply = post(client, base, body, signed(body)).json()
        assert (
            "What drives failed-job-rate [pro] (the 15 min ending 00:00 UTC): " in (reply["text"])
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_get_budget_is_off_without_a_token(url: str, client: httpx.Client) -> None:
    assert client.get(f"{url}/budget", headers={"Authorization": "Bearer x"}).status_code == 404


def test_a_slow_answer_is_acknowledged_then_sent_to_the_response_url_once(
    db: str | Path, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command whose answer takes longer than Slack's patience (the store locked, say):
    a short acknowledgement at once, the answer posted to response_url, and only there."""
    import bot.server as server_module

    received: list[dict[str, object]] = []
    arrived = threading.Event()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            arrived.set()

        def log_message(self, format: str, *args: object) -> None:
            pass

    hooks = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    hooks_thread = threading.Thread(target=hooks.serve_forever, args=(0.02,), daemon=True)
    hooks_thread.start()
    real = server_module.handle_command

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(server_module, "handle_command", slow)
    monkeypatch.setattr(server_module, "ANSWER_WITHIN", 0.05)
    form = {
        "command": "/usage",
        "text": "summary 7",
        "user_id": "U1",
        "response_url": f"http://127.0.0.1:{hooks.server_address[1]}/commands/T1/1/x",
    }
    try:
        first = server_module.answer_command(str(db), form)
        assert first == {"response_type": "ephemeral", "text": server_module.WORKING_TEXT}
        assert arrived.wait(10)
        time.sleep(0.2)  # anything more would arrive by now
    finally:
        hooks.shutdown()
        hooks.server_close()
        hooks_thread.join(5)
    (late,) = received
    assert late["response_type"] == "ephemeral" and "total" in str(late["text"])
