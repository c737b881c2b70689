"""Socket Mode: the `/usage` command and the alert buttons over Slack's WebSocket.

Started by `usage-bot run` when SLACK_APP_TOKEN is set, in background threads beside the
worker loop: the bot dials out to Slack, so no public URL is needed (a worker dyno has
none). The answers are `serve`'s own (`server.answer_command`, `server.act_on_click`):

* a slash command is answered in its acknowledgement, as `serve` answers in its HTTP
  response: the store is local, so the answer is ready well within Slack's 3 seconds;
* a button click is acknowledged at once (Slack ignores a payload there), then recorded
  and shown on the alert's parent message through the Web API.

Each request opens its own store connection in the thread that handles it; none is
shared between threads.

Staying connected. slack_sdk's built-in client pings every `ping_interval`, drops a
connection whose pongs stopped for four intervals (a silently dead socket) and reconnects;
it also reconnects on a close frame and on Slack's `disconnect` message. Three things it
does not do, which the watchdog thread here adds:

* retry a first connection that failed (apps.connections.open unreachable or refusing);
* give up on a connection at its first failed ping: slack_sdk waits for five, and after
  the server has closed the TCP connection its reader spins on the dead socket, a whole
  CPU, meanwhile;
* a backstop: a connection that has heard nothing (no message, no pong) for `quiet_after`
  seconds is replaced, whatever the reason the built-in checks missed it.

Every reconnect is logged at WARNING, with the reason and never a token.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode import SocketModeClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.backoff import Backoff
from bot.clock import utc_now
from bot.config import Settings
from bot.models import Budget, Rule
from bot.server import act_on_click, answer_command

log = logging.getLogger(__name__)

PING_INTERVAL = 5.0  # slack_sdk's default: a dead socket is noticed within about 20 s
QUIET_AFTER = 120.0  # the watchdog's backstop
RETRY = Backoff(base=1.0, cap=60.0)  # between failed connection attempts: 1 s doubling to 60 s


class _Client(SocketModeClient):
    """slack_sdk's built-in client, telling our log when it reconnects and closing fast."""

    def connect_to_new_endpoint(self, force: bool = False) -> None:
        # Called by slack_sdk's monitor (the connection closed) and for Slack's
        # `disconnect` message (force); a call while connected and not forced does nothing.
        if not self.closed and (force or not self.is_connected()):
            why = "Slack asked for a new connection" if force else "connection lost"
            log.warning("Socket Mode: reconnecting (%s)", why)
        super().connect_to_new_endpoint(force)

    def reconnect(self, reason: str, judged: object) -> None:
        """Hang up the connection `judged` dead or quiet and open a new one; nothing when
        slack_sdk's monitor has replaced it meanwhile (a drop is seen by both: replacing
        the fresh connection too would lose what is under way on it).

        The check and the switch hold the connect lock together: checked, released and
        then switched, the monitor could connect in between and lose that new connection.
        slack_sdk's `connect_to_new_endpoint` takes that lock itself (not reentrant), so
        its two steps, a new URL and `connect`, are taken here under the lock we hold.
        """
        if not self.connect_operation_lock.acquire(timeout=5):
            return  # the monitor is replacing it now; the next check sees its result
        try:
            if self.closed or self.current_session is not judged:
                return
            log.warning("Socket Mode: reconnecting (%s)", reason)
            _wake_reader(judged)  # else its recv() holds the switch up to 3 s
            if self.current_session is not None:
                self.current_session.disconnect()
            self.wss_uri = self.issue_new_wss_url()
            self.connect()
        finally:
            self.connect_operation_lock.release()

    def close(self) -> None:
        self.closed, self.auto_reconnect_enabled = True, False
        self.message_queue.put(None)  # wakes the message processor (else up to 1 s)
        _wake_reader(self.current_session)  # else its recv() holds close() up to 3 s
        super().close()


class SocketModeTransport:
    """Slash commands and button clicks over Socket Mode; `start()`, then `close()`."""

    def __init__(
        self,
        settings: Settings,
        *,
        ping_interval: float = PING_INTERVAL,
        quiet_after: float = QUIET_AFTER,
        clock: Callable[[], datetime] = utc_now,
        budgets: Sequence[Budget] = (),
        rules: Sequence[Rule] = (),
    ) -> None:
        if not settings.slack_app_token:
            raise ValueError("Socket Mode needs SLACK_APP_TOKEN")
        if quiet_after <= 2 * ping_interval:
            # A healthy connection hears a pong every ping_interval.
            raise ValueError("quiet_after must be more than twice ping_interval")
        self.settings = settings
        self.ping_interval = ping_interval
        self.quiet_after = quiet_after
        self.clock = clock
        self.budgets = tuple(budgets)
        self.rules = tuple(rules)
        self._check_every = min(1.0, ping_interval, quiet_after / 5)  # a ping fails per interval
        self._stop = threading.Event()
        self._client: _Client | None = None
        self._watchdog: threading.Thread | None = None
        self._heard_at = time.monotonic()
        self._session: object = None
        self._last_pong: float | None = None
        self._retry_at = 0.0
        self._failures = 0  # failed connection attempts in a row
        self._connected_once = False

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> SocketModeTransport:
        """Connect and watch in a background thread; returns at once."""
        token = self.settings.slack_app_token
        assert token is not None  # checked in __init__
        web = WebClient(base_url=self.settings.slack_api_url, timeout=10)
        self._client = _Client(
            app_token=token,
            web_client=web,
            ping_interval=self.ping_interval,
            on_message_listeners=[self._heard],
        )
        self._client.socket_mode_request_listeners.append(self._on_request)
        self._watchdog = threading.Thread(
            target=self._watch, name="socket-mode-watchdog", daemon=True
        )
        self._watchdog.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join()
        if self._client is not None:
            self._client.close()
        log.info("Socket Mode: closed")

    def __enter__(self) -> SocketModeTransport:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- requests -----------------------------------------------------------------------

    def _on_request(self, client: BaseSocketModeClient, request: SocketModeRequest) -> None:
        if request.type == "slash_commands":
            form = _form(request.payload)
            body = answer_command(
                self.settings.database, form, self.clock(), self.budgets, self.rules
            )
            _ack(client, request, body)
            return
        _ack(client, request)  # at once, before any slow work: Slack waits 3 s at most
        if request.type == "interactive" and request.payload.get("type") == "block_actions":
            try:
                act_on_click(self.settings.database, request.payload, self.settings, self.clock())
            except Exception:  # the store could not be opened: say so, keep the socket
                log.exception("button click could not be handled")

    def _heard(self, _message: str) -> None:
        self._heard_at = time.monotonic()

    # -- the watchdog -------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self._check()
            except Exception:  # a bug here must not end the watch
                log.exception("Socket Mode watchdog check failed")
            self._stop.wait(self._check_every)

    def _check(self) -> None:
        client = self._client
        assert client is not None
        if time.monotonic() < self._retry_at:
            return
        if not self._connected_once:
            # Once connect() has returned, slack_sdk's monitor runs and retries by itself.
            self._connected_once = self._attempt(client, client.connect)
            return
        judged = client.current_session
        trouble = self._trouble(judged)
        if trouble is not None:
            self._attempt(client, lambda: client.reconnect(trouble, judged))

    def _trouble(self, session: object) -> str | None:
        """Why the connection `session` should be replaced now, or None while it is healthy."""
        now = time.monotonic()
        if session is not self._session:  # a new connection is not quiet yet
            self._session, self._heard_at = session, now
        pong = getattr(session, "last_ping_pong_time", None)
        if pong != self._last_pong:
            self._last_pong, self._heard_at = pong, now
        if getattr(session, "consecutive_check_state_error_count", 0) > 0:
            return "a ping could not be sent"
        quiet = now - self._heard_at
        if quiet > self.quiet_after:
            return f"nothing heard for {quiet:.0f} s"
        return None

    def _attempt(self, client: _Client, connect: Callable[[], None]) -> bool:
        """Connect or reconnect; after a failure, wait (doubling) before the next try."""
        try:
            connect()
        except Exception as exc:  # unreachable, refused, rate limited: try again later
            self._failures += 1
            delay = RETRY.delay(self._failures)
            log.warning(
                "Socket Mode: could not connect (%s); retrying in %.0f s",
                self._describe(exc),
                delay,
            )
            self._retry_at = time.monotonic() + delay
            return False
        self._retry_at, self._failures = 0.0, 0
        self._heard_at = time.monotonic()  # give the new connection its full quiet time
        if client.is_connected():
            log.info("Socket Mode: connected (session %s)", client.session_id())
        return True

    def _describe(self, exc: Exception) -> str:
        """The error in a few words; Slack's error code when it gave one; never a token."""
        if isinstance(exc, SlackApiError):
            text = str(exc.response.get("error") or "Slack API error")
        else:
            text = f"{type(exc).__name__}: {exc}"[:200]
        token = self.settings.slack_app_token
        return text.replace(token, "[redacted]") if token else text


def _ack(
    client: BaseSocketModeClient,
    request: SocketModeRequest,
    payload: dict[str, object] | None = None,
) -> None:
    client.send_socket_mode_response(SocketModeResponse(request.envelope_id, payload))


def _form(payload: Mapping[str, Any]) -> dict[str, str]:
    """A Socket Mode slash-command payload as the form `serve` receives: the same fields."""
    form = {"command": "/usage"}
    form.update({key: value for key, value in payload.items() if isinstance(value, str)})
    return form


def _wake_reader(session: object) -> None:
    """Shut the connection's socket down so a reader blocked in recv() returns at once."""
    sock = getattr(session, "sock", None)
    if isinstance(sock, socket.socket):  # ssl.SSLSocket is one too
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # closed already
