"""`usage-bot serve`: the HTTP side of the bot (Procfile `web`) on PORT.

`GET /healthz` answers with the freshness of the store; `GET /budget` with every
budget's state and `GET /metrics` with the store's figures for Prometheus
(`exposition`), both behind the bearer BOT_API_TOKEN. `POST /slack/commands` is the
slash command's Request URL and `POST /slack/interactivity` the buttons' (acknowledge,
silence): each request is verified against Slack's v0 signature over the raw body before
anything in it is parsed, then `commands` answers from a short-lived store connection,
well within Slack's 3 seconds. `answer_command` and `act_on_click` are shared with the
Socket Mode transport (`socket_mode.py`), so both give the same answers.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError
from slack_sdk.signature import Clock, SignatureVerifier
from slack_sdk.webhook import WebhookClient

from bot.api_schema import EVENTS_PATH, SUMMARY_PATH
from bot.clock import stop_on_signals, utc_now
from bot.commands import Reply, budget_json, handle_action, handle_command
from bot.config import Settings
from bot.errors import StoreError
from bot.exposition import CONTENT_TYPE, registry_for, render
from bot.messages.commands import BAD_CLICK_TEXT
from bot.messages.transport import (
    BAD_CONTENT_LENGTH,
    BODY_TOO_LARGE,
    FAILED_TEXT,
    INVALID_SIGNATURE,
    LENGTH_REQUIRED,
    NO_SIGNING_SECRET,
    NOT_A_SLASH_COMMAND,
    NOT_FOUND,
    STORE_UNAVAILABLE,
    WORKING_TEXT,
    http_error,
)
from bot.models import Budget, Rule
from bot.store import Store

log = logging.getLogger(__name__)

COMMANDS_PATH = "/slack/commands"
ACTIONS_PATH = "/slack/interactivity"  # the app's Interactivity Request URL
BUDGET_PATH = "/budget"  # budgets as JSON for automation (bearer BOT_API_TOKEN)
METRICS_PATH = "/metrics"  # Prometheus text format (bearer BOT_API_TOKEN)
MAX_BODY = 64 * 1024  # a slash-command payload is well under 4 KB
MAX_DRAIN = 1024 * 1024  # past this, an oversized body is not read at all
FORM = "application/x-www-form-urlencoded"
ANSWER_WITHIN = 2.0  # seconds to answer inline; Slack gives up on a command after 3


def make_server(
    settings: Settings,
    host: str = "0.0.0.0",
    *,
    clock: Clock | None = None,
    budgets: Sequence[Budget] = (),
    rules: Sequence[Rule] = (),
) -> ThreadingHTTPServer:
    """The server on `settings.port` (0: any free port). `clock` is for tests of the
    signature's 5-minute window."""
    database = settings.database
    verifier = (
        SignatureVerifier(settings.slack_signing_secret, clock or Clock())
        if settings.slack_signing_secret
        else None
    )
    metrics = registry_for(database)  # one per server: its counters live as long as it does

    class Handler(BaseHTTPRequestHandler):
        timeout = 10  # seconds: a client that stalls mid-body does not hold a thread

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = urlsplit(self.path).path
            if path == BUDGET_PATH:
                self._budget()
                return
            if path == METRICS_PATH:
                self._metrics()
                return
            if path != "/healthz":
                self._reply(404, http_error(NOT_FOUND))
                return
            store = Store(database)  # one short-lived connection per request: thread-safe
            try:
                body = {
                    "status": "ok",
                    "events_polled_at": _iso(store.last_success(EVENTS_PATH)),
                    "summary_polled_at": _iso(store.last_success(SUMMARY_PATH)),
                    "events_stored": store.count_events(),
                    "coverage": store.coverage_hours(utc_now()).to_json(),
                }
            finally:
                store.close()
            self._reply(200, body)

        def do_POST(self) -> None:  # noqa: N802
            path = urlsplit(self.path).path
            if path not in (COMMANDS_PATH, ACTIONS_PATH):
                self._reply(404, http_error(NOT_FOUND))
                return
            if verifier is None:
                self._reply(503, http_error(NO_SIGNING_SECRET))
                return
            length = self.headers.get("Content-Length")
            if length is None:
                self._reply(411, http_error(LENGTH_REQUIRED))
                return
            if not (length.isascii() and length.isdigit()):
                self._reply(400, http_error(BAD_CONTENT_LENGTH))
                return
            if int(length) > MAX_BODY:
                self._discard(int(length))
                self._reply(413, http_error(BODY_TOO_LARGE))
                return
            raw = self.rfile.read(int(length))
            timestamp = self.headers.get("X-Slack-Request-Timestamp", "")
            signature = self.headers.get("X-Slack-Signature", "")
            if not _signed(verifier, raw, timestamp, signature):
                self._reply(401, http_error(INVALID_SIGNATURE))
                return
            form = _form(raw, self.headers.get("Content-Type", ""), path)
            if form is None:
                self._reply(400, http_error(NOT_A_SLASH_COMMAND))
                return
            if path == ACTIONS_PATH:
                self._reply(200, _act(database, form["payload"], settings))
                return
            self._reply(200, answer_command(database, form, budgets=budgets, rules=rules))

        def _authorized(self) -> bool:
            """The bearer BOT_API_TOKEN of the machine endpoints (`/budget`, `/metrics`);
            when it is missing or wrong, the answer (404 off, 401) is sent here."""
            if settings.api_token is None:
                self._reply(404, http_error(NOT_FOUND))  # the endpoints are off
                return False
            given = self.headers.get("Authorization", "")
            expected = f"Bearer {settings.api_token}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Bearer realm="usage-bot"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return False
            return True

        def _budget(self) -> None:
            """Every budget's state for automation, behind a bearer token."""
            if not self._authorized():
                return
            store = Store(database)
            try:
                body = budget_json(store, budgets, utc_now())
            finally:
                store.close()
            self._reply(200, body)

        def _metrics(self) -> None:
            """The store's figures for Prometheus, behind the same bearer token."""
            if not self._authorized():
                return
            try:
                data = render(metrics)
            except StoreError as exc:  # logged; the scraper gets a short 503
                log.warning("GET %s: %s", METRICS_PATH, exc)
                self._reply(503, http_error(STORE_UNAVAILABLE))
                return
            self._send(200, data, CONTENT_TYPE)

        def _discard(self, length: int) -> None:
            """Read a modestly oversized body away unparsed: closing on unread data makes
            the kernel send a reset, and the client could lose the 413 with it."""
            left = length if length <= MAX_DRAIN else 0
            while left > 0 and (chunk := self.rfile.read(min(left, MAX_BODY))):
                left -= len(chunk)

        def _reply(self, status: int, body: Mapping[str, object]) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("serve: " + format, *args)  # the request line only, never a body

    return ThreadingHTTPServer((host, settings.port), Handler)


def _signed(verifier: SignatureVerifier, raw: bytes, timestamp: str, signature: str) -> bool:
    """Slack's v0 signature over the raw body: HMAC-SHA256, constant-time compared, the
    timestamp within 5 minutes (SignatureVerifier does all three). The checks before it
    keep odd headers from raising inside it: int() of a non-number or of thousands of
    digits, compare_digest() of non-ASCII text, a body that is not UTF-8."""
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return False
    if not (signature.isascii() and signature.startswith("v0=")):
        return False
    try:
        return verifier.is_valid(body=raw, timestamp=timestamp, signature=signature)
    except (UnicodeDecodeError, ValueError, TypeError):
        return False


def _form(raw: bytes, content_type: str, path: str = "/slack/commands") -> dict[str, str] | None:
    """The slash command's fields (or the interactivity `payload`), None when not one."""
    if content_type.split(";")[0].strip().lower() != FORM:
        return None
    try:
        fields = parse_qs(
            raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True, max_num_fields=50
        )
    except ValueError:  # UnicodeDecodeError is one too
        return None
    form = {key: values[0] for key, values in fields.items()}
    needed = "payload" if path == ACTIONS_PATH else "command"
    return form if form.get(needed) else None


def _act(database: str, payload_text: str, settings: Settings) -> dict[str, object]:
    try:
        payload = json.loads(payload_text)
    except ValueError:
        return {"text": BAD_CLICK_TEXT}
    if not isinstance(payload, dict):
        return {"text": BAD_CLICK_TEXT}
    return act_on_click(database, payload, settings)


def act_on_click(
    database: str, payload: Mapping[str, Any], settings: Settings, now: datetime | None = None
) -> dict[str, object]:
    """A button click (a `block_actions` payload): record it, edit the parent to show it,
    answer the clicker."""
    store = Store(database)
    try:
        action = handle_action(payload, store=store, now=now or utc_now())
    finally:
        store.close()
    if action.blocks is not None and action.channel and action.ts and settings.slack_bot_token:
        client = WebClient(
            token=settings.slack_bot_token, base_url=settings.slack_api_url, timeout=5
        )
        try:
            text = str((payload.get("message") or {}).get("text") or action.text)
            client.chat_update(
                channel=action.channel, ts=action.ts, text=text, blocks=action.blocks
            )
        except (SlackClientError, OSError) as exc:  # the click is recorded all the same
            log.warning("could not edit the alert after a button click: %s", exc)
    log.info("button click on %s/%s: %s", action.channel, action.ts, action.text[:60])
    return {"response_type": "ephemeral", "replace_original": False, "text": action.text}


def answer_command(
    database: str,
    form: Mapping[str, str],
    now: datetime | None = None,
    budgets: Sequence[Budget] = (),
    rules: Sequence[Rule] = (),
) -> dict[str, object]:
    """A slash command's fields in, Slack's reply body out (ephemeral unless `public`).

    Slack gives a command 3 seconds. An answer not ready within `ANSWER_WITHIN` (a locked
    database, weeks of events to count for a budget) is acknowledged with a short note
    and sent to the command's `response_url` when it is ready: exactly one of the two
    carries it."""
    lock = threading.Lock()
    outcome: dict[str, Any] = {}

    def work() -> None:
        body = _answer(database, form, now, budgets, rules)
        with lock:
            outcome["body"] = body
            late = outcome.get("late", False)
        if late:
            _send_later(form.get("response_url", ""), body)

    worker = threading.Thread(target=work, name="slash-command", daemon=True)
    worker.start()
    worker.join(ANSWER_WITHIN)
    with lock:
        if "body" in outcome:
            return dict(outcome["body"])
        outcome["late"] = True
    return {"response_type": "ephemeral", "text": WORKING_TEXT}


def _send_later(response_url: str, body: Mapping[str, object]) -> None:
    """POST a late answer to the command's response_url (Slack's, from a signed request)."""
    if urlsplit(response_url).scheme not in ("http", "https"):
        log.warning("a late slash-command answer has no response_url to go to")
        return
    try:
        # slack_sdk's client for response_url (and incoming webhooks): the Slack edge's own.
        answer = WebhookClient(response_url, timeout=10).send_dict(dict(body))
    except (SlackClientError, OSError) as exc:  # refused, unreachable, timed out
        log.warning("could not send a late slash-command answer: %s", type(exc).__name__)
        return
    if answer.status_code >= 300:
        log.warning("response_url refused a late slash-command answer: HTTP %d", answer.status_code)


def _answer(
    database: str,
    form: Mapping[str, str],
    now: datetime | None,
    budgets: Sequence[Budget],
    rules: Sequence[Rule] = (),
) -> dict[str, object]:
    started = time.monotonic()
    user, command = form.get("user_id"), form["command"]
    text = form.get("text", "")
    try:
        store = Store(database)
        try:
            reply = handle_command(
                text,
                store=store,
                now=now or utc_now(),
                user=user,
                command=command,
                budgets=budgets,
                rules=rules,
            )
        finally:
            store.close()
    except Exception:  # Slack shows its own opaque error on a 500; say something useful
        log.exception("slash command failed (user %s)", user)
        reply = Reply(FAILED_TEXT)
    first = text.split()[0][:20] if text.split() else ""
    log.info(
        "slash command %s %r from %s answered in %.0f ms",
        command[:40],
        first,
        user,
        (time.monotonic() - started) * 1000,
    )
    body: dict[str, object] = {
        "response_type": "in_channel" if reply.public else "ephemeral",
        "text": reply.text,
    }
    if reply.blocks is not None:
        body["blocks"] = list(reply.blocks)
    return body


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def serve(settings: Settings, budgets: Sequence[Budget] = (), rules: Sequence[Rule] = ()) -> int:
    server = make_server(settings, budgets=budgets, rules=rules)
    log.info("serving on port %d", settings.port)
    if not settings.slack_signing_secret:
        log.warning("SLACK_SIGNING_SECRET is unset: %s answers 503", COMMANDS_PATH)
    stop = threading.Event()
    stop_on_signals(stop)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stop.wait()
    server.shutdown()
    server.server_close()
    return 0
