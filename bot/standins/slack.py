"""A local stand-in of the Slack Web API, for the tests and `usage-bot demo`.

A real HTTP server (stdlib `ThreadingHTTPServer` in a daemon thread) on a free loopback
port. Point the real client at it::

    with SlackStandIn() as slack:
        client = WebClient(token=slack.token, base_url=slack.url)
        client.chat_postMessage(channel="#usage-alerts", text="hello")
        assert slack.messages("#usage-alerts")[0].text == "hello"

`url` ends with ``/api/``: slack_sdk appends a missing ``/`` to `base_url` and joins the
method name with `urllib.parse.urljoin`, so ``…/api/`` + ``chat.postMessage`` gives
``…/api/chat.postMessage``.

What it mirrors from the real Web API (where a bot can get it wrong):

* Every method is a POST; slack_sdk sends ``chat.postMessage``/``chat.update`` as JSON and
  everything else form-encoded (``conversations.history`` too, despite its GET verb); in a
  form body ``blocks``, ``metadata``, ``attachments`` and ``files`` are JSON strings. Both
  encodings (and multipart) are accepted everywhere.
* The token comes as ``Authorization: Bearer …`` (or a ``token`` parameter): missing gives
  ``not_authed``, wrong gives ``invalid_auth``; unknown methods give ``unknown_method``.
* Only ``chat.postMessage`` resolves a channel *name* (``#usage-alerts`` or ``usage-alerts``);
  ``chat.update``, ``conversations.*`` and ``files.completeUploadExternal`` need the ID
  (a name answers ``channel_not_found``), as Slack does. Use the ``channel`` of the
  ``chat.postMessage`` response.
* Limits: more than 50 blocks, a section text over 3000 characters (fields over 2000, more
  than 10 fields), a header over 150 → ``invalid_blocks`` (with Slack-style
  ``response_metadata.messages``); text over 40,000 characters → ``msg_too_long``; neither
  text nor blocks nor attachments → ``no_text``.
* ``conversations.history`` lists top-level messages (and ``reply_broadcast`` replies) newest
  first and returns ``metadata`` only with ``include_all_metadata``; pagination through
  ``response_metadata.next_cursor``; ``oldest``/``latest`` exclusive unless ``inclusive``.
* ``chat.update`` keeps blocks and metadata the call does not name (an empty list / object
  removes them) and marks the message ``edited``.
* The two-step upload of ``WebClient.files_upload_v2``: ``files.getUploadURLExternal``
  (filename, length) → an ``upload_url`` on this server (``/upload/<file_id>``), a raw POST
  of the bytes there (answered ``OK - <length>`` as text, not JSON), then
  ``files.completeUploadExternal`` (``files`` JSON list, ``channel_id``, ``thread_ts``,
  ``initial_comment``), which shares the file as a message carrying ``files`` (a thread
  reply when ``thread_ts`` is given).

``apps.connections.open`` takes the app-level token (`app_token`; the bot token answers
``not_allowed_token_type``, as Slack does) and answers with a WebSocket URL from the
Socket Mode stand-in given to `serve_socket_mode` (``bot.standins.socket_mode`` does that).

Choices of the stand-in, not verified against Slack: a ``thread_ts`` that names no message
answers ``thread_not_found``; completing an already completed upload answers
``file_already_completed`` and shares nothing twice; 5xx bodies are JSON;
``apps.connections.open`` without a Socket Mode stand-in answers ``socket_mode_disabled``.

Fault injection (thread-safe FIFO queue, per method or any method; method name
``"upload"`` is the upload URL): `rate_limit`, `server_error`, `timeout`, `drop`, `error`,
`post_then_drop` (the post is stored, then the connection closes before any answer), the
generic `inject`, and `outage` (every call answers 503 until switched off or timed out).

Timestamps and IDs come from counters, so tests are deterministic: the first message is
``1700000000.000100``, the next ``1700000000.000200``, … (edits consume a ts as well).
"""

from __future__ import annotations

import base64
import copy
import json
import mimetypes
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from email.parser import BytesParser
from email.policy import HTTP as HTTP_POLICY
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from bot.standins.replies import answer

__all__ = [
    "BOT_ID",
    "BOT_USER_ID",
    "DEFAULT_CHANNELS",
    "TEAM_ID",
    "UPLOAD",
    "Message",
    "RecordedRequest",
    "Revision",
    "SlackStandIn",
    "UploadedFile",
]

BOT_USER_ID: Final = "U0BOT"
BOT_ID: Final = "B0BOT"
BOT_NAME: Final = "usage-bot"
APP_ID: Final = "A0APP"
TEAM_ID: Final = "T0TEAM"
TEAM_NAME: Final = "Usage Test"
HUMAN_USER_ID: Final = "U0HUMAN"

UPLOAD: Final = "upload"
"""Method name under which upload-URL POSTs are recorded and faults are matched."""

DEFAULT_CHANNELS: Final[Mapping[str, str]] = {"usage-alerts": "C0ALERTS", "general": "C0GENERAL"}

MAX_BLOCKS: Final = 50
MAX_SECTION_TEXT: Final = 3000
MAX_SECTION_FIELD: Final = 2000
MAX_SECTION_FIELDS: Final = 10
MAX_HEADER_TEXT: Final = 150
MAX_TEXT: Final = 40_000
BLOCKS_ONLY_TEXT: Final = "This content can't be displayed."

APP_TOKEN_METHODS: Final = frozenset({"apps.connections.open"})

_FAULT_KINDS: Final = ("rate_limited", "server_error", "timeout", "drop", "post_then_drop")

Json = dict[str, Any]


# --- public records -----------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as the stand-in saw it (parameters without the token)."""

    method: str
    params: dict[str, Any]
    status: int | None  # None: the connection was dropped without an answer
    at: float  # time.monotonic() on arrival
    error: str | None = None  # Slack error code of an ``ok: false`` answer
    fault: str | None = None  # the injected fault that shaped the answer
    content_type: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None


@dataclass(frozen=True)
class Revision:
    """A version of a message: the original post, then one per ``chat.update``."""

    text: str
    blocks: list[Any] | None
    metadata: dict[str, Any] | None
    edited_ts: str | None  # None for the original post


@dataclass(frozen=True)
class Message:
    """A snapshot of a stored message (top-level messages carry their replies)."""

    channel: str
    ts: str
    user: str
    text: str
    blocks: list[Any] | None
    metadata: dict[str, Any] | None
    thread_ts: str | None  # set on replies only
    files: tuple[dict[str, Any], ...]
    revisions: tuple[Revision, ...]
    replies: tuple[Message, ...]
    params: dict[str, Any]  # the posting call's other parameters (unfurl_links, ...)
    posted_at: float  # time.monotonic()

    @property
    def edits(self) -> tuple[Revision, ...]:
        return self.revisions[1:]

    @property
    def edited(self) -> bool:
        return len(self.revisions) > 1

    @property
    def event_type(self) -> str | None:
        return None if self.metadata is None else self.metadata.get("event_type")


@dataclass(frozen=True)
class UploadedFile:
    id: str
    name: str
    title: str
    length: int  # as declared to files.getUploadURLExternal
    content: bytes | None  # None until the bytes were POSTed to the upload URL
    channel: str | None  # set once completed and shared
    thread_ts: str | None
    initial_comment: str | None
    completed: bool
    alt_txt: str | None = None


# --- internal state -----------------------------------------------------------------------


@dataclass
class _Msg:
    channel: str
    ts: str
    user: str
    text: str
    blocks: list[Any] | None
    attachments: list[Any] | None
    metadata: dict[str, Any] | None
    thread_ts: str | None
    broadcast: bool
    files: list[dict[str, Any]]
    params: dict[str, Any]
    posted_at: float
    revisions: list[Revision] = field(default_factory=list)
    edited_ts: str | None = None
    replies: list[str] = field(default_factory=list)


@dataclass
class _Channel:
    id: str
    name: str
    member: bool
    messages: dict[str, _Msg] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # every ts, oldest first


@dataclass
class _File:
    id: str
    name: str
    length: int
    alt_txt: str | None
    snippet_type: str | None
    created: int
    content: bytes | None = None
    title: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None
    completed: bool = False


@dataclass
class _Fault:
    kind: str
    method: str | None
    remaining: int | None  # None: until clear_faults()
    retry_after: int = 1
    status: int = 500
    seconds: float = 30.0
    commit: bool = False
    code: str = ""

    @property
    def label(self) -> str:
        return f"error:{self.code}" if self.kind == "error" else self.kind


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    action: str = "send"  # send | drop | hang
    seconds: float = 0.0


class _SlackError(Exception):
    def __init__(self, code: str, messages: list[str] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.messages = messages or []


# --- the stand-in -------------------------------------------------------------------------


class SlackStandIn:
    """A Slack Web API on loopback; see the module docstring.

    `channels` maps names (without ``#``) to IDs the bot is a member of; the default is
    `DEFAULT_CHANNELS`. `not_member` lists names of further channels that exist but the
    bot is not in (``chat.postMessage`` answers ``not_in_channel``).
    """

    def __init__(
        self,
        token: str = "xoxb-test",
        channels: Mapping[str, str] | None = None,
        *,
        app_token: str = "xapp-test",
        not_member: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        ts_start: int | None = None,
    ) -> None:
        self.token = token
        self.app_token = app_token
        self._socket_url: Callable[[], str] | None = None
        self._host = host
        self._port = port
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._channels: dict[str, _Channel] = {}
        self._names: dict[str, str] = {}
        self._files: dict[str, _File] = {}
        self._requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._down = False
        self._down_until: float | None = None
        self._down_status = 503
        # Real message ts are wall-clock seconds: lookups by `oldest` rely on it.
        self._ts_micros = int(time.time() if ts_start is None else ts_start) * 1_000_000
        self._ids = 0
        self._httpd: _QuietHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        for name, channel_id in (DEFAULT_CHANNELS if channels is None else channels).items():
            self.add_channel(name, channel_id)
        for name in not_member:
            self.add_channel(name, member=False)

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> SlackStandIn:
        """Bind a free loopback port and serve in a daemon thread; returns self."""
        with self._lock:
            if self._closed:
                raise RuntimeError("SlackStandIn was closed; make a new one")
            if self._httpd is not None:
                return self
            httpd = _QuietHTTPServer((self._host, self._port), _handler_class(self))
            self._httpd = httpd
            self._thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"slack-standin-{httpd.server_port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving; returns promptly, waking any handler held by a timeout fault."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            httpd, thread = self._httpd, self._thread
        self._stop.set()
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(timeout=2.0)

    def __enter__(self) -> SlackStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>`` (upload URLs live here, outside ``/api/``)."""
        if self._httpd is None:
            raise RuntimeError("SlackStandIn is not started; call start() or use `with`")
        return f"http://{self._host}:{self._httpd.server_port}"

    @property
    def url(self) -> str:
        """The Web API base URL for ``WebClient(base_url=...)``; ends with ``/api/``."""
        return f"{self.origin}/api/"

    def serve_socket_mode(self, new_url: Callable[[], str] | None) -> None:
        """Answer ``apps.connections.open`` with `new_url()` (None: stop answering)."""
        with self._lock:
            self._socket_url = new_url

    # --- channels ----------------------------------------------------------------------

    def add_channel(self, name: str, channel_id: str | None = None, *, member: bool = True) -> str:
        """Create a channel (name with or without ``#``); returns its ID."""
        name = name.lstrip("#")
        with self._lock:
            if name in self._names:
                raise ValueError(f"channel #{name} exists already")
            if channel_id is None:
                channel_id = f"C{self._next_id():08d}"
            if channel_id in self._channels:
                raise ValueError(f"channel ID {channel_id} exists already")
            self._channels[channel_id] = _Channel(channel_id, name, member)
            self._names[name] = channel_id
            return channel_id

    def set_member(self, channel: str, member: bool) -> None:
        """Make the bot join (True) or leave (False) a channel."""
        with self._lock:
            self._lookup(channel).member = member

    def channel_id(self, channel: str) -> str:
        """The ID of a channel given by ``#name``, name or ID."""
        with self._lock:
            return self._lookup(channel).id

    # --- fault injection ---------------------------------------------------------------

    def inject(
        self,
        fault: str,
        method: str | None = None,
        *,
        times: int | None = 1,
        retry_after: int = 1,
        status: int | None = None,
        seconds: float = 30.0,
        commit: bool = False,
    ) -> None:
        """Queue a fault for the next `times` calls of `method` (None: any method).

        `fault` is ``rate_limited`` (429 + ``Retry-After: retry_after``), ``server_error``
        (`status`, 500 by default, or 503), ``timeout`` (hold the request `seconds`, then
        drop it), ``drop`` (close the connection unanswered), ``error:<code>`` (200 with
        ``ok: false``) or ``post_then_drop``. With ``commit=True`` a ``timeout`` or ``drop``
        performs the call first (stores the message) and only then withholds the answer.
        `times=None` keeps the fault until `clear_faults()`. Faults apply in FIFO order.
        """
        code = ""
        if fault.startswith("error:"):
            kind, code = "error", fault.removeprefix("error:")
            if not code:
                raise ValueError("error:<code> needs a code")
        elif fault in _FAULT_KINDS:
            kind = fault
        else:
            raise ValueError(f"unknown fault {fault!r}")
        if kind == "post_then_drop":
            kind, commit = "drop", True
            method = method or "chat.postMessage"
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None)")
        if kind == "server_error":
            default_status = 500
        else:
            default_status = 429 if kind == "rate_limited" else 200
        item = _Fault(
            kind=kind,
            method=method,
            remaining=times,
            retry_after=retry_after,
            status=status or default_status,
            seconds=seconds,
            commit=commit,
            code=code,
        )
        with self._lock:
            self._faults.append(item)

    def rate_limit(
        self, method: str | None = None, *, retry_after: int = 1, times: int | None = 1
    ) -> None:
        """HTTP 429, ``Retry-After: <retry_after>``, ``{"ok": false, "error": "ratelimited"}``."""
        self.inject("rate_limited", method, times=times, retry_after=retry_after)

    def server_error(
        self, method: str | None = None, *, status: int = 500, times: int | None = 1
    ) -> None:
        """HTTP `status` (500, 502, 503, ...) with an ``ok: false`` JSON body."""
        self.inject("server_error", method, times=times, status=status)

    def timeout(
        self,
        method: str | None = None,
        *,
        seconds: float = 30.0,
        commit: bool = False,
        times: int | None = 1,
    ) -> None:
        """Hold the request `seconds` (longer than the client's timeout), then drop it."""
        self.inject("timeout", method, times=times, seconds=seconds, commit=commit)

    def drop(
        self, method: str | None = None, *, commit: bool = False, times: int | None = 1
    ) -> None:
        """Close the connection without an answer (the client sees RemoteDisconnected)."""
        self.inject("drop", method, times=times, commit=commit)

    def error(self, code: str, method: str | None = None, *, times: int | None = 1) -> None:
        """HTTP 200 with ``{"ok": false, "error": code}``."""
        self.inject(f"error:{code}", method, times=times)

    def post_then_drop(self, *, method: str = "chat.postMessage", times: int | None = 1) -> None:
        """Store the post, then close the connection before the client reads the answer."""
        self.inject("post_then_drop", method, times=times)

    def outage(self, down: bool = True, *, seconds: float | None = None, status: int = 503) -> None:
        """Take Slack down (every call, uploads included, answers `status`) or back up.

        With `seconds`, the outage ends by itself that long from now.
        """
        with self._lock:
            self._down = down
            self._down_status = status
            self._down_until = time.monotonic() + seconds if down and seconds else None

    @property
    def is_down(self) -> bool:
        with self._lock:
            return self._outage_active()

    def clear_faults(self) -> None:
        """Drop every queued fault and end any outage."""
        with self._lock:
            self._faults.clear()
            self._down = False
            self._down_until = None

    def pending_faults(self) -> list[str]:
        """Labels of the faults still queued, e.g. ``['rate_limited@chat.postMessage']``."""
        with self._lock:
            return [f"{f.label}@{f.method or '*'}" for f in self._faults]

    # --- inspection --------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def calls(self, method: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self._requests if r.method == method]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def messages(self, channel: str) -> list[Message]:
        """Top-level messages of a channel (name or ID), oldest first, with their replies."""
        with self._lock:
            ch = self._lookup(channel)
            return [
                self._snapshot(ch, ch.messages[ts])
                for ts in ch.order
                if ch.messages[ts].thread_ts is None
            ]

    def message(self, channel: str, ts: str) -> Message:
        with self._lock:
            ch = self._lookup(channel)
            if ts not in ch.messages:
                raise KeyError(f"no message {ts} in {ch.id}")
            return self._snapshot(ch, ch.messages[ts])

    def thread(self, channel: str, ts: str) -> list[Message]:
        """The parent then its replies, oldest first (`ts` may name a reply)."""
        with self._lock:
            ch = self._lookup(channel)
            if ts not in ch.messages:
                raise KeyError(f"no message {ts} in {ch.id}")
            parent = ch.messages[ts]
            if parent.thread_ts is not None:
                parent = ch.messages[parent.thread_ts]
            return [self._snapshot(ch, parent)] + [
                self._snapshot(ch, ch.messages[r]) for r in parent.replies
            ]

    def parents_with_metadata(
        self, event_type: str | None = None, channel: str | None = None
    ) -> list[Message]:
        """Top-level messages carrying metadata (of `event_type`, if given), oldest first."""
        with self._lock:
            chans = [self._lookup(channel)] if channel else list(self._channels.values())
            return [
                msg
                for ch in chans
                for msg in self.messages(ch.id)
                if msg.metadata is not None and (event_type is None or msg.event_type == event_type)
            ]

    @property
    def files(self) -> list[UploadedFile]:
        """Every file announced with files.getUploadURLExternal, in order."""
        with self._lock:
            return [
                UploadedFile(
                    id=f.id,
                    name=f.name,
                    title=f.title or f.name,
                    length=f.length,
                    content=f.content,
                    channel=f.channel,
                    thread_ts=f.thread_ts,
                    initial_comment=f.initial_comment,
                    completed=f.completed,
                    alt_txt=f.alt_txt,
                )
                for f in self._files.values()
            ]

    def transcript(self, channel: str) -> str:
        """The channel as plain text: each parent, then its replies indented (for the demo)."""
        lines: list[str] = []
        for msg in self.messages(channel):
            mark = " (edited)" if msg.edited else ""
            lines.append(f"[{msg.ts}] {msg.text}{mark}")
            for rep in msg.replies:
                names = ", ".join(str(f.get("name")) for f in rep.files)
                extra = f" [file: {names}]" if names else ""
                lines.append(f"    ↳ [{rep.ts}] {rep.text}{extra}")
        return "\n".join(lines)

    def add_message(
        self,
        channel: str,
        text: str,
        *,
        user: str = HUMAN_USER_ID,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Seed a message as if someone else posted it; returns its ts."""
        with self._lock:
            ch = self._lookup(channel)
            try:
                parent = self._thread_parent(ch, thread_ts)
            except _SlackError:
                raise KeyError(f"no message {thread_ts} in {ch.id}") from None
            return self._store(ch, user, text, None, None, metadata, parent, False, [], {}).ts

    # --- request handling --------------------------------------------------------------

    def _respond(self, path: str, headers: Mapping[str, str], body: bytes) -> _Reply:
        arrival = time.monotonic()
        content_type = headers.get("Content-Type", "")
        url = urlsplit(path)
        if url.path.startswith("/api/"):
            method = url.path.removeprefix("/api/")
            params = _parse_params(url.query, content_type, body)
            token = _bearer(headers.get("Authorization")) or _as_str(params.pop("token", None))
            upload_id = None
        elif url.path.startswith("/upload/"):
            method, token = UPLOAD, None
            upload_id = url.path.removeprefix("/upload/")
            params = {"file_id": upload_id, "bytes": len(body)}
        else:
            reply = _json_reply(404, {"ok": False, "error": "not_found"})
            self._record(url.path, {}, reply, arrival, None, content_type)
            return reply

        with self._lock:
            if self._outage_active():
                status = self._down_status
                reply = _json_reply(status, {"ok": False, "error": _status_error(status)})
                self._record(method, params, reply, arrival, "outage", content_type)
                return reply
            fault = self._take_fault(method)
            if fault is not None and not fault.commit:
                reply = _fault_reply(fault)
            elif upload_id is not None:
                reply = self._upload(upload_id, body, content_type)
            else:
                reply = self._call(method, params, token)
            if fault is not None and fault.commit:
                reply = _Reply(0, action="hang" if fault.kind == "timeout" else "drop")
                reply.seconds = fault.seconds
            label = fault.label if fault is not None else None
            self._record(method, params, reply, arrival, label, content_type)
            return reply

    def _record(
        self,
        method: str,
        params: dict[str, Any],
        reply: _Reply,
        arrival: float,
        fault: str | None,
        content_type: str,
    ) -> None:
        error = None
        if reply.action == "send" and reply.headers.get("Content-Type", "").startswith(
            "application/json"
        ):
            error = json.loads(reply.body).get("error")
        with self._lock:
            self._requests.append(
                RecordedRequest(
                    method=method,
                    params=params,
                    status=reply.status if reply.action == "send" else None,
                    at=arrival,
                    error=error,
                    fault=fault,
                    content_type=content_type,
                )
            )

    def _outage_active(self) -> bool:
        if self._down and self._down_until is not None and time.monotonic() >= self._down_until:
            self._down, self._down_until = False, None
        return self._down

    def _take_fault(self, method: str) -> _Fault | None:
        for i, f in enumerate(self._faults):
            if f.method is None or f.method == method:
                if f.remaining is not None:
                    f.remaining -= 1
                    if f.remaining == 0:
                        del self._faults[i]
                return f
        return None

    def _call(self, method: str, params: dict[str, Any], token: str | None) -> _Reply:
        handler = self._methods().get(method)
        try:
            if handler is None:
                raise _SlackError("unknown_method")
            if not token:
                raise _SlackError("not_authed")
            if method in APP_TOKEN_METHODS:
                return _json_reply(200, self._with_app_token(token, handler, params))
            if token != self.token:
                raise _SlackError("invalid_auth")
            return _json_reply(200, handler(params))
        except _SlackError as e:
            body: Json = {"ok": False, "error": e.code}
            if e.messages:
                body["response_metadata"] = {"messages": e.messages}
            return _json_reply(200, body)

    def _methods(self) -> dict[str, Callable[[dict[str, Any]], Json]]:
        return {
            "apps.connections.open": self._connections_open,
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "conversations.history": self._history,
            "conversations.list": self._list,
            "conversations.replies": self._replies,
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete_upload,
        }

    def _with_app_token(
        self, token: str, handler: Callable[[dict[str, Any]], Json], params: dict[str, Any]
    ) -> Json:
        if token == self.token:
            raise _SlackError("not_allowed_token_type")  # a bot token where an app token goes
        if token != self.app_token:
            raise _SlackError("invalid_auth")
        return handler(params)

    # --- methods -----------------------------------------------------------------------

    def _connections_open(self, params: dict[str, Any]) -> Json:
        if self._socket_url is None:
            raise _SlackError("socket_mode_disabled")
        return {"ok": True, "url": self._socket_url()}

    def _auth_test(self, params: dict[str, Any]) -> Json:
        return {
            "ok": True,
            "url": "https://usage-test.slack.com/",
            "team": TEAM_NAME,
            "user": BOT_NAME,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _post_message(self, p: dict[str, Any]) -> Json:
        ch = self._channel_for_post(_as_str(p.get("channel")))
        text = _as_str(p.get("text")) or _as_str(p.get("markdown_text")) or ""
        blocks = _json_value(p, "blocks", "invalid_blocks_format")
        attachments = _json_value(p, "attachments", "invalid_attachments")
        metadata = _metadata(p)
        if not text and not blocks and not attachments:
            raise _SlackError("no_text")
        if len(text) > MAX_TEXT:
            raise _SlackError("msg_too_long")
        if blocks is not None:
            _check_blocks(blocks)
            blocks = blocks or None
        if not text and blocks:
            text = BLOCKS_ONLY_TEXT
        parent = self._thread_parent(ch, _as_str(p.get("thread_ts")))
        broadcast = parent is not None and _as_bool(p.get("reply_broadcast"))
        extra = {
            k: v
            for k, v in p.items()
            if k not in {"channel", "text", "markdown_text", "blocks", "attachments", "metadata"}
        }
        msg = self._store(
            ch, BOT_USER_ID, text, blocks, attachments, metadata, parent, broadcast, [], extra
        )
        return {
            "ok": True,
            "channel": ch.id,
            "ts": msg.ts,
            "message": self._api_message(ch, msg, include_metadata=True),
        }

    def _update(self, p: dict[str, Any]) -> Json:
        ch = self._channel_by_id(_as_str(p.get("channel")), need_member=False)
        ts = _as_str(p.get("ts"))
        msg = ch.messages.get(ts or "")
        if msg is None:
            raise _SlackError("message_not_found")
        if msg.user != BOT_USER_ID:
            raise _SlackError("cant_update_message")
        text = _as_str(p.get("text")) or _as_str(p.get("markdown_text"))
        blocks = _json_value(p, "blocks", "invalid_blocks_format")
        attachments = _json_value(p, "attachments", "invalid_attachments")
        if not text and not blocks and not attachments and not msg.files:
            raise _SlackError("no_text")
        if text is not None and len(text) > MAX_TEXT:
            raise _SlackError("msg_too_long")
        if blocks is not None:
            _check_blocks(blocks)
            msg.blocks = blocks or None
        if attachments is not None:
            msg.attachments = attachments or None
        if "metadata" in p:  # absent: keep; {} removes it
            msg.metadata = _metadata(p)
        if text:
            msg.text = text
        msg.edited_ts = self._next_ts()
        msg.revisions.append(
            Revision(
                msg.text, copy.deepcopy(msg.blocks), copy.deepcopy(msg.metadata), msg.edited_ts
            )
        )
        return {
            "ok": True,
            "channel": ch.id,
            "ts": msg.ts,
            "text": msg.text,
            "message": self._api_message(ch, msg, include_metadata=True),
        }

    def _list(self, p: dict[str, Any]) -> Json:
        with self._lock:
            channels = [
                {"id": ch.id, "name": ch.name, "is_channel": True, "is_member": ch.member}
                for ch in self._channels.values()
            ]
        return {"ok": True, "channels": channels, "response_metadata": {"next_cursor": ""}}

    def _history(self, p: dict[str, Any]) -> Json:
        ch = self._channel_by_id(_as_str(p.get("channel")), need_member=True)
        limit = _limit(p.get("limit"), default=100, maximum=999)
        with_meta = _as_bool(p.get("include_all_metadata"))
        inclusive = _as_bool(p.get("inclusive"))
        oldest = _ts_value(p.get("oldest")) or Decimal(0)
        latest = _ts_value(p.get("latest"))
        listed = [
            ch.messages[ts]
            for ts in reversed(ch.order)
            if ch.messages[ts].thread_ts is None or ch.messages[ts].broadcast
        ]

        def in_range(m: _Msg) -> bool:
            t = Decimal(m.ts)
            low_ok = t >= oldest if inclusive else t > oldest
            high_ok = latest is None or (t <= latest if inclusive else t < latest)
            return low_ok and high_ok

        listed = [m for m in listed if in_range(m)]
        start = _cursor_ts(p.get("cursor"))
        if start is not None:
            listed = [m for m in listed if Decimal(m.ts) <= start]
        page, rest = listed[:limit], listed[limit:]
        out: Json = {
            "ok": True,
            "messages": [self._api_message(ch, m, include_metadata=with_meta) for m in page],
            "has_more": bool(rest),
            "pin_count": 0,
        }
        if rest:
            out["response_metadata"] = {"next_cursor": _cursor(rest[0].ts)}
        return out

    def _replies(self, p: dict[str, Any]) -> Json:
        ch = self._channel_by_id(_as_str(p.get("channel")), need_member=True)
        msg = ch.messages.get(_as_str(p.get("ts")) or "")
        if msg is None:
            raise _SlackError("thread_not_found")
        parent = ch.messages[msg.thread_ts] if msg.thread_ts else msg
        limit = _limit(p.get("limit"), default=1000, maximum=1000)
        with_meta = _as_bool(p.get("include_all_metadata"))
        listed = [parent] + [ch.messages[r] for r in parent.replies]
        start = _cursor_ts(p.get("cursor"))
        if start is not None:
            listed = [m for m in listed if Decimal(m.ts) >= start]
        page, rest = listed[:limit], listed[limit:]
        out: Json = {
            "ok": True,
            "messages": [self._api_message(ch, m, include_metadata=with_meta) for m in page],
            "has_more": bool(rest),
        }
        if rest:
            out["response_metadata"] = {"next_cursor": _cursor(rest[0].ts)}
        return out

    def _get_upload_url(self, p: dict[str, Any]) -> Json:
        filename = _as_str(p.get("filename"))
        try:
            length = int(str(p.get("length")))
        except ValueError:
            length = 0
        if not filename or length < 1:
            raise _SlackError("invalid_arguments")
        file_id = f"F{self._next_id():08d}"
        self._files[file_id] = _File(
            id=file_id,
            name=filename,
            length=length,
            alt_txt=_as_str(p.get("alt_txt")),
            snippet_type=_as_str(p.get("snippet_type")),
            created=self._ts_micros // 1_000_000,
        )
        return {"ok": True, "upload_url": f"{self.origin}/upload/{file_id}", "file_id": file_id}

    def _upload(self, file_id: str, body: bytes, content_type: str) -> _Reply:
        f = self._files.get(file_id)
        if f is None or f.completed:
            return _Reply(404, b"Not Found", {"Content-Type": "text/plain; charset=utf-8"})
        f.content = _multipart_file(content_type, body) or body
        text = f"OK - {len(f.content)}".encode()
        return _Reply(200, text, {"Content-Type": "text/plain; charset=utf-8"})

    def _complete_upload(self, p: dict[str, Any]) -> Json:
        items = _json_value(p, "files", "invalid_arguments")
        if not isinstance(items, list) or not items:
            raise _SlackError("invalid_arguments")
        chosen: list[tuple[_File, str | None]] = []
        for item in items:
            if not isinstance(item, dict) or not item.get("id"):
                raise _SlackError("invalid_arguments")
            f = self._files.get(str(item["id"]))
            if f is None or f.content is None:
                raise _SlackError("file_not_found")
            if f.completed:
                raise _SlackError("file_already_completed")
            chosen.append((f, _as_str(item.get("title"))))
        channel_id = _as_str(p.get("channel_id"))
        if not channel_id and p.get("channels"):
            channel_id = (_as_str(p.get("channels")) or "").split(",")[0].strip()
        thread_ts = _as_str(p.get("thread_ts"))
        comment = _as_str(p.get("initial_comment"))
        ch = self._channel_by_id(channel_id, need_member=True) if channel_id else None
        if thread_ts and ch is None:
            raise _SlackError("invalid_arguments")
        parent = self._thread_parent(ch, thread_ts) if ch is not None else None
        for f, title in chosen:
            f.completed = True
            f.title = title or f.name
            f.initial_comment = comment
            if ch is not None:
                f.channel, f.thread_ts = ch.id, parent.ts if parent else None
        objects = [self._file_object(f) for f, _ in chosen]
        if ch is not None:
            self._store(
                ch, BOT_USER_ID, comment or "", None, None, None, parent, False, objects, {}
            )
        return {"ok": True, "files": objects}

    # --- helpers (call with the lock held) ---------------------------------------------

    def _next_ts(self) -> str:
        self._ts_micros += 100
        return f"{self._ts_micros // 1_000_000}.{self._ts_micros % 1_000_000:06d}"

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _lookup(self, channel: str) -> _Channel:
        """Inspection: accept ``#name``, name or ID."""
        if channel in self._channels:
            return self._channels[channel]
        name = channel.lstrip("#")
        if name in self._names:
            return self._channels[self._names[name]]
        raise KeyError(f"no channel {channel!r}")

    def _channel_for_post(self, channel: str | None) -> _Channel:
        if not channel:
            raise _SlackError("channel_not_found")
        ch = self._channels.get(channel)
        if ch is None:
            ch_id = self._names.get(channel.removeprefix("#"))
            if ch_id is None:
                raise _SlackError("channel_not_found")
            ch = self._channels[ch_id]
        if not ch.member:
            raise _SlackError("not_in_channel")
        return ch

    def _channel_by_id(self, channel: str | None, *, need_member: bool) -> _Channel:
        ch = self._channels.get(channel or "")
        if ch is None:
            raise _SlackError("channel_not_found")
        if need_member and not ch.member:
            raise _SlackError("not_in_channel")
        return ch

    def _thread_parent(self, ch: _Channel, thread_ts: str | None) -> _Msg | None:
        if not thread_ts:
            return None
        msg = ch.messages.get(thread_ts)
        if msg is None:
            raise _SlackError("thread_not_found")
        return ch.messages[msg.thread_ts] if msg.thread_ts else msg

    def _store(
        self,
        ch: _Channel,
        user: str,
        text: str,
        blocks: list[Any] | None,
        attachments: list[Any] | None,
        metadata: dict[str, Any] | None,
        parent: _Msg | None,
        broadcast: bool,
        files: list[dict[str, Any]],
        params: dict[str, Any],
    ) -> _Msg:
        msg = _Msg(
            channel=ch.id,
            ts=self._next_ts(),
            user=user,
            text=text,
            blocks=copy.deepcopy(blocks),
            attachments=copy.deepcopy(attachments),
            metadata=copy.deepcopy(metadata),
            thread_ts=parent.ts if parent else None,
            broadcast=broadcast,
            files=files,
            params=copy.deepcopy(params),
            posted_at=time.monotonic(),
        )
        msg.revisions.append(Revision(text, copy.deepcopy(blocks), copy.deepcopy(metadata), None))
        ch.messages[msg.ts] = msg
        ch.order.append(msg.ts)
        if parent is not None:
            parent.replies.append(msg.ts)
        return msg

    def _file_object(self, f: _File) -> Json:
        mimetype = mimetypes.guess_type(f.name)[0] or "application/octet-stream"
        return {
            "id": f.id,
            "created": f.created,
            "timestamp": f.created,
            "name": f.name,
            "title": f.title or f.name,
            "mimetype": mimetype,
            "filetype": f.name.rsplit(".", 1)[-1].lower() if "." in f.name else "binary",
            "user": BOT_USER_ID,
            "size": len(f.content or b""),
            "mode": "hosted",
            "is_external": False,
            "url_private": f"{self.origin}/files/{f.id}/{f.name}",
            "permalink": f"https://usage-test.slack.com/files/{BOT_USER_ID}/{f.id}/{f.name}",
        }

    def _api_message(self, ch: _Channel, m: _Msg, *, include_metadata: bool) -> Json:
        out: Json = {"type": "message", "user": m.user, "text": m.text, "ts": m.ts, "team": TEAM_ID}
        if m.user == BOT_USER_ID:
            out.update({"bot_id": BOT_ID, "app_id": APP_ID})
        if m.blocks is not None:
            out["blocks"] = copy.deepcopy(m.blocks)
        if m.attachments:
            out["attachments"] = copy.deepcopy(m.attachments)
        if m.files:
            out.update({"files": copy.deepcopy(m.files), "upload": True, "display_as_bot": False})
        if m.edited_ts is not None:
            out["edited"] = {"user": m.user, "ts": m.edited_ts}
        if m.thread_ts is not None:
            out["thread_ts"] = m.thread_ts
            out["parent_user_id"] = ch.messages[m.thread_ts].user
            if m.broadcast:
                out["subtype"] = "thread_broadcast"
        elif m.replies:
            users = list(dict.fromkeys(ch.messages[r].user for r in m.replies))
            out.update(
                {
                    "thread_ts": m.ts,
                    "reply_count": len(m.replies),
                    "reply_users_count": len(users),
                    "latest_reply": m.replies[-1],
                    "reply_users": users,
                    "is_locked": False,
                    "subscribed": False,
                }
            )
        if include_metadata and m.metadata is not None:
            out["metadata"] = copy.deepcopy(m.metadata)
        return out

    def _snapshot(self, ch: _Channel, m: _Msg) -> Message:
        replies = tuple(self._snapshot(ch, ch.messages[r]) for r in m.replies)
        return Message(
            channel=ch.id,
            ts=m.ts,
            user=m.user,
            text=m.text,
            blocks=copy.deepcopy(m.blocks),
            metadata=copy.deepcopy(m.metadata),
            thread_ts=m.thread_ts,
            files=tuple(copy.deepcopy(m.files)),
            revisions=tuple(m.revisions),
            replies=replies,
            params=copy.deepcopy(m.params),
            posted_at=m.posted_at,
        )


# --- parsing and validation ---------------------------------------------------------------


def _parse_params(query: str, content_type: str, body: bytes) -> dict[str, Any]:
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "application/json":
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            data = None
        if isinstance(data, dict):
            params.update(data)
    elif ctype == "multipart/form-data":
        params.update(_multipart_fields(content_type, body))
    elif body:
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params


def _multipart_parts(content_type: str, body: bytes) -> list[Any]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = BytesParser(policy=HTTP_POLICY).parsebytes(head + body)
    return list(msg.iter_parts()) if msg.is_multipart() else []


def _multipart_fields(content_type: str, body: bytes) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for part in _multipart_parts(content_type, body):
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        fields[str(name)] = payload if part.get_filename() else payload.decode("utf-8", "replace")
    return fields


def _multipart_file(content_type: str, body: bytes) -> bytes | None:
    if not content_type.lower().startswith("multipart/form-data"):
        return None
    for part in _multipart_parts(content_type, body):
        if part.get_filename():
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else b""
    return None


def _bearer(value: str | None) -> str | None:
    if value and value.lower().startswith("bearer "):
        return value[7:].strip() or None
    return None


def _as_str(value: Any) -> str | None:
    """A scalar parameter as a string (JSON bodies may carry numbers); None if absent."""
    if value is None or value == "" or isinstance(value, dict | list | bytes):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes"}
    return bool(value)


def _json_value(p: dict[str, Any], key: str, error: str) -> Any:
    value = p.get(key)
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            return json.loads(value)
        except ValueError:
            raise _SlackError(error) from None
    if isinstance(value, bytes):
        raise _SlackError(error)
    return value


def _metadata(p: dict[str, Any]) -> dict[str, Any] | None:
    meta = _json_value(p, "metadata", "invalid_metadata_format")
    if meta is None or meta == {}:
        return None
    if (
        not isinstance(meta, dict)
        or not isinstance(meta.get("event_type"), str)
        or not meta["event_type"]
        or not isinstance(meta.get("event_payload"), dict)
    ):
        raise _SlackError("invalid_metadata_format")
    return {"event_type": meta["event_type"], "event_payload": meta["event_payload"]}


def _check_blocks(blocks: Any) -> None:
    def bad(message: str, pointer: str) -> _SlackError:
        return _SlackError("invalid_blocks", [f"[ERROR] {message} [json-pointer:{pointer}]"])

    if not isinstance(blocks, list):
        raise _SlackError("invalid_blocks_format")
    if len(blocks) > MAX_BLOCKS:
        raise bad(f"no more than {MAX_BLOCKS} items allowed", "/blocks")
    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise bad("missing required field: type", where)
        text = block.get("text")
        text_value = text.get("text") if isinstance(text, dict) else None
        if block["type"] == "section":
            fields = block.get("fields")
            if text_value is None and not fields:
                raise bad("must provide either text or fields", where)
            if isinstance(text_value, str) and len(text_value) > MAX_SECTION_TEXT:
                raise bad(
                    f"must be less than {MAX_SECTION_TEXT + 1} characters", f"{where}/text/text"
                )
            if fields is not None:
                if not isinstance(fields, list) or len(fields) > MAX_SECTION_FIELDS:
                    raise bad(f"no more than {MAX_SECTION_FIELDS} items allowed", f"{where}/fields")
                for j, f in enumerate(fields):
                    value = f.get("text") if isinstance(f, dict) else None
                    if isinstance(value, str) and len(value) > MAX_SECTION_FIELD:
                        raise bad(
                            f"must be less than {MAX_SECTION_FIELD + 1} characters",
                            f"{where}/fields/{j}/text",
                        )
        elif block["type"] == "header":
            if not isinstance(text_value, str):
                raise bad("missing required field: text", where)
            if len(text_value) > MAX_HEADER_TEXT:
                raise bad(
                    f"must be less than {MAX_HEADER_TEXT + 1} characters", f"{where}/text/text"
                )


def _limit(value: Any, *, default: int, maximum: int) -> int:
    if value in (None, ""):
        return default
    try:
        n = int(str(value))
    except ValueError:
        raise _SlackError("invalid_limit") from None
    return default if n <= 0 else min(n, maximum)


def _ts_value(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise _SlackError("invalid_ts_oldest") from None


def _cursor(ts: str) -> str:
    return base64.b64encode(f"next_ts:{ts.replace('.', '')}".encode()).decode()


def _cursor_ts(value: Any) -> Decimal | None:
    if not value:
        return None
    try:
        raw = base64.b64decode(str(value), validate=True).decode()
        digits = raw.removeprefix("next_ts:")
        if not raw.startswith("next_ts:") or not digits.isdigit() or len(digits) <= 6:
            raise ValueError(raw)
        return Decimal(f"{digits[:-6]}.{digits[-6:]}")
    except ValueError:
        raise _SlackError("invalid_cursor") from None


# --- HTTP plumbing -------------------------------------------------------------------------


def _json_reply(status: int, body: Json, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(
        status,
        json.dumps(body).encode(),
        {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
    )


def _status_error(status: int) -> str:
    return {429: "ratelimited", 503: "service_unavailable"}.get(status, "internal_error")


def _fault_reply(fault: _Fault) -> _Reply:
    if fault.kind == "rate_limited":
        return _json_reply(
            429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(fault.retry_after)}
        )
    if fault.kind == "server_error":
        return _json_reply(fault.status, {"ok": False, "error": _status_error(fault.status)})
    if fault.kind == "error":
        return _json_reply(200, {"ok": False, "error": fault.code})
    if fault.kind == "timeout":
        return _Reply(0, action="hang", seconds=fault.seconds)
    return _Reply(0, action="drop")


class _QuietHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (its timeout, a dropped connection) is expected here;
        # anything else is a stand-in bug, so keep the default traceback for it.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


def _handler_class(standin: SlackStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "slack-standin"
        sys_version = ""

        def do_POST(self) -> None:
            body = self._read_body()
            reply = standin._respond(self.path, dict(self.headers.items()), body)
            if reply.action == "hang":
                standin._stop.wait(reply.seconds)  # close() cuts this short
                reply.action = "drop"
            answer(self, reply.status, reply.headers, reply.body, drop=reply.action == "drop")

        do_GET = do_POST

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output and the demo console clean

        def _read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

    return Handler
